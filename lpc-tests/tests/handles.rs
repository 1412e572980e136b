//! Handles in calls across real processes: files, descriptors and segments passed by the
//! kernel, never by name — a root service opens a file for a user who may not; nothing leaks
//! from a failing handler, a refused call or a call that timed out; the per-call limit is a
//! clear error; JSON calls of such methods are refused.

// Unix: the handle tests' interface (lpc_tests::files) takes OwnedFd and BorrowedFd.
#![cfg(unix)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use lpc::Error;
use lpc_tests::files::FilesClient;
use lpc_tests::{
    as_user, client_options, eventually, fd_count, let_others_through, other_user, Process,
};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-files");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-test-files-client");

fn start(dir: &Path, args: &[&str]) -> Process {
    let mut all = vec!["files"];
    all.extend_from_slice(args);
    Process::start(Path::new(SERVICE), &all, dir, "ready")
}

/// What each descriptor of process `pid` is.
fn descriptors(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                Some(format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    std::fs::read_link(e.path()).ok()?.display()
                ))
            })
            .collect()
        })
        .unwrap_or_default()
}

fn temp_file(contents: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(contents).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file
}

#[test]
fn a_root_service_opens_a_file_for_a_user_who_may_not_and_it_reads_it() {
    let (uid, gid) = other_user().expect("these tests need root and a second user");
    let dir = TempDir::new().unwrap();
    let_others_through(dir.path());
    let secret_dir = TempDir::new().unwrap();
    let_others_through(secret_dir.path());
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "root's secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _service = start(dir.path(), &["--allow-uid", &uid.to_string()]);

    let out = as_user(uid, gid, CLIENT)
        .args(["files", secret.to_str().unwrap(), "0"])
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("direct: denied"), "{stdout}");
    assert!(stdout.contains("via service: root's secret"), "{stdout}");
}

#[test]
fn files_descriptors_and_segments_cross_both_ways() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();

    // A file the service opened, read here.
    let path = dir.path().join("data");
    std::fs::write(&path, "hello").unwrap();
    let mut opened = files.open(path.to_str().unwrap()).unwrap().unwrap();
    let mut text = String::new();
    opened.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello");
    // The service's error for a path it cannot open is the method's own.
    assert!(files.open("/nonexistent/x").unwrap().is_err());

    // Files and descriptors sent: by reference, by value, borrowed.
    let file = temp_file(b"0123456789");
    assert_eq!(files.read_all(&file).unwrap(), b"0123456789");
    assert_eq!(files.borrowed_size(file.as_fd()).unwrap(), 10);
    let fd: OwnedFd = temp_file(b"abc").into();
    assert_eq!(files.size(fd).unwrap(), 3);
    assert_eq!(files.three(&file, &file, &file).unwrap(), 30);

    // Segments: a read-write one is filled by the service; one made there read here.
    let segment = lpc::Segment::anonymous(8192).unwrap();
    assert_eq!(files.fill(&segment, 7).unwrap().unwrap(), 8192);
    let mut bytes = vec![0u8; 8192];
    segment.read_at(0, &mut bytes).unwrap();
    assert!(bytes.iter().all(|&b| b == 7));
    let made = files.make_segment(100, 9).unwrap();
    assert_eq!(made.len(), 100);
    assert!(made.writable());
    let mut bytes = [0u8; 100];
    made.read_at(0, &mut bytes).unwrap();
    assert!(bytes.iter().all(|&b| b == 9));

    // A read-only segment stays read-only in the service.
    let name = format!("handles-ro-{}", std::process::id());
    let options = lpc::SegmentOptions::new().runtime_dir(dir.path());
    let writer = options.create(&name, 4096).unwrap();
    let reader = options.open_read_only(&name).unwrap();
    let refused = files.fill(&reader, 1).unwrap().unwrap_err();
    assert!(refused.contains("read-only"), "{refused}");
    assert_eq!(files.fill(&writer, 2).unwrap().unwrap(), 4096);
}

#[test]
fn a_json_call_of_a_method_with_handles_is_refused() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let client = lpc::Client::connect_dynamic("files", &client_options(dir.path())).unwrap();
    let err = client
        .call_json("read_all", &serde_json::json!([null]))
        .unwrap_err();
    assert!(err.to_string().contains("JSON"), "{err}");
    // Methods without handles still answer JSON on that connection.
    let pid = client.call_json("pid", &serde_json::json!([])).unwrap();
    assert!(pid["result"].as_u64().is_some(), "{pid}");
}

