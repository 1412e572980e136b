//! `lpc-icount [CALLS]`: a fixed workload for the instruction-count guard (`scripts/icount.sh`).
//!
//! Serves `Probe` in-process with spinning off and calls `add` with the always-block waiting
//! strategy, so that under callgrind every call follows the same path on both threads. The
//! client path is measured inside `client_call`, the dispatch path inside the service's
//! `serve_one`: callgrind counts only those (`--toggle-collect`).

use std::time::Duration;

use lpc_tests::{ProbeClient, ProbeServer, ProbeService};

#[inline(never)]
fn client_call(probe: &ProbeClient, i: i32) -> i32 {
    probe.add(i, 1).expect("call")
}

fn main() {
    let calls: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("lpc-icount-{}", std::process::id()));
    let service = lpc::Server::bind_with(
        "icount",
        lpc::ServerOptions::new()
            .runtime_dir(&dir)
            .spin(false)
            .statistics(true),
    )
    .expect("bind")
    .spawn(ProbeServer::new(ProbeService))
    .expect("spawn");
    let options = lpc::ClientOptions::new()
        .runtime_dir(&dir)
        .wait(lpc::WaitStrategy::Block)
        .connect_timeout(Duration::from_secs(60));
    let probe = ProbeClient::connect_with("icount", &options).expect("connect");
    for i in 0..calls {
        assert_eq!(client_call(&probe, i), i.wrapping_add(1));
    }
    println!("calls {calls}");
    drop(probe);
    service.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
