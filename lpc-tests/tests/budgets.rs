//! What peers can make a service hold: shared memory mapped per connection and for all of
//! them (counted by the size mapped, not by the pages the attacker touched), mappings, and
//! threads. Past a budget the peer's call gets `Busy` and the connection stays; an honest
//! client fails only with a clean `Busy` while the service is full, and works again once the
//! memory is given back. docs/security.md lists which test covers which budget.

// On Windows the buffers are sections sent as handles and what is mapped is read with
// `VirtualQueryEx` (`lpc::testing::mapped_views`); the resident-memory checks read
// `/proc/<pid>/status` and are Linux's only.

use std::path::Path;
use std::time::Duration;

use lpc::testing::varint;
use lpc::testing::{RawPeer, RawSocket, FRAME_SIZE};
use lpc::Error;
use lpc_tests::{client_options, eventually, status_field, ProbeClient, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const PROMPT: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;

// Slot states and statuses (lpc/src/channel/state.rs, lpc/src/wire/frame.rs).
const REPLY: u32 = 3;
const OK: u32 = 0;
const BUSY: u32 = 7;

fn start(args: &[&str]) -> (TempDir, Process) {
    let dir = TempDir::new().unwrap();
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    let service = Process::start(Path::new(SERVICE), &all, dir.path(), "ready");
    (dir, service)
}

/// Sends `notice` with a fresh shared-memory object of `len` bytes, made as lpc makes them (a
/// sealed memfd on Linux, a pagefile-backed section on Windows): untouched, it costs its
/// sender nothing.
fn send_buffer(peer: &RawPeer, notice: &[u8], len: u64) {
    peer.socket()
        .send_with_memory(notice, len as usize)
        .unwrap();
}

/// The status of the reply on slot 0, once there is one.
fn reply_status(peer: &RawPeer, case: &str) -> u32 {
    assert!(
        eventually(PROMPT, || peer.state(0) == REPLY),
        "{case}: no reply"
    );
    let frame = peer.read(peer.slot_offset(0) + 8, FRAME_SIZE);
    u32::from_le_bytes(frame[28..32].try_into().unwrap())
}

/// The service's shared mappings of lpc objects: their bytes and how many there are.
#[cfg(unix)]
fn mappings(pid: u32) -> (u64, usize) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let ranges: Vec<u64> = maps
        .lines()
        .filter(|l| l.contains("/memfd:"))
        .map(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap()
        })
        .collect();
    (ranges.iter().sum(), ranges.len())
}

/// The service's views of sections: their bytes and how many there are.
#[cfg(windows)]
fn mappings(pid: u32) -> (u64, usize) {
    lpc::testing::mapped_views(pid).expect("the service's address space")
}

fn mapped(pid: u32) -> u64 {
    mappings(pid).0
}

/// The service's resident memory in kB (Linux; 0 elsewhere, where the check is skipped).
fn resident_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

fn raw(dir: &Path) -> RawPeer {
    RawSocket::connect(dir, "probe")
        .unwrap()
        .handshake()
        .unwrap()
}

fn assert_busy(err: &Error, case: &str) {
    assert!(matches!(err, Error::Busy { .. }), "{case}: {err:?}");
    assert!(
        err.to_string().contains("ServerOptions::max_shared_memory"),
        "{case}: {err}"
    );
}

