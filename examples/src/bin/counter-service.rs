//! The counter service: `counter-service [--name counter]`. Prints `ready` once clients can
//! connect.

use lpc_examples::counter::{CounterServer, SharedCounter};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("counter");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    // One `SharedCounter` for the service's life: every client calls the same one.
    server.serve(CounterServer::new(SharedCounter::default()))
}
