//! A hostile service against a client's descriptor table: it sends a hundred handle notices
//! no reply names, then a reply naming a handle it never sends. The client holds at most its
//! per-connection limit (64) of them meanwhile, fails that call, and holds nothing once the
//! client is dropped. One test in this file: it counts the test process's own descriptors.

// Unix: counts descriptors in /proc.
#![cfg(unix)]

use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use lpc::testing::{message, varint, RawService};
use lpc_tests::files::{FilesClient, FILES_INTERFACE};
use lpc_tests::{client_options, eventually};
use tempfile::TempDir;

fn own_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn a_hostile_services_unnamed_descriptors_are_bounded_and_closed() {
    let dir = TempDir::new().unwrap();
    let before = own_descriptors();
    let service = RawService::bind(dir.path(), "evil").unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (welcomed_tx, welcomed_rx) = mpsc::channel::<()>();
    let raw = std::thread::spawn(move || {
        let conn = service.accept(Duration::from_secs(10)).expect("a client");
        let peer = conn.welcome(Some(&FILES_INTERFACE)).expect("welcomed");
        // `welcome` closes its copy of the region's descriptor after the client may have
        // returned from connect: the count below waits for that.
        welcomed_tx.send(()).unwrap();
        assert!(eventually(Duration::from_secs(10), || peer.state(0) != 0));
        let null = std::fs::File::open("/dev/null").unwrap();
        for id in 0..100u64 {
            peer.socket()
                .send_descriptor(&message(16, &varint(id)), null.as_fd())
                .unwrap();
        }
        drop(null);
        // `Ok(file 1000)`: variant 0, then the handle's id.
        let mut payload = vec![0u8];
        payload.extend(varint(1000));
        peer.reply_inline(0, &payload);
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
    });
    let files = FilesClient::connect_with("evil", &client_options(dir.path())).unwrap();
    welcomed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let connected = own_descriptors();
    let caller = std::thread::spawn(move || {
        let result = files.open("/etc/hostname");
        (result.map(|r| r.is_ok()), files)
    });
    assert!(
        eventually(Duration::from_secs(4), || own_descriptors()
            == connected + 64),
        "the client holds {} descriptors, {connected} before the notices",
        own_descriptors()
    );
    assert!(own_descriptors() <= connected + 64);
    let (result, files) = caller.join().unwrap();
    assert!(
        matches!(result, Err(lpc::Error::Protocol { .. })),
        "{result:?}"
    );
    drop(files);
    let _ = done_tx.send(());
    raw.join().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || own_descriptors() == before),
        "the client holds {} descriptors, {before} before",
        own_descriptors()
    );
}
