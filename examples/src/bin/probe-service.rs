//! The probe service: `probe-service [--name probe] [--allow-uid UID]`. Prints `ready` once
//! clients can connect.
//!
//! By default only processes of the service's own user may connect; `--allow-uid UID` admits
//! user UID as well (`ServerOptions::allow_uid`).
//!
//! lpc logs through `tracing`; this service prints its events on stderr, those at `warn`
//! and above by default (`RUST_LOG=lpc=debug` shows every client connecting and leaving).

use lpc_examples::probe::{ProbeServer, ProbeService};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let name = lpc_examples::name_arg("probe");
    let mut options = lpc::ServerOptions::new();
    if let Some(uid) = lpc_examples::string_arg("--allow-uid") {
        let uid = uid.parse().unwrap_or_else(|_| {
            eprintln!("error: --allow-uid takes a numeric uid, not `{uid}`");
            std::process::exit(2)
        });
        options = options.allow_uid(uid);
    }
    let server = lpc::Server::bind_with(&name, options)?;
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(ProbeServer::new(ProbeService))
}
