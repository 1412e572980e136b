//! One-way calls (`#[lpc(oneway)]`) across real processes: order across threads and with
//! two-way calls, a full queue under each policy, too large a message, a panicking handler,
//! a client that exits right after posting, a service that dies while a post waits.
//! Every test has its own runtime directory and service process; every wait is bounded.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lpc::{CallPhase, ClientOptions, Error};
use lpc_tests::journal::JournalClient;
use lpc_tests::{client_options, eventually, Process};
use tempfile::TempDir;

const JOURNAL: &str = env!("CARGO_BIN_EXE_lpc-journal");
const PROMPT: Duration = Duration::from_secs(20);
/// Long enough that no test waits for a stall to end by itself.
const STALL_MS: u64 = 60_000;

fn start(dir: &Path, extra: &[&str]) -> Process {
    let mut args = vec!["serve", "journal"];
    args.extend_from_slice(extra);
    Process::start(Path::new(JOURNAL), &args, dir, "ready")
}

fn connect(dir: &Path, options: ClientOptions) -> JournalClient {
    JournalClient::connect_with("journal", &options.runtime_dir(dir)).unwrap()
}

/// Posts a stall on `client`'s connection and waits (through `other`, another connection)
/// until its handler runs: from then on `client`'s queue only fills.
fn stall(client: &JournalClient, other: &JournalClient) {
    client.stall(STALL_MS).unwrap();
    assert!(
        eventually(PROMPT, || other.stalled().unwrap()),
        "the stall never started"
    );
}

#[test]
fn posts_from_eight_threads_are_handled_in_order_and_before_each_threads_later_calls() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let journal = connect(dir.path(), client_options(dir.path()));
    let pid = std::process::id();
    const THREADS: u32 = 8;
    const NOTES: u64 = 4000;
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                for seq in 0..NOTES {
                    journal.note(pid, thread, seq).unwrap();
                    // A call after posts sees them applied, whatever slot it takes.
                    if seq % 97 == 0 || seq == NOTES - 1 {
                        assert_eq!(journal.last(pid, thread).unwrap(), Some(seq));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        journal.check().unwrap(),
        Ok(u64::from(THREADS) * NOTES),
        "every note, in each thread's order"
    );
}

#[test]
fn a_full_queue_is_busy_at_once_when_the_sender_chose_so_and_nothing_is_dropped() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["--queue", "4096"]);
    let busy = connect(dir.path(), ClientOptions::new().busy_when_queue_full());
    let other = connect(dir.path(), ClientOptions::new());
    stall(&busy, &other);
    // 1,000-byte blobs: four fit in a 4 KiB ring.
    let mut posted = 0u64;
    let err = loop {
        match busy.blob(vec![7; 1000]) {
            Ok(()) => posted += 1,
            Err(e) => break e,
        }
        assert!(posted < 10, "a 4 KiB queue took {posted} KB");
    };
    assert!(
        matches!(&err, Error::Busy { reason, .. } if reason.contains("one-way queue")),
        "{err}"
    );
    assert!(posted >= 3, "only {posted} blobs went in");
    other.release().unwrap();
    // A call after the posts sees every one of them handled.
    assert_eq!(busy.blob_bytes().unwrap(), posted * 1000);
}

