//! Peer death: the service or a client is SIGKILLed; the other side must notice promptly and
//! nothing may leak.

use std::path::Path;
use std::time::{Duration, Instant};

use lpc::{CallPhase, Error};
use lpc_tests::{
    client_options, dev_shm_entries, eventually, fd_count, status_field, ProbeClient, Process,
};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-test-client");

#[test]
fn service_killed_mid_call_disconnects_the_call_within_100ms() {
    let dir = TempDir::new().unwrap();
    let mut service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let caller = {
        let probe = probe.clone();
        std::thread::spawn(move || {
            let result = probe.sleep_ms(30_000);
            (result, Instant::now())
        })
    };
    service.expect_line("sleeping", Duration::from_secs(10));
    let killed_at = Instant::now();
    service.kill();
    let (result, returned_at) = caller.join().unwrap();
    let waited = returned_at - killed_at;
    match result {
        Err(Error::Disconnected {
            service,
            method,
            phase,
            reconnect,
        }) => {
            assert_eq!(service, "probe");
            assert_eq!(method.as_deref(), Some("sleep_ms"));
            assert_eq!(phase, CallPhase::Executing);
            assert!(!reconnect);
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(
        waited < Duration::from_millis(100),
        "the call returned {waited:?} after the kill"
    );
    // Later calls fail at once, saying how to get a client that reconnects.
    let err = probe.add(1, 2).unwrap_err();
    assert!(
        err.to_string()
            .contains("create the client with `ClientOptions::reconnect(true)`"),
        "{err}"
    );
    assert!(
        matches!(
            err,
            Error::Disconnected {
                phase: CallPhase::NotSent,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(probe.client().is_disconnected());
}

#[test]
fn killed_clients_free_their_connections() {
    let dir = TempDir::new().unwrap();
    let service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let pid = service.pid();
    let cycle = || {
        let mut client = Process::start(Path::new(CLIENT), &["probe"], dir.path(), "connected");
        client.kill();
    };
    // Warm up: thread stacks, allocator arenas and the like reach their steady state.
    for _ in 0..20 {
        cycle();
    }
    let settled = |fds: usize, threads: u64| {
        eventually(Duration::from_secs(10), || {
            fd_count(pid) <= fds && status_field(pid, "Threads") <= threads
        })
    };
    // The service's baseline: its reactor thread and main thread, no connection.
    let (fds0, threads0) = (fd_count(pid), status_field(pid, "Threads"));
    assert!(settled(fds0, threads0));
    let rss0 = status_field(pid, "VmRSS");
    for _ in 0..200 {
        cycle();
    }
    assert!(
        settled(fds0, threads0),
        "service holds {} fds and {} threads after 200 killed clients (baseline {fds0} and {threads0})",
        fd_count(pid),
        status_field(pid, "Threads")
    );
    let rss1 = status_field(pid, "VmRSS");
    assert!(
        rss1 <= rss0 + 2048,
        "service RSS grew from {rss0} kB to {rss1} kB"
    );
    // And it still serves.
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(probe.add(2, 2).unwrap(), 4);
}

#[test]
fn after_a_crash_nothing_is_left_but_a_socket_the_next_bind_replaces() {
    let dir = TempDir::new().unwrap();
    let shm_before = dev_shm_entries();
    let mut service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(probe.echo(&vec![7u8; 1 << 20]).unwrap().len(), 1 << 20);
    let mut client = Process::start(Path::new(CLIENT), &["probe"], dir.path(), "connected");
    client.kill();
    service.kill();
    assert_eq!(dev_shm_entries(), shm_before, "/dev/shm changed");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["probe.sock".to_string()]);
    // A new service takes the name over; the old client sees the old one gone.
    let _again = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    assert!(matches!(
        probe.add(1, 1).unwrap_err(),
        Error::Disconnected { .. }
    ));
    let fresh = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(fresh.add(1, 1).unwrap(), 2);
}

#[test]
fn an_in_process_service_shuts_down_cleanly() {
    let dir = TempDir::new().unwrap();
    let handle =
        lpc::Server::bind_with("inproc", lpc::ServerOptions::new().runtime_dir(dir.path()))
            .unwrap()
            .spawn(lpc_tests::ProbeServer::new(lpc_tests::ProbeService))
            .unwrap();
    let probe = ProbeClient::connect_with("inproc", &client_options(dir.path())).unwrap();
    assert_eq!(probe.add(3, 4).unwrap(), 7);
    assert_eq!(handle.connection_count(), 1);
    let clients = handle.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].pid(), Some(std::process::id()));
    handle.shutdown().unwrap();
    assert!(matches!(
        probe.add(1, 1).unwrap_err(),
        Error::Disconnected { .. }
    ));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "socket left after shutdown"
    );
    // The name is free again.
    let again = lpc::Server::bind_with("inproc", lpc::ServerOptions::new().runtime_dir(dir.path()))
        .unwrap();
    drop(again);
}
