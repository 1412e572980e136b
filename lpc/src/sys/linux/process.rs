//! Process-level facts: user id, usable CPUs, private directories and directory locks, and
//! children that inherit one endpoint.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use super::socket::Stream;
use crate::sys::UserId;

/// `getuid()`.
fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// This process's user (`getuid()`).
pub(crate) fn current_user() -> UserId {
    UserId::from_uid(current_uid())
}

/// The number of CPUs this process may run on (`sched_getaffinity`), at least 1.
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether this process and process `peer` can run on two different CPUs at once (the union
/// of their CPU affinities holds more than one CPU). If `peer`'s affinity cannot be read,
/// whether this process may use more than one CPU.
pub(crate) fn can_run_apart(peer: Option<u32>) -> bool {
    use rustix::thread::{sched_getaffinity, CpuSet};
    let Ok(ours) = sched_getaffinity(None) else {
        return available_cpus() > 1;
    };
    let theirs = peer
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        .and_then(|p| sched_getaffinity(Some(p)).ok());
    let Some(theirs) = theirs else {
        return ours.count() > 1;
    };
    (0..CpuSet::MAX_CPU)
        .filter(|&cpu| ours.is_set(cpu) || theirs.is_set(cpu))
        .nth(1)
        .is_some()
}

/// The file lpc leaves in a runtime directory it created (so that it may later open that
/// directory to other users; it never changes the mode of one it did not create).
const CREATED_MARK: &str = ".lpc-created";

fn refused(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {why}", path.display()),
    )
}

/// Makes `path` the private directory endpoints are named in, or checks an existing one,
/// without ever following a symlink for it or changing the mode of a directory lpc did not
/// create:
///
/// * missing: created with mode 0700 (its missing parents too), and marked as lpc's;
/// * a symlink (also named with a trailing `/`), a path through `..`, not a directory,
///   another user's, or writable by group or others: refused, with an error that says what
///   to do (another user may have planted it, or could plant sockets in it);
/// * its parent must be ours or root's, and writable by nobody else unless sticky (as
///   `/tmp` is): otherwise another user could replace the directory after the checks.
///
/// An existing directory readable or searchable by others is accepted as it is: every socket
/// in it carries its own mode, and every connection is checked against the service's policy.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    // Without a trailing slash (or `.`), which would make `lstat` follow a symlink.
    let path: std::path::PathBuf = path.components().collect();
    let path = path.as_path();
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        // `a/link/..` is wherever a symlink `link` leads: name the directory itself.
        return Err(refused(
            path,
            "contains `..`, which leads wherever a symlink before it points: name the runtime \
             directory without `..`",
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        check_parent(path, parent)?;
    }
    // `mkdir` never follows a symlink in the last component: an existing one is EEXIST.
    let created = match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    let meta = std::fs::symlink_metadata(path)?;
    let me = current_uid();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(refused(
            path,
            format!(
                "is a symbolic link{target}; lpc never follows one for its runtime directory, \
                 since another user may have planted it: remove it, or choose the real \
                 directory as the runtime directory"
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a directory: remove it, or choose another runtime directory",
                path.display()
            ),
        ));
    }
    if meta.uid() != me {
        return Err(refused(
            path,
            format!(
                "belongs to uid {}, not to this user (uid {me}); another user may have planted \
                 it: have it removed (by its owner or root), or choose another runtime directory",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(
            path,
            format!(
                "can be written by other users (mode {mode:04o}), who could plant sockets in \
                 it; lpc changes the mode only of a directory it creates: `chmod go-w {}` if \
                 that is what you want, or remove it so that lpc creates it (mode 0700)",
                path.display()
            ),
        ));
    }
    if created {
        // Created with O_EXCL in a directory only we can write: nobody else's file.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path.join(CREATED_MARK))?;
    }
    Ok(())
}

/// Refuses a runtime directory whose parent another user could change: owned by someone
/// other than us or root, or writable by others without the sticky bit (which keeps them from
/// renaming or removing our entries, as in `/tmp`).
fn check_parent(path: &Path, parent: &Path) -> io::Result<()> {
    // The parent may be reached through symlinks (`/var/run` -> `/run`): what matters is the
    // directory the last component lives in.
    let meta = std::fs::metadata(parent)?;
    let me = current_uid();
    let mode = meta.mode() & 0o7777;
    let why = if meta.uid() != me && meta.uid() != 0 {
        format!("belongs to uid {}", meta.uid())
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        format!("can be written by other users (mode {mode:04o}) and is not sticky")
    } else {
        return Ok(());
    };
    Err(refused(
        path,
        format!(
            "cannot be a runtime directory: its parent {} {why}, so another user could replace \
             it after lpc checked it; choose a runtime directory whose parent only you or root \
             can change",
            parent.display()
        ),
    ))
}

/// An exclusive `flock(2)` on a directory, held while a service name is checked and bound, so
/// that two services starting at once cannot both decide a socket is stale.
pub(crate) struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Blocks until the lock on `dir` is ours. The kernel releases it if we die.
    pub(crate) fn acquire(dir: &Path) -> io::Result<DirLock> {
        let file = File::open(dir)?;
        flock(&file, FlockOperation::LockExclusive)?;
        Ok(DirLock { _dir: file })
    }
}