#[test]
fn a_full_queue_makes_the_sender_wait_up_to_its_timeout_or_its_bound() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["--queue", "4096"]);
    let other = connect(dir.path(), ClientOptions::new());

    // Bounded by the call timeout: Timeout, not sent.
    let timed = connect(
        dir.path(),
        ClientOptions::new().call_timeout(Duration::from_millis(300)),
    );
    stall(&timed, &other);
    let mut posted = 0u64;
    let (err, waited) = loop {
        let started = Instant::now();
        match timed.blob(vec![1; 1000]) {
            Ok(()) => posted += 1,
            Err(e) => break (e, started.elapsed()),
        }
        assert!(posted < 10);
    };
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: CallPhase::NotSent,
                ..
            }
        ),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    other.release().unwrap();
    assert_eq!(
        timed.with_timeout(PROMPT).blob_bytes().unwrap(),
        posted * 1000
    );

    // Bounded by `queue_for_post`: Busy after the wait.
    let bounded = connect(
        dir.path(),
        ClientOptions::new().queue_for_post(Duration::from_millis(200)),
    );
    stall(&bounded, &other);
    let mut posted_bounded = 0u64;
    let (err, waited) = loop {
        let started = Instant::now();
        match bounded.blob(vec![1; 1000]) {
            Ok(()) => posted_bounded += 1,
            Err(e) => break (e, started.elapsed()),
        }
        assert!(posted_bounded < 10);
    };
    assert!(
        matches!(&err, Error::Busy { reason, .. } if reason.contains("stayed full")),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    other.release().unwrap();
    // The service counts the blobs of every connection.
    assert_eq!(
        bounded.blob_bytes().unwrap(),
        (posted + posted_bounded) * 1000
    );
}

#[test]
fn by_default_a_sender_waits_for_room_and_goes_on_when_the_service_catches_up() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["--queue", "4096"]);
    let waiting = connect(dir.path(), ClientOptions::new());
    let other = connect(dir.path(), ClientOptions::new());
    stall(&waiting, &other);
    let (done, finished) = mpsc::channel();
    let poster = {
        let waiting = waiting.clone();
        std::thread::spawn(move || {
            for _ in 0..40 {
                waiting.blob(vec![2; 1000]).unwrap();
            }
            let _ = done.send(());
        })
    };
    // 40 KB cannot go into a 4 KiB queue while the service stalls.
    assert!(
        finished.recv_timeout(Duration::from_millis(500)).is_err(),
        "40 posts of 1000 bytes went into a 4 KiB queue whose service stalls"
    );
    other.release().unwrap();
    finished
        .recv_timeout(PROMPT)
        .expect("the waiting posts went on");
    poster.join().unwrap();
    assert_eq!(waiting.blob_bytes().unwrap(), 40_000);
}

#[test]
fn a_message_larger_than_half_the_queue_is_too_large_before_it_is_sent() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let journal = connect(dir.path(), ClientOptions::new());
    let err = journal.blob(vec![0; 40_000]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                size: 40_003,
                limit: 32_760,
                ..
            }
        ),
        "{err}"
    );
    journal.blob(vec![0; 32_000]).unwrap();
    assert_eq!(journal.blob_bytes().unwrap(), 32_000);
}

#[test]
fn a_panicking_one_way_handler_is_counted_and_logged_and_the_service_goes_on() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("service.log");
    let _service = Process::start_with_env(
        Path::new(JOURNAL),
        &["serve", "journal"],
        dir.path(),
        "ready",
        &[("LPC_TEST_LOG", &log)],
    );
    let journal = connect(dir.path(), ClientOptions::new());
    let pid = std::process::id();
    journal.explode("kaboom".into()).unwrap();
    journal.note(pid, 0, 0).unwrap();
    journal.explode("kaboom again".into()).unwrap();
    // Handled after the posts: the service survived both panics, and ran the note between.
    assert_eq!(journal.last(pid, 0).unwrap(), Some(0));
    let info = lpc::query("journal", &client_options(dir.path())).unwrap();
    let explode = info.methods.iter().find(|m| m.name == "explode").unwrap();
    assert_eq!((explode.calls, explode.errors), (2, 2));
    let note = info.methods.iter().find(|m| m.name == "note").unwrap();
    assert_eq!((note.calls, note.errors), (1, 0));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("one-way handler panicked") && log.contains("kaboom again"),
        "{log}"
    );
}

#[test]
fn the_messages_of_a_client_that_exits_right_after_posting_are_all_handled() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let status = std::process::Command::new(JOURNAL)
        .args(["post", "journal", "20000"])
        .env("LPC_RUNTIME_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let journal = connect(dir.path(), ClientOptions::new());
    assert!(
        eventually(PROMPT, || journal.check().unwrap() == Ok(20_000)),
        "{:?}",
        journal.check()
    );
}

