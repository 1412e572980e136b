//! The calc service: `calc-service [--name calc]`. Prints `ready` once clients can connect.

use lpc_examples::calc::{CalcServer, Calculator};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("calc");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(CalcServer::new(Calculator))
}
