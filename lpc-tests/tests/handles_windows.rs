//! Files and segments passed in calls on Windows, across real processes: a handle crosses by
//! `DuplicateHandle` (the receiver pulls it out of the sender's process), never by name. The
//! Unix tests (tests/handles.rs) also pass descriptors and count them in `/proc`.

#![cfg(windows)]

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use lpc::Error;
use lpc_tests::files::FilesClient;
use lpc_tests::{client_options, Process};
use tempfile::TempDir;

const FILES: &str = env!("CARGO_BIN_EXE_lpc-test-files");

fn start(dir: &Path, args: &[&str]) -> Process {
    let args: Vec<&str> = ["files"]
        .iter()
        .copied()
        .chain(args.iter().copied())
        .collect();
    Process::start(Path::new(FILES), &args, dir, "ready")
}

fn temp_file(contents: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(contents).unwrap();
    file
}

#[test]
fn files_and_segments_cross_both_ways() {
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
    assert!(files.open("C:\\nonexistent\\x").unwrap().is_err());

    // Files sent, by reference, three in one call.
    let file = temp_file(b"0123456789");
    assert_eq!(files.read_all(&file).unwrap(), b"0123456789");
    assert_eq!(files.three(&file, &file, &file).unwrap(), 30);

    // Segments: a read-write one is filled by the service; one made there read here.
    let segment = lpc::Segment::anonymous(8192).unwrap();
    assert_eq!(files.fill(&segment, 7).unwrap().unwrap(), 8192);
    let mut bytes = vec![0u8; 8192];
    segment.read_at(0, &mut bytes).unwrap();
    assert!(bytes.iter().all(|&b| b == 7));
    let made = files.make_segment(100, 9).unwrap();
    assert_eq!(made.len(), 100);
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
fn more_handles_than_the_service_takes_per_call_is_busy_naming_the_limit() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["--max-per-call", "2"]);
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
    let file = temp_file(b"x");
    match files.three(&file, &file, &file) {
        Err(Error::Busy { reason, .. }) => {
            assert!(reason.contains("max_descriptors_per_call"), "{reason}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // The connection still works.
    assert_eq!(files.read_all(&file).unwrap(), b"x");
}

#[test]
fn a_failing_handler_holding_a_file_is_a_remote_error_and_the_service_goes_on() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
    let err = files.fail_with(temp_file(b"y")).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    assert_eq!(files.read_all(&temp_file(b"ok")).unwrap(), b"ok");
    // The file the handler held is closed: opened without FILE_SHARE_DELETE, it cannot be
    // deleted while any duplicate of its handle (the service's) is open.
    let path = dir.path().join("held");
    std::fs::write(&path, "z").unwrap();
    let held = {
        use std::os::windows::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .share_mode(1 | 2) // FILE_SHARE_READ | FILE_SHARE_WRITE
            .open(&path)
            .unwrap()
    };
    assert!(
        std::fs::remove_file(&path).is_err(),
        "the share mode must keep it"
    );
    let err = files.fail_with(held).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    assert!(
        lpc_tests::eventually(Duration::from_secs(5), || std::fs::remove_file(&path)
            .is_ok()),
        "the service still holds the file a failed handler received"
    );
}
