//! Child services (`lpc::Client::spawn`, `lpc::Server::inherited`) across real processes: the
//! child serves over the one descriptor it inherited and no other, leaves no name anywhere,
//! dies with its parent (even one SIGKILLed, even when the spawning thread is gone long
//! before), exits when its client goes, and its crash is `Disconnected` for the parent, which
//! spawns another.

use std::io::{BufRead, BufReader};
#[cfg(unix)]
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lpc::{CallPhase, Error};
use lpc_tests::child::ChildProbeClient;
use lpc_tests::eventually;
use tempfile::TempDir;

const CHILD: &str = env!("CARGO_BIN_EXE_lpc-test-child");
const SPAWNER: &str = env!("CARGO_BIN_EXE_lpc-test-spawner");
// Generous: under Wine, the first processes of a run start slowly on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child command whose runtime directory is `dir` (where it must create nothing).
fn child_command(dir: &Path) -> Command {
    let mut command = Command::new(CHILD);
    command.env("LPC_RUNTIME_DIR", dir);
    command
}

/// The child must create nothing in its runtime directory: it has no name.
fn assert_nothing_in(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "the child left {names:?}");
}

/// Whether process `pid` is gone: no such process, or a zombie nobody reaped yet (another
/// parent's child, reparented to init).
#[cfg(unix)]
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Whether process `pid` is gone (it has exited).
#[cfg(windows)]
fn gone(pid: u32) -> bool {
    !lpc::testing::process_alive(pid)
}

/// A pipe whose ends are inheritable (no close-on-exec): a descriptor of the program's that a
/// careless spawn would pass on.
#[cfg(unix)]
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty()).unwrap()
}

