//! `lpc watch NAME [EVENT…] [--count N]`: subscribes to a service's events and prints each as
//! a JSON line (`{"event": name, "args": {…}, "missed": n}`), decoded by the shapes the
//! service announced, until interrupted, `--count` events, or the service is gone.

use std::io::Write as _;

use lpc::{JsonEvent, SubscribeOptions, Subscription};

use crate::common::{json_safe, CliError, CliResult, Ctx};

pub fn run(ctx: &Ctx, service: &str, events: &[String], count: Option<u64>) -> CliResult {
    let mut options = SubscribeOptions::new().client_options(ctx.options());
    if !events.is_empty() {
        options = options.events(events.iter().cloned());
    }
    let mut sub =
        Subscription::<JsonEvent>::open(service, options).map_err(|e| ctx.lpc_error(e))?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    while count.is_none_or(|n| printed < n) {
        match sub.recv() {
            Ok(received) => {
                let line = serde_json::json!({
                    "event": received.event.name,
                    "args": received.event.args,
                    "missed": received.missed,
                });
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", json_safe(line.to_string()));
                let _ = out.flush();
                printed += 1;
            }
            Err(lpc::Error::Disconnected { .. }) => {
                return Err(CliError::new(format!(
                    "service `{service}` is gone (after {printed} events, {} missed)",
                    sub.missed()
                )))
            }
            Err(e) => return Err(ctx.lpc_error(e)),
        }
    }
    Ok(())
}
