//! Named shared objects without a daemon, as on Linux: the name is a small file in the runtime
//! directory listing the processes that hold the section (pid and handle number); an opener
//! pulls the section out of a live holder's process (`DuplicateHandle`, which the system lets
//! only the holder's own user, or an administrator, do) and checks by its kernel name that it
//! is the very section recorded.
//!
//! Also here: who a thread is (its id and creation time) and whether it still runs.

use std::fs::File;
use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{DuplicateHandle, FILETIME, HANDLE, STILL_ACTIVE};
use windows_sys::Win32::System::Memory::{FILE_MAP_READ, FILE_MAP_WRITE};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetCurrentThread, GetCurrentThreadId,
    GetExitCodeThread, GetThreadTimes, OpenProcess, OpenThread, PROCESS_DUP_HANDLE,
    THREAD_QUERY_LIMITED_INFORMATION,
};

use super::memory::{object_name, SharedMemory};
use super::owned;

/// Largest name file accepted.
pub(crate) const MAX_NAME_FILE: usize = 64 * 1024;

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    // SAFETY: no arguments, no failure.
    unsafe { GetCurrentProcessId() }
}

/// Windows has no PID namespaces: every process of the machine numbers pids alike.
pub(crate) fn pid_namespace() -> u64 {
    1
}