// Unix: the child lists its descriptors from /proc/self/fd.
#[cfg(unix)]
#[test]
fn a_child_serves_its_inherited_connection_and_has_no_other_descriptor() {
    let dir = TempDir::new().unwrap();
    let (read_end, write_end) = inheritable_pipe();
    let (mut child, calc) = ChildProbeClient::spawn(child_command(dir.path())).unwrap();
    assert_eq!(calc.add(2, 40).unwrap(), 42);
    assert_eq!(calc.pid().unwrap(), child.id());

    // Standard streams, the inherited socket, and what the child opened itself (its region,
    // its reactor's epoll and eventfd, the directory listing the call reads): no pipe of the
    // parent's, and one socket only.
    let fds = calc.descriptors().unwrap();
    let sockets: Vec<_> = fds
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .collect();
    assert_eq!(sockets.len(), 1, "the child has {fds:?}");
    assert!(sockets[0].0 > 2, "the socket is at {}", sockets[0].0);
    let ours = std::fs::read_link(format!("/proc/self/fd/{}", read_end.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(ours.starts_with("pipe:"), "{ours}");
    assert!(
        fds.iter().all(|(_, target)| *target != ours),
        "the child inherited the parent's pipe {ours}: {fds:?}"
    );
    drop((read_end, write_end));
    // The variable that named the descriptor is gone once taken.
    assert_eq!(calc.env("LPC_ENDPOINT_FD").unwrap(), None);

    // No name anywhere: nothing in the runtime directory.
    assert_nothing_in(dir.path());

    // Its client gone, the child's one connection ends and it exits, successfully.
    drop(calc);
    let status = child.wait_timeout(PATIENCE).unwrap().expect("child exited");
    assert!(status.success(), "{status:?}");
}

/// An inheritable named event, `name`: a handle of the program's that a careless spawn
/// (std's `Command`, which inherits every inheritable handle) would pass on.
#[cfg(windows)]
fn inheritable_event(name: &str) -> std::os::windows::io::OwnedHandle {
    use std::os::windows::io::FromRawHandle;
    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
    use windows_sys::Win32::System::Threading::CreateEventW;
    let wide: Vec<u16> = format!("Local\\{name}").encode_utf16().chain([0]).collect();
    let inherit = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: std::ptr::null_mut(),
        bInheritHandle: 1,
    };
    // SAFETY: a new event with inheritable default security and a nul-terminated name.
    let handle = unsafe { CreateEventW(&inherit, 1, 0, wide.as_ptr()) };
    assert!(!handle.is_null(), "CreateEventW failed");
    // SAFETY: a new handle, ours.
    unsafe { std::os::windows::io::OwnedHandle::from_raw_handle(handle) }
}

// Windows: the child lists its handles (kind and name) from the handle table.
#[cfg(windows)]
#[test]
fn a_child_serves_its_inherited_connection_and_has_no_other_handle() {
    let dir = TempDir::new().unwrap();
    let name = format!("lpc-test-planted-{}", std::process::id());
    let planted = inheritable_event(&name);
    // This process's own listing shows the event by name: the check below can see it.
    let ours = lpc::testing::process_handle_names(std::process::id());
    assert!(
        ours.iter().any(|h| h.contains(&name)),
        "this process's handles do not show {name}: {ours:#?}"
    );
    let (mut child, calc) = ChildProbeClient::spawn(child_command(dir.path())).unwrap();
    assert_eq!(calc.add(2, 40).unwrap(), 42);
    assert_eq!(calc.pid().unwrap(), child.id());
    let handles = calc.descriptors().unwrap();
    assert!(!handles.is_empty(), "the child lists no handle");
    assert!(
        handles.iter().all(|(_, what)| !what.contains(&name)),
        "the child inherited the parent's event {name}: {handles:#?}"
    );
    drop(planted);
    // The variable that named the handle is gone once taken.
    assert_eq!(calc.env("LPC_ENDPOINT_HANDLE").unwrap(), None);
    // The environment changes of the command reached the child.
    assert_eq!(
        calc.env("LPC_RUNTIME_DIR").unwrap().as_deref(),
        dir.path().to_str()
    );
    assert_nothing_in(dir.path());
    drop(calc);
    let status = child.wait_timeout(PATIENCE).unwrap().expect("child exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_crashed_child_is_disconnected_and_another_can_be_spawned() {
    let dir = TempDir::new().unwrap();
    let (mut child, calc) = ChildProbeClient::spawn(child_command(dir.path())).unwrap();
    assert_eq!(calc.add(1, 1).unwrap(), 2);
    match calc.abort() {
        Err(Error::Disconnected { method, phase, .. }) => {
            assert_eq!(method.as_deref(), Some("abort"));
            assert_eq!(phase, CallPhase::Executing);
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(matches!(
        calc.add(1, 1),
        Err(Error::Disconnected {
            phase: CallPhase::NotSent,
            ..
        })
    ));
    let status = child.wait_timeout(PATIENCE).unwrap().expect("child exited");
    assert!(!status.success(), "{status:?}");

    let (second, calc) = ChildProbeClient::spawn(child_command(dir.path())).unwrap();
    assert_ne!(second.id(), child.id());
    assert_eq!(calc.add(20, 22).unwrap(), 42);
}

#[test]
fn dropping_the_child_kills_it_and_its_calls_fail() {
    let dir = TempDir::new().unwrap();
    let (child, calc) = ChildProbeClient::spawn(child_command(dir.path())).unwrap();
    let pid = child.id();
    let caller = {
        let calc = calc.clone();
        std::thread::spawn(move || calc.sleep_ms(30_000))
    };
    // The call is on its way or running; the kill ends it either way.
    assert_eq!(calc.add(1, 2).unwrap(), 3);
    drop(child);
    assert!(gone(pid));
    assert!(matches!(
        caller.join().unwrap(),
        Err(Error::Disconnected { .. })
    ));
}

/// A parent process, `lpc-test-spawner args`, that has spawned its child: killed when
/// dropped. Its stdin is a pipe: closing it makes the parent call its child once more.
struct Spawner {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// The pid of its child.
    child: u32,
}

impl Spawner {
    fn start(args: &[&str]) -> Spawner {
        let mut process = Command::new(SPAWNER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut spawner = Spawner {
            process,
            lines,
            child: 0,
        };
        let line = spawner.line();
        spawner.child = line
            .strip_prefix("child ")
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("expected `child <pid>`, got {line:?}"));
        spawner
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a line from the spawner")
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The parent (`lpc-test-spawner args --busy`) is SIGKILLed while its child runs a
/// minute-long call: the child must die with it at once — by its parent-death signal, since
/// the end of its connection would stop it only after the grace period of the call in
/// progress (5 s).
fn child_dies_with_its_parent(args: &[&str]) {
    let args: Vec<&str> = args.iter().copied().chain(["--busy"]).collect();
    let mut parent = Spawner::start(&args);
    let child = parent.child;
    assert_eq!(parent.line(), "sleeping 60000");
    assert!(!gone(child));
    parent.process.kill().unwrap();
    parent.process.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(2), || gone(child)),
        "the child {child} outlived its SIGKILLed parent"
    );
}

#[test]
fn a_child_dies_with_its_sigkilled_parent() {
    child_dies_with_its_parent(&[]);
}

#[test]
fn a_child_spawned_from_a_thread_that_ended_dies_with_its_sigkilled_parent() {
    child_dies_with_its_parent(&["--from-thread"]);
}

#[test]
fn a_child_spawned_from_a_thread_that_ended_still_serves() {
    // The parent-death signal follows the thread that forked: lpc forks on a thread of its
    // own that lives as long as the process, so the end of the caller's thread kills nothing.
    let mut parent = Spawner::start(&["--from-thread"]);
    let child = parent.child;
    drop(parent.process.stdin.take());
    assert_eq!(parent.line(), format!("alive {child}"));
    let status = parent.process.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The spawner dropped its `Child`: killed and reaped.
    assert!(gone(child));
}

#[test]
fn a_child_that_exits_before_serving_is_a_clear_error() {
    #[cfg(unix)]
    let mut command = Command::new("/bin/sh");
    #[cfg(unix)]
    command.args(["-c", "exit 3"]);
    #[cfg(windows)]
    let mut command = Command::new("cmd");
    #[cfg(windows)]
    command.args(["/c", "exit 3"]);
    let err = ChildProbeClient::spawn(command).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited before serving"), "{text}");
    assert!(text.contains("Server::inherited"), "{text}");
}

// Unix: descriptor numbers, and a shell redirection to make one inheritable.
#[cfg(unix)]
#[test]
fn a_process_not_spawned_so_cannot_serve_inherited() {
    // This test process inherited no connection.
    if std::env::var_os("LPC_ENDPOINT_FD").is_none() {
        let err = lpc::Server::inherited().unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
        assert!(err.to_string().contains("LPC_ENDPOINT_FD"), "{err}");
    }
    // A child told a number that is not an lpc endpoint refuses to serve, saying why.
    for (value, why) in [
        ("1", "not a descriptor number above 2"),
        ("999", "descriptor is not open"),
        ("x", "not a descriptor number above 2"),
    ] {
        let out = Command::new(CHILD)
            .env("LPC_ENDPOINT_FD", value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "LPC_ENDPOINT_FD={value}: {stderr}");
    }
    // An open descriptor that is no socket: a file (made inheritable through a shell
    // redirection, at number 5).
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "exec 5<{} ; LPC_ENDPOINT_FD=5 exec {CHILD}",
            file.path().display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an lpc endpoint"), "{stderr}");
}

/// The Windows counterpart: handle numbers in `LPC_ENDPOINT_HANDLE`.
#[cfg(windows)]
#[test]
fn a_process_not_spawned_so_cannot_serve_inherited() {
    if std::env::var_os("LPC_ENDPOINT_HANDLE").is_none() {
        let err = lpc::Server::inherited().unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
        assert!(err.to_string().contains("LPC_ENDPOINT_HANDLE"), "{err}");
    }
    for (value, why) in [
        ("0", "not a handle number"),
        ("x", "not a handle number"),
        // Not open, or the standard input's (a file or the console): no pipe of lpc's.
        ("999", "not an lpc endpoint"),
    ] {
        let out = Command::new(CHILD)
            .env("LPC_ENDPOINT_HANDLE", value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(why),
            "LPC_ENDPOINT_HANDLE={value}: {stderr}"
        );
    }
}
