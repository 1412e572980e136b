//! What a handler knows about its call, who may call, limits, and reconnection.

// Unix: a second user (root's useradd), which Wine cannot provide.
#![cfg(unix)]

use std::path::Path;
use std::time::Duration;

use lpc::{CallPhase, Error};
use lpc_tests::{client_options, ProbeClient, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-test-client");

fn start(dir: &Path, args: &[&str]) -> Process {
    Process::start(Path::new(SERVICE), args, dir, "ready")
}

#[test]
fn a_handler_sees_its_caller_from_the_kernel() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let (pid, uid, gid) = probe.whoami().unwrap();
    assert_eq!(pid, Some(std::process::id()));
    assert_eq!(uid, rustix::process::getuid().as_raw());
    assert_eq!(gid, rustix::process::getgid().as_raw());
    // Outside a call there is no caller, deadline or cancellation.
    assert!(lpc::caller().is_none());
    assert!(lpc::deadline().is_none());
    assert!(!lpc::cancelled());
}

#[test]
fn a_handler_sees_the_callers_deadline() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(probe.deadline_left_ms().unwrap(), None);
    let left = probe
        .with_timeout(Duration::from_secs(5))
        .deadline_left_ms()
        .unwrap();
    let left = left.expect("a deadline");
    assert!(left > 3000 && left <= 5000, "{left} ms left of 5000");
}

#[test]
fn a_handler_sees_a_caller_that_gave_up() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["probe"]);
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let err = probe
        .with_timeout(Duration::from_millis(200))
        .wait_for_cancel(30_000)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: CallPhase::Executing,
                ..
            }
        ),
        "{err:?}"
    );
    service.expect_line("cancelled", Duration::from_secs(20));
}

#[test]
fn a_handler_sees_a_caller_that_died() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["probe"]);
    let mut client = Process::start(
        Path::new(CLIENT),
        &["probe", "wait-cancel"],
        dir.path(),
        "connected",
    );
    service.expect_line("waiting", Duration::from_secs(20));
    client.kill();
    service.expect_line("cancelled", Duration::from_secs(20));
}

#[test]
fn connections_past_the_limit_are_busy() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--max-connections", "2"]);
    let a = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let b = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let err = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap_err();
    assert!(
        matches!(&err, Error::Busy { service, method: None, .. } if service == "probe"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("its limit of 2 connections (ServerOptions::max_connections)"),
        "{err}"
    );
    assert_eq!(a.add(1, 1).unwrap() + b.add(1, 1).unwrap(), 4);
    drop(a);
    // Once a connection closes, a new one is admitted.
    assert!(lpc_tests::eventually(Duration::from_secs(10), || {
        ProbeClient::connect_with("probe", &client_options(dir.path())).is_ok()
    }));
}

#[test]
fn the_per_user_limit_does_not_bound_the_services_own_user() {
    // The per-user limit is for other users (tests/admission.rs); the service's own user is
    // trusted and bounded by `max_connections` only.
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--max-per-uid", "1"]);
    let first = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let second = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(first.add(2, 2).unwrap() + second.add(1, 1).unwrap(), 6);
}

#[test]
fn a_call_finding_every_slot_taken_is_busy_at_once_when_asked() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["probe", "--slots", "1"]);
    let options = client_options(dir.path()).busy_when_full();
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    let sleeper = {
        let probe = probe.clone();
        std::thread::spawn(move || probe.sleep_ms(2000))
    };
    service.expect_line("sleeping", Duration::from_secs(20));
    let err = probe.add(1, 2).unwrap_err();
    assert!(
        matches!(&err, Error::Busy { method: Some(m), .. } if m == "add"),
        "{err:?}"
    );
    // It names the limit, and how to wait instead.
    let text = err.to_string();
    assert!(
        text.contains("all 1 call slots of this connection are in use"),
        "{text}"
    );
    assert!(text.contains("ServerOptions::slots"), "{text}");
    assert!(text.contains("queue_for_slot"), "{text}");
    // A bounded wait that runs out is Busy too, saying how long it waited.
    let patient = ProbeClient::connect_with(
        "probe",
        &client_options(dir.path()).queue_for_slot(Duration::from_millis(50)),
    )
    .unwrap();
    let sleeper2 = {
        let patient = patient.clone();
        std::thread::spawn(move || patient.sleep_ms(1000))
    };
    service.expect_line("sleeping 1000", Duration::from_secs(20));
    let err = patient.add(1, 2).unwrap_err();
    assert!(
        matches!(&err, Error::Busy { method: Some(m), .. } if m == "add"),
        "{err:?}"
    );
    assert!(err.to_string().contains("stayed in use for 50ms"), "{err}");
    assert_eq!(sleeper.join().unwrap().unwrap(), 2000);
    assert_eq!(sleeper2.join().unwrap().unwrap(), 1000);
    assert_eq!(probe.add(1, 2).unwrap(), 3);
}

