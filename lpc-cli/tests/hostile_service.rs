//! A hostile service against the `lpc` command: whatever descriptor it attaches to its answer,
//! and however it lies, `lpc` ends with a clear error and an exit code — never a crash by a
//! signal (`SIGBUS`), never a hang.

// Unix: a raw SOCK_SEQPACKET service and exit signals.
#![cfg(unix)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use assert_cmd::Command;
use lpc::testing::{RawService, RawServiceConnection};
use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};

const PROMPT: Duration = Duration::from_secs(10);

fn memfd(len: u64, seals: SealFlags) -> OwnedFd {
    let fd = memfd_create("hostile", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    ftruncate(&fd, len).unwrap();
    if !seals.is_empty() {
        fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// Runs `lpc --runtime-dir DIR args` against a hand-made service `evil` that answers the
/// first message with `answer(connection)`.
fn against(
    args: &[&str],
    answer: impl FnOnce(RawServiceConnection) + Send + 'static,
) -> std::process::Output {
    let dir = tempfile::TempDir::new().unwrap();
    let service = RawService::bind(dir.path(), "evil").unwrap();
    let server = std::thread::spawn(move || {
        let conn = service.accept(PROMPT).expect("lpc connects");
        conn.socket().recv(PROMPT).expect("lpc's first message");
        answer(conn);
    });
    let output = Command::cargo_bin("lpc")
        .unwrap()
        .arg("--runtime-dir")
        .arg(dir.path())
        .args(args)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    server.join().unwrap();
    output
}

fn assert_clean_failure(output: &std::process::Output, needle: &str, case: &str) {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        None,
        "{case}: lpc died of a signal; stderr: {stderr}"
    );
    assert!(!output.status.success(), "{case}: lpc succeeded");
    assert!(stderr.contains(needle), "{case}: {stderr}");
}

#[test]
fn lpc_call_refuses_a_welcome_with_memory_that_is_not_lpc_shared_memory() {
    for (case, seals, needle) in [
        (
            "unsealed",
            SealFlags::empty(),
            "not sealed against shrinking",
        ),
        (
            "sealed against the client's writes",
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
            "cannot map",
        ),
    ] {
        let output = against(&["call", "evil", "anything"], move |conn| {
            let len = lpc::testing::raw_service_region_len() as u64;
            let welcome = conn.welcome_message(None).unwrap();
            conn.send_descriptor(&welcome, memfd(len, seals)).unwrap();
            // Stay connected: lpc must not wait for anything more.
            let _ = conn.socket().recv(PROMPT);
        });
        assert_clean_failure(&output, needle, case);
    }
}

#[test]
fn lpc_describe_refuses_an_answer_carrying_a_descriptor() {
    let output = against(&["describe", "evil"], |conn| {
        let welcome = conn.welcome_message(None).unwrap();
        conn.send_descriptor(&welcome, memfd(1 << 40, SealFlags::empty()))
            .unwrap();
        let _ = conn.socket().recv(PROMPT);
    });
    assert_clean_failure(
        &output,
        "not lpc shared memory",
        "a query answered with memory",
    );
}
