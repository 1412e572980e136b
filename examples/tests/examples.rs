//! The example binaries as a user runs them: a service process, then a client process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bin` and waits (bounded) for its `ready` line.
fn start(bin: &str, dir: &Path) -> Service {
    let mut child = Command::new(bin)
        .env("LPC_RUNTIME_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("service did not start");
    assert!(line.starts_with("ready"), "{line}");
    Service(child)
}

fn run(bin: &str, dir: &Path) -> String {
    let out = Command::new(bin)
        .env("LPC_RUNTIME_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn calc_client_adds_in_the_calc_service() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(env!("CARGO_BIN_EXE_calc-service"), dir.path());
    assert_eq!(
        run(env!("CARGO_BIN_EXE_calc-client"), dir.path()),
        "add(10, 20) = 30\n"
    );
}

#[test]
fn compare_client_reads_back_what_the_service_wrote() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(env!("CARGO_BIN_EXE_compare-service"), dir.path());
    let out = run(env!("CARGO_BIN_EXE_compare-client"), dir.path());
    assert!(
        out.contains("client: sending red=3333.00, blue=20.01"),
        "{out}"
    );
    assert!(
        out.contains("verdict Different; service wrote red=2.00, blue=1.00"),
        "{out}"
    );
}

#[test]
fn a_client_without_its_service_says_so() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_calc-client"))
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service `calc` not found"), "{err}");
}
