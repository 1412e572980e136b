//! The copy-data service: `copydata-service [--name copydata]`. Prints `ready` once clients
//! can connect, then one line per message received.

use lpc_examples::copydata::{CopyDataServer, Receiver};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("copydata");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(CopyDataServer::new(Receiver::default()))
}