#[test]
fn more_handles_than_the_service_takes_per_call_is_busy_naming_the_limit() {
    let dir = TempDir::new().unwrap();
    let service = start(dir.path(), &["--max-per-call", "2"]);
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
    let file = temp_file(b"x");
    assert_eq!(files.read_all(&file).unwrap(), b"x");
    let before = fd_count(service.pid());
    match files.three(&file, &file, &file) {
        Err(Error::Busy { reason, .. }) => {
            assert!(reason.contains("max_descriptors_per_call"), "{reason}");
            assert!(reason.contains('2'), "{reason}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // The connection still works, and the service holds none of the three.
    assert_eq!(files.read_all(&file).unwrap(), b"x");
    assert!(
        eventually(Duration::from_secs(5), || fd_count(service.pid()) == before),
        "the service holds {} descriptors, {before} before",
        fd_count(service.pid())
    );
}

#[test]
fn the_service_closes_what_it_received_when_a_handler_fails_and_when_the_client_goes() {
    let dir = TempDir::new().unwrap();
    let service = start(dir.path(), &[]);
    let alone = fd_count(service.pid());
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
    let file = temp_file(b"held");
    assert_eq!(files.read_all(&file).unwrap(), b"held");
    let connected = fd_count(service.pid());
    for _ in 0..20 {
        assert!(matches!(
            files.fail_with(temp_file(b"x")),
            Err(Error::Remote { .. })
        ));
        assert_eq!(files.size(temp_file(b"y").into()).unwrap(), 1);
    }
    assert!(
        eventually(Duration::from_secs(5), || fd_count(service.pid())
            == connected),
        "after failing handlers the service holds {} descriptors, {connected} before",
        fd_count(service.pid())
    );

    // A call that times out: its reply's file arrives after the caller gave up. The
    // connection goes on.
    let slow = files.with_timeout(Duration::from_millis(100));
    assert!(matches!(slow.slow_file(300), Err(Error::Timeout { .. })));
    assert_eq!(files.read_all(&file).unwrap(), b"held");
    // With the client gone, the service holds what it held before it came.
    drop((files, slow));
    assert!(
        eventually(Duration::from_secs(10), || fd_count(service.pid()) == alone),
        "with its client gone the service holds {} descriptors, {alone} before it came: {:?}",
        fd_count(service.pid()),
        descriptors(service.pid())
    );
}

#[test]
fn a_hostile_client_sending_descriptors_it_never_names_makes_the_service_hold_a_bounded_few() {
    use lpc::testing::{message, varint, RawSocket};
    let dir = TempDir::new().unwrap();
    let service = start(dir.path(), &["--max-per-connection", "8"]);
    let alone = fd_count(service.pid());
    let raw = RawSocket::connect(dir.path(), "files")
        .unwrap()
        .handshake()
        .unwrap();
    // Once its handshake is over, a connection holds one descriptor in the service: its
    // socket (the region's memfd is closed once mapped).
    let connected = alone + 1;
    assert!(
        eventually(Duration::from_secs(5), || fd_count(service.pid())
            == connected),
        "a connection holds {} descriptors in the service: {:?}",
        fd_count(service.pid()) - alone,
        descriptors(service.pid())
    );
    // 100 notices, each with a descriptor, that no call names.
    let null = std::fs::File::open("/dev/null").unwrap();
    for id in 0..100u64 {
        raw.socket()
            .send_descriptor(&message(16, &varint(id)), null.as_fd())
            .unwrap();
    }
    // A call naming a handle that never comes: the service reads the socket looking for it,
    // keeping at most 8 of the unnamed ones.
    let size = lpc::method_id("size");
    raw.request(0, size, &varint(1000));
    assert!(
        eventually(Duration::from_secs(4), || fd_count(service.pid())
            == connected + 8),
        "the service holds {} descriptors, {connected} before the notices: {:?}",
        fd_count(service.pid()),
        descriptors(service.pid())
    );
    // Never more.
    assert!(fd_count(service.pid()) <= connected + 8);
    drop(raw);
    assert!(
        eventually(Duration::from_secs(10), || fd_count(service.pid()) == alone),
        "with the hostile client gone the service holds {} descriptors, {alone} before",
        fd_count(service.pid())
    );
}

#[test]
fn a_hostile_client_naming_a_handle_it_never_sent_breaks_only_its_call_or_connection() {
    use lpc::testing::{varint, RawSocket};
    let dir = TempDir::new().unwrap();
    let service = start(dir.path(), &[]);
    let alone = fd_count(service.pid());
    let raw = RawSocket::connect(dir.path(), "files")
        .unwrap()
        .handshake()
        .unwrap();
    raw.request(0, lpc::method_id("size"), &varint(7));
    // Another client is served meanwhile.
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
    assert_eq!(files.read_all(&temp_file(b"ok")).unwrap(), b"ok");
    drop(files);
    drop(raw);
    assert!(
        eventually(Duration::from_secs(10), || fd_count(service.pid()) == alone),
        "the service holds {} descriptors, {alone} before",
        fd_count(service.pid())
    );
}
