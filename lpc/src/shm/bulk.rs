//! Bulk buffers: shared memory that one side fills in place and the other reads — the memory
//! behind `lpc::Loan`.
//!
//! Who may write what, when:
//!
//! - **The creator** maps its buffer read-write and seals it against any other writable
//!   mapping before it sends it (`SharedMemory::create_one_writer`): the peer can map it
//!   read-only, no more. Within the creator, one [`BulkClaim`] at a time uses a buffer (an
//!   atomic claim flag guards it). Together, that is what makes the creator's `&mut [u8]` and
//!   `&[u8]` into it sound: no other thread or process can write those bytes.
//! - **The creator writes only while the buffer is not lent.** Its lent word — in the
//!   connection's region, not in the buffer, so that the buffer itself stays read-only for the
//!   peer — is 1 from the moment the creator sends a handle to it until the receiver drops its
//!   `Loan`; [`BulkClaim::data_mut`] is refused in between.
//! - **The receiver** maps the buffer read-only and reads it only by copying ([`PeerBulk::read`]):
//!   the creator can write it at any moment if it breaks the lending rule, so no reference into
//!   it is ever formed there; a misbehaving creator changes the values a receiver copies out,
//!   never their bounds, which come from the receiver's own mapping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::layout::LentWord;
use super::{OutOfBounds, Region};

/// A bulk buffer this process created.
pub(crate) struct BulkBuffer {
    id: u32,
    region: Region,
    lent: LentWord,
    claimed: AtomicBool,
}

impl BulkBuffer {
    /// Wraps a fresh mapping of our own (writable here, read-only for the peer) of at least 1
    /// byte, with the lent word of its id.
    pub(crate) fn new(id: u32, region: Region, lent: LentWord) -> BulkBuffer {
        assert!(
            region.len() > 0 && region.writable(),
            "a bulk buffer of our own is writable"
        );
        lent.get().store(0, Ordering::Release);
        BulkBuffer {
            id,
            region,
            lent,
            claimed: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Data bytes available.
    pub(crate) fn capacity(&self) -> usize {
        self.region.len()
    }

    /// Whether the peer still holds the buffer.
    pub(crate) fn is_lent(&self) -> bool {
        self.lent.get().load(Ordering::Acquire) != 0
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

    /// The first `len` bytes, to fill; `None` while the buffer is lent (the peer may be
    /// reading it).
    ///
    /// # Panics
    /// If `len` exceeds the capacity (callers size the buffer first).
    pub(crate) fn data_mut(&mut self, len: usize) -> Option<&mut [u8]> {
        assert!(len <= self.buffer.capacity(), "loan longer than its buffer");
        if self.buffer.is_lent() {
            return None;
        }
        // SAFETY: the range [0, len) lies inside the mapping (checked against the capacity),
        // which is writable (checked by `BulkBuffer::new`) and outlives the borrow (the claim
        // holds an Arc to it). No other process can write it: its object is sealed against
        // writable mappings other than ours (`create_one_writer`). In this process no other
        // reference to it exists: the claim flag admits one BulkClaim at a time, and this
        // borrow is tied to `&mut self`. The peer may read the bytes only while the buffer is
        // lent, which it is not now; any byte value is a valid u8 for its later reads.
        Some(unsafe { std::slice::from_raw_parts_mut(self.buffer.region.map.as_ptr(), len) })
    }

    /// The first `len` bytes, to read.
    pub(crate) fn data(&self, len: usize) -> &[u8] {
        assert!(len <= self.buffer.capacity(), "loan longer than its buffer");
        // SAFETY: as in `data_mut`: in bounds, mapped while the claim lives, written by no
        // other process (sealed) and, in this process, only through `data_mut`, which needs
        // `&mut self` and so cannot run while this shared borrow lives.
        unsafe { std::slice::from_raw_parts(self.buffer.region.map.as_ptr(), len) }
    }

    /// Marks the buffer as handed to the peer; it is not claimed again, nor written, until the
    /// peer gives it back.
    pub(crate) fn lend(&self) {
        self.buffer.lent.get().store(1, Ordering::Release);
    }
}

impl Drop for BulkClaim {
    fn drop(&mut self) {
        self.buffer.claimed.store(false, Ordering::Release);
    }
}

/// A peer's bulk buffer, mapped read-only, as this process reads it.
pub(crate) struct PeerBulk {
    region: Region,
    lent: LentWord,
}

impl PeerBulk {
    pub(crate) fn new(region: Region, lent: LentWord) -> Option<PeerBulk> {
        (region.len() > 0).then_some(PeerBulk { region, lent })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.region.len()
    }

    /// Copies the bytes at `offset` into `out` (a snapshot: the creator may be changing them).
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.region.read_into(offset, out)
    }

    /// Gives the buffer back to its creator.
    pub(crate) fn give_back(&self) {
        self.lent.get().store(0, Ordering::Release);
    }
}
