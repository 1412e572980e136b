//! Shared memory in the model: heap memory that loom checks.
//!
//! A [`SharedMemory`] object holds its state once, and each [`Mapping`] of it refers to that
//! state, so that the service's and the client's mappings of one connection see the same
//! memory, as two `mmap`s of one memfd do. The state is:
//!
//! - a loom atomic for every 4-byte word: what `shm::Region::atomic_u32` hands out, so that
//!   loom explores what each load of a state word, flag or doorbell may see;
//! - a loom 64-bit atomic for every 8-byte word, for the words of a shared value (its
//!   seqlock's sequence and generation words, and the value itself, which the real code copies
//!   with relaxed 64-bit atomics: `shm::words`), so that loom explores torn copies too;
//! - the plain bytes (frame headers, payloads), with a loom cell per 64-byte line that each
//!   copy in or out enters (`with_mut` to write, `with` to read): a copy that is not ordered
//!   by the state transitions against a copy of the other side on the same line is reported
//!   by loom as a causality violation, i.e. a data race the real protocol would have.
//!
//! Words and bytes are kept apart: the atomic at an offset does not see bytes copied there,
//! nor do copies see the atomic's value. lpc never mixes the two at one offset, and the model
//! enforces it: the first access to each word decides its kind, and a later access of the
//! other kind panics, naming the offset.
//!
//! Everything is created when the object is (every word and line up front), in the thread
//! that creates it: loom counts an object's creation as a write by its creator, so creating a
//! word or a line lazily, on first use by some thread, would report races that do not exist.
//! That makes a large object (a spill buffer of 64 KiB) costly in the model; the model tests
//! keep their payloads inline.
//!
//! [`Mapping::as_ptr`] gives the byte storage itself, for `shm::bulk`'s in-place views: those
//! accesses are not tracked, and the atomic words are not in it.

use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::sys::{AtomicU32, AtomicU64};

/// Bytes per tracked line.
const LINE: usize = 64;

/// How lpc has used a word so far.
const UNTOUCHED: u8 = 0;
const BYTES: u8 = 1;
const ATOMIC: u8 = 2;
const ATOMIC64: u8 = 3;

/// The memory of one shared-memory object.
struct Memory {
    bytes: Box<[UnsafeCell<u8>]>,
    /// One per `LINE` bytes: entered by every copy in or out of the line.
    lines: Box<[loom::cell::UnsafeCell<()>]>,
    /// One per 4 bytes.
    words: Box<[AtomicU32]>,
    /// One per 8 bytes, for the 64-bit words of shared values (`shared::seqlock`).
    words64: Box<[AtomicU64]>,
    /// One per word: `UNTOUCHED`, `BYTES` or `ATOMIC`. Bookkeeping of the model, not of the
    /// modelled program: loom does not see it.
    kinds: Box<[AtomicU8]>,
}

// SAFETY: `bytes` (the only field that is not Sync by itself, with the loom cells, which hold
// no data) is reached only through `Memory::copy_in`/`copy_out` and `Mapping::as_ptr`. Loom runs
// the threads of a model one at a time on a single OS thread, so no two of those accesses
// overlap in real time; whether they would race in a real execution is what the loom cell of
// each line checks.
unsafe impl Sync for Memory {}
// SAFETY: see `Sync`; nothing in `Memory` is tied to the thread that created it.
unsafe impl Send for Memory {}

