//! The example binaries as a user runs them: a service process, then client processes, their
//! output asserted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A process whose stdout and stderr lines arrive on channels; killed when dropped.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

/// Sends each line `from` gives on a channel, from a thread of its own.
fn lines_of(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

impl Process {
    /// Starts `bin args…` with `LPC_RUNTIME_DIR=dir`, its output read line by line.
    fn spawn(bin: &str, args: &[&str], dir: &Path) -> Process {
        Self::spawn_with(bin, args, dir, &[])
    }

    /// Like [`Process::spawn`], with more environment variables.
    fn spawn_with(bin: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Process {
        let mut child = Command::new(bin)
            .args(args)
            .env("LPC_RUNTIME_DIR", dir)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let errors = lines_of(child.stderr.take().unwrap());
        Process {
            child,
            lines,
            errors,
        }
    }

    /// What it wrote on stderr so far.
    fn stderr_so_far(&self) -> String {
        self.errors.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Reads stderr until a line contains every one of `wanted` (at most 20 s).
    fn stderr_line_with(&self, wanted: &[&str]) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.errors.recv_timeout(left) {
                Ok(line) if wanted.iter().all(|w| line.contains(w)) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line on stderr with {wanted:?} within 20 s; got {seen:?}"),
            }
        }
    }

    /// The next line of output, waiting at most 20 s.
    fn line(&self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => panic!(
                "no line of output within 20 s; stderr: {}",
                self.stderr_so_far()
            ),
        }
    }

    /// Reads lines until one contains `wanted` (at most 20 s); returns it and the lines
    /// before it.
    fn line_containing(&self, wanted: &str) -> (String, Vec<String>) {
        let until = Instant::now() + Duration::from_secs(20);
        let mut before = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return (line, before),
                Ok(line) => before.push(line),
                Err(_) => panic!("no line with {wanted:?} within 20 s; got {before:?}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts service `bin args…` and waits (bounded) for its `ready` line.
fn start(bin: &str, args: &[&str], dir: &Path) -> Process {
    start_with(bin, args, dir, &[])
}

/// Like [`start`], with more environment variables.
fn start_with(bin: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Process {
    let service = Process::spawn_with(bin, args, dir, env);
    let line = service.line();
    assert!(line.starts_with("ready"), "{line}");
    service
}

/// Runs client `bin args…` to its end.
fn output(bin: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .env("LPC_RUNTIME_DIR", dir)
        .output()
        .unwrap()
}

/// Runs client `bin args…`, which must succeed; returns its stdout.
fn run(bin: &str, args: &[&str], dir: &Path) -> String {
    let out = output(bin, args, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const CALC_SERVICE: &str = env!("CARGO_BIN_EXE_calc-service");
const CALC_CLIENT: &str = env!("CARGO_BIN_EXE_calc-client");
const COUNTER_SERVICE: &str = env!("CARGO_BIN_EXE_counter-service");
const COUNTER_CLIENT: &str = env!("CARGO_BIN_EXE_counter-client");
const INVENTORY_SERVICE: &str = env!("CARGO_BIN_EXE_inventory-service");
const INVENTORY_CLIENT: &str = env!("CARGO_BIN_EXE_inventory-client");
const LOANS_SERVICE: &str = env!("CARGO_BIN_EXE_loans-service");
const LOANS_CLIENT: &str = env!("CARGO_BIN_EXE_loans-client");
const PROBE_SERVICE: &str = env!("CARGO_BIN_EXE_probe-service");
const PROBE_CLIENT: &str = env!("CARGO_BIN_EXE_probe-client");

#[test]
fn calc_client_adds_in_the_calc_service() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(CALC_SERVICE, &[], dir.path());
    assert_eq!(run(CALC_CLIENT, &[], dir.path()), "add(10, 20) = 30\n");
}

#[test]
fn compare_client_reads_back_what_the_service_wrote() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(env!("CARGO_BIN_EXE_compare-service"), &[], dir.path());
    let out = run(env!("CARGO_BIN_EXE_compare-client"), &[], dir.path());
    assert!(
        out.contains("client: sending red=3333.00, blue=20.01"),
        "{out}"
    );
    assert!(
        out.contains("verdict Different; service wrote red=2.00, blue=1.00"),
        "{out}"
    );
}

/// One-way posts return before they run; the call after them sees both handled, and the
/// service printed each message, in order.
#[test]
fn copydata_client_posts_one_way_and_the_service_handles_the_posts_in_order() {
    let dir = tempfile::TempDir::new().unwrap();
    let service = start(env!("CARGO_BIN_EXE_copydata-service"), &[], dir.path());
    let out = run(
        env!("CARGO_BIN_EXE_copydata-client"),
        &["--text", "hi there"],
        dir.path(),
    );
    assert_eq!(
        out,
        "posted kind 1 (8 bytes) and kind 2 (20000 bytes)\n\
         the service has received kind 1: 1 message(s), 8 bytes\n\
         the service has received kind 2: 1 message(s), 20000 bytes\n"
    );
    assert_eq!(service.line(), "copy_data kind 1: 8 bytes \"hi there\"");
    assert_eq!(service.line(), "copy_data kind 2: 20000 bytes");
    // Larger than half the queue (64 KiB by default): refused before anything is sent.
    let out = output(
        env!("CARGO_BIN_EXE_copydata-client"),
        &["--bytes", "40000"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("40004") && err.contains("32760"), "{err}");
}

#[test]
fn a_client_without_its_service_says_so() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = output(CALC_CLIENT, &[], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service `calc` not found"), "{err}");
}

/// Two client processes increment at the same time; the service keeps one total for both,
/// and a share for each.
#[test]
fn the_counter_is_shared_by_all_clients() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(COUNTER_SERVICE, &[], dir.path());
    let clients: Vec<_> = (0..2)
        .map(|_| {
            Command::new(COUNTER_CLIENT)
                .args(["--times", "500"])
                .env("LPC_RUNTIME_DIR", dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut last_totals = Vec::new();
    for client in clients {
        let out = client.wait_with_output().unwrap();
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        let prefix = "incremented 500 times: my share 500, the total after my last call ";
        let total = out
            .trim_end()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{out}"));
        last_totals.push(total.parse::<u64>().unwrap());
    }
    // Each client saw at least its own increments; whichever called last saw both.
    assert!(last_totals.iter().all(|&t| (500..=1000).contains(&t)));
    assert_eq!(last_totals.iter().max(), Some(&1000), "{last_totals:?}");
    assert_eq!(
        run(COUNTER_CLIENT, &["--total"], dir.path()),
        "total = 1000\n"
    );
}

/// The three outcomes of a method returning `Result<T, E>`: `Ok`, the application's `Err`,
/// and an lpc error (here a panic in the handler), and `??` with one error type for both.
#[test]
fn inventory_errors_cross_as_the_inner_err_and_lpc_errors_stay_outside() {
    let dir = tempfile::TempDir::new().unwrap();
    let service = start(INVENTORY_SERVICE, &[], dir.path());
    let out = run(INVENTORY_CLIENT, &[], dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(lines[0], "take(\"apples\", 3): ok, 7 left");
    assert_eq!(
        lines[1],
        "take(\"apples\", 100): application error: not enough apples: 7 left"
    );
    assert_eq!(
        lines[2],
        "take(\"pears\", 1): application error: no item `pears`"
    );
    assert!(
        lines[3].starts_with("stock(\"pears\"): lpc error: "),
        "{out}"
    );
    assert!(
        lines[3].contains("panicked") && lines[3].contains("stock() called for an unknown item"),
        "{out}"
    );
    assert_eq!(lines[4], "stock(\"apples\"): 7 (the service still serves)");
    assert_eq!(lines[5], "restock_and_take: ok, 3 pears left");
    assert_eq!(
        lines[6],
        "take_too_many: application error: not enough pears: 3 left"
    );
    // The panic is reported where panics are: on the service's stderr (the panic hook).
    service.stderr_line_with(&["stock() called for an unknown item"]);
}

#[test]
fn loans_are_filled_and_read_in_place() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(LOANS_SERVICE, &[], dir.path());
    let out = run(LOANS_CLIENT, &[], dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("lent 64 MiB: the service's checksum ")
            && lines[0].ends_with(" matches ours"),
        "{out}"
    );
    // 16 MiB of 7s.
    assert_eq!(
        lines[1],
        format!("the service rendered 16 MiB of 7s; checksum {}", 7u64 << 24)
    );
}

/// The measurement mode, small, so that it keeps working (its numbers are in the guide).
#[test]
fn loans_bench_times_the_four_ways_of_sending_bytes() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(LOANS_SERVICE, &[], dir.path());
    let out = run(
        LOANS_CLIENT,
        &["--bench", "--bytes", "200000", "--rounds", "2"],
        dir.path(),
    );
    assert!(
        out.starts_with("0.2 MB (200000 bytes) to the service"),
        "{out}"
    );
    for way in [
        "&[u8] parameter",
        "Vec<u8> field of a struct",
        "Vec<u8> field, serde_bytes",
        "&lpc::Loan parameter",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(way) && l.contains(" ms")),
            "{way}: {out}"
        );
    }
    assert!(out.contains("all checksums agree: true"), "{out}");
}

/// A call past its deadline fails with `Timeout`; the handler sees `cancelled()` and stops;
/// a handle with a longer deadline on the same connection goes on working.
#[test]
fn probe_calls_give_up_at_their_deadline_and_the_handler_learns_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let service = start(PROBE_SERVICE, &[], dir.path());
    let out = run(PROBE_CLIENT, &["timeout"], dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "work(50) with a 300 ms timeout: finished = true");
    assert!(
        lines[1].starts_with("work(10000) with a 300 ms timeout: Error::Timeout after 300ms"),
        "{out}"
    );
    assert_eq!(lines[2], "work(500) with a 30 s timeout: finished = true");
    let (started, _) = service.line_containing("work(10000) started");
    assert!(started.contains("the caller waits"), "{started}");
    service.line_containing("work(10000) cancelled after");
}

/// A client made with `reconnect(true)` survives the service's restart: the call that finds
/// the connection lost fails with `Disconnected`, a later one reaches the new process.
#[test]
fn a_reconnecting_probe_client_reaches_the_restarted_service() {
    let dir = tempfile::TempDir::new().unwrap();
    let first = start(PROBE_SERVICE, &[], dir.path());
    let client = Process::spawn(PROBE_CLIENT, &["reconnect"], dir.path());
    assert_eq!(
        client.line(),
        format!("connected to service pid {}", first.pid())
    );
    drop(first); // killed (SIGKILL): its socket is left behind, stale
    let (lost, _) = client.line_containing("call failed");
    assert!(lost.starts_with("call failed (disconnected): "), "{lost}");
    let second = start(PROBE_SERVICE, &[], dir.path());
    let (back, before) = client.line_containing("reconnected");
    assert_eq!(back, format!("reconnected: service pid {}", second.pid()));
    assert!(
        before
            .iter()
            .all(|l| l.starts_with("call failed (not found)")),
        "{before:?}"
    );
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `probe-client whoami ARGS` as `uid`/`gid` (this test must run as root for that).
fn whoami_as(uid: u32, dir: &Path, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    Command::new(PROBE_CLIENT)
        .arg("whoami")
        .args(args)
        .env("LPC_RUNTIME_DIR", dir)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

/// `--allow-uid` (`ServerOptions::allow_uid`) admits one more user; the service sees the
/// caller's uid as the kernel recorded it, refuses other users, and logs (through `tracing`)
/// each client at `debug` and each refusal at `warn`.
#[test]
fn probe_admits_another_user_only_when_allowed() {
    let dir = tempfile::TempDir::new().unwrap();
    let service = start_with(PROBE_SERVICE, &[], dir.path(), &[("RUST_LOG", "lpc=debug")]);
    let me = run(PROBE_CLIENT, &["whoami"], dir.path());
    assert!(me.starts_with("the service sees: pid "), "{me}");
    service.stderr_line_with(&["DEBUG", "client connected", "service=\"probe\""]);
    service.stderr_line_with(&["DEBUG", "client disconnected"]);
    if !running_as_root() {
        eprintln!("not root: other users are not tested (run the tests as root to test them)");
        return;
    }
    assert!(me.contains(", uid 0, gid 0"), "{me}");

    // By default, other users cannot even reach the socket (its directory is private).
    let refused = whoami_as(4242, dir.path(), &["--service-uid", "0"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("denied access") && err.contains("the service does not admit other users"),
        "{err}"
    );
    drop(service);

    // The other user must get through the directory: lpc opens to others only a runtime
    // directory it created, and this one is the test's.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let service = start(PROBE_SERVICE, &["--allow-uid", "4242"], dir.path());
    // A client accepts only a service of its own user unless told otherwise: this one is
    // root's, so uid 4242's client refuses it, naming both users.
    let wary = whoami_as(4242, dir.path(), &[]);
    assert!(!wary.status.success());
    let err = String::from_utf8_lossy(&wary.stderr);
    assert!(
        err.contains("is served by a process of user 0, not of user 4242"),
        "{err}"
    );
    let other = whoami_as(4242, dir.path(), &["--service-uid", "0"]);
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let other = String::from_utf8(other.stdout).unwrap();
    assert!(other.contains(", uid 4242, gid 4242"), "{other}");

    // A third user reaches the socket, and the service's policy refuses it.
    let third = whoami_as(4343, dir.path(), &["--service-uid", "0"]);
    assert!(!third.status.success());
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(
        err.contains("denied access") && err.contains("user 4343, group 4343 is not admitted"),
        "{err}"
    );
    service.stderr_line_with(&["WARN", "refused a client at accept", "user 4343"]);
}

/// A process that holds a shared object until its stdin closes (`shared-data set`,
/// `segment-writer`): its first line, and the process, whose stdin closes when dropped.
struct Holder {
    child: Child,
    first: String,
}

impl Holder {
    fn start(bin: &str, args: &[&str], dir: &Path) -> Holder {
        let mut child = Command::new(bin)
            .args(args)
            .env("LPC_RUNTIME_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a first line within 20 s");
        Holder { child, first }
    }

    /// Closes its stdin (the example's "Enter") and waits for it to exit, at most 20 s.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let until = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "the holder did not exit");
            std::thread::yield_now();
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SHARED_DATA: &str = env!("CARGO_BIN_EXE_shared-data");

#[test]
fn shared_data_set_in_one_process_is_read_in_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let first = Holder::start(SHARED_DATA, &["set", "8"], dir.path());
    assert!(
        first.first.contains("set shared-data to 8"),
        "{}",
        first.first
    );
    let out = run(SHARED_DATA, &["get"], dir.path());
    assert!(
        out.trim_end().lines().last().unwrap().ends_with(" 8"),
        "{out}"
    );
    let second = Holder::start(SHARED_DATA, &["set", "16"], dir.path());
    let out = run(SHARED_DATA, &["get"], dir.path());
    assert!(
        out.trim_end().lines().last().unwrap().ends_with(" 16"),
        "{out}"
    );
    let out = run(SHARED_DATA, &["add", "4"], dir.path());
    assert!(out.trim_end().ends_with(" 20"), "{out}");
    first.finish();
    // The value lives while a process holds it: the second holder still does.
    let out = run(SHARED_DATA, &["get"], dir.path());
    assert!(out.trim_end().ends_with(" 20"), "{out}");
    second.finish();
    // Nothing is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".lpc"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn segment_reader_reads_what_segment_writer_wrote() {
    let dir = tempfile::TempDir::new().unwrap();
    let writer = Holder::start(env!("CARGO_BIN_EXE_segment-writer"), &[], dir.path());
    assert!(writer.first.contains("4096 bytes"), "{}", writer.first);
    let out = run(env!("CARGO_BIN_EXE_segment-reader"), &[], dir.path());
    assert!(out.contains("read-only: true"), "{out}");
    let pid = writer.child.id();
    assert!(
        out.contains(&format!("message 1: hello from segment-writer (pid {pid})")),
        "{out}"
    );
    writer.finish();
    let out = output(env!("CARGO_BIN_EXE_segment-reader"), &[], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("segment `frames` not found"), "{err}");
}

/// The ticker's events: ticks to every subscriber, progress to the caller of a job alone.
#[test]
fn ticker_client_receives_ticks_and_the_progress_of_its_job() {
    let dir = tempfile::TempDir::new().unwrap();
    let _service = start(env!("CARGO_BIN_EXE_ticker-service"), &[], dir.path());
    let out = run(
        env!("CARGO_BIN_EXE_ticker-client"),
        &["--ticks", "2", "--steps", "3"],
        dir.path(),
    );
    assert_eq!(
        out,
        "tick 1\ntick 2\njob 1 done\nprogress 1/3\nprogress 2/3\nprogress 3/3\n"
    );
}

#[test]
fn spawn_worker_survives_its_workers_crash_and_spawns_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = run(env!("CARGO_BIN_EXE_spawn-worker"), &[], dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    let first: u32 = lines[0]
        .strip_prefix("spawned worker ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(lines[1], "square(12) = 144", "{out}");
    assert!(
        lines[2].starts_with("the worker crashed: ") && lines[2].contains("square"),
        "{out}"
    );
    assert!(lines[3].starts_with("worker exited: "), "{out}");
    assert!(lines[3].contains("SIGABRT"), "{out}");
    let second: u32 = lines[4]
        .strip_prefix("spawned worker ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_ne!(first, second, "{out}");
    assert_eq!(lines[5], "square(14) = 196", "{out}");
    // Inherited connections have no names: nothing in the runtime directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
