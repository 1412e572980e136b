//! A client's own descriptors around calls that pass handles: after calls that succeed, fail
//! in the handler, are refused, or time out with the reply's file still to come, and the
//! client dropped, the process holds exactly the descriptors it held before. One test in this
//! file, so that no other test of the process opens descriptors meanwhile.

// Unix: counts descriptors in /proc.
#![cfg(unix)]

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use lpc::Error;
use lpc_tests::files::FilesClient;
use lpc_tests::{client_options, eventually, Process};
use tempfile::TempDir;

fn own_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn a_client_closes_every_descriptor_it_sent_or_received() {
    let dir = TempDir::new().unwrap();
    let _service = Process::start(
        Path::new(env!("CARGO_BIN_EXE_lpc-test-files")),
        &["files", "--max-per-call", "2"],
        dir.path(),
        "ready",
    );
    let path = dir.path().join("data");
    std::fs::write(&path, "data").unwrap();
    let before = own_descriptors();
    {
        let files = FilesClient::connect_with("files", &client_options(dir.path())).unwrap();
        for _ in 0..10 {
            let opened = files.open(path.to_str().unwrap()).unwrap().unwrap();
            assert_eq!(files.read_all(&opened).unwrap(), b"data");
            drop(opened);
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(b"abc").unwrap();
            assert!(matches!(files.fail_with(file), Err(Error::Remote { .. })));
            let file = tempfile::tempfile().unwrap();
            assert!(matches!(
                files.three(&file, &file, &file),
                Err(Error::Busy { .. })
            ));
            drop(file);
            let segment = files.make_segment(4096, 1).unwrap();
            assert_eq!(files.fill(&segment, 2).unwrap().unwrap(), 4096);
        }
        let slow = files.with_timeout(Duration::from_millis(50));
        assert!(matches!(slow.slow_file(200), Err(Error::Timeout { .. })));
        // The late reply (and its file) comes while the client lives, or after: either way
        // the connection's end closes it.
        assert_eq!(files.pid().unwrap(), files.pid().unwrap());
    }
    assert!(
        eventually(Duration::from_secs(5), || own_descriptors() == before),
        "the client holds {} descriptors, {before} before",
        own_descriptors()
    );
}