#[test]
fn a_call_finding_every_slot_taken_waits_by_default_up_to_its_deadline() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["probe", "--slots", "1"]);
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let sleeper = {
        let probe = probe.clone();
        std::thread::spawn(move || probe.sleep_ms(500))
    };
    service.expect_line("sleeping", Duration::from_secs(20));
    // With a deadline shorter than the wait: a timeout, the call not sent.
    let err = probe
        .with_timeout(Duration::from_millis(50))
        .add(1, 2)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Timeout {
                phase: CallPhase::NotSent,
                ..
            }
        ),
        "{err:?}"
    );
    // Without one: it waits for the slot, and succeeds.
    assert_eq!(probe.add(1, 2).unwrap(), 3);
    assert_eq!(sleeper.join().unwrap().unwrap(), 500);
}

#[test]
fn a_reconnecting_client_reaches_the_restarted_service() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["probe"]);
    let options = client_options(dir.path()).reconnect(true);
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    let first = probe.pid().unwrap();
    service.kill();
    // The call that finds the connection lost fails; lpc never repeats it.
    let err = probe.add(1, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Disconnected {
                reconnect: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().ends_with("; the next call connects again"),
        "{err}"
    );
    // With no service, reconnecting fails cleanly.
    let err = probe.add(1, 1).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let service = start(dir.path(), &["probe"]);
    assert_eq!(probe.add(1, 1).unwrap(), 2);
    assert_eq!(probe.pid().unwrap(), service.pid());
    assert_ne!(first, service.pid());
    assert!(!probe.client().is_disconnected());
}

/// Runs `lpc-test-client NAME whoami` as `uid:gid`, accepting a service of this test's own
/// user (root); returns its output line.
fn whoami_as(uid: u32, gid: u32, dir: &Path, name: &str) -> String {
    let me = rustix::process::getuid().as_raw().to_string();
    let out = lpc_tests::as_user(uid, gid, CLIENT)
        .args([name, "whoami", "--service-uid", &me])
        .env("LPC_RUNTIME_DIR", dir)
        .output()
        .expect("setpriv runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn other_users_are_refused_unless_admitted() {
    let (uid, gid) = lpc_tests::other_user().expect("this test needs a second user");
    // Default policy: only the service's own user. The socket is not even reachable.
    let dir = TempDir::new().unwrap();
    let _private = start(dir.path(), &["private"]);
    let line = whoami_as(uid, gid, dir.path(), "private");
    assert!(
        line.starts_with("error: service `private` denied access"),
        "{line}"
    );

    // Admitted by uid: the handler sees the other user. (The test's directory must let it
    // through: lpc changes the mode only of a directory it created.)
    let dir = TempDir::new().unwrap();
    lpc_tests::let_others_through(dir.path());
    let _shared = start(dir.path(), &["shared", "--allow-uid", &uid.to_string()]);
    let line = whoami_as(uid, gid, dir.path(), "shared");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"whoami"), "{line}");
    assert_eq!(fields[2..], [uid.to_string(), gid.to_string()], "{line}");

    // Reachable (another uid is admitted) but this one is not: refused by the policy.
    let dir = TempDir::new().unwrap();
    lpc_tests::let_others_through(dir.path());
    let _other = start(dir.path(), &["other", "--allow-uid", "4242424"]);
    let line = whoami_as(uid, gid, dir.path(), "other");
    assert!(
        line.starts_with("error: service `other` denied access") && line.contains("not admitted"),
        "{line}"
    );
}
