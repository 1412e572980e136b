//! Shared memory: pagefile-backed sections (`CreateFileMappingW` with no file), mapped with
//! `MapViewOfFile`.
//!
//! A section lives while any process holds a handle or a view of it, so nothing outlives its
//! processes. Each is named `Local\lpc-shm-<id>-<len>` with a fresh random id: the name lets a
//! receiver check that a handle a peer sent is the section it claims (its id, which names the
//! doorbells, and its size), and lets a holder's handle be found again for a named shared
//! value. A section's size is fixed at creation, so no view of one can lose its pages
//! (Windows' counterpart of the seals the Linux backend needs).

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr::NonNull;

use windows_sys::Wdk::Foundation::{NtQueryObject, OBJECT_NAME_INFORMATION};
use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, UnmapViewOfFile, VirtualQuery, FILE_MAP_READ,
    FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS, MEM_COMMIT,
    PAGE_READWRITE,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use super::doorbell;
use super::{last_error, new_id, owned, wide};

/// `SECTION_QUERY`: lets the name of a section be read.
const SECTION_QUERY: u32 = 0x0001;

/// A shared-memory object of fixed size (a section).
#[derive(Debug)]
pub(crate) struct SharedMemory {
    handle: OwnedHandle,
    len: usize,
    id: u128,
}

fn not_ours(why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("received handle is not lpc shared memory: {why}"),
    )
}

fn section_name(id: u128, len: usize) -> String {
    format!("lpc-shm-{id:032x}-{len}")
}

/// The kernel's name of the object behind `handle` (`NtQueryObject(ObjectNameInformation)`),
/// such as `\Sessions\1\BaseNamedObjects\lpc-shm-…`.
pub(super) fn object_name(handle: &OwnedHandle) -> io::Result<String> {
    object_info(handle, 1) // ObjectNameInformation
}

/// The string `NtQueryObject` returns first for information class `class`: the name (1,
/// `ObjectNameInformation`) or the kind (2, `ObjectTypeInformation`, such as `Semaphore`).
pub(super) fn object_info(handle: &OwnedHandle, class: i32) -> io::Result<String> {
    // OBJECT_NAME_INFORMATION (or OBJECT_TYPE_INFORMATION, which also starts with a
    // UNICODE_STRING) followed by the string: 8-byte aligned storage.
    let mut buf = vec![0u64; 256];
    let mut returned = 0u32;
    // SAFETY: `buf` is writable for the length given and aligned for OBJECT_NAME_INFORMATION;
    // the handle is open; NtQueryObject writes at most that many bytes.
    let status = unsafe {
        NtQueryObject(
            handle.as_raw_handle(),
            class,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut returned,
        )
    };
    if status < 0 {
        return Err(io::Error::other(format!(
            "NtQueryObject failed with status {status:#x}"
        )));
    }
    // SAFETY: on success the buffer starts with an OBJECT_NAME_INFORMATION.
    let info = unsafe { std::ptr::read(buf.as_ptr().cast::<OBJECT_NAME_INFORMATION>()) };
    let chars = usize::from(info.Name.Length) / 2;
    if info.Name.Buffer.is_null() || chars == 0 {
        return Ok(String::new());
    }
    let start = buf.as_ptr() as usize;
    let end = start + buf.len() * 8;
    let name = info.Name.Buffer as usize;
    if name < start || name + chars * 2 > end {
        return Err(io::Error::other(
            "NtQueryObject returned a name outside its buffer",
        ));
    }
    // SAFETY: the name lies within `buf` (checked above), as `chars` UTF-16 units.
    let units = unsafe { std::slice::from_raw_parts(info.Name.Buffer, chars) };
    Ok(String::from_utf16_lossy(units))
}

/// Duplicates `handle` within this process, with `access` (or the same access if `None`).
pub(super) fn duplicate(handle: &OwnedHandle, access: Option<u32>) -> io::Result<OwnedHandle> {
    let mut out = std::ptr::null_mut();
    // SAFETY: both process handles are the current-process pseudo handle; `handle` is open;
    // `out` receives a new handle that we then own.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            handle.as_raw_handle(),
            GetCurrentProcess(),
            &mut out,
            access.unwrap_or(0),
            0,
            if access.is_none() {
                DUPLICATE_SAME_ACCESS
            } else {
                0
            },
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: DuplicateHandle succeeded: `out` is a new handle of ours.
    unsafe { owned(out) }
}

