//! The examples of lpc, each an interface (here) plus a service and a client binary
//! (`src/bin/`):
//!
//! - [`calc`]: `add(10, 20)`, the `Add` of seed 002 — the smallest useful service.
//! - [`compare`]: seed 004's image comparator — a struct goes to the service, which modifies
//!   it in place; the client reads the new values back (an `&mut` parameter).

pub mod calc;
pub mod compare;

/// Parses `--name NAME` from the command line, or returns `default`.
pub fn name_arg(default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--name")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
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