#[test]
fn a_sparse_buffer_larger_than_the_connection_budget_is_never_mapped() {
    let (dir, service) = start(&["--max-shm-per-conn", &(16 * MIB).to_string()]);
    let pid = service.pid();
    let good = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    // An honest large call fits: 3 MiB each way.
    assert_eq!(good.echo(&vec![1; 3 << 20]).unwrap().len(), 3 << 20);
    let before = mapped(pid);
    let rss = resident_kb(pid);

    // 1 GiB of sparse memory, which the service would commit page by page as it read it.
    let peer = raw(dir.path());
    send_buffer(&peer, &lpc::testing::spill_notice(0, 1), 1 << 30);
    peer.request_spilled(0, lpc_tests::probe_method_id("echo"), 1 << 29, 1);
    assert_eq!(reply_status(&peer, "a 1 GiB spill buffer"), BUSY);
    assert!(!peer.socket().closed_by_peer(), "the connection stays");
    let message = peer.read(peer.slot_offset(0) + 8 + FRAME_SIZE, 200);
    let message = String::from_utf8_lossy(&message);
    assert!(
        message.contains("max_shared_memory_per_connection"),
        "{message}"
    );
    // Nothing of it was mapped, nor committed.
    // (The attacker's own connection region is mapped, a few pages.)
    assert!(
        mapped(pid) <= before + MIB,
        "mapped {} > {before}",
        mapped(pid)
    );
    #[cfg(unix)]
    assert!(
        resident_kb(pid) < rss + 64 * 1024,
        "the service's memory grew"
    );
    #[cfg(windows)]
    let _ = rss;
    // The same for a loan's buffer: `loan_sum(&Loan)` of a 1 GiB buffer.
    send_buffer(&peer, &lpc::testing::bulk_notice(0), 1 << 30);
    let mut handle = varint(peer.token());
    handle.extend([0]);
    handle.extend(varint(1 << 29));
    peer.request(0, lpc_tests::probe_method_id("loan_sum"), &handle);
    assert_eq!(reply_status(&peer, "a 1 GiB loan"), BUSY);
    assert!(mapped(pid) <= before + MIB);
    // An honest client is not affected.
    assert_eq!(good.echo(&vec![2; 3 << 20]).unwrap().len(), 3 << 20);
}

#[test]
fn the_service_budget_holds_for_all_connections_and_comes_back() {
    // 20 MiB for all; 12 MiB for each connection.
    let (dir, service) = start(&[
        "--max-shm",
        &(20 * MIB).to_string(),
        "--max-shm-per-conn",
        &(12 * MIB).to_string(),
    ]);
    let pid = service.pid();
    let good = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    // What is mapped before the attackers: the good client's region, and on Windows the
    // files Wine maps for itself.
    let others = mapped(pid);
    // Attackers each hold an 8 MiB spill buffer mapped in the service (an honest-looking call
    // of `echo` with 1 byte read from it: the buffer stays mapped for the next call).
    let mut attackers = Vec::new();
    for i in 0..3 {
        let peer = raw(dir.path());
        send_buffer(&peer, &lpc::testing::spill_notice(0, 1), 8 * MIB);
        peer.request_spilled(0, lpc_tests::probe_method_id("echo"), 1, 1);
        let status = reply_status(&peer, "an 8 MiB spill buffer");
        attackers.push(peer);
        if i < 2 {
            // BadArguments: the payload (a zero byte) is no byte buffer, but it was mapped.
            assert_ne!(status, BUSY, "attacker {i} fits the service's budget");
        } else {
            assert_eq!(status, BUSY, "the third attacker does not");
        }
    }
    assert!(
        mapped(pid) <= others + 20 * MIB + MIB,
        "the service maps {} ({others} before the attackers)",
        mapped(pid)
    );
    // An honest large call is refused cleanly while the service is full...
    let err = good.echo(&vec![3; 3 << 20]).unwrap_err();
    assert_busy(&err, "an honest large call while the service is full");
    // ...small calls go on (inline, no mapping)...
    assert_eq!(good.add(1, 2).unwrap(), 3);
    // ...and once the attackers are gone, the memory is back.
    drop(attackers);
    let mut last = None;
    assert!(
        eventually(PROMPT, || match good.echo(&vec![4; 3 << 20]) {
            Ok(v) => v.len() == 3 << 20,
            Err(e) => {
                last = Some(e);
                false
            }
        }),
        "{last:?}"
    );
}

