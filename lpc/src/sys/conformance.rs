//! Conformance tests of an OS backend, through the contract only (the names `sys` exports):
//! what every backend must do, whatever it is built on. A new backend passes these before
//! anything above it is tried. Each test bounds every wait, and uses its own directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const PATIENCE: Duration = Duration::from_secs(10);

/// A fresh directory for one test, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(test: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("lpc-conf-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir).expect("private dir");
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The 32-bit word at byte `offset` of a mapping.
fn word(map: &Mapping, offset: usize) -> &AtomicU32 {
    assert!(offset.is_multiple_of(4) && offset + 4 <= map.len());
    // SAFETY: in bounds and aligned (asserted; mappings are page-aligned); the mapping outlives
    // the borrow; AtomicU32 accepts any bit pattern and concurrent access.
    unsafe { &*map.as_ptr().add(offset).cast::<AtomicU32>() }
}

/// A listener in `dir` and a connected pair (client end, service end).
fn connected(dir: &TestDir) -> (Listener, Stream, Stream) {
    let path = dir.0.join("endpoint");
    let listener = Listener::bind(&path).expect("bind");
    let client = Stream::connect(&path, Instant::now() + PATIENCE).expect("connect");
    let reactor = Reactor::new().expect("reactor");
    reactor.watch_listener(&listener).expect("watch");
    let deadline = Instant::now() + PATIENCE;
    let service = loop {
        if let Some(stream) = listener.accept().expect("accept") {
            break stream;
        }
        assert!(Instant::now() < deadline, "no connection to accept");
        let mut events = Vec::new();
        reactor.wait(&mut events, Some(PATIENCE)).expect("wait");
    };
    (listener, client, service)
}

#[test]
fn shared_memory_is_zeroed_shared_between_mappings_and_fixed_in_size() {
    let shm = SharedMemory::create("conformance", 3 * 4096).unwrap();
    assert_eq!(shm.len(), 3 * 4096);
    let a = shm.map().unwrap();
    let b = shm.map().unwrap();
    assert_eq!((a.len(), b.len()), (3 * 4096, 3 * 4096));
    assert_eq!(word(&a, 8192).load(Ordering::SeqCst), 0);
    word(&a, 8192).store(0xfeed, Ordering::SeqCst);
    assert_eq!(word(&b, 8192).load(Ordering::SeqCst), 0xfeed);
}

#[test]
fn shared_memory_of_no_bytes_cannot_be_mapped() {
    let empty = SharedMemory::create("conformance", 0).unwrap();
    assert!(empty.map().is_err());
}

#[test]
fn shared_memory_sent_with_a_message_is_the_same_memory() {
    let (a, b) = Stream::pair().unwrap();
    let shm = SharedMemory::create("conformance", 4096).unwrap();
    let ours = shm.map().unwrap();
    a.send(b"here", Some(&shm)).unwrap();
    drop(shm); // the mapping keeps the memory alive
    let mut buf = [0u8; 16];
    let (n, received) = b.recv(&mut buf, Some(Instant::now() + PATIENCE)).unwrap();
    assert_eq!(&buf[..n], b"here");
    let received = received.expect("memory attached");
    assert_eq!(received.len(), 4096);
    let theirs = received.map().unwrap();
    word(&ours, 64).store(7, Ordering::SeqCst);
    assert_eq!(word(&theirs, 64).load(Ordering::SeqCst), 7);
}

#[test]
fn a_doorbell_wait_times_out_returns_on_a_changed_word_and_is_woken() {
    let word = Arc::new(AtomicU32::new(0));
    assert_eq!(
        wait(&word, 0, Some(Duration::from_millis(10))),
        WaitOutcome::TimedOut
    );
    assert_eq!(wait(&word, 1, Some(PATIENCE)), WaitOutcome::Woken);
    let waiter = {
        let word = word.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            while word.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "never woken");
                wait(&word, 0, Some(PATIENCE));
            }
        })
    };
    word.store(1, Ordering::SeqCst);
    wake(&word, 1);
    waiter.join().unwrap();
}

#[test]
fn a_doorbell_in_shared_memory_wakes_across_mappings() {
    let shm = SharedMemory::create("conformance", 4096).unwrap();
    let (a, b) = (shm.map().unwrap(), shm.map().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + PATIENCE;
            while word(&b, 0).load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "never woken");
                wait(word(&b, 0), 0, Some(PATIENCE));
            }
        });
        word(&a, 0).store(1, Ordering::SeqCst);
        wake(word(&a, 0), 1);
    });
}

