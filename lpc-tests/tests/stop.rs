//! The graceful stop: a service process gets SIGTERM or SIGINT (or its `ServerHandle` is shut
//! down) while a call is in flight. The call finishes within the grace period, or is cut off
//! after it; the process exits with status 0, and nothing is left in the runtime directory.

// Unix signals (SIGTERM, SIGINT) end a service gracefully here; on Windows a stop is a console control event, which these tests do not send.
#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use lpc::{CallPhase, Error};
use lpc_tests::{client_options, eventually, ProbeClient, Process};
use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");

/// How long any one wait of these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn send(process: &Process, signal: Signal) {
    let pid = Pid::from_raw(process.pid() as i32).expect("a child has a pid");
    kill_process(pid, signal).expect("signal sent");
}

/// Waits (bounded) for the process to exit.
fn exit_status(process: &mut Process) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = process.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not exit within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What is left in the runtime directory, as `lpc list` would show it.
fn listed(dir: &Path) -> Vec<String> {
    lpc::registry::list(dir, Duration::from_secs(1))
        .unwrap()
        .into_iter()
        .map(|l| format!("{} {:?}", l.name, l.state))
        .collect()
}

fn assert_disconnected(err: &Error, method: &str, phases: &[CallPhase]) {
    match err {
        Error::Disconnected {
            method: m, phase, ..
        } => {
            assert_eq!(m.as_deref(), Some(method), "{err}");
            assert!(phases.contains(phase), "{err}: expected one of {phases:?}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// A call of 2 s in flight when the signal comes: it completes, the socket is gone meanwhile,
/// the process exits with 0 and `lpc list` shows nothing.
fn stops_gracefully_on(signal: Signal) {
    let dir = TempDir::new().unwrap();
    let options = client_options(dir.path());
    let mut service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let busy = ProbeClient::connect_with("probe", &options).unwrap();
    let idle = ProbeClient::connect_with("probe", &options).unwrap();
    assert_eq!(idle.add(1, 2).unwrap(), 3);
    let caller = {
        let busy = busy.clone();
        std::thread::spawn(move || (busy.sleep_ms(2000), Instant::now()))
    };
    service.expect_line("sleeping", PATIENCE);
    send(&service, signal);

    // It stops accepting first: the socket goes, and a new client finds no service.
    let socket = dir.path().join("probe.sock");
    assert!(
        eventually(PATIENCE, || !socket.exists()),
        "the socket is still there"
    );
    let socket_gone_at = Instant::now();
    match ProbeClient::connect_with("probe", &options) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("a new client during the stop: {other:?}"),
    }

    // The call in flight completes, after the socket went.
    let (result, returned_at) = caller.join().unwrap();
    assert_eq!(result.unwrap(), 2000);
    assert!(
        socket_gone_at < returned_at,
        "the socket was removed only after the call returned"
    );
    let status = exit_status(&mut service);
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Both connections are closed: the next call of each is not taken, then not even sent.
    for (client, first) in [(&busy, true), (&idle, true), (&idle, false)] {
        let err = client.add(1, 1).unwrap_err();
        let phases: &[CallPhase] = if first {
            &[CallPhase::NotTaken, CallPhase::NotSent]
        } else {
            &[CallPhase::NotSent]
        };
        assert_disconnected(&err, "add", phases);
    }
    assert!(listed(dir.path()).is_empty(), "{:?}", listed(dir.path()));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "files left in the runtime directory"
    );
}

#[test]
fn sigterm_lets_the_call_in_flight_finish_then_exits_with_0_leaving_nothing() {
    stops_gracefully_on(Signal::TERM);
}

#[test]
fn sigint_lets_the_call_in_flight_finish_then_exits_with_0_leaving_nothing() {
    stops_gracefully_on(Signal::INT);
}

#[test]
fn a_call_longer_than_the_grace_period_is_cut_off_as_executing() {
    let dir = TempDir::new().unwrap();
    let options = client_options(dir.path());
    let mut service = Process::start(
        Path::new(SERVICE),
        &["probe", "--grace-ms", "300"],
        dir.path(),
        "ready",
    );
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    let caller = {
        let probe = probe.clone();
        std::thread::spawn(move || (probe.sleep_ms(30_000), Instant::now()))
    };
    service.expect_line("sleeping", PATIENCE);
    let signalled_at = Instant::now();
    send(&service, Signal::TERM);
    let (result, returned_at) = caller.join().unwrap();
    let waited = returned_at - signalled_at;
    assert_disconnected(&result.unwrap_err(), "sleep_ms", &[CallPhase::Executing]);
    assert!(
        waited >= Duration::from_millis(300),
        "cut off after {waited:?}, before the grace period ended"
    );
    assert!(
        waited < Duration::from_secs(5),
        "cut off only after {waited:?}"
    );
    let status = exit_status(&mut service);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_disconnected(&probe.add(1, 1).unwrap_err(), "add", &[CallPhase::NotSent]);
    assert!(listed(dir.path()).is_empty(), "{:?}", listed(dir.path()));
}

#[test]
fn a_second_signal_cuts_the_grace_period_short() {
    let dir = TempDir::new().unwrap();
    let mut service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let caller = {
        let probe = probe.clone();
        std::thread::spawn(move || (probe.sleep_ms(30_000), Instant::now()))
    };
    service.expect_line("sleeping", PATIENCE);
    send(&service, Signal::TERM);
    // The first signal has started the stop once the socket is gone.
    let socket = dir.path().join("probe.sock");
    assert!(eventually(PATIENCE, || !socket.exists()));
    let again_at = Instant::now();
    send(&service, Signal::INT);
    let (result, returned_at) = caller.join().unwrap();
    assert_disconnected(&result.unwrap_err(), "sleep_ms", &[CallPhase::Executing]);
    let waited = returned_at - again_at;
    assert!(
        waited < Duration::from_secs(3),
        "the default grace period of 5 s was not cut short: {waited:?}"
    );
    assert_eq!(exit_status(&mut service).code(), Some(0));
}

#[test]
fn spawn_and_the_opt_out_leave_the_signals_to_the_program() {
    for mode in ["--spawn", "--no-signals"] {
        let dir = TempDir::new().unwrap();
        let mut service = Process::start(Path::new(SERVICE), &["probe", mode], dir.path(), "ready");
        let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
        assert_eq!(probe.add(2, 3).unwrap(), 5);
        send(&service, Signal::TERM);
        let status = exit_status(&mut service);
        assert_eq!(
            status.signal(),
            Some(Signal::TERM.as_raw()),
            "{mode}: {status:?}"
        );
    }
}

/// A service whose handler says when it starts, for in-process tests.
#[lpc::service]
pub trait Gate {
    /// Sends on the service's channel, then sleeps `ms` milliseconds; returns `ms`.
    fn hold(&self, ms: u64) -> u64;
}

struct Held(Mutex<mpsc::Sender<()>>);

impl Gate for Held {
    fn hold(&self, ms: u64) -> u64 {
        let _ = self.0.lock().unwrap().send(());
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

/// A `Gate` service run with `Server::spawn` in `dir`, a client of it, and the receiver of
/// its handler's "started" messages.
fn spawn_gate(dir: &Path, grace: Duration) -> (lpc::ServerHandle, GateClient, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = lpc::Server::bind_with(
        "gate",
        lpc::ServerOptions::new()
            .runtime_dir(dir)
            .grace_period(grace),
    )
    .unwrap()
    .spawn(GateServer::new(Held(Mutex::new(tx))))
    .unwrap();
    let client = GateClient::connect_with("gate", &client_options(dir)).unwrap();
    (handle, client, rx)
}

#[test]
fn shutdown_lets_the_call_in_flight_finish() {
    let dir = TempDir::new().unwrap();
    let (handle, client, started) = spawn_gate(dir.path(), Duration::from_secs(5));
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.hold(500))
    };
    started.recv_timeout(PATIENCE).expect("the call started");
    handle.shutdown().unwrap();
    // `shutdown` returned after the call: its reply is there.
    assert_eq!(caller.join().unwrap().unwrap(), 500);
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    assert_disconnected(
        &client.hold(0).unwrap_err(),
        "hold",
        &[CallPhase::NotTaken, CallPhase::NotSent],
    );
}

#[test]
fn shutdown_cuts_off_a_call_longer_than_the_grace_period() {
    let dir = TempDir::new().unwrap();
    let (handle, client, started) = spawn_gate(dir.path(), Duration::from_millis(100));
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || client.hold(10_000))
    };
    started.recv_timeout(PATIENCE).expect("the call started");
    let asked = Instant::now();
    handle.shutdown().unwrap();
    let took = asked.elapsed();
    assert!(
        (Duration::from_millis(100)..Duration::from_secs(5)).contains(&took),
        "shutdown took {took:?} with a grace period of 100 ms"
    );
    assert_disconnected(
        &caller.join().unwrap().unwrap_err(),
        "hold",
        &[CallPhase::Executing],
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    // The name is free again at once, though the cut-off handler still runs.
    drop(
        lpc::Server::bind_with("gate", lpc::ServerOptions::new().runtime_dir(dir.path())).unwrap(),
    );
}