fn creation_time(thread: HANDLE) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: `thread` is open with query rights; the four FILETIMEs are writable.
    if unsafe { GetThreadTimes(thread, &mut created, &mut exited, &mut kernel, &mut user) } == 0 {
        return None;
    }
    Some((u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

thread_local! {
    static THREAD_IDENTITY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Who this thread is, as one nonzero word: its id in the high 32 bits and the low 32 bits of
/// its creation time in the low ones (so that a recycled id is not taken for the old thread).
pub(crate) fn thread_identity() -> u64 {
    THREAD_IDENTITY.with(|cell| {
        if cell.get() == 0 {
            // SAFETY: no arguments; the pseudo handle needs no closing.
            let (tid, me) = unsafe { (GetCurrentThreadId(), GetCurrentThread()) };
            let created = creation_time(me).unwrap_or(0) as u32;
            cell.set((u64::from(tid) << 32) | u64::from(created));
        }
        cell.get()
    })
}

/// Whether the thread [`thread_identity`] named still runs. One that cannot be checked for
/// another reason is taken as alive: a wrong "dead" would let two writers in.
pub(crate) fn thread_alive(identity: u64) -> bool {
    let tid = (identity >> 32) as u32;
    if tid == 0 {
        return false;
    }
    // SAFETY: OpenThread returns a new handle (or null), which we own.
    let Ok(thread) = (unsafe { owned(OpenThread(THREAD_QUERY_LIMITED_INFORMATION, 0, tid)) })
    else {
        return super::last_error().raw_os_error() != Some(87); // gone: ERROR_INVALID_PARAMETER
    };
    let mut code = 0u32;
    // SAFETY: `thread` is open with query rights.
    if unsafe { GetExitCodeThread(thread.as_raw_handle(), &mut code) } != 0
        && code != STILL_ACTIVE as u32
    {
        return false;
    }
    creation_time(thread.as_raw_handle()).is_none_or(|t| t as u32 == identity as u32)
}

/// Which section a handle refers to: its 128-bit id, in two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectIdentity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl ObjectIdentity {
    fn id(&self) -> u128 {
        (u128::from(self.dev) << 64) | u128::from(self.ino)
    }
}

/// Pulls a duplicate of handle `value` out of process `pid` (it stays open there), with
/// `access`. `None`: the process is gone, or holds no such handle.
fn pull_from(pid: u32, value: i32, access: u32) -> Option<OwnedHandle> {
    // SAFETY: OpenProcess returns a new handle (or null), which we own.
    let process = unsafe { owned(OpenProcess(PROCESS_DUP_HANDLE, 0, pid)) }.ok()?;
    let mut out = std::ptr::null_mut();
    // SAFETY: `process` is open with PROCESS_DUP_HANDLE; the source number is checked by the
    // kernel in that process's table; `out` receives a handle of ours.
    let ok = unsafe {
        DuplicateHandle(
            process.as_raw_handle(),
            value as usize as HANDLE,
            GetCurrentProcess(),
            &mut out,
            access,
            0,
            0,
        )
    };
    if ok == 0 {
        return None;
    }
    // SAFETY: DuplicateHandle succeeded.
    unsafe { owned(out) }.ok()
}

/// The size recorded in the name lpc gives a section of id `id`, if `name` is one.
fn recorded_len(name: &str, id: u128) -> Option<usize> {
    let tail = name.rsplit('\\').next()?;
    let rest = tail.strip_prefix(&format!("lpc-shm-{id:032x}-"))?;
    rest.parse().ok()
}

impl SharedMemory {
    /// The section's identity, to record beside the holder's pid and handle number.
    pub(crate) fn identity(&self) -> io::Result<ObjectIdentity> {
        let id = self.id();
        Ok(ObjectIdentity {
            dev: (id >> 64) as u64,
            ino: id as u64,
        })
    }

    /// The handle number in this process (recorded in the name file).
    pub(crate) fn raw_fd(&self) -> i32 {
        self.handle().as_raw_handle() as usize as i32
    }

    /// Opens the section process `pid` holds as handle `fd`, if it still does and it is
    /// section `identity`, read-write or read-only (a read-only duplicate cannot be mapped
    /// writable). `Ok(None)`: the holder is gone, or holds something else now.
    pub(crate) fn open_held(
        pid: u32,
        fd: i32,
        identity: ObjectIdentity,
        writable: bool,
    ) -> io::Result<Option<SharedMemory>> {
        if pid == 0 || fd <= 0 {
            return Ok(None);
        }
        let access = FILE_MAP_READ | 0x0001 | if writable { FILE_MAP_WRITE } else { 0 };
        let Some(handle) = pull_from(pid, fd, access) else {
            return Ok(None);
        };
        let Ok(name) = object_name(&handle) else {
            return Ok(None);
        };
        let Some(len) = recorded_len(&name, identity.id()) else {
            return Ok(None);
        };
        SharedMemory::from_received(handle, identity.id(), len).map(Some)
    }
}

/// Whether process `pid` still holds section `identity` as handle `fd`.
pub(crate) fn holds(pid: u32, fd: i32, identity: ObjectIdentity) -> bool {
    if pid == 0 || fd <= 0 {
        return false;
    }
    pull_from(pid, fd, 0x0001)
        .and_then(|h| object_name(&h).ok())
        .is_some_and(|name| recorded_len(&name, identity.id()).is_some())
}

/// A name file of the runtime directory, open and locked (`LockFileEx`, exclusive; released
/// if we die).
pub(crate) struct NameFile {
    pub(in crate::sys) file: File,
}

fn planted(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} {why}; lpc creates its name files itself: another program may have put it \
             there; remove it",
            path.display()
        ),
    )
}

impl NameFile {
    /// Opens (creating it if `create`) and locks the name file at `path`. `Ok(None)`: it does
    /// not exist and `create` is false. A symbolic link or a non-file is refused; a file
    /// replaced while we waited for its lock is opened again.
    pub(crate) fn lock(path: &Path, create: bool) -> io::Result<Option<NameFile>> {
        for _ in 0..100 {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(planted(path, "is a symbolic link"))
                }
                Ok(m) if !m.is_file() => return Err(planted(path, "is not a regular file")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .open(path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) => return Err(e),
            };
            file.lock()?;
            let ours = super::process::handle_identity(&file)?;
            match super::process::file_identity(path) {
                Ok(now) if now == ours => return Ok(Some(NameFile { file })),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{} kept being replaced while lpc waited for its lock",
            path.display()
        )))
    }
}
