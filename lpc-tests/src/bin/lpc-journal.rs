//! `lpc-journal serve NAME [--queue BYTES]`: serves `Journal` in `$LPC_RUNTIME_DIR` and prints
//! `ready <pid>`; with `LPC_TEST_LOG=FILE` its log (warnings and up) goes to FILE.
//!
//! `lpc-journal post NAME COUNT`: posts COUNT notes (thread 0) and exits at once, without
//! waiting for them to be handled; prints `posted COUNT` first.

use lpc_tests::journal::{JournalClient, JournalServer, JournalService};

fn main() -> Result<(), lpc::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "serve" => {
            if let Some(path) = std::env::var_os("LPC_TEST_LOG") {
                let file = std::fs::File::create(path).expect("log file");
                tracing_subscriber::fmt()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_max_level(tracing::Level::WARN)
                    .init();
            }
            let mut options = lpc::ServerOptions::new();
            if let Some(i) = args.iter().position(|a| a == "--queue") {
                options = options.oneway_queue(arg(i + 1).parse().expect("queue bytes"));
            }
            let server = lpc::Server::bind_with(&arg(1), options)?;
            println!("ready {}", std::process::id());
            server.serve(JournalServer::new(JournalService::default()))
        }
        "post" => {
            let journal = JournalClient::connect(&arg(1))?;
            let count: u64 = arg(2).parse().expect("count");
            let pid = std::process::id();
            for seq in 0..count {
                journal.note(pid, 0, seq)?;
            }
            println!("posted {count}");
            Ok(())
        }
        other => panic!("unknown mode {other:?}: serve or post"),
    }
}
