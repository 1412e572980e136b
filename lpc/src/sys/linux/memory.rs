//! Shared memory: `memfd_create(2)` objects, sealed, mapped with `mmap(2)`.
//!
//! A memfd has no name in any filesystem, so nothing is left in `/dev/shm` when its processes
//! die: the memory lives exactly as long as some process holds the descriptor or a mapping.
//! It travels to the peer over the connection's socket (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create, MemfdFlags, SealFlags,
};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

/// A shared-memory object of fixed size (a sealed memfd).
#[derive(Debug)]
pub(crate) struct SharedMemory {
    fd: OwnedFd,
    len: usize,
}

impl SharedMemory {
    /// Creates a zero-filled object of `len` bytes, sealed so that neither side can shrink it
    /// (which would turn the other side's accesses past the new end into `SIGBUS`) or grow it.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<SharedMemory> {
        let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, len as u64)?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Ok(SharedMemory { fd, len })
    }

    /// Adopts an object received from a peer. It must be a memfd sealed against shrinking —
    /// otherwise the peer could truncate it under our mapping and crash us with `SIGBUS`.
    pub(crate) fn from_received(fd: OwnedFd) -> io::Result<SharedMemory> {
        let seals = fcntl_get_seals(&fd).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "received descriptor is not sealable shared memory",
            )
        })?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "received shared memory is not sealed against shrinking",
            ));
        }
        let size = fstat(&fd)?.st_size;
        let len = usize::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "received shared memory has a bad size",
            )
        })?;
        Ok(SharedMemory { fd, len })
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The descriptor, to send to the peer.
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Maps the whole object, shared and read-write.
    pub(crate) fn map(&self) -> io::Result<Mapping> {
        if self.len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map empty shared memory",
            ));
        }
        // SAFETY: we ask the kernel for a fresh mapping (null hint, no MAP_FIXED), so no
        // existing Rust object is aliased or replaced. A memfd is sealed against shrinking
        // (`create` or `from_received` checked it), so every page of `len` stays backed for the
        // life of the mapping; the benchmark files of `create_file` are only shared with the
        // benchmark's own trusted child. Pages are accessed only through `shm::Region`'s atomic
        // and copying accessors.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                self.len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { ptr, len: self.len })
    }
}

/// A live `mmap` of a [`SharedMemory`], unmapped on drop.
///
/// The memory is shared with another process that may write it at any time: it must only be
/// accessed through atomics or by copying bytes in and out (see the `shm` layer), never through
/// ordinary references that assume no one else writes.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is an address range owned by this process until drop; the handle itself
// holds no thread-affine state, and every access to the memory goes through the `shm` layer's
// atomic or copying accessors, which are safe to use from any thread.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`; shared access from several threads is the same as access from another
// process, which the `shm` layer is built to tolerate.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The first byte of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the range returned by our own `mmap`, unmapped only
        // here, once. Borrows handed out by the `shm` layer are tied to `&self`, so none
        // outlives this drop.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(feature = "test-util")]
impl SharedMemory {
    /// Creates (or truncates) a regular file of `len` zero bytes at `path`, to be mapped by
    /// several processes that know the path. For benchmarks' raw floors; lpc connections use
    /// anonymous memfds.
    pub(crate) fn create_file(path: &std::path::Path, len: usize) -> io::Result<SharedMemory> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len as u64)?;
        Ok(SharedMemory {
            fd: file.into(),
            len,
        })
    }

    /// Opens a file made by [`SharedMemory::create_file`]. The caller trusts its creator not
    /// to truncate it while mapped (a benchmark's own parent process).
    pub(crate) fn open_file(path: &std::path::Path) -> io::Result<SharedMemory> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        Ok(SharedMemory {
            fd: file.into(),
            len,
        })
    }
}
