//! `lpc-test-files NAME [--max-per-call N] [--max-per-connection N] [--allow-uid UID]`:
//! serves `Files` in `$LPC_RUNTIME_DIR` (with `Server::spawn`, until killed); prints
//! `ready <pid>` once clients can connect.

use lpc_tests::files::{FilesServer, FilesService};

fn main() -> Result<(), lpc::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "files".into());
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("numeric option"))
    };
    let mut options = lpc::ServerOptions::new();
    if let Some(n) = value("--max-per-call") {
        options = options.max_descriptors_per_call(n as u32);
    }
    if let Some(n) = value("--max-per-connection") {
        options = options.max_descriptors_per_connection(n as usize);
    }
    #[cfg(unix)]
    if let Some(uid) = value("--allow-uid") {
        options = options.allow_uid(uid as u32);
    }
    // Served on a background thread, so that everything the service opens for itself exists
    // before the ready line (the tests count its descriptors from then on).
    let _service = lpc::Server::bind_with(&name, options)?.spawn(FilesServer::new(FilesService))?;
    println!("ready {}", std::process::id());
    loop {
        std::thread::park();
    }
}
