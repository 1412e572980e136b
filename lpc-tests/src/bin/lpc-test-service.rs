//! `lpc-test-service NAME [--slots N] [--max-payload BYTES] [--max-connections N]
//! [--max-per-uid N] [--allow-uid UID] [--no-spin] [--handshake-ms MS] [--grace-ms MS] [--no-signals]
//! [--max-shm BYTES] [--max-shm-per-conn BYTES] [--max-mappings N] [--max-threads N] [--spawn]`:
//! serves `Probe` in `$LPC_RUNTIME_DIR`; prints `ready <pid>` once clients can connect.
//! `--no-signals` serves with `stop_on_signals(false)`; `--spawn` serves with `Server::spawn`
//! and parks the main thread (neither stops on SIGTERM or SIGINT). With `LPC_TEST_LOG=FILE`,
//! its log (info and up) goes to FILE.

use lpc_tests::{ProbeServer, ProbeService};

fn main() -> Result<(), lpc::Error> {
    // `LPC_TEST_LOG=FILE`: the service's warnings (why it dropped a client, ...) go to FILE,
    // for the tests that check them.
    if let Some(path) = std::env::var_os("LPC_TEST_LOG") {
        let file = std::fs::File::create(path).expect("log file");
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "probe".into());
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("numeric option"))
    };
    let mut options = lpc::ServerOptions::new();
    if let Some(slots) = value("--slots") {
        options = options.slots(slots as u32);
    }
    if let Some(max) = value("--max-payload") {
        options = options.max_payload(max);
    }
    if let Some(n) = value("--max-connections") {
        options = options.max_connections(n as usize);
    }
    if let Some(n) = value("--max-per-uid") {
        options = options.max_connections_per_uid(n as usize);
    }
    if let Some(uid) = value("--allow-uid") {
        options = options.allow_uid(uid as u32);
    }
    if args.iter().any(|a| a == "--no-spin") {
        options = options.spin(false);
    }
    if let Some(bytes) = value("--max-shm") {
        options = options.max_shared_memory(bytes);
    }
    if let Some(bytes) = value("--max-shm-per-conn") {
        options = options.max_shared_memory_per_connection(bytes);
    }
    if let Some(n) = value("--max-mappings") {
        options = options.max_mappings(n);
    }
    if let Some(n) = value("--max-threads") {
        options = options.max_threads(n as u32);
    }
    if let Some(ms) = value("--handshake-ms") {
        options = options.handshake_timeout(std::time::Duration::from_millis(ms));
    }
    if let Some(ms) = value("--grace-ms") {
        options = options.grace_period(std::time::Duration::from_millis(ms));
    }
    if args.iter().any(|a| a == "--no-signals") {
        options = options.stop_on_signals(false);
    }
    let server = lpc::Server::bind_with(&name, options)?;
    if args.iter().any(|a| a == "--spawn") {
        let _service = server.spawn(ProbeServer::new(ProbeService))?;
        println!("ready {}", std::process::id());
        loop {
            std::thread::park();
        }
    }
    println!("ready {}", std::process::id());
    server.serve(ProbeServer::new(ProbeService))
}
