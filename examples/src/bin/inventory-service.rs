//! The inventory service: `inventory-service [--name inventory]`, starting with 10 apples.
//! Prints `ready` once clients can connect.

use lpc_examples::inventory::{InventoryServer, Store};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("inventory");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(InventoryServer::new(Store::default()))
}
