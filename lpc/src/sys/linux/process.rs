//! Process-level facts: user id, usable CPUs, private directories and directory locks, and
//! children that inherit one endpoint.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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

/// Creates `path` (and its parents) as a directory only its owner can use (mode 0700), or
/// checks that an existing one belongs to us and is not open to others.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", path.display()),
        ));
    }
    if meta.uid() != current_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user (uid {})",
                path.display(),
                meta.uid(),
                current_uid()
            ),
        ));
    }
    if meta.mode() & 0o066 != 0 {
        // We own it: close it to others rather than fail. (Search permission alone, 0711,
        // is what `open_to_other_users` grants for services that admit other users.)
        std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(0o700 | (meta.mode() & 0o011)),
        )?;
    }
    Ok(())
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
pub(crate) fn open_to_other_users(dir: &Path, socket: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(dir)?.mode() & 0o7777;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))?;
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

/// The environment variable that tells a child started by [`spawn_with_endpoint`] which
/// descriptor is its endpoint.
pub(crate) const ENDPOINT_ENV: &str = "LPC_ENDPOINT_FD";

/// Starts `command` with `endpoint` inherited: the one descriptor of the parent's that the
/// child gets besides its standard streams (every descriptor lpc opens is close-on-exec, and
/// this one is made inheritable only in the child, between `fork` and `exec`, so that a spawn
/// on another thread at the same moment cannot inherit it). The child finds it with
/// [`Stream::inherited`].
pub(crate) fn spawn_with_endpoint(
    command: &mut std::process::Command,
    endpoint: &Stream,
) -> io::Result<std::process::Child> {
    let fd = endpoint.fd().as_raw_fd();
    command.env(ENDPOINT_ENV, fd.to_string());
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one `fcntl(F_SETFD)` system call on a
    // descriptor number (no allocation, no lock). The descriptor is open in the child, since
    // fork copies the parent's table and `endpoint` is borrowed for the whole spawn.
    unsafe {
        command.pre_exec(move || {
            // SAFETY: `fd` is open in the child (see above); borrowing it for one call.
            let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    command.spawn()
}
