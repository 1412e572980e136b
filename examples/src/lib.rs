//! The examples of lpc, each an interface (here) plus a service and a client binary
//! (`src/bin/`). Every service prints `ready: …` once clients can connect, and takes
//! `--name NAME` to serve under another name.
//!
//! - [`calc`]: `add(10, 20)` — the smallest useful service (`calc-service`, `calc-client`).
//! - [`compare`]: an `&mut` parameter — the client sends a struct, the service writes its own
//!   values into it, and the client reads them back after the call (`compare-service`,
//!   `compare-client`).
//! - [`copydata`]: one-way calls — `WM_COPYDATA` of old: `#[lpc(oneway)] copy_data(kind,
//!   bytes)` returns once the message is queued, and a later call sees it handled
//!   (`copydata-service`, `copydata-client`).
//! - [`counter`]: a stateful service — one total shared by every client, and a share per
//!   client process (`counter-service`, `counter-client`).
//! - [`inventory`]: errors — an application error type that crosses as the inner `Err` of a
//!   `Result`, next to lpc's own errors (`inventory-service`, `inventory-client`).
//! - [`loans`]: large byte buffers — a `&[u8]` parameter, a `Vec<u8>` field with and without
//!   `serde_bytes`, and `lpc::Loan`, with a `--bench` that times them (`loans-service`,
//!   `loans-client`).
//! - [`probe`]: options — call timeouts and cancellation, reconnecting after the service
//!   restarts, and access for another user (`probe-service`, `probe-client`).
//! - [`worker`]: a child service — a crash-prone worker a parent spawns as a child process
//!   over an inherited connection, calls, survives the crash of, and spawns again
//!   (`spawn-worker`).
//!
//! See `docs/guide.md` for what each shows.

pub mod calc;
pub mod compare;
pub mod copydata;
pub mod counter;
pub mod inventory;
pub mod loans;
pub mod probe;
pub mod ticker;
pub mod worker;

/// Parses `--name NAME` from the command line, or returns `default`.
pub fn name_arg(default: &str) -> String {
    string_arg("--name").unwrap_or_else(|| default.to_owned())
}

/// The value after `flag` on the command line, if any.
pub fn string_arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Parses `flag N` from the command line, or returns `default`. Exits with a message if `N`
/// is not a number.
pub fn number_arg(flag: &str, default: u64) -> u64 {
    match string_arg(flag) {
        None => default,
        Some(value) => value.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("error: {flag} takes a number, not `{value}`");
            std::process::exit(2)
        }),
    }
}

/// Turns `main`'s result into an exit code, printing an error as its message (not `Debug`).
pub fn report(result: Result<(), lpc::Error>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The guide's code blocks, compiled (and, where they can run alone, run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide.md")]
pub struct GuideDoctests;