impl SharedMemory {
    fn create_section(len: usize) -> io::Result<SharedMemory> {
        if len == 0 {
            // A section cannot have no bytes: an empty one holds a page it never maps (every
            // `map` of it fails), as an empty memfd does on Linux.
            let mut shm = SharedMemory::create_section(1)?;
            shm.len = 0;
            return Ok(shm);
        }
        loop {
            let id = new_id();
            let name = wide(&format!("Local\\{}", section_name(id, len)));
            let size = len as u64;
            // SAFETY: a pagefile-backed section (no file handle), default security, a
            // nul-terminated name that lives for the call.
            let handle = unsafe {
                CreateFileMappingW(
                    INVALID_HANDLE_VALUE,
                    std::ptr::null(),
                    PAGE_READWRITE,
                    (size >> 32) as u32,
                    size as u32,
                    name.as_ptr(),
                )
            };
            let already = last_error().raw_os_error() == Some(183); // ERROR_ALREADY_EXISTS
                                                                    // SAFETY: CreateFileMappingW returned a new handle (or null), which we own.
            let handle = unsafe { owned(handle) }?;
            if already {
                // Another section has this random id: never in practice; take another.
                continue;
            }
            return Ok(SharedMemory { handle, len, id });
        }
    }

    /// Creates a zero-filled section of `len` bytes that both sides map read-write.
    pub(crate) fn create(_name: &str, len: usize) -> io::Result<SharedMemory> {
        SharedMemory::create_section(len)
    }

    /// Creates a zero-filled section of `len` bytes that only this process can write: mapped
    /// read-write here, after which this side keeps (and sends) only a handle with read
    /// access, so that no receiver can map it writable.
    pub(crate) fn create_one_writer(name: &str, len: usize) -> io::Result<(SharedMemory, Mapping)> {
        let shm = SharedMemory::create(name, len)?;
        let mapping = shm.map()?;
        let read_only = duplicate(&shm.handle, Some(FILE_MAP_READ | SECTION_QUERY))?;
        Ok((
            SharedMemory {
                handle: read_only,
                len: shm.len,
                id: shm.id,
            },
            mapping,
        ))
    }

    /// Adopts a section received from a peer, which may have sent anything: its kernel name
    /// must be the one lpc gives a section of id `id` and size `len`, and `len` nonzero.
    /// (Views are checked again when mapped: every page committed.)
    pub(crate) fn from_received(
        handle: OwnedHandle,
        id: u128,
        len: usize,
    ) -> io::Result<SharedMemory> {
        if len == 0 {
            return Err(not_ours("it is empty".into()));
        }
        let name =
            object_name(&handle).map_err(|e| not_ours(format!("its name cannot be read ({e})")))?;
        let expected = section_name(id, len);
        if !name.ends_with(&format!("\\{expected}")) {
            return Err(not_ours(format!(
                "it is named {name:?}, not {expected:?} as its message says"
            )));
        }
        Ok(SharedMemory { handle, len, id })
    }

    /// The handle, to send to the peer.
    pub(super) fn handle(&self) -> &OwnedHandle {
        &self.handle
    }

    /// The id its name and doorbells carry.
    pub(super) fn id(&self) -> u128 {
        self.id
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether this handle allows mapping for writing (a read-only one can only be mapped
    /// read-only, here and wherever it is sent): tried with a one-page view.
    pub(crate) fn writable_descriptor(&self) -> bool {
        // SAFETY: maps (and at once unmaps) a view of our open section; the view is never
        // accessed.
        unsafe {
            let view = MapViewOfFile(
                self.handle.as_raw_handle(),
                FILE_MAP_WRITE | FILE_MAP_READ,
                0,
                0,
                1,
            );
            if view.Value.is_null() {
                return false;
            }
            UnmapViewOfFile(view);
        }
        true
    }

    /// Maps the whole section, read-write. Fails (access denied) for a read-only handle.
    pub(crate) fn map(&self) -> io::Result<Mapping> {
        self.map_with(true)
    }

    /// Maps the whole section, read-only.
    pub(crate) fn map_read_only(&self) -> io::Result<Mapping> {
        self.map_with(false)
    }

    fn map_with(&self, writable: bool) -> io::Result<Mapping> {
        if self.len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map empty shared memory",
            ));
        }
        let access = if writable {
            FILE_MAP_READ | FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        // SAFETY: a fresh view chosen by the kernel (no base address), so nothing of ours is
        // replaced; a section smaller than `len` makes the call fail. The memory is accessed
        // only through the `shm` layer's atomic and copying accessors.
        let view = unsafe { MapViewOfFile(self.handle.as_raw_handle(), access, 0, 0, self.len) };
        let ptr = NonNull::new(view.Value.cast::<u8>()).ok_or_else(last_error)?;
        let mapping = Mapping {
            ptr,
            len: self.len,
            writable,
        };
        mapping.check_committed()?;
        doorbell::register(ptr.as_ptr() as usize, self.len, self.id);
        Ok(mapping)
    }
}