impl Memory {
    fn new(len: usize) -> Memory {
        Memory {
            bytes: (0..len).map(|_| UnsafeCell::new(0)).collect(),
            lines: (0..len.div_ceil(LINE))
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
            words: (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(),
            words64: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
            kinds: (0..len.div_ceil(4))
                .map(|_| AtomicU8::new(UNTOUCHED))
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Records that the words of `offset..offset + len` are used as `kind`; panics if one was
    /// used as another kind (plain bytes, 32-bit or 64-bit atomics).
    fn mark(&self, offset: usize, len: usize, kind: u8) {
        if len == 0 {
            return;
        }
        for word in offset / 4..(offset + len).div_ceil(4) {
            let was = self.kinds[word].swap(kind, Ordering::Relaxed);
            assert!(
                was == UNTOUCHED || was == kind,
                "lpc used bytes {offset}..{} of shared memory both as plain bytes and as the \
                 atomic word at offset {} (or as a 32-bit and a 64-bit word): the loom model \
                 keeps them apart (see sys::model::memory), and lpc never mixes them at one \
                 offset",
                offset + len,
                word * 4,
            );
        }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len(),
            "word at {offset} outside the object"
        );
        self.mark(offset, 4, ATOMIC);
        &self.words[offset / 4]
    }

    fn word64(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len(),
            "64-bit word at {offset} outside the object"
        );
        self.mark(offset, 8, ATOMIC64);
        &self.words64[offset / 8]
    }

    /// The lines of `offset..offset + len`, each with the part of the range it holds.
    fn lines(&self, offset: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
        let end = offset + len;
        (offset / LINE..end.div_ceil(LINE)).map(move |line| {
            let start = offset.max(line * LINE);
            (start, end.min((line + 1) * LINE) - start)
        })
    }

    fn copy_out(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len(), "read outside the object");
        self.mark(offset, out.len(), BYTES);
        for (start, n) in self.lines(offset, out.len()) {
            let dst = &mut out[start - offset..start - offset + n];
            self.lines[start / LINE].with(|_| {
                // SAFETY: `start..start + n` is inside `bytes` (asserted above). The bytes are
                // `UnsafeCell`s, never borrowed as references, and no other access runs at
                // the same time (see the `Sync` impl); `dst` is private memory.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        UnsafeCell::raw_get(self.bytes.as_ptr().add(start)),
                        dst.as_mut_ptr(),
                        n,
                    )
                }
            });
        }
    }

    fn copy_in(&self, offset: usize, bytes: &[u8]) {
        assert!(
            offset + bytes.len() <= self.len(),
            "write outside the object"
        );
        self.mark(offset, bytes.len(), BYTES);
        for (start, n) in self.lines(offset, bytes.len()) {
            let src = &bytes[start - offset..start - offset + n];
            self.lines[start / LINE].with_mut(|_| {
                // SAFETY: as in `copy_out`; writing through the `UnsafeCell`s is allowed.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        UnsafeCell::raw_get(self.bytes.as_ptr().add(start)),
                        n,
                    )
                }
            });
        }
    }
}

/// A shared-memory object of the model.
#[derive(Debug)]
pub(crate) struct SharedMemory {
    memory: Arc<Memory>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("len", &self.len()).finish()
    }
}

impl SharedMemory {
    /// A zero-filled object of `len` bytes (must be called inside a loom model).
    pub(crate) fn create(_name: &str, len: usize) -> io::Result<SharedMemory> {
        super::futex::set_up();
        Ok(SharedMemory {
            memory: Arc::new(Memory::new(len)),
        })
    }

    /// The same object, as a peer receives it over a [`Stream`](super::Stream).
    pub(super) fn duplicate(&self) -> SharedMemory {
        SharedMemory {
            memory: self.memory.clone(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.memory.len()
    }

    /// Like the real backend's: mapped here, read-only in every other mapping (which the
    /// model's `shm::Region` enforces, as the kernel would).
    pub(crate) fn create_one_writer(name: &str, len: usize) -> io::Result<(SharedMemory, Mapping)> {
        let shm = SharedMemory::create(name, len)?;
        let mapping = shm.map_with(true)?;
        Ok((shm, mapping))
    }

    pub(crate) fn map(&self) -> io::Result<Mapping> {
        self.map_with(true)
    }

    pub(crate) fn map_read_only(&self) -> io::Result<Mapping> {
        self.map_with(false)
    }

    fn map_with(&self, writable: bool) -> io::Result<Mapping> {
        if self.len() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map empty shared memory",
            ));
        }
        Ok(Mapping {
            memory: self.memory.clone(),
            writable,
        })
    }
}

/// A mapping of a model [`SharedMemory`]: its memory, reached through the accessors below
/// (which `shm::Region` uses under the model).
#[derive(Debug)]
pub(crate) struct Mapping {
    memory: Arc<Memory>,
    writable: bool,
}

impl Mapping {
    /// The byte storage (untracked by loom; the atomic words are not in it): for in-place
    /// views only (see the module docs).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.memory.bytes.as_ptr())
    }

    pub(crate) fn len(&self) -> usize {
        self.memory.len()
    }

    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The atomic word at `offset` (4-aligned, in bounds).
    pub(crate) fn word(&self, offset: usize) -> &AtomicU32 {
        self.memory.word(offset)
    }

    /// The 64-bit atomic word at `offset` (8-aligned, in bounds).
    pub(crate) fn word64(&self, offset: usize) -> &AtomicU64 {
        self.memory.word64(offset)
    }

    /// Copies the bytes at `offset` into `out`, as a read of each line they lie on.
    pub(crate) fn copy_out(&self, offset: usize, out: &mut [u8]) {
        self.memory.copy_out(offset, out)
    }

    /// Copies `bytes` to `offset`, as a write of each line they lie on.
    pub(crate) fn copy_in(&self, offset: usize, bytes: &[u8]) {
        self.memory.copy_in(offset, bytes)
    }
}
