//! Named shared objects without a daemon: the memory is a memfd (never in `/dev/shm`), and the
//! name is a small file in the runtime directory that lists the processes holding it, each by
//! pid and descriptor number. An opener reaches the memory through a holder's
//! `/proc/<pid>/fd/<n>` (which the kernel lets only the holder's own user, or root, open), and
//! checks it is the very object recorded (device and inode) before using it.
//!
//! Also here: who a thread is (its tid and start time, so that a recycled tid is not taken for
//! a live owner), and whether it still runs — the liveness check of a writer lock.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{flock, fstat, FlockOperation};

use super::memory::SharedMemory;

/// Largest name file accepted (a few hundred holders' records).
pub(crate) const MAX_NAME_FILE: usize = 64 * 1024;

/// This process's id, as its PID namespace numbers it.
pub(crate) fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// The identity of this process's PID namespace (the inode of `/proc/self/ns/pid`), 0 if it
/// cannot be read: pids recorded in a name file mean something only in the namespace that
/// recorded them.
pub(crate) fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// The start time (field 22 of `stat`, clock ticks since boot) of `/proc/<which>/stat`.
fn start_time(which: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{which}/stat"))?;
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unreadable stat"))?;
    after
        .split_ascii_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other("unreadable stat"))
}

thread_local! {
    static THREAD_IDENTITY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Who this thread is, as one nonzero word: its tid in the high 32 bits and the low 32 bits of
/// its start time in the low ones (so that a tid the kernel recycled for a new thread is not
/// taken for the thread that held it). Computed once per thread.
pub(crate) fn thread_identity() -> u64 {
    THREAD_IDENTITY.with(|cell| {
        if cell.get() == 0 {
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            let start = start_time("thread-self").unwrap_or(0) as u32;
            cell.set((u64::from(tid) << 32) | u64::from(start));
        }
        cell.get()
    })
}

/// Whether the thread [`thread_identity`] named still runs: its tid exists and started at the
/// recorded time. A tid that cannot be checked for another reason (no `/proc`) is taken as
/// alive: a wrong "dead" would let two writers in.
pub(crate) fn thread_alive(identity: u64) -> bool {
    let tid = (identity >> 32) as u32;
    if tid == 0 || tid > i32::MAX as u32 {
        return false;
    }
    match start_time(&tid.to_string()) {
        Ok(start) => start as u32 == identity as u32,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        // ESRCH while reading: the thread exited between the open and the read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => false,
        Err(_) => true,
    }
}

/// Which memory object a descriptor refers to (device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectIdentity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl SharedMemory {
    /// The object's identity, to record beside the holder's pid and descriptor number.
    pub(crate) fn identity(&self) -> io::Result<ObjectIdentity> {
        let st = fstat(self.as_fd())?;
        Ok(ObjectIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// The descriptor number in this process (recorded in the name file).
    pub(crate) fn raw_fd(&self) -> i32 {
        self.as_fd().as_raw_fd()
    }

    /// Opens the object that process `pid` holds as descriptor `fd`, if it still does and it
    /// is object `identity`, read-write or read-only (a read-only descriptor cannot be mapped
    /// writable, nor its mapping made writable with `mprotect(2)`). The object is then checked
    /// as any received one ([`SharedMemory::from_received`]: a sealed memfd, not empty).
    /// `Ok(None)`: the holder is gone, or holds something else now.
    pub(crate) fn open_held(
        pid: u32,
        fd: i32,
        identity: ObjectIdentity,
        writable: bool,
    ) -> io::Result<Option<SharedMemory>> {
        if pid == 0 || fd < 0 {
            return Ok(None);
        }
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(libc::O_CLOEXEC)
            .open(format!("/proc/{pid}/fd/{fd}"))
        {
            Ok(file) => file,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) || e.raw_os_error() == Some(libc::ESRCH)
                    || e.raw_os_error() == Some(libc::ENXIO) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let fd: OwnedFd = file.into();
        let st = fstat(&fd)?;
        if (ObjectIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
        }) != identity
        {
            return Ok(None);
        }
        SharedMemory::from_received(fd).map(Some)
    }
}

/// Whether process `pid` still holds object `identity` as descriptor `fd` (without opening it).
pub(crate) fn holds(pid: u32, fd: i32, identity: ObjectIdentity) -> bool {
    if pid == 0 || fd < 0 {
        return false;
    }
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|m| {
        ObjectIdentity {
            dev: m.dev(),
            ino: m.ino(),
        } == identity
    })
}

/// A name file of the runtime directory, open and locked (`flock`, exclusive; the kernel
/// releases the lock if we die). It is a regular file of ours, mode 0600, never a symlink.
pub(crate) struct NameFile {
    pub(in crate::sys) file: File,
}

fn planted(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} {why}; lpc creates its name files itself (mode 0600): another program or user \
             may have put it there; remove it",
            path.display()
        ),
    )
}

impl NameFile {
    /// Opens (creating it if `create`) and locks the name file at `path`. `Ok(None)`: it does
    /// not exist and `create` is false. A file that is not a regular file of this user with
    /// mode 0600 and one link is refused; so is one removed while we waited for its lock
    /// (retried).
    pub(crate) fn lock(path: &Path, create: bool) -> io::Result<Option<NameFile>> {
        for _ in 0..100 {
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(planted(path, "is a symbolic link"))
                }
                Err(e) => return Err(e),
            };
            let meta = file.metadata()?;
            if !meta.file_type().is_file() {
                return Err(planted(path, "is not a regular file"));
            }
            if meta.uid() != rustix::process::getuid().as_raw() {
                return Err(planted(path, format!("belongs to uid {}", meta.uid())));
            }
            if meta.mode() & 0o077 != 0 {
                return Err(planted(
                    path,
                    format!("has mode {:04o}, not 0600", meta.mode() & 0o7777),
                ));
            }
            flock(&file, FlockOperation::LockExclusive)?;
            // Still the file at `path`? The last holder may have removed it meanwhile.
            let now = std::fs::symlink_metadata(path);
            let meta = file.metadata()?;
            match now {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            if meta.nlink() != 1 {
                return Err(planted(path, format!("has {} links", meta.nlink())));
            }
            return Ok(Some(NameFile { file }));
        }
        Err(io::Error::other(format!(
            "{} kept being replaced while lpc waited for its lock",
            path.display()
        )))
    }
}
