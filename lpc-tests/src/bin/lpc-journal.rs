//! `lpc-journal serve NAME [--queue BYTES]`: serves `Journal` in `$LPC_RUNTIME_DIR` and prints
//! `ready <pid>`; with `LPC_TEST_LOG=FILE` its log (warnings and up) goes to FILE.
//!
//! `lpc-journal post NAME COUNT`: posts COUNT notes (thread 0) and exits at once, without
//! waiting for them to be handled; prints `posted COUNT` first.
//!
//! `lpc-journal bench NAME COUNT`: times COUNT posts from one thread (posts per second), then
//! a call after them (which returns once all are handled: the service's rate), and the
//! latency of one post followed by a call (post, then handled), over 10,000 rounds.

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
        "bench" => {
            let journal = JournalClient::connect(&arg(1))?;
            let count: u64 = arg(2).parse().expect("count");
            let pid = std::process::id();
            let started = std::time::Instant::now();
            for seq in 0..count {
                journal.note(pid, 0, seq)?;
            }
            let posted = started.elapsed();
            journal.check()?.expect("in order");
            let handled = started.elapsed();
            println!(
                "{count} posts from one thread: {:.2} M posts/s posting, {:.2} M/s handled",
                count as f64 / posted.as_secs_f64() / 1e6,
                count as f64 / handled.as_secs_f64() / 1e6
            );
            let mut rounds = Vec::with_capacity(10_000);
            for seq in count..count + 10_000 {
                let t = std::time::Instant::now();
                journal.note(pid, 0, seq)?;
                rounds.push(t.elapsed());
            }
            rounds.sort();
            let pct = |p: f64| rounds[((rounds.len() - 1) as f64 * p) as usize];
            println!(
                "one post (returns once queued): p50 {:?}, p99 {:?}",
                pct(0.5),
                pct(0.99)
            );
            let mut rounds = Vec::with_capacity(10_000);
            for _ in 0..10_000 {
                let t = std::time::Instant::now();
                journal.last(pid, 0)?;
                rounds.push(t.elapsed());
            }
            rounds.sort();
            let pct = |p: f64| rounds[((rounds.len() - 1) as f64 * p) as usize];
            println!(
                "a call alone, for comparison: p50 {:?}, p99 {:?}",
                pct(0.5),
                pct(0.99)
            );
            let mut rounds = Vec::with_capacity(10_000);
            for seq in count + 10_000..count + 20_000 {
                let t = std::time::Instant::now();
                journal.note(pid, 0, seq)?;
                journal.last(pid, 0)?;
                rounds.push(t.elapsed());
            }
            rounds.sort();
            let pct = |p: f64| rounds[((rounds.len() - 1) as f64 * p) as usize];
            println!(
                "a post then a call (returns once the post is handled): p50 {:?}, p99 {:?}",
                pct(0.5),
                pct(0.99)
            );
            Ok(())
        }
        other => panic!("unknown mode {other:?}: serve, post or bench"),
    }
}
