//! Shared memory: `memfd_create(2)` objects, sealed, mapped with `mmap(2)`.
//!
//! A memfd has no name in any filesystem, so nothing is left in `/dev/shm` when its processes
//! die: the memory lives exactly as long as some process holds the descriptor or a mapping.
//! It travels to the peer over the connection's socket (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fstat, fstatfs, ftruncate, memfd_create, FileType,
    MemfdFlags, SealFlags,
};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

/// `statfs(2)` filesystem type of shmem/tmpfs, where `memfd_create(2)` puts its objects
/// (`TMPFS_MAGIC` in linux/magic.h).
const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `HUGETLBFS_MAGIC`: a memfd made with `MFD_HUGETLB`, whose pages can fail to be backed at
/// fault time (the pool of huge pages is finite), which is a `SIGBUS` in whoever touches them.
const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;

/// A shared-memory object of fixed size (a sealed memfd).
#[derive(Debug)]
pub(crate) struct SharedMemory {
    fd: OwnedFd,
    len: usize,
}

fn not_ours(why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("received descriptor is not lpc shared memory: {why}"),
    )
}

impl SharedMemory {
    /// Creates a zero-filled object of `len` bytes that both sides map read-write, sealed so
    /// that neither side can shrink it (which would turn the other side's accesses past the
    /// new end into `SIGBUS`) or grow it.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<SharedMemory> {
        let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, len as u64)?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Ok(SharedMemory { fd, len })
    }

    /// Creates a zero-filled object of `len` bytes that only this process can write: it is
    /// mapped read-write here, then sealed with `F_SEAL_FUTURE_WRITE`, so that every later
    /// mapping — the peer's — can only be read-only (`mmap(2)` of it with `PROT_WRITE` fails
    /// with `EPERM`, and so does `mprotect(2)`), besides the size seals of [`create`].
    ///
    /// [`create`]: SharedMemory::create
    pub(crate) fn create_one_writer(name: &str, len: usize) -> io::Result<(SharedMemory, Mapping)> {
        let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, len as u64)?;
        let shm = SharedMemory { fd, len };
        let mapping = shm.map_with(ProtFlags::READ | ProtFlags::WRITE)?;
        fcntl_add_seals(
            &shm.fd,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE | SealFlags::SEAL,
        )?;
        Ok((shm, mapping))
    }

    /// Adopts an object received from a peer, which may have sent anything. It must be
    /// exactly what lpc sends — a regular file on the shared-memory filesystem (a memfd: not
    /// hugetlbfs, whose pages can fail to be backed; not a file of another filesystem, which its
    /// owner can truncate or make block), sealed against shrinking and growing (so that no
    /// access within its size can ever fault with `SIGBUS`), and not empty. Holes punched into
    /// it (`fallocate(2)`, which the seals allow) read back as zeros: harmless.
    pub(crate) fn from_received(fd: OwnedFd) -> io::Result<SharedMemory> {
        let stat = fstat(&fd)?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(not_ours(format!("it is a {kind:?}, not a memfd")));
        }
        let fs = fstatfs(&fd)?;
        match fs.f_type as u64 {
            TMPFS_MAGIC => {}
            HUGETLBFS_MAGIC => {
                return Err(not_ours(
                    "it is hugetlbfs memory (MFD_HUGETLB), whose pages may fail to be backed"
                        .into(),
                ))
            }
            other => {
                return Err(not_ours(format!(
                    "it is a file on another filesystem (type {other:#x}), not a memfd"
                )))
            }
        }
        let seals = fcntl_get_seals(&fd)
            .map_err(|_| not_ours("it cannot be sealed (a tmpfs file, not a memfd)".into()))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(not_ours(
                "it is not sealed against shrinking and growing (F_SEAL_SHRINK, F_SEAL_GROW)"
                    .into(),
            ));
        }
        let len = usize::try_from(stat.st_size)
            .map_err(|_| not_ours(format!("it has a bad size ({})", stat.st_size)))?;
        if len == 0 {
            return Err(not_ours("it is empty".into()));
        }
        Ok(SharedMemory { fd, len })
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether this descriptor allows writing (opened read-write, not `O_RDONLY`): a
    /// read-only one can only be mapped read-only, here and wherever it is sent.
    pub(crate) fn writable_descriptor(&self) -> bool {
        rustix::fs::fcntl_getfl(&self.fd)
            .is_ok_and(|flags| flags & rustix::fs::OFlags::RWMODE == rustix::fs::OFlags::RDWR)
    }

    /// The descriptor, to send to the peer.
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Maps the whole object, shared and read-write. Fails (`EPERM`) for an object its creator
    /// sealed against writes by others ([`SharedMemory::create_one_writer`]).
    pub(crate) fn map(&self) -> io::Result<Mapping> {
        self.map_with(ProtFlags::READ | ProtFlags::WRITE)
    }

    /// Maps the whole object, shared and read-only: the memory of a peer that only the peer
    /// writes (its spill and bulk buffers).
    pub(crate) fn map_read_only(&self) -> io::Result<Mapping> {
        self.map_with(ProtFlags::READ)
    }

    fn map_with(&self, prot: ProtFlags) -> io::Result<Mapping> {
        if self.len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map empty shared memory",
            ));
        }
        // SAFETY: we ask the kernel for a fresh mapping (null hint, no MAP_FIXED), so no
        // existing Rust object is aliased or replaced. A memfd is sealed against shrinking
        // (`create` or `from_received` checked it) and lives on shmem, so every page of `len`
        // stays backed for the life of the mapping; the benchmark files of `create_file` are
        // only shared with the benchmark's own trusted child. Pages are accessed only through
        // `shm::Region`'s atomic and copying accessors, and never written through a read-only
        // mapping (the `shm` layer checks).
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                self.len,
                prot,
                MapFlags::SHARED,
                &self.fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping {
            ptr,
            len: self.len,
            writable: prot.contains(ProtFlags::WRITE),
        })
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
    writable: bool,
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

    /// Whether this process may write it (false for [`SharedMemory::map_read_only`]).
    pub(crate) fn writable(&self) -> bool {
        self.writable
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
    /// Wraps any descriptor unchecked, to send it as if it were shared memory: for the
    /// hostile-peer tests, which must send what lpc itself never would.
    pub(crate) fn wrap_unchecked(fd: OwnedFd) -> SharedMemory {
        SharedMemory { fd, len: 0 }
    }

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
