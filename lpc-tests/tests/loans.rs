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
        assert!(made.to_vec().iter().all(|&b| b == 9), "len {len}");
        let mut chunked = 0;
        made.for_each_chunk(|chunk| {
            assert!(chunk.len() <= 64 << 10);
            assert!(chunk.iter().all(|&b| b == 9));
            chunked += chunk.len();
        });
        assert_eq!(chunked, len);
        // A received loan is never borrowed: the service could still write it.
        let mut made = made;
        assert!(made.is_received());
        assert_eq!(made.as_mut().unwrap_err(), lpc::LoanError::Received);
        assert_eq!(made.as_slice().unwrap_err(), lpc::LoanError::Received);
    }
}

// Unix: counts the service's mappings in /proc/<pid>/maps.
#[cfg(unix)]
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
        assert_eq!((made.get(0), made.get(made.len() - 1)), (Some(3), Some(3)));
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
            loan.to_vec().iter().all(|&b| b == i as u8),
            "loan {i} changed under its holder"
        );
    }
    drop(held);
    // Given back: the service reuses them rather than making more.
    for i in 0..100u8 {
        let loan = probe.loan_make(1000, i, true).unwrap();
        assert!(loan.to_vec().iter().all(|&b| b == i));
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

/// The mappings of `pid` whose name contains `name`, with their permissions (`r--s`, ...).
#[cfg(unix)]
fn mappings(pid: u32, name: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(name))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

// Unix: reads the mappings' modes in /proc/<pid>/maps.
#[cfg(unix)]
#[test]
fn each_side_maps_the_others_buffers_read_only() {
    let (_dir, service, probe) = setup();
    let mut loan = probe.client().loan(1 << 20).unwrap();
    loan.as_mut().unwrap().fill(1);
    assert_eq!(probe.loan_sum(&loan).unwrap(), 1 << 20);
    let made = probe.loan_make(1 << 20, 2, true).unwrap();
    // A spilled argument and a spilled result too.
    let back = probe.echo(&[5; 256 << 10]).unwrap();
    assert_eq!(back.len(), 256 << 10);
    // The service: its own result buffers read-write, the client's loan and spill read-only.
    let mut bulk = mappings(service.pid(), "lpc-bulk");
    bulk.sort();
    assert_eq!(bulk, ["r--s", "rw-s"], "service's bulk mappings");
    let mut spill = mappings(service.pid(), "lpc-spill");
    spill.sort();
    assert_eq!(spill, ["r--s", "rw-s"], "service's spill mappings");
    // The client, the same way round.
    let me = std::process::id();
    let mut bulk = mappings(me, "lpc-bulk");
    bulk.sort();
    assert!(
        bulk.contains(&"r--s".to_owned()) && bulk.contains(&"rw-s".to_owned()),
        "{bulk:?}"
    );
    drop(made);
}

#[test]
fn a_lent_loan_cannot_be_written_until_the_handler_drops_it() {
    let (dir, _service, probe) = setup();
    // The call times out while the handler still holds the loan.
    let hurried = ProbeClient::connect_with(
        "probe",
        &client_options(dir.path()).call_timeout(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    let mut loan = hurried.client().loan(4096).unwrap();
    loan.as_mut().unwrap().fill(7);
    let err = hurried.loan_hold(&loan, 60_000).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(loan.is_lent());
    assert_eq!(loan.as_mut().unwrap_err(), lpc::LoanError::Lent);
    assert!(
        lpc::LoanError::Lent
            .to_string()
            .contains("lent to the other process"),
        "{}",
        lpc::LoanError::Lent
    );
    // Reading our own lent loan is fine: the service can only read it.
    assert_eq!(loan.as_slice().unwrap()[0], 7);
    // Once the handler returns and drops it, it is ours to write again.
    probe.loan_release().unwrap();
    assert!(lpc_tests::eventually(
        std::time::Duration::from_secs(10),
        || !loan.is_lent()
    ));
    loan.as_mut().unwrap().fill(8);
}
