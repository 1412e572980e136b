//! What a local user can make a service spend before it is admitted: nothing. Credentials
//! are checked when a connection is accepted, on the reactor's thread — before a thread, a
//! slot, shared memory or a place in the connection table is spent — and so are the per-user
//! limits of users other than the service's own (open connections, connections still in their
//! handshake). Neither an unadmitted user nor an admitted one at its limits can make the
//! service refuse anybody else. The attacks run as a second user (`lpc-test-other`, created
//! as root), from `lpc-flood`.

// Unix: a second user and /proc.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use lpc_tests::{client_options, eventually, fd_count, status_field, ProbeClient, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const FLOOD: &str = env!("CARGO_BIN_EXE_lpc-flood");
const PROMPT: Duration = Duration::from_secs(20);

/// `lpc-flood args` as `uid:gid`, killed on drop.
struct Flood {
    child: Child,
    line: String,
}

impl Flood {
    fn run(user: (u32, u32), dir: &Path, args: &[&str]) -> Flood {
        let mut child = lpc_tests::as_user(user.0, user.1, FLOOD)
            .arg("probe")
            .args(args)
            .env("LPC_RUNTIME_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Flood {
            child,
            line: line.trim().to_owned(),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A probe service other users can reach (its directory traversable, its socket open to
/// them because `--allow-uid` admits somebody), with `args`.
fn reachable_service(args: &[&str]) -> (TempDir, Process) {
    let dir = TempDir::new().unwrap();
    lpc_tests::let_others_through(dir.path());
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    let service = Process::start(Path::new(SERVICE), &all, dir.path(), "ready");
    (dir, service)
}

fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
}

/// The service's own user still gets in and is served.
fn owner_is_served(dir: &Path, case: &str) {
    let clients: Vec<ProbeClient> = (0..10)
        .map(|i| {
            ProbeClient::connect_with("probe", &client_options(dir))
                .unwrap_or_else(|e| panic!("{case}: owner's connection {i}: {e}"))
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.add(i as i32, 1).unwrap(), i as i32 + 1, "{case}");
    }
}

#[test]
fn an_unadmitted_user_costs_the_service_nothing() {
    let user = lpc_tests::other_user().expect("this test needs a second user");
    // Another uid is admitted, so the socket is reachable; this one is not admitted.
    let (dir, service) = reachable_service(&["--allow-uid", "4242424"]);
    let pid = service.pid();
    let good = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(good.add(1, 1).unwrap(), 2);
    let baseline = (threads(pid), fd_count(pid));

    let flood = Flood::run(user, dir.path(), &["connect", "300"]);
    assert_eq!(
        flood.line, "connect ok 0 busy 0 denied 300 other 0",
        "{}",
        flood.line
    );
    let silent = Flood::run(user, dir.path(), &["silent", "300", "300"]);
    assert_eq!(
        silent.line, "silent refused 300 busy 0 denied 300 quiet 0",
        "sockets that never speak are refused at accept"
    );
    // While the attacker still holds its 600 sockets: no thread, no descriptor kept for them.
    assert!(
        eventually(PROMPT, || (threads(pid), fd_count(pid)) == baseline),
        "threads and descriptors {:?}, before the attack {baseline:?}",
        (threads(pid), fd_count(pid))
    );
    assert_eq!(good.add(2, 2).unwrap(), 4);
    owner_is_served(dir.path(), "during an unadmitted user's flood");
}

#[test]
fn an_admitted_user_at_its_limit_cannot_lock_out_others() {
    let user = lpc_tests::other_user().expect("a second user");
    let uid = user.0.to_string();
    let (dir, _service) = reachable_service(&[
        "--allow-uid",
        &uid,
        "--max-per-uid",
        "4",
        "--handshake-ms",
        "60000",
    ]);
    let flood = Flood::run(user, dir.path(), &["connect", "10"]);
    assert_eq!(flood.line, "connect ok 4 busy 6 denied 0 other 0");
    // More connections that never speak: refused at accept, the user being at its limit.
    let silent = Flood::run(user, dir.path(), &["silent", "20", "20"]);
    assert_eq!(silent.line, "silent refused 20 busy 20 denied 0 quiet 0");
    // The owner is bounded only by the limit on all connections.
    owner_is_served(dir.path(), "with another user at its limit");
}

#[test]
fn connections_that_never_say_hello_are_capped_per_user() {
    let user = lpc_tests::other_user().expect("a second user");
    let uid = user.0.to_string();
    // A long handshake timeout: the silent connections stay in their handshake.
    let (dir, service) = reachable_service(&["--allow-uid", &uid, "--handshake-ms", "60000"]);
    let pid = service.pid();
    let before = threads(pid);
    // 8 in their handshake at most (the default); the other 12 are refused at once.
    let silent = Flood::run(user, dir.path(), &["silent", "20", "12"]);
    assert_eq!(silent.line, "silent refused 12 busy 12 denied 0 quiet 8");
    assert_eq!(
        threads(pid),
        before + 8,
        "one thread per connection in its handshake"
    );
    // The same user cannot get a real connection in either while 8 are pending...
    let flood = Flood::run(user, dir.path(), &["connect", "1"]);
    assert_eq!(flood.line, "connect ok 0 busy 1 denied 0 other 0");
    // ...but everybody else can.
    owner_is_served(dir.path(), "with another user's silent connections pending");
}
