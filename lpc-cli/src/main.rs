//! `lpc`: the command-line tool of lpc.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lpc",
    version,
    about = "Local procedure calls: call functions in another process"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start an embedded calc service in a child process, call it, and show the latency.
    ///
    /// Example: `lpc demo --calls 100000`
    Demo {
        /// How many `add` calls to time.
        #[arg(long, default_value_t = 100_000)]
        calls: u32,
    },
    /// The demo's service process (started by `lpc demo`).
    #[command(hide = true, name = "__demo-service")]
    DemoService {
        /// Prefix of the service names.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { calls } => demo::run(calls),
        Command::DemoService { name } => demo::service(&name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
