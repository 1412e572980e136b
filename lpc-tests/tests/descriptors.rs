//! Descriptors a peer sends: each must be exactly the shared memory the protocol expects — a
//! memfd on the shared-memory filesystem, sealed against shrinking and growing, of the right
//! size — or the connection is closed with a logged reason. Neither side can be made to take a
//! `SIGBUS` (truncation is sealed off, hugetlbfs and other filesystems are refused, punched
//! holes read back as zeros) or to hang: the service against a hostile client, and a client
//! (here in-process, `lpc` itself in lpc-cli/tests/hostile_service.rs) against a hostile
//! service. docs/security.md lists which test covers which attack.

// Unix: memfds, pipes and seals sent as hostile descriptors.
#![cfg(unix)]

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use lpc::testing::varint;
use lpc::testing::{self, RawPeer, RawService, RawSocket};
use lpc_tests::{client_options, eventually, ProbeClient, Process};
use rustix::fs::{
    fallocate, fcntl_add_seals, ftruncate, memfd_create, FallocateFlags, MemfdFlags, Mode, OFlags,
    SealFlags,
};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const PROMPT: Duration = Duration::from_secs(10);

/// A memfd of `len` bytes with `seals`, holding `contents` at its start.
fn memfd(len: u64, seals: SealFlags, contents: &[u8], flags: MemfdFlags) -> OwnedFd {
    let fd = memfd_create(
        "hostile",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING | flags,
    )
    .expect("memfd_create");
    ftruncate(&fd, len).expect("ftruncate");
    rustix::io::pwrite(&fd, contents, 0).expect("pwrite");
    if !seals.is_empty() {
        fcntl_add_seals(&fd, seals).expect("seals");
    }
    fd
}