/// Which file a path names (device and inode on Unix): tells whether a socket file is still
/// the one we bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

/// The identity of the file at `path`, without following a symlink.
pub(crate) fn file_identity(path: &Path) -> io::Result<FileIdentity> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The name of process `pid` (`/proc/<pid>/comm`), or empty if it cannot be read.
pub(crate) fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// Lets other users reach the socket at `socket` inside `dir`: the socket becomes
/// connectable by all (0666) and the directory traversable but not listable by others (0711).
/// Who may actually use the service is then decided by its access policy at connect.
///
/// The directory's mode is changed only if lpc created it (`create_private_dir` marked it);
/// another directory that others cannot traverse is an error that says what to do.
pub(crate) fn open_to_other_users(dir: &Path, socket: &Path) -> io::Result<()> {
    let dir: std::path::PathBuf = dir.components().collect();
    let dir = dir.as_path();
    let meta = std::fs::symlink_metadata(dir)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o011 != 0o011 {
        let mark = std::fs::symlink_metadata(dir.join(CREATED_MARK));
        let ours = mark.is_ok_and(|m| m.is_file() && m.uid() == current_uid());
        if !ours {
            return Err(refused(
                dir,
                format!(
                    "cannot be traversed by other users (mode {mode:04o}), so they cannot reach \
                     the socket, and lpc changes the mode only of a runtime directory it \
                     created: `chmod go+x {}` (others can then reach a socket by its name, not \
                     list the directory), or choose a runtime directory lpc creates",
                    dir.display()
                ),
            ));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))?;
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: a clock both processes of a connection
/// share, for deadlines that cross between them.
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Raises this process's soft limit on open descriptors to its hard limit (a service holds one
/// per connection, and briefly one more per buffer received) and returns the limit now in
/// force (`u64::MAX` when unlimited).
pub(crate) fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Whether process `pid` exists (`kill(pid, 0)`: a process of another user answers `EPERM`,
/// which still means it exists; only `ESRCH` means it is gone).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// A child started by [`spawn_with_endpoint`]: std's own (the fork happens behind its
/// `pre_exec`).
pub(crate) type ChildProcess = std::process::Child;

/// The environment variable that tells a child started by [`spawn_with_endpoint`] which
/// descriptor is its endpoint.
pub(crate) const ENDPOINT_ENV: &str = "LPC_ENDPOINT_FD";

/// Starts `command` with `endpoint` inherited: the one descriptor of the parent's that the
/// child gets besides its standard streams.
///
/// * **Only that one.** The endpoint is duplicated to a number above 2 (close-on-exec), and in
///   the child, between `fork` and `exec`, every descriptor above 2 is marked close-on-exec
///   (`close_range(CLOSE_RANGE_CLOEXEC)`: lpc's own descriptors are close-on-exec already,
///   but a library's or the program's may not be) and only the duplicate is made inheritable
///   again, so that neither an inheritable descriptor of the program's nor a spawn on another
///   thread at the same moment passes anything else. The child finds the endpoint with
///   [`Stream::inherited`], through [`ENDPOINT_ENV`].
/// * **Dies with the parent.** The child asks the kernel for SIGKILL when its parent dies
///   (`PR_SET_PDEATHSIG`) and exits at once if the parent died before it asked. The kernel
///   sends that signal when the *thread* that forked exits, so every child is forked by one
///   thread of lpc's that lives as long as the process (`spawner`), never by the caller's,
///   which may be a short-lived thread.
///
/// Each step in the child is one system call on numbers prepared before the fork (no
/// allocation, no lock): async-signal-safe, as code between `fork` and `exec` must be.
pub(crate) fn spawn_with_endpoint(
    command: &mut std::process::Command,
    endpoint: &Stream,
) -> io::Result<ChildProcess> {
    // At 3 or above: a parent started without standard streams may have the endpoint at 0-2,
    // which the child's standard streams would replace.
    let passed = rustix::io::fcntl_dupfd_cloexec(endpoint.fd(), 3)?;
    let fd = passed.as_raw_fd();
    command.env(ENDPOINT_ENV, fd.to_string());
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes five system calls (`prctl`, `getppid`,
    // two `close_range`, `fcntl`) on numbers computed before the fork, without allocating or
    // locking. The descriptor `fd` is open in the child: fork copies the parent's table, and
    // `passed` lives until the spawn has returned.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                // The parent died before the death signal was asked for: nobody to serve.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Everything above the standard streams close-on-exec, the endpoint included
            // (a kernel without `close_range`, before 5.11, leaves them as they are: lpc's
            // descriptors are close-on-exec anyway).
            // SAFETY: `close_range` with CLOSE_RANGE_CLOEXEC closes nothing, it only sets
            // a flag on the descriptors of this (the child's) table.
            let _ = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            // SAFETY: `fd` is open in the child (see above); borrowed for one call.
            let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    let child = spawner::spawn(command);
    drop(passed);
    child
}

/// The thread that forks every child `spawn_with_endpoint` starts, so that the children's
/// parent-death signal (`PR_SET_PDEATHSIG`, sent when the forking thread exits) means the
/// death of the process, not of whichever thread asked for the spawn. Started on the first
/// spawn, it lives as long as the process and sleeps while nobody spawns.
mod spawner {
    use std::io;
    use std::process::{Child, Command};
    use std::sync::{mpsc, Mutex, OnceLock};

    type Job = (Command, mpsc::Sender<(Command, io::Result<Child>)>);

    static JOBS: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();

    /// Spawns `command` on the spawner thread (on this one if that thread cannot be started).
    pub(super) fn spawn(command: &mut Command) -> io::Result<Child> {
        let jobs = JOBS.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("lpc-spawner".into())
                .spawn(move || {
                    for (mut command, reply) in rx {
                        let child = command.spawn();
                        let _ = reply.send((command, child));
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        });
        let Some(jobs) = jobs else {
            return command.spawn();
        };
        // The command travels to the thread and back (a `Command` is moved, not copied).
        let moved = std::mem::replace(command, Command::new(""));
        let (tx, rx) = mpsc::channel();
        let sent = jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((moved, tx));
        if let Err(mpsc::SendError((moved, _))) = sent {
            *command = moved;
            return command.spawn();
        }
        match rx.recv() {
            Ok((moved, child)) => {
                *command = moved;
                child
            }
            Err(_) => Err(io::Error::other("the lpc spawner thread is gone")),
        }
    }
}
