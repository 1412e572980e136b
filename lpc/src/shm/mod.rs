//! Shared memory as seen by the protocol: a mapped [`Region`] with bounds-checked accessors,
//! and the [`layout`] of a connection's region (header, call slots).
//!
//! The rule for everything in here: **the other process is an enemy**. It can write any byte at
//! any moment. So memory in a region is never handed out as `&[u8]` or `&T`; it is read only by
//!
//! - atomics (`&AtomicU32` words, which are well defined under concurrent writes), or
//! - copying bytes out into private memory, which is then validated and decoded — so a value
//!   cannot change between its check and its use.
//!
//! Offsets and lengths come from our own layout arithmetic, checked against the mapping's
//! length on every access; a length read from shared memory is validated by the caller before
//! it is used for anything but a bounds-checked copy.

pub(crate) mod bulk;
pub(crate) mod layout;
// Atomic-only accessors for memory many processes write (shared values, named segments).
#[cfg(not(loom))]
pub(crate) mod words;
// Under the loom model the accessors below go through the model's tracked memory instead.
#[cfg(loom)]
mod model;

#[cfg(not(loom))]
use crate::sys::AtomicU32;
use crate::sys::Mapping;

/// Copies `len` bytes from `src` to `dst` like `ptr::copy_nonoverlapping`, but without a call
/// to `memcpy` for the few bytes of a small call's arguments or result (a call costs more than
/// the copy at these sizes).
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`: `src` valid for reads and `dst` for writes of `len`
/// bytes, the two ranges not overlapping.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: (all branches) every access is within the first `len` bytes of `src` and `dst`,
    // which the caller guarantees valid and disjoint; unaligned accesses are explicit.
    unsafe {
        if len > 16 {
            std::ptr::copy_nonoverlapping(src, dst, len);
        } else if len >= 8 {
            // Two 8-byte copies, overlapping in the middle when len < 16.
            let head = src.cast::<u64>().read_unaligned();
            let tail = src.add(len - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(head);
            dst.add(len - 8).cast::<u64>().write_unaligned(tail);
        } else if len >= 4 {
            let head = src.cast::<u32>().read_unaligned();
            let tail = src.add(len - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(head);
            dst.add(len - 4).cast::<u32>().write_unaligned(tail);
        } else {
            for i in 0..len {
                dst.add(i).write(src.add(i).read());
            }
        }
    }
}

/// An access fell outside the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfBounds;

/// A mapped shared-memory region.
#[derive(Debug)]
pub(crate) struct Region {
    map: Mapping,
}

impl Region {
    pub(crate) fn new(map: Mapping) -> Region {
        Region { map }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether this process may write it: false for a peer's buffer mapped read-only.
    pub(crate) fn writable(&self) -> bool {
        self.map.writable()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.map.len() => Ok(()),
            _ => Err(OutOfBounds),
        }
    }

    /// [`Region::check`] for a write, or a word that may be written.
    ///
    /// # Panics
    /// If the region is mapped read-only: lpc writes only memory it maps writable, so that is
    /// a bug in lpc (the write would fault).
    fn check_write(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        assert!(self.writable(), "write to a read-only mapping");
        self.check(offset, len)
    }
}

/// The accessors, over a real mapping (`model` has the loom model's, with the same
/// signatures).
#[cfg(not(loom))]
impl Region {
    /// The 32-bit atomic word at `offset`.
    ///
    /// # Panics
    /// If `offset` is misaligned or out of bounds: offsets come from the layout, never from
    /// shared memory, so that is a bug in lpc.
    #[inline]
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4),
            "misaligned atomic offset {offset}"
        );
        self.check_write(offset, 4)
            .expect("atomic offset out of bounds");
        // SAFETY: in bounds (checked) and 4-aligned (checked; mappings are page-aligned). The
        // memory stays mapped while `self` lives, which bounds the returned borrow. AtomicU32
        // has the size and alignment of u32, every bit pattern is valid, and atomic accesses
        // are sound under concurrent writes from other threads or processes.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// Copies `len` bytes at `offset` to the end of `out`.
    pub(crate) fn copy_out(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), OutOfBounds> {
        self.check(offset, len)?;
        out.reserve(len);
        let old = out.len();
        // SAFETY: the source range is inside the mapping (checked above) and the destination
        // has `len` bytes of spare capacity (reserved above); a private Vec cannot overlap a
        // shared mapping. The bytes may be changing under a hostile peer: we take a snapshot
        // of plain bytes, where any value is valid, and validate the copy afterwards.
        unsafe {
            copy_bytes(
                self.map.as_ptr().add(offset),
                out.as_mut_ptr().add(old),
                len,
            );
            out.set_len(old + len);
        }
        Ok(())
    }

    /// Copies `len` bytes at `offset` of this region to `dst_offset` of `dst` (another
    /// mapping: used when a spill buffer is replaced by a larger one mid-write).
    pub(crate) fn copy_to(
        &self,
        offset: usize,
        dst: &Region,
        dst_offset: usize,
        len: usize,
    ) -> Result<(), OutOfBounds> {
        self.check(offset, len)?;
        dst.check_write(dst_offset, len)?;
        // SAFETY: both ranges are inside their mappings (checked above). Two distinct
        // mappings may alias the same pages only if they map the same memory object, and
        // callers copy between a buffer and its fresh, larger replacement (different objects).
        // `copy` (memmove) stays defined even if they did overlap. Plain bytes, any value valid.
        unsafe {
            std::ptr::copy(
                self.map.as_ptr().add(offset),
                dst.map.as_ptr().add(dst_offset),
                len,
            )
        };
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    pub(crate) fn read_into(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, out.len())?;
        // SAFETY: source in bounds (checked), destination private memory of `out.len()` bytes
        // that cannot overlap a shared mapping. As in `copy_out`, a snapshot of plain bytes.
        unsafe { copy_bytes(self.map.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `N` bytes at `offset` into an array.
    pub(crate) fn read_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], OutOfBounds> {
        self.check(offset, N)?;
        let mut out = [0u8; N];
        // SAFETY: source in bounds (checked), destination is a private local array of N bytes.
        // As in `copy_out`, the snapshot is validated by the caller.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), out.as_mut_ptr(), N)
        };
        Ok(out)
    }

    /// Copies an array of `N` bytes into the region at `offset` (a fixed-size copy the
    /// compiler inlines, unlike a call to `memcpy`).
    pub(crate) fn write_array<const N: usize>(
        &self,
        offset: usize,
        bytes: &[u8; N],
    ) -> Result<(), OutOfBounds> {
        self.check_write(offset, N)?;
        // SAFETY: destination in bounds (checked); the source is a private array that cannot
        // overlap the mapping. As in `copy_in`, the peer validates what it reads.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_ptr().add(offset), N) };
        Ok(())
    }

    /// Copies `bytes` into the region at `offset`.
    pub(crate) fn copy_in(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        self.check_write(offset, bytes.len())?;
        // SAFETY: destination in bounds (checked); the source is private memory that cannot
        // overlap the mapping. Writing plain bytes that the peer may read concurrently is the
        // purpose of the region; the peer validates what it reads.
        unsafe { copy_bytes(bytes.as_ptr(), self.map.as_ptr().add(offset), bytes.len()) };
        Ok(())
    }
}