#[test]
fn a_post_waiting_for_room_learns_that_the_service_died() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["--queue", "4096"]);
    let waiting = connect(dir.path(), ClientOptions::new());
    let other = connect(dir.path(), ClientOptions::new());
    stall(&waiting, &other);
    let (tx, result) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = (0..100).try_for_each(|_| waiting.blob(vec![3; 1000]));
        let _ = tx.send(outcome);
    });
    // It is blocked: the queue holds four blobs at most.
    assert!(result.recv_timeout(Duration::from_millis(300)).is_err());
    service.kill();
    let err = result
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiting post returned")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Disconnected {
                phase: CallPhase::NotSent,
                ..
            }
        ),
        "{err}"
    );
}

/// A raw client writes its queue as an enemy would: a tail far past the head, a record longer
/// than the bound or than what was written, a skip marker past the tail. Each loses its own
/// connection only; a record naming a two-way method or holding arguments that do not decode
/// is counted as a failed message and the connection goes on. The good client never notices.
#[test]
fn a_client_that_corrupts_its_queue_loses_only_its_own_connection() {
    use lpc::testing::{RawPeer, RawSocket};
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let good = connect(dir.path(), ClientOptions::new());
    let pid = std::process::id();
    let peer = || -> RawPeer {
        RawSocket::connect(dir.path(), "journal")
            .unwrap()
            .handshake()
            .unwrap()
    };
    let header = |len: u32, method: u32| {
        let mut h = len.to_le_bytes().to_vec();
        h.extend(method.to_le_bytes());
        h
    };
    let note = lpc_tests::journal::JOURNAL_INTERFACE
        .method_by_name("note")
        .unwrap()
        .id;
    let last = lpc_tests::journal::JOURNAL_INTERFACE
        .method_by_name("last")
        .unwrap()
        .id;
    // (what is written at the ring's start, the tail published)
    let attacks: Vec<(&str, Vec<u8>, u32)> = vec![
        ("tail far past the head", header(4, note), 1 << 20),
        ("record over the bound", header(60_000, note), 16),
        ("record past the tail", header(100, note), 16),
        ("skip marker past the tail", header(u32::MAX, 0), 16),
        ("tail inside a header", header(0, note), 3),
    ];
    for (seq, (what, bytes, tail)) in attacks.into_iter().enumerate() {
        let raw = peer();
        let queue = raw.queue_offset().expect("the journal has one-way methods");
        raw.write(queue + 128, &bytes);
        raw.store(queue, tail);
        raw.ring();
        assert!(
            eventually(PROMPT, || raw.socket().closed_by_peer()),
            "{what}: the connection was not closed"
        );
        good.note(pid, 0, seq as u64).unwrap();
        assert_eq!(good.last(pid, 0).unwrap(), Some(seq as u64), "{what}");
    }
    // Well-formed records that fail: a two-way method, arguments that do not decode. The
    // connection stays, the next good record on it runs.
    let raw = peer();
    let queue = raw.queue_offset().unwrap();
    let mut ring = header(0, last);
    ring.extend(header(2, note));
    ring.extend([0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    let mut valid = header(3, note);
    valid.extend([7, 1, 0, 0, 0, 0, 0, 0]); // (pid 7, thread 1, seq 0), padded
    ring.extend(valid);
    raw.write(queue + 128, &ring);
    raw.store(queue, ring.len() as u32);
    raw.ring();
    assert!(
        eventually(PROMPT, || good.last(7, 1).unwrap() == Some(0)),
        "the valid record after the failing ones never ran"
    );
    assert!(!raw.socket().closed_by_peer());
    let info = lpc::query("journal", &client_options(dir.path())).unwrap();
    let errors = |name: &str| info.methods.iter().find(|m| m.name == name).unwrap().errors;
    assert_eq!((errors("last"), errors("note")), (1, 1));
    assert_eq!(good.check().unwrap(), Ok(6));
}
