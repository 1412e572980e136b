//! `lpc demo` as a newcomer runs it: a real child service process, real calls.

use std::process::Command;

#[test]
fn demo_calls_the_embedded_service_and_reports_latency() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lpc"))
        .args(["demo", "--calls", "2000"])
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("calc.add(10, 20) = 30"), "{stdout}");
    assert!(
        stdout.contains("= Different; the service wrote back red: 2.00, blue: 1.00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("latency of add over 2000 calls: p50"),
        "{stdout}"
    );
    assert!(stdout.contains("service process shut down"), "{stdout}");
    // The child shut down cleanly: its sockets are gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
