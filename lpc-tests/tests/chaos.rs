//! A short chaos run (`lpc-chaos driver --seconds 10`): clients and the service SIGKILLed at
//! random moments and restarted. The driver checks every invariant (no wrong result, no call
//! past its deadline, no leak) and exits non-zero if one fails; this test also checks that the
//! run did what it is for. The 60-second run and its figures: `docs/reliability.md`.

// Unix: lpc-chaos counts descriptors and mappings in /proc.
#![cfg(unix)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHAOS: &str = env!("CARGO_BIN_EXE_lpc-chaos");

#[test]
fn ten_seconds_of_chaos_break_no_invariant() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut driver = Command::new(CHAOS)
        .args(["driver", "--seconds", "10", "--clients", "8"])
        // A debug build on a shared 2-core machine: a thread woken at its deadline may wait
        // longer for a CPU than in the release run (see docs/reliability.md).
        .args(["--grace-ms", "250"])
        .args(["--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lpc-chaos");
    let mut stdout = driver.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    // The run takes about 16 s; a hung driver must not hang the test suite.
    let until = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = driver.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = driver.kill();
            let _ = driver.wait();
            panic!(
                "lpc-chaos (seed {seed}) still running after 90 s:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    println!("{out}");
    assert!(
        status.success(),
        "lpc-chaos (seed {seed}) failed: {status}\n{out}"
    );

    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON summary");
    let summary: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    let counter = |key: &str| summary["counters"][key].as_u64().unwrap_or(0);
    assert_eq!(summary["pass"], true, "{out}");
    assert!(n("kills_client") > 0, "no client was killed:\n{out}");
    assert!(
        n("kills_service") > 0,
        "the service was never killed:\n{out}"
    );
    assert_eq!(n("restarts_client"), n("kills_client"), "{out}");
    assert_eq!(n("restarts_service"), n("kills_service"), "{out}");
    assert!(counter("ok") > 100, "too few calls succeeded:\n{out}");
    assert_eq!(counter("wrong"), 0, "{out}");
    assert_eq!(counter("late"), 0, "{out}");
    // Killing the service under calls shows up as disconnected calls.
    let disconnected: u64 = [
        "connecting",
        "not_sent",
        "not_taken",
        "executing",
        "reply_lost",
    ]
    .iter()
    .map(|p| counter(&format!("err_disconnected_{p}")))
    .sum();
    assert!(disconnected > 0, "no call saw the service die:\n{out}");
}
