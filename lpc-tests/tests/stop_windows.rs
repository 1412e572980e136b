//! The graceful stop on Windows: a service process gets a console control event (Ctrl-Break,
//! `GenerateConsoleCtrlEvent`; lpc's handler is `SetConsoleCtrlHandler`) while a call is in
//! flight. The call finishes, the pipe name goes first, the process exits with status 0, and
//! nothing is left in the runtime directory. (Linux's signals: stop.rs.)

#![cfg(windows)]

use std::os::windows::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use lpc::{CallPhase, Error};
use lpc_tests::{client_options, eventually, ProbeClient, Process};
use tempfile::TempDir;
use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");

/// How long any one wait of this test may take before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
#[ignore = "Wine: GenerateConsoleCtrlEvent fails there (the test processes have no console); \
            on Windows run it with --ignored"]
fn ctrl_break_lets_the_call_in_flight_finish_then_exits_with_0_leaving_nothing() {
    let dir = TempDir::new().unwrap();
    let options = client_options(dir.path());
    // A process group of its own: the event goes to the service only, not to this test.
    let mut command = Command::new(SERVICE);
    command
        .arg("probe")
        .creation_flags(CREATE_NEW_PROCESS_GROUP);
    let mut service = Process::start_command(command, dir.path(), "ready");
    let busy = ProbeClient::connect_with("probe", &options).unwrap();
    let idle = ProbeClient::connect_with("probe", &options).unwrap();
    assert_eq!(idle.add(1, 2).unwrap(), 3);
    let caller = {
        let busy = busy.clone();
        std::thread::spawn(move || (busy.sleep_ms(2000), Instant::now()))
    };
    service.expect_line("sleeping", PATIENCE);
    // SAFETY: sends an event to the process group whose id is the service's pid.
    let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, service.pid()) };
    assert_ne!(sent, 0, "GenerateConsoleCtrlEvent failed");

    // It stops accepting first: the name goes, and a new client finds no service.
    let name = dir.path().join("probe.sock");
    assert!(
        eventually(PATIENCE, || !name.exists()),
        "the name is still there"
    );
    let name_gone_at = Instant::now();
    match ProbeClient::connect_with("probe", &options) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("a new client during the stop: {other:?}"),
    }
    // The call in flight completes, after the name went.
    let (result, returned_at) = caller.join().unwrap();
    assert_eq!(result.unwrap(), 2000);
    assert!(
        name_gone_at < returned_at,
        "the name was removed only after the call returned"
    );
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the service did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    // Both connections are closed.
    for client in [&busy, &idle] {
        match client.add(1, 1).unwrap_err() {
            Error::Disconnected { phase, .. } => assert!(
                matches!(phase, CallPhase::NotTaken | CallPhase::NotSent),
                "{phase:?}"
            ),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "files left in the runtime directory"
    );
}
