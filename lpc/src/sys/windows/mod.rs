//! Windows implementation of the `sys` interface, on Microsoft's raw bindings (`windows-sys`).
//!
//! | piece | built from |
//! |---|---|
//! | shared memory | pagefile-backed sections (`CreateFileMappingW`), named `Local\lpc-shm-<id>-<len>` so that a receiver can check what it got (`NtQueryObject`), passed by `DuplicateHandle` |
//! | doorbells | `WaitOnAddress` cannot wake another process: a named semaphore per waited word of a section (`Local\lpc-bell-<id>-<offset>`), opened on first use; the layers above only call [`wake`] when the peer said it sleeps |
//! | endpoints | named pipes in message mode (`\\.\pipe\lpc-<user SID>-<dir>-<name>`), overlapped, one reader thread per end |
//! | credentials | the peer's pid from the pipe, its user from its process token (a SID) |
//! | children | an inheritable duplicate of one pipe end, a job object that ends them with us |
//!
//! Handles travel by *pull*: the sender makes a duplicate in its own table and sends its
//! number; the receiver duplicates it out of the sender's process (`DUPLICATE_CLOSE_SOURCE`).
//! A hostile sender can only name handles of its own, never make the receiver take one of the
//! receiver's.

mod doorbell;
mod identity;
mod memory;
mod named;
mod pipe;
mod process;
mod reactor;
mod spawn;
mod watch;

use std::io;

pub(crate) use doorbell::{wait_in, wake_in};
pub(crate) use identity::current_user;
pub(crate) use memory::{Mapping, SharedMemory};
pub(crate) use named::{
    current_pid, holds, pid_namespace, thread_alive, thread_identity, NameFile, ObjectIdentity,
    MAX_NAME_FILE,
};
pub(crate) use pipe::{Listener, Received, Stream};
pub(crate) use process::{
    can_run_apart, create_private_dir, file_identity, monotonic_ns, open_to_other_users,
    process_alive, process_name, raise_open_file_limit, DirLock, FileIdentity, ENDPOINT_ENV,
};
#[cfg(feature = "test-util")]
pub(crate) use process::{mapped_views, process_handle_names, process_resources};
pub(crate) use reactor::Reactor;
pub(crate) use spawn::{spawn_with_endpoint, ChildProcess};

use std::os::windows::io::{FromRawHandle, OwnedHandle};
use windows_sys::Win32::Foundation::{GetLastError, HANDLE, INVALID_HANDLE_VALUE};

/// `s` as a nul-terminated UTF-16 string, for the `…W` functions.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The calling thread's last error (`GetLastError`) as an `io::Error`.
pub(super) fn last_error() -> io::Error {
    // SAFETY: GetLastError only reads the calling thread's error slot.
    io::Error::from_raw_os_error(unsafe { GetLastError() } as i32)
}

/// Takes ownership of a handle a function returned, or the last error if it returned null or
/// `INVALID_HANDLE_VALUE`.
///
/// # Safety
/// `handle` must be a handle this process owns and nothing else closes.
pub(super) unsafe fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err(last_error());
    }
    // SAFETY: the caller guarantees ownership; the value is neither null nor invalid.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// A hash of a directory path that every process computes alike (FNV-1a of its lowercased
/// text; std's hasher is keyed per process), for kernel object names derived from it.
pub(super) fn path_hash(path: &std::path::Path) -> u64 {
    let text = path.to_string_lossy().to_lowercase();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A fresh 128-bit identifier for a section: unpredictable to other processes (std's hash
/// keys are random per process), unique within this one (a counter), and apart between
/// processes (the pid and the clock).
pub(super) fn new_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        h.write_u32(std::process::id());
        h.write_u64(monotonic_ns());
        *half = h.finish();
    }
    (u128::from(halves[0]) << 64) | u128::from(halves[1])
}
