//! `lpc list`: the services of the runtime directory.

use anstyle::Style;
use lpc::registry::{self, ListingState};
use serde_json::json;

use crate::common::{
    fmt_pid, fmt_uptime, safe, table, to_json, CliError, CliResult, Ctx, DIM, NAME, WARN,
};

pub fn run(ctx: &Ctx, prune: bool, json: bool) -> CliResult {
    let dir = &ctx.runtime_dir;
    let pruned = if prune {
        registry::prune(dir).map_err(|e| {
            dir_error(e).hint("choose the directory with `--runtime-dir DIR` or $LPC_RUNTIME_DIR")
        })?
    } else {
        Vec::new()
    };
    let listings =
        registry::list_served_by(dir, ctx.timeout, &ctx.service_user()).map_err(|e| {
            dir_error(e).hint("choose the directory with `--runtime-dir DIR` or $LPC_RUNTIME_DIR")
        })?;
    // Shared values and segments: with --prune, the name files no live process holds go.
    let (shared, pruned_shared) = if prune {
        let removed = lpc::shared::prune(dir).map_err(dir_error)?;
        (lpc::shared::list(dir).map_err(dir_error)?, removed)
    } else {
        (lpc::shared::list(dir).map_err(dir_error)?, Vec::new())
    };

    if json {
        let services: Vec<_> = listings
            .iter()
            .map(|l| match &l.state {
                ListingState::Live(info) => json!({
                    "name": l.name,
                    "state": "live",
                    "pid": info.pid,
                    "user": info.user,
                    "interface": info.interface.name,
                    "fingerprint": format!("{:016x}", info.interface.fingerprint),
                    "methods": info.interface.methods.len(),
                    "connections": info.connections,
                    "uptime_secs": info.uptime.as_secs_f64(),
                }),
                ListingState::Stale => json!({"name": l.name, "state": "stale"}),
                ListingState::Unresponsive(why) => {
                    json!({"name": l.name, "state": "unresponsive", "error": why})
                }
            })
            .collect();
        let out = json!({
            "runtime_dir": dir,
            "pruned": pruned,
            "services": services,
            "pruned_shared": pruned_shared,
            "shared": crate::shared::listing_json(&shared),
        });
        anstream::println!("{}", to_json(&out, false));
        return Ok(());
    }

    for name in &pruned {
        anstream::println!("removed the stale socket of `{}`", safe(name));
    }
    for name in &pruned_shared {
        anstream::println!("removed the stale name file of `{}`", safe(name));
    }
    if listings.is_empty() {
        anstream::println!("no services in {}", dir.display());
        crate::shared::print_table(&shared);
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut stale = 0;
    let plain = Style::new();
    for l in &listings {
        let row = match &l.state {
            ListingState::Live(info) => vec![
                (l.name.clone(), NAME),
                (fmt_pid(info.pid), plain),
                (info.user.clone(), plain),
                (info.interface.name.clone(), plain),
                (format!("{:016x}", info.interface.fingerprint), DIM),
                (info.interface.methods.len().to_string(), plain),
                (info.connections.to_string(), plain),
                (fmt_uptime(info.uptime), plain),
            ],
            ListingState::Stale => {
                stale += 1;
                vec![
                    (l.name.clone(), DIM),
                    ("-".into(), DIM),
                    ("-".into(), DIM),
                    ("stale: its service died".into(), WARN),
                ]
            }
            ListingState::Unresponsive(why) => vec![
                (l.name.clone(), DIM),
                ("-".into(), DIM),
                ("-".into(), DIM),
                (format!("unresponsive: {why}"), WARN),
            ],
        };
        rows.push(row);
    }
    anstream::print!(
        "{}",
        table(
            &[
                "NAME",
                "PID",
                "USER",
                "INTERFACE",
                "FINGERPRINT",
                "METHODS",
                "CLIENTS",
                "UPTIME"
            ],
            &rows
        )
    );
    if stale > 0 {
        anstream::println!(
            "{DIM}{stale} stale socket{} (left by services that died): `lpc list --prune` removes {}{DIM:#}",
            if stale == 1 { "" } else { "s" },
            if stale == 1 { "it" } else { "them" }
        );
    }
    crate::shared::print_table(&shared);
    Ok(())
}

/// An error about the directory itself (no service involved): `reading runtime directory X: ...`.
fn dir_error(e: lpc::Error) -> CliError {
    match e {
        lpc::Error::Io {
            context, source, ..
        } => CliError::new(format!("{context}: {source}")),
        e => CliError::new(e.to_string()),
    }
}