/// A live view of a [`SharedMemory`], unmapped on drop.
///
/// The memory is shared with another process that may write it at any time: it must only be
/// accessed through atomics or by copying bytes in and out (see the `shm` layer).
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: a view is an address range owned by this process until drop, with no thread-affine
// state; every access goes through the `shm` layer's atomic or copying accessors.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`: access from several threads is like access from another process.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The first byte of the view.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether this process may write it.
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Every page of the view is committed: a section created with `SEC_RESERVE` by a hostile
    /// peer would fault on its reserved pages.
    fn check_committed(&self) -> io::Result<()> {
        let start = self.ptr.as_ptr() as usize;
        let end = start + self.len;
        let mut at = start;
        while at < end {
            // SAFETY: an all-zero MEMORY_BASIC_INFORMATION is valid; VirtualQuery fills it
            // for an address of our own view.
            let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is writable for its size; `at` lies in our view.
            let n = unsafe {
                VirtualQuery(
                    at as *const _,
                    &mut info,
                    std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
                )
            };
            if n == 0 {
                return Err(last_error());
            }
            if info.State != MEM_COMMIT {
                return Err(not_ours("some of its pages are not committed".into()));
            }
            let next = info.BaseAddress as usize + info.RegionSize;
            if next <= at {
                break;
            }
            at = next;
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        doorbell::unregister(self.ptr.as_ptr() as usize);
        // SAFETY: `ptr` is exactly the view MapViewOfFile returned, unmapped only here, once;
        // borrows handed out by the `shm` layer are tied to `&self`.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.ptr.as_ptr().cast(),
            });
        }
    }
}

#[cfg(feature = "test-util")]
impl SharedMemory {
    /// Wraps any handle unchecked, to send it as if it were shared memory (hostile-peer tests).
    pub(crate) fn wrap_unchecked(handle: OwnedHandle) -> SharedMemory {
        SharedMemory {
            handle,
            len: 0,
            id: 0,
        }
    }

    /// A section several processes that know `path` can open: its id and size are written to
    /// the file at `path` (for benchmarks' raw floors).
    pub(crate) fn create_file(path: &std::path::Path, len: usize) -> io::Result<SharedMemory> {
        let shm = SharedMemory::create_section(len)?;
        std::fs::write(path, format!("{:032x} {len}", shm.id))?;
        Ok(shm)
    }

    /// Opens the section [`SharedMemory::create_file`] recorded at `path` (its creator must
    /// still hold it).
    pub(crate) fn open_file(path: &std::path::Path) -> io::Result<SharedMemory> {
        use windows_sys::Win32::System::Memory::{OpenFileMappingW, FILE_MAP_ALL_ACCESS};
        let text = std::fs::read_to_string(path)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a section file");
        let (id, len) = text.trim().split_once(' ').ok_or_else(bad)?;
        let id = u128::from_str_radix(id, 16).map_err(|_| bad())?;
        let len: usize = len.parse().map_err(|_| bad())?;
        let name = wide(&format!("Local\\{}", section_name(id, len)));
        // SAFETY: a nul-terminated name that lives for the call; we own the returned handle.
        let handle = unsafe { owned(OpenFileMappingW(FILE_MAP_ALL_ACCESS, 0, name.as_ptr())) }?;
        Ok(SharedMemory { handle, len, id })
    }
}
