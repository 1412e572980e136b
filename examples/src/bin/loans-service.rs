//! The image service: `loans-service [--name images]`. Prints `ready` once clients can
//! connect.

use lpc_examples::loans::{ImageService, ImagesServer};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("images");
    let server = lpc::Server::bind(&name)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(ImagesServer::new(ImageService))
}