/// Every kind of descriptor that is not lpc shared memory, with what the refusal must say.
fn wrong_descriptors(scratch: &Path) -> Vec<(&'static str, OwnedFd, &'static str)> {
    let size_seals = SealFlags::SHRINK | SealFlags::GROW;
    let mut cases = vec![
        (
            "an unsealed memfd (its sender could truncate it under the mapping)",
            memfd(1 << 20, SealFlags::empty(), &[], MemfdFlags::empty()),
            "not sealed against shrinking",
        ),
        (
            "a memfd sealed against growing only",
            memfd(1 << 20, SealFlags::GROW, &[], MemfdFlags::empty()),
            "not sealed against shrinking",
        ),
        (
            "a memfd of 0 bytes",
            memfd(0, size_seals, &[], MemfdFlags::empty()),
            "it is empty",
        ),
    ];
    // Huge pages: the pool may be empty, so a fault on them can fail (a SIGBUS).
    let huge = memfd_create(
        "hostile-huge",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING | MemfdFlags::HUGETLB,
    )
    .expect("this kernel makes hugetlbfs memfds (MFD_HUGETLB)");
    ftruncate(&huge, 2 << 20).expect("ftruncate of a hugetlbfs memfd");
    fcntl_add_seals(&huge, size_seals).expect("seals on a hugetlbfs memfd");
    cases.push(("a hugetlbfs memfd, sealed", huge, "hugetlbfs"));
    // A file on the disk's filesystem (the test's scratch directory), which its owner could
    // truncate at will.
    let path = scratch.join("plain-file");
    std::fs::write(&path, vec![0u8; 1 << 16]).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    cases.push((
        "a regular file of another filesystem",
        file.into(),
        "another filesystem",
    ));
    // A tmpfs file: the right filesystem, but it cannot carry seals.
    // One name per call: the tests of this file run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let shm_path = format!("/dev/shm/lpc-hostile-{}-{call}", std::process::id());
    let shm = rustix::fs::open(
        shm_path.as_str(),
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .unwrap();
    std::fs::remove_file(&shm_path).unwrap();
    ftruncate(&shm, 1 << 16).unwrap();
    // (The kernel reports a tmpfs file as sealed with F_SEAL_SEAL alone: no size seals.)
    cases.push((
        "a tmpfs file (not a memfd)",
        shm,
        "not sealed against shrinking",
    ));
    let (read, _write) = rustix::pipe::pipe().unwrap();
    cases.push(("a pipe", read, "Fifo"));
    let dir = rustix::fs::open(scratch, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    cases.push(("a directory", dir, "Directory"));
    cases
}

// ---------------------------------------------------------------------------------------------
// A hostile client.

struct Rig {
    dir: TempDir,
    log: std::path::PathBuf,
    _service: Process,
    good: ProbeClient,
}

impl Rig {
    fn start() -> Rig {
        let dir = TempDir::new().unwrap();
        let log = dir.path().join("service.log");
        std::env::set_var("LPC_TEST_LOG", &log);
        let service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
        std::env::remove_var("LPC_TEST_LOG");
        let good = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
        Rig {
            dir,
            log,
            _service: service,
            good,
        }
    }

    fn peer(&self) -> RawPeer {
        RawSocket::connect(self.dir.path(), "probe")
            .unwrap()
            .handshake()
            .unwrap()
    }

    fn logged(&self, needle: &str) -> bool {
        eventually(PROMPT, || {
            std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(needle))
        })
    }

    fn assert_good(&self, case: &str) {
        assert_eq!(self.good.add(2, 3).unwrap(), 5, "after {case}");
        assert_eq!(self.good.echo(&[7; 100_000]).unwrap(), vec![7; 100_000]);
    }
}

#[test]
fn a_client_sending_any_wrong_descriptor_loses_only_its_connection_with_the_reason_logged() {
    let rig = Rig::start();
    let scratch = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (case, fd, reason) in wrong_descriptors(scratch.path()) {
        // As a spill buffer for a request.
        let peer = rig.peer();
        testing::send_descriptor(&peer, &testing::spill_notice(0, 1), fd).unwrap();
        peer.request_spilled(0, lpc_tests::probe_method_id("echo"), 100, 1);
        assert!(
            eventually(PROMPT, || peer.socket().closed_by_peer()),
            "{case}: the connection stays open"
        );
        assert!(rig.logged(reason), "{case}: no log line with {reason:?}");
        rig.assert_good(case);
    }
    // As a loan's buffer: the other path that receives memory, with the same checks.
    for (case, fd, reason) in wrong_descriptors(scratch.path()) {
        let peer = rig.peer();
        testing::send_descriptor(&peer, &testing::bulk_notice(0), fd).unwrap();
        // `loan_sum(&Loan)`: the handle is (token, buffer id 0, length 16), varints.
        let mut handle = varint(peer.token());
        handle.extend([0, 16]);
        peer.request(0, lpc_tests::probe_method_id("loan_sum"), &handle);
        assert!(
            eventually(PROMPT, || peer.socket().closed_by_peer()),
            "{case} as a loan: the connection stays open"
        );
        assert!(
            rig.logged(reason),
            "{case} as a loan: no log line with {reason:?}"
        );
        rig.assert_good(case);
    }
}

#[test]
fn holes_punched_into_a_sealed_spill_buffer_read_as_zeros() {
    let rig = Rig::start();
    let peer = rig.peer();
    // A proper spill buffer holding `echo`'s argument: 100 bytes of 7.
    let mut payload = vec![100u8]; // varint length
    payload.extend([7u8; 100]);
    let fd = memfd(
        1 << 20,
        SealFlags::SHRINK | SealFlags::GROW,
        &payload,
        MemfdFlags::empty(),
    );
    let punch = fd.try_clone().unwrap();
    testing::send_descriptor(&peer, &testing::spill_notice(0, 1), fd).unwrap();
    // Before the service reads it, its pages are punched out (allowed by these seals).
    fallocate(
        &punch,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        0,
        1 << 20,
    )
    .unwrap();
    peer.request_spilled(
        0,
        lpc_tests::probe_method_id("echo"),
        payload.len() as u64,
        1,
    );
    // The service read zeros (an empty byte buffer, then trailing bytes): a clean refusal,
    // and the connection stays.
    assert!(eventually(PROMPT, || peer.state(0) == 3), "no reply");
    let status = u32::from_le_bytes(
        peer.read(peer.slot_offset(0) + 8 + 28, 4)
            .try_into()
            .unwrap(),
    );
    assert_eq!(status, 2, "BadArguments for zeros");
    assert!(!peer.socket().closed_by_peer());
    rig.assert_good("punched holes");
}

// ---------------------------------------------------------------------------------------------
// A hostile service.

/// Runs `serve` as a hand-made service `name` in `dir` on a thread, for one client.
fn hostile_service(
    dir: &Path,
    serve: impl FnOnce(lpc::testing::RawServiceConnection) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let service = RawService::bind(dir, "evil").unwrap();
    std::thread::spawn(move || {
        let conn = service.accept(PROMPT).expect("the client connects");
        serve(conn);
    })
}

fn connect_to_evil(dir: &Path) -> Result<lpc::Client, lpc::Error> {
    lpc::Client::connect_dynamic(
        "evil",
        &client_options(dir).connect_timeout(Duration::from_secs(5)),
    )
}

#[test]
fn a_service_welcoming_with_any_wrong_descriptor_is_refused_by_its_client() {
    let scratch = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cases = wrong_descriptors(scratch.path());
    let len = testing::raw_service_region_len() as u64;
    cases.push((
        "a region far larger than its geometry (sparse: the client would map 1 TiB)",
        memfd(
            1 << 40,
            SealFlags::SHRINK | SealFlags::GROW,
            &[],
            MemfdFlags::empty(),
        ),
        "needs",
    ));
    cases.push((
        "a region sealed against the client's writes",
        memfd(
            len,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
            &[],
            MemfdFlags::empty(),
        ),
        "cannot map",
    ));
    for (case, fd, reason) in cases {
        let dir = TempDir::new().unwrap();
        let server = hostile_service(dir.path(), move |conn| {
            conn.socket().recv(PROMPT).unwrap();
            let welcome = conn.welcome_message(None).unwrap();
            conn.send_descriptor(&welcome, fd).unwrap();
            // Keep the connection open: the client must not wait for more.
            let _ = conn.socket().recv(PROMPT);
        });
        let err = connect_to_evil(dir.path()).expect_err(case);
        assert!(
            matches!(err, lpc::Error::Protocol { .. } | lpc::Error::Io { .. }),
            "{case}: {err:?}"
        );
        assert!(err.to_string().contains(reason), "{case}: {err}");
        server.join().unwrap();
    }
}

#[test]
fn a_service_replying_through_a_wrong_descriptor_fails_the_call_not_the_client() {
    let scratch = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (case, fd, _) in wrong_descriptors(scratch.path()) {
        let dir = TempDir::new().unwrap();
        let server = hostile_service(dir.path(), move |conn| {
            let peer = conn.welcome(Some(&lpc_tests::PROBE_INTERFACE)).unwrap();
            // Wait for the call, then answer it "spilled" into the wrong descriptor.
            assert!(
                eventually(PROMPT, || matches!(peer.state(0), 1 | 5)),
                "no call"
            );
            testing::send_descriptor(&peer, &testing::spill_notice(0, 1), fd).unwrap();
            peer.reply_spilled(0, 100, 1);
            let _ = peer.socket().recv(PROMPT);
        });
        let client =
            ProbeClient::connect_with("evil", &client_options(dir.path()).call_timeout(PROMPT))
                .expect(case);
        let err = client.add(1, 2).expect_err(case);
        assert!(
            matches!(err, lpc::Error::Protocol { .. } | lpc::Error::Io { .. }),
            "{case}: {err:?}"
        );
        assert!(
            err.to_string().contains("not lpc shared memory"),
            "{case}: {err}"
        );
        drop(client);
        server.join().unwrap();
    }
}