#[test]
fn mappings_are_bounded_for_the_whole_service() {
    let (dir, service) = start(&["--max-mappings", "24"]);
    let pid = service.pid();
    // Counted from what is mapped before any connection (on Windows, Wine maps files of its
    // own as sections too).
    let maps0 = mappings(pid).1;
    let memfd_maps = || mappings(pid).1 - maps0;
    #[cfg(unix)]
    assert_eq!(maps0, 0);
    // One attacker announcing 64 small loan buffers (the most a connection may have), and
    // naming each in a call.
    let peer = raw(dir.path());
    let mut busy = 0;
    for id in 0..64u32 {
        send_buffer(&peer, &lpc::testing::bulk_notice(id), 4096);
        let mut handle = varint(peer.token());
        handle.extend(varint(u64::from(id)));
        handle.extend([16]);
        peer.request(0, lpc_tests::probe_method_id("loan_sum"), &handle);
        match reply_status(&peer, "a loan") {
            OK => {}
            BUSY => busy += 1,
            other => panic!("loan {id}: status {other}"),
        }
        peer.store(peer.slot_offset(0), 0);
    }
    // The region takes 2 mappings: 22 loans fit, 42 were refused.
    assert_eq!(busy, 42);
    // The region takes 2 mappings (two views of one object), and on Windows one more: the
    // page of its doorbells' waiter counts.
    let region_views = if cfg!(windows) { 3 } else { 2 };
    assert_eq!(
        memfd_maps(),
        region_views + 22,
        "the attacker's region ({region_views}) and 22 loans"
    );
    // A new honest connection needs 2 mappings for its region: refused cleanly, and fine
    // once the attacker is gone.
    let err = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("mappings"), "{err}");
    drop(peer);
    assert!(eventually(PROMPT, || ProbeClient::connect_with(
        "probe",
        &client_options(dir.path())
    )
    .is_ok()));
}

#[test]
fn threads_are_bounded_and_a_late_connection_gets_fewer_slots() {
    // Room for two connections, 20 threads: the first gets its 16 slots (a thread each at
    // most), the second the 4 threads left.
    let (dir, service) = start(&[
        "--max-connections",
        "2",
        "--max-threads",
        "20",
        "--slots",
        "16",
    ]);
    let pid = service.pid();
    let first = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let second = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    // 16 threads calling at once on each: every call waits in line for a slot if it must,
    // none fails, and the service never runs more than its 20 threads for them.
    std::thread::scope(|s| {
        for i in 0..32 {
            let client = if i % 2 == 0 { &first } else { &second };
            s.spawn(move || {
                for _ in 0..10 {
                    assert_eq!(client.sleep_ms(2).unwrap(), 2, "thread {i}");
                }
            });
        }
    });
    // The reactor, the main thread and the 20 (on Windows also each connection's pipe reader,
    // which does I/O only and runs no call).
    let readers = if cfg!(windows) { 2 } else { 0 };
    let threads = status_field(pid, "Threads");
    assert!(threads <= 2 + 20 + readers, "{threads} threads");
    assert_eq!(first.add(1, 1).unwrap() + second.add(1, 1).unwrap(), 4);
}

#[test]
fn a_connection_finding_no_thread_left_is_busy() {
    // Fewer threads than connections: every connection keeps one thread; none left is Busy.
    let (dir, _service) = start(&["--max-connections", "4", "--max-threads", "2"]);
    let first = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let second = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let err = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(
        err.to_string().contains("ServerOptions::max_threads"),
        "{err}"
    );
    assert_eq!(first.add(1, 1).unwrap() + second.add(1, 1).unwrap(), 4);
    drop(first);
    assert!(eventually(PROMPT, || ProbeClient::connect_with(
        "probe",
        &client_options(dir.path())
    )
    .is_ok()));
}

#[test]
fn a_loan_counts_against_the_payload_limit_like_any_payload() {
    let (dir, _service) = start(&["--max-payload", &MIB.to_string()]);
    // An honest client is stopped before it sends.
    let good = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let err = good.client().loan(2 << 20).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    // A raw one naming 2 MiB of a 2 MiB buffer (within the 2 x limit a buffer may have).
    let peer = raw(dir.path());
    send_buffer(&peer, &lpc::testing::bulk_notice(0), 2 * MIB);
    let mut handle = varint(peer.token());
    handle.extend([0]);
    handle.extend(varint(2 * MIB));
    peer.request(0, lpc_tests::probe_method_id("loan_sum"), &handle);
    assert_eq!(reply_status(&peer, "a loan over the limit"), 4, "TooLarge");
    let size = peer.read(peer.slot_offset(0) + 8 + FRAME_SIZE, 8);
    assert_eq!(u64::from_le_bytes(size.try_into().unwrap()), 2 * MIB);
    assert!(!peer.socket().closed_by_peer());
    assert_eq!(good.add(1, 2).unwrap(), 3);
}
