//! Loaned buffers: written once in place, read in place on the other side, reused.

use std::path::Path;

use lpc::Error;
use lpc_tests::{client_options, ProbeClient, Process};
use serde_json::json;
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");

fn setup() -> (TempDir, Process, ProbeClient) {
    let dir = TempDir::new().unwrap();
    let service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    (dir, service, probe)
}

#[test]
fn loans_cross_both_ways_at_any_size() {
    let (_dir, _service, probe) = setup();
    for len in [0usize, 1, 1024, 4096, 1 << 20, 64 << 20] {
        let mut loan = probe.client().loan(len).unwrap();
        let bytes = loan.as_mut().unwrap();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let expected: u64 = (0..len).map(|i| (i % 251) as u64).sum();
        assert_eq!(probe.loan_sum(&loan).unwrap(), expected, "len {len}");
        let last = if len > 0 { ((len - 1) % 251) as u8 } else { 0 };
        assert_eq!(probe.loan_peek(&loan).unwrap(), (len as u64, 0, last));

        let made = probe.loan_make(len as u64, 9, true).unwrap();
        assert_eq!(made.len(), len);
        assert!(made.iter().all(|&b| b == 9), "len {len}");
        // A received loan is read-only here.
        let mut made = made;
        assert!(made.as_mut().is_none());
    }
}

#[test]
fn buffers_are_reused_not_grown() {
    let (_dir, service, probe) = setup();
    let mut loan = probe.client().loan(8 << 20).unwrap();
    loan.as_mut().unwrap().fill(1);
    let maps = || {
        std::fs::read_to_string(format!("/proc/{}/maps", service.pid()))
            .unwrap()
            .lines()
            .filter(|l| l.contains("lpc-bulk"))
            .count()
    };
    for _ in 0..50 {
        assert_eq!(probe.loan_peek(&loan).unwrap().0, 8 << 20);
        let made = probe.loan_make(8 << 20, 3, false).unwrap();
        assert_eq!((made[0], made[made.len() - 1]), (3, 3));
    }
    // The service mapped our one buffer and made one of its own: nothing grows per call.
    assert_eq!(maps(), 2, "bulk mappings in the service");
}

#[test]
fn a_result_loan_is_not_reused_while_the_caller_holds_it() {
    let (_dir, _service, probe) = setup();
    let held: Vec<lpc::Loan> = (0..10u8)
        .map(|i| probe.loan_make(1000, i, true).unwrap())
        .collect();
    for (i, loan) in held.iter().enumerate() {
        assert!(
            loan.iter().all(|&b| b == i as u8),
            "loan {i} changed under its holder"
        );
    }
    drop(held);
    // Given back: the service reuses them rather than making more.
    for i in 0..100u8 {
        let loan = probe.loan_make(1000, i, true).unwrap();
        assert!(loan.iter().all(|&b| b == i));
    }
}

#[test]
fn a_loan_of_another_connection_is_refused_cleanly() {
    let (dir, _service, probe) = setup();
    let other = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let loan = other.client().loan(100).unwrap();
    let err = probe.loan_sum(&loan).unwrap_err();
    // The service sees that the handle names another connection's buffer.
    assert!(matches!(&err, Error::BadArguments { .. }), "{err:?}");
    assert!(
        err.to_string().contains("belongs to another connection"),
        "{err}"
    );
    assert_eq!(other.loan_sum(&loan).unwrap(), 0);
    assert_eq!(probe.add(1, 2).unwrap(), 3);
}

#[test]
fn json_calls_pass_loans_by_value() {
    let (dir, _service, _probe) = setup();
    let client = lpc::Client::connect_dynamic("probe", &client_options(dir.path())).unwrap();
    assert_eq!(
        client.call_json("loan_sum", &json!([[1, 2, 3]])).unwrap(),
        json!({"result": 6})
    );
    assert_eq!(
        client.call_json("loan_make", &json!([3, 5, true])).unwrap(),
        json!({"result": [5, 5, 5]})
    );
}
