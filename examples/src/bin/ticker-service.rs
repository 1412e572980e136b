//! The ticker service: `ticker-service [--name ticker]`. Prints `ready` once clients can
//! connect; emits `tick` every 100 ms and `progress` to the caller of `job`.

use std::time::Duration;

use lpc_examples::ticker::{start_ticking, TickerEventsEmitter, TickerServer, TickerService};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("ticker");
    let events = TickerEventsEmitter::new();
    let server = lpc::Server::bind(&name)?.with_events(&events);
    start_ticking(events.clone(), Duration::from_millis(100));
    println!("ready: service `{name}` at {}", server.path().display());
    server.serve(TickerServer::new(TickerService::new(events)))
}
