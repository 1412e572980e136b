//! `lpc-sizes-service NAME [--memory BYTES] [--max-payload BYTES]`: serves `Sizes` in
//! `$LPC_RUNTIME_DIR` with its address space limited to `--memory` bytes (`RLIMIT_AS`, set
//! before anything else); prints `ready <pid>` once clients can connect. With the limit, an
//! allocation the peer could size at will aborts the process instead of swapping: what the
//! memory-limit tests (`tests/sizes.rs`) check never happens.

use lpc_tests::sizes::{limit_memory, SizesServer, SizesService};

fn main() -> Result<(), lpc::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("numeric option"))
    };
    if let Some(bytes) = value("--memory") {
        limit_memory(bytes);
    }
    let name = args.first().cloned().unwrap_or_else(|| "sizes".into());
    let mut options = lpc::ServerOptions::new();
    if let Some(max) = value("--max-payload") {
        options = options.max_payload(max);
    }
    let server = lpc::Server::bind_with(&name, options)?;
    println!("ready {}", std::process::id());
    server.serve(SizesServer::new(SizesService))
}