#[test]
fn an_endpoint_carries_messages_both_ways_with_the_peers_credentials() {
    let dir = TestDir::new("endpoint");
    let (_listener, client, service) = connected(&dir);
    client.send(b"hello", None).unwrap();
    let mut buf = [0u8; 64];
    let (n, shm) = service
        .recv(&mut buf, Some(Instant::now() + PATIENCE))
        .unwrap();
    assert_eq!((&buf[..n], shm.is_none()), (&b"hello"[..], true));
    service.send(b"welcome", None).unwrap();
    let (n, _) = client
        .recv(&mut buf, Some(Instant::now() + PATIENCE))
        .unwrap();
    assert_eq!(&buf[..n], b"welcome");
    for end in [&client, &service] {
        let peer = end.peer_credentials().unwrap();
        assert_eq!(peer.pid(), Some(std::process::id()));
        assert_eq!(peer.user(), &current_user());
    }
}

#[test]
fn an_endpoint_keeps_message_boundaries_and_refuses_what_does_not_fit() {
    let (a, b) = Stream::pair().unwrap();
    a.send(b"one", None).unwrap();
    a.send(b"two!", None).unwrap();
    a.send(&[0u8; 100], None).unwrap();
    let mut buf = [0u8; 16];
    let deadline = Some(Instant::now() + PATIENCE);
    assert_eq!(b.recv(&mut buf, deadline).unwrap().0, 3);
    assert_eq!(b.recv(&mut buf, deadline).unwrap().0, 4);
    let err = b.recv(&mut buf, deadline).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn a_receive_ends_at_its_deadline() {
    let (_a, b) = Stream::pair().unwrap();
    let mut buf = [0u8; 16];
    let err = b
        .recv(&mut buf, Some(Instant::now() + Duration::from_millis(10)))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn a_hang_up_is_seen_by_receive_by_peer_closed_and_by_the_reactor() {
    let dir = TestDir::new("hangup");
    let (_listener, client, service) = connected(&dir);
    let reactor = Reactor::new().unwrap();
    reactor.watch_peer(&service, 42).unwrap();
    assert!(!service.peer_closed());
    drop(client);
    let deadline = Instant::now() + PATIENCE;
    let mut events = Vec::new();
    while !events.contains(&ReactorEvent::Hangup(42)) {
        assert!(Instant::now() < deadline, "no hang-up event");
        reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    }
    assert!(service.peer_closed());
    let mut buf = [0u8; 16];
    match service.recv(&mut buf, Some(Instant::now() + PATIENCE)) {
        Ok((0, None)) => {}
        Err(e) if is_hangup(&e) => {}
        other => panic!("expected a hang-up, got {other:?}"),
    }
    let sent = service.send(b"anyone?", None).unwrap_err();
    assert!(is_hangup(&sent), "{sent:?}");
}

#[test]
fn a_message_arriving_is_seen_by_the_reactor_and_stays_to_be_read() {
    let dir = TestDir::new("message");
    let (_listener, client, service) = connected(&dir);
    let reactor = Reactor::new().unwrap();
    reactor.watch_peer(&service, 7).unwrap();
    for round in 0..2 {
        client.send(b"note", None).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut events = Vec::new();
        while !events.contains(&ReactorEvent::Message(7)) {
            assert!(
                Instant::now() < deadline,
                "no message event in round {round}"
            );
            reactor.wait(&mut events, Some(PATIENCE)).unwrap();
        }
        assert!(!events.contains(&ReactorEvent::Hangup(7)));
    }
    // The reactor read nothing: both messages are still there, in order.
    let mut buf = [0u8; 16];
    for _ in 0..2 {
        let (n, _) = service
            .recv(&mut buf, Some(Instant::now() + PATIENCE))
            .unwrap();
        assert_eq!(&buf[..n], b"note");
    }
}

#[test]
fn a_shut_down_endpoint_looks_closed_to_its_peer() {
    let (a, b) = Stream::pair().unwrap();
    a.shutdown();
    // At once on Unix; on Windows once the peer's reader has seen it.
    let deadline = Instant::now() + PATIENCE;
    while !b.peer_closed() {
        assert!(
            Instant::now() < deadline,
            "the shutdown never reached the peer"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_reactor_can_be_woken_from_another_thread() {
    let reactor = Arc::new(Reactor::new().unwrap());
    let waker = {
        let reactor = reactor.clone();
        std::thread::spawn(move || reactor.wake())
    };
    let mut events = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !events.contains(&ReactorEvent::Wake) {
        assert!(Instant::now() < deadline, "never woken");
        reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    }
    waker.join().unwrap();
}

// Unix signals. On Windows a stop request is a console control event, which
// `GenerateConsoleCtrlEvent` would send to every process of the console (the test runner's
// too): tested there through a child process instead (lpc-tests' graceful-stop tests).
#[cfg(unix)]
#[test]
fn a_stop_signal_wakes_the_reactor_that_watches_for_it_and_no_other() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let watching = Reactor::new().unwrap();
    let other = Reactor::new().unwrap();
    // The signals are raised only below, while `watching` holds its registration: their
    // default action (ending this test process) cannot run.
    watching
        .watch_stop_signals()
        .expect("SIGTERM and SIGINT watched");
    watching
        .watch_stop_signals()
        .expect("watching again is a no-op");
    for signal in [SIGTERM, SIGINT] {
        signal_hook::low_level::raise(signal).unwrap();
        let mut events = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while !events.contains(&ReactorEvent::StopSignal) {
            assert!(Instant::now() < deadline, "signal {signal} not reported");
            watching.wait(&mut events, Some(PATIENCE)).unwrap();
        }
        // Reported once per signal: nothing is left to report.
        events.clear();
        watching
            .wait(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(events.is_empty(), "{events:?}");
    }
    let mut events = Vec::new();
    other
        .wait(&mut events, Some(Duration::from_millis(20)))
        .unwrap();
    assert!(
        events.is_empty(),
        "a reactor that does not watch: {events:?}"
    );
}

#[test]
fn connecting_where_nobody_listens_is_not_found_or_refused() {
    let dir = TestDir::new("nobody");
    let err = Stream::connect(&dir.0.join("nobody"), Instant::now() + PATIENCE).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    ));
}

#[test]
fn the_naming_place_is_private_locked_and_tells_files_apart() {
    let dir = TestDir::new("naming");
    // Creating it again checks it and succeeds.
    create_private_dir(&dir.0).unwrap();
    let lock = DirLock::acquire(&dir.0).unwrap();
    drop(lock);
    let path = dir.0.join("endpoint");
    let listener = Listener::bind(&path).unwrap();
    let first = file_identity(&path).unwrap();
    assert_eq!(file_identity(&path).unwrap(), first);
    open_to_other_users(&dir.0, &path).unwrap();
    drop(listener);
    std::fs::remove_file(&path).unwrap();
    let _again = Listener::bind(&path).unwrap();
    // Another file under the same name is another identity (the old one is gone, so the
    // new one may reuse its number only on another device, never here while both exist).
    let other = dir.0.join("other");
    std::fs::write(&other, b"x").unwrap();
    assert_ne!(
        file_identity(&other).unwrap(),
        file_identity(&path).unwrap()
    );
}

/// What another user could have planted where a runtime directory should be, and what lpc
/// must never do to a directory it did not create. Unix modes and symlinks set the scene (a
/// Windows backend brings the same cases with ACLs and junctions).
#[cfg(unix)]
#[test]
fn the_naming_place_refuses_what_another_user_could_have_planted() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let refused = |p: &std::path::Path, needle: &str| {
        let err = create_private_dir(p).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    };
    let base = TestDir::new("planted");

    // Created afresh: mode 0700, and lpc may later open it to others.
    let fresh = base.0.join("fresh");
    create_private_dir(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o700);
    let socket = fresh.join("endpoint");
    let _listener = Listener::bind(&socket).unwrap();
    open_to_other_users(&fresh, &socket).unwrap();
    assert_eq!(mode(&fresh), 0o711);
    // Checking it again accepts it as it is now.
    create_private_dir(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o711);

    // A symlink, to a directory of ours: never followed, the target never touched.
    let target = base.0.join("target");
    std::fs::create_dir(&target).unwrap();
    set(&target, 0o755);
    let link = base.0.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(&link, "is a symbolic link");
    // Not with a trailing slash either (which makes lstat follow it).
    refused(
        &PathBuf::from(format!("{}/", link.display())),
        "is a symbolic link",
    );
    refused(&link.join("."), "is a symbolic link");
    refused(&link.join("sub").join(".."), "contains `..`");
    assert_eq!(mode(&target), 0o755);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    // A dangling one neither: nothing is created where it points.
    let dangling = base.0.join("dangling");
    std::os::unix::fs::symlink(base.0.join("nowhere"), &dangling).unwrap();
    refused(&dangling, "is a symbolic link");
    assert!(!base.0.join("nowhere").exists());

    // Writable by others: refused, its mode left alone.
    let open = base.0.join("open");
    std::fs::create_dir(&open).unwrap();
    set(&open, 0o777);
    refused(&open, "can be written by other users (mode 0777)");
    assert_eq!(mode(&open), 0o777);

    // Readable by others, of ours: accepted as it is (not tightened, not marked), and lpc
    // does not open a directory it did not create to others.
    let readable = base.0.join("readable");
    std::fs::create_dir(&readable).unwrap();
    set(&readable, 0o755);
    create_private_dir(&readable).unwrap();
    assert_eq!(mode(&readable), 0o755);
    let private = base.0.join("private");
    std::fs::create_dir(&private).unwrap();
    set(&private, 0o700);
    create_private_dir(&private).unwrap();
    let socket = private.join("endpoint");
    let _listener = Listener::bind(&socket).unwrap();
    let err = open_to_other_users(&private, &socket).unwrap_err();
    assert!(err.to_string().contains("chmod go+x"), "{err}");
    assert_eq!(mode(&private), 0o700);

    // Its parent: writable by others, refused unless sticky (as /tmp is).
    let shared = base.0.join("shared");
    std::fs::create_dir(&shared).unwrap();
    set(&shared, 0o777);
    refused(&shared.join("run"), "is not sticky");
    assert!(!shared.join("run").exists());
    set(&shared, 0o1777);
    create_private_dir(&shared.join("run")).unwrap();

    // Another user's: only root can set that scene.
    if rustix::process::geteuid().is_root() {
        let theirs = base.0.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        set(&theirs, 0o700);
        std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
        refused(&theirs, "belongs to uid 4242");
        assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 4242);
        // And a directory in a parent of theirs.
        refused(&theirs.join("run"), "its parent");
    }
}

#[test]
fn the_process_knows_itself_and_its_clock() {
    assert_eq!(current_user(), current_user());
    let a = monotonic_ns();
    let b = monotonic_ns();
    assert!(b >= a);
    assert!(process_alive(std::process::id()));
    assert!(!process_name(std::process::id()).is_empty());
    assert!(raise_open_file_limit() >= 64);
    // Whatever the machine, the answer is the same for the same question.
    assert_eq!(can_run_apart(None), can_run_apart(None));
}

/// Started through `/bin/sh`, which reads its own descriptor table: Unix only (the Windows
/// backend brings a child program of its own).
#[cfg(unix)]
#[test]
fn a_child_inherits_exactly_its_endpoint_and_its_death_is_seen() {
    let (ours, theirs) = Stream::pair().unwrap();
    let _not_passed = SharedMemory::create("not-inherited", 4096).unwrap();
    let mut command = std::process::Command::new("/bin/sh");
    // The child sends, on the descriptor it was told about, what each of its descriptors is.
    // (The test harness may pass descriptors of its own, pipes for instance: only the
    // sockets and shared memory lpc made are counted.)
    command.arg("-c").arg(format!(
        "for f in /proc/$$/fd/*; do readlink $f; done | tr '\\n' ' ' >&${ENDPOINT_ENV}"
    ));
    let mut child = spawn_with_endpoint(&mut command, &theirs).unwrap();
    drop(theirs);
    let mut buf = [0u8; 4096];
    let (n, _) = ours
        .recv(&mut buf, Some(Instant::now() + PATIENCE))
        .unwrap();
    let listed = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let sockets = listed
        .split_whitespace()
        .filter(|t| t.starts_with("socket:"))
        .count();
    assert_eq!(sockets, 1, "the child has {listed}");
    assert!(!listed.contains("not-inherited"), "the child has {listed}");
    assert!(!process_alive(child.id()));
    // The child is gone and held the only other end: a hang-up.
    assert!(ours.peer_closed());
}

#[test]
fn a_process_not_started_with_an_endpoint_inherits_none() {
    if std::env::var_os(ENDPOINT_ENV).is_none() {
        assert!(Stream::inherited().unwrap().is_none());
    }
}
