//! Bulk buffers: shared memory that one side fills in place and the other reads in place —
//! the memory behind `lpc::Loan`.
//!
//! ```text
//! 0   lent flag (u32): 1 while the creator has handed the buffer to the peer for a call or
//!     a result, set back to 0 by the peer when it no longer reads it
//! 64  data
//! ```
//!
//! In the creating process a buffer is used through at most one [`BulkClaim`] at a time (an
//! atomic claim flag guards it), which is what makes handing out `&mut [u8]` sound here. The
//! peer process may still write the bytes: a misbehaving peer can change the *values* a
//! reader sees (any byte value is valid), never their bounds, which come from our own mapping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Region;
use crate::sys::AtomicU32;

/// Bytes before the data of a bulk buffer.
pub(crate) const BULK_HEADER: usize = 64;

/// A bulk buffer this process created.
pub(crate) struct BulkBuffer {
    id: u32,
    region: Region,
    claimed: AtomicBool,
}

impl BulkBuffer {
    /// Wraps a fresh mapping of at least [`BULK_HEADER`] + 1 bytes.
    pub(crate) fn new(id: u32, region: Region) -> BulkBuffer {
        assert!(region.len() > BULK_HEADER, "bulk buffer too small");
        BulkBuffer {
            id,
            region,
            claimed: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Data bytes available.
    pub(crate) fn capacity(&self) -> usize {
        self.region.len() - BULK_HEADER
    }

    fn lent(&self) -> &AtomicU32 {
        self.region.atomic_u32(0)
    }

    /// Whether the peer still holds the buffer.
    pub(crate) fn is_lent(&self) -> bool {
        self.lent().load(Ordering::Acquire) != 0
    }

    /// Exclusive use of the buffer in this process, if nobody here has it and the peer has
    /// given it back.
    pub(crate) fn try_claim(self: &Arc<Self>) -> Option<BulkClaim> {
        if self.is_lent() {
            return None;
        }
        self.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| BulkClaim {
                buffer: self.clone(),
            })
    }
}

/// Exclusive use of a [`BulkBuffer`] in this process; released on drop.
pub(crate) struct BulkClaim {
    buffer: Arc<BulkBuffer>,
}

impl BulkClaim {
    pub(crate) fn buffer(&self) -> &BulkBuffer {
        &self.buffer
    }

    /// The first `len` data bytes, to fill.
    ///
    /// # Panics
    /// If `len` exceeds the capacity (callers size the buffer first).
    pub(crate) fn data_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.buffer.capacity(), "loan longer than its buffer");
        // SAFETY: the range [BULK_HEADER, BULK_HEADER + len) lies inside the mapping (checked
        // against the capacity). In this process no other reference to it exists: the claim
        // flag admits one BulkClaim at a time, and this borrow is tied to `&mut self`. The
        // mapping outlives the borrow (the claim holds an Arc to it). Another process writing
        // the same bytes can change their values only; any value is a valid u8.
        unsafe {
            std::slice::from_raw_parts_mut(self.buffer.region.map.as_ptr().add(BULK_HEADER), len)
        }
    }

    /// The first `len` data bytes, to read.
    pub(crate) fn data(&self, len: usize) -> &[u8] {
        assert!(len <= self.buffer.capacity(), "loan longer than its buffer");
        // SAFETY: as in `data_mut`, in bounds and exclusively ours in this process; shared
        // borrow of `self`, so no `&mut` to the same bytes coexists.
        unsafe { std::slice::from_raw_parts(self.buffer.region.map.as_ptr().add(BULK_HEADER), len) }
    }

    /// Marks the buffer as handed to the peer; it is not claimed again until the peer gives
    /// it back.
    pub(crate) fn lend(&self) {
        self.buffer.lent().store(1, Ordering::Release);
    }
}

impl Drop for BulkClaim {
    fn drop(&mut self) {
        self.buffer.claimed.store(false, Ordering::Release);
    }
}

/// A peer's bulk buffer, as this process reads it.
pub(crate) struct PeerBulk {
    region: Region,
}

impl PeerBulk {
    pub(crate) fn new(region: Region) -> Option<PeerBulk> {
        (region.len() > BULK_HEADER).then_some(PeerBulk { region })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.region.len() - BULK_HEADER
    }

    /// `len` data bytes, read in place, if the buffer holds that many.
    pub(crate) fn data(&self, len: usize) -> Option<&[u8]> {
        if len > self.capacity() {
            return None;
        }
        // SAFETY: in bounds (checked); the mapping lives as long as `self`. This process never
        // writes a peer's buffer, so no `&mut` to these bytes exists here. The creator may
        // write them (if it breaks the lending rule): that changes values, never bounds, and
        // any value is a valid u8 — readers treat the bytes as untrusted input.
        Some(unsafe { std::slice::from_raw_parts(self.region.map.as_ptr().add(BULK_HEADER), len) })
    }

    /// Gives the buffer back to its creator.
    pub(crate) fn give_back(&self) {
        self.region.atomic_u32(0).store(0, Ordering::Release);
    }
}
