//! The compare service: `compare-service [--name compare]`. Prints `ready` once clients can
//! connect.

use lpc_examples::compare::{Comparator, CompareServer};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("compare");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(CompareServer::new(Comparator::default()))
}
