//! `lpc get` and `lpc set`: a shared value read and written as JSON through the shape its
//! memory records; and the shared values and segments of `lpc list`.

use anstyle::Style;
use lpc::shared::{SharedKind, SharedListing};
use lpc::SharedOptions;
use serde_json::{json, Value};

use crate::common::{table, to_json, CliError, CliResult, Ctx, DIM, NAME, WARN};

fn open(ctx: &Ctx, name: &str) -> CliResult<lpc::shared::UntypedShared> {
    SharedOptions::new()
        .runtime_dir(&ctx.runtime_dir)
        .open_untyped(name)
        .map_err(|e| match e {
            e @ lpc::Error::SharedNotFound { .. } => CliError::new(e.to_string())
                .hint("`lpc list` shows the shared values of the runtime directory"),
            e => CliError::new(e.to_string()),
        })
}

/// `lpc get NAME`: the value as JSON on stdout.
pub fn get(ctx: &Ctx, name: &str, compact: bool) -> CliResult {
    let value = open(ctx, name)?;
    let (json, _) = value.get_json().map_err(|e| CliError::new(e.to_string()))?;
    anstream::println!("{}", to_json(&json, compact));
    Ok(())
}

/// `lpc set NAME JSON`: writes the value.
pub fn set(ctx: &Ctx, name: &str, text: &str) -> CliResult {
    let value = open(ctx, name)?;
    let json: Value = serde_json::from_str(text).map_err(|e| {
        CliError::new(format!("the value is not JSON: {e}"))
            .detail(format!("got: {text}"))
            .hint("strings are JSON: quoted, inside shell quotes: lpc set NAME '\"text\"'")
    })?;
    value.set_json(&json).map_err(|e| {
        CliError::new(e.to_string()).hint(format!(
            "`lpc get {name}` shows a value of its type, `{}`",
            value.type_text()
        ))
    })?;
    Ok(())
}

fn kind(l: &SharedListing) -> &'static str {
    match l.kind {
        SharedKind::Value => "value",
        SharedKind::Segment => "segment",
    }
}

/// The shared values and segments as JSON, for `lpc list --json`.
pub fn listing_json(listings: &[SharedListing]) -> Vec<Value> {
    listings
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "kind": kind(l),
                "size": l.size,
                "type": l.type_text,
                "holders": l.holders,
                "state": if l.holders.is_empty() { "stale" } else { "live" },
                "error": l.problem,
            })
        })
        .collect()
}

/// Prints the table of shared values and segments.
pub fn print_table(listings: &[SharedListing]) {
    if listings.is_empty() {
        return;
    }
    let plain = Style::new();
    let mut stale = 0;
    let rows: Vec<Vec<(String, Style)>> = listings
        .iter()
        .map(|l| {
            if l.holders.is_empty() {
                stale += 1;
                return vec![
                    (l.name.clone(), DIM),
                    (kind(l).into(), DIM),
                    ("-".into(), DIM),
                    ("stale: every holder died".into(), WARN),
                ];
            }
            let pids: Vec<String> = l.holders.iter().map(u32::to_string).collect();
            let ty = match (&l.type_text, &l.problem) {
                (_, Some(problem)) => (problem.clone(), WARN),
                (Some(t), None) => (t.clone(), plain),
                (None, None) => ("-".into(), DIM),
            };
            vec![
                (l.name.clone(), NAME),
                (kind(l).into(), plain),
                (l.size.map_or("-".into(), |s| s.to_string()), plain),
                ty,
                (format!("{} ({})", l.holders.len(), pids.join(" ")), plain),
            ]
        })
        .collect();
    anstream::println!();
    anstream::print!(
        "{}",
        table(&["SHARED", "KIND", "SIZE", "TYPE", "HOLDERS"], &rows)
    );
    if stale > 0 {
        anstream::println!(
            "{DIM}{stale} stale name file{} (every holder was killed): `lpc list --prune` removes {}; the next open of the name reclaims it{DIM:#}",
            if stale == 1 { "" } else { "s" },
            if stale == 1 { "it" } else { "them" }
        );
    }
}
