//! The layout of a connection's shared region.
//!
//! ```text
//! 0    header (128 bytes)
//!        0  magic "LPC1"      4  layout version
//!        8  slot count       12  slot size (bytes, multiple of 64)
//!       16  region length (u64)
//!       24  slots used (client: one past the highest slot it has ever used)
//!       28  one-way queue size (bytes of its ring; 0: the connection has no queue)
//!       64  doorbell (futex word: bumped by the client when the service sleeps)
//!       68  service-sleeping flag
//! 128  lent words of the client's bulk buffers (64 × u32), then of the service's (64 × u32):
//!      1 while the buffer's creator has lent it for a call or result, set back to 0 by the
//!      receiver when it drops its `Loan` (see `shm::bulk`; reached through a second mapping
//!      of the region, which loans keep alive)
//! 640  slot 0, slot 1, ... each `slot size` bytes:
//!        0  state (futex word: FREE, REQUEST, REQUEST_FIXED, SERVING, REPLY, ABANDONED)
//!        4  client-waiting flag
//!        8  frame header (wire::FrameHeader, 40 bytes)
//!       48  inline payload (slot size - 112 bytes)
//!     size - 64  taken (the low 32 bits of the call id the service last took without a
//!                compare-and-swap on the state; on its own cache line, see `channel::protocol`)
//!     size - 60  service-waiting flag (slots 1 and up: their own service thread sleeps on
//!                the state word)
//! then, if the queue size is not 0, the one-way queue (`channel::queue`):
//!        0  tail (client: bytes ever written, wrapping u32)
//!        4  sender-waiting flag (client: set while a sender waits for room, and the futex it
//!           sleeps on; the service clears it when it wakes the sender)
//!       64  head (service: bytes ever consumed, wrapping u32)
//!      128  ring (queue size bytes, a power of two): records of an 8-byte header (payload
//!           length with bit 31 set for JSON, or u32::MAX to skip to the ring's start; then
//!           the method id) and the payload, padded to 8 bytes
//! ```
//!
//! Each slot starts on its own cache line so that concurrent calls on different slots do not
//! contend, and a small call (arguments or result up to 16 bytes) moves a single cache line
//! each way: state, frame header and payload together. Payloads larger than the inline area go to the slot's spill buffer, a separate
//! shared-memory object (see `channel`).

use std::sync::Arc;

use super::{OutOfBounds, Region};
use crate::sys::{AtomicU32, SharedMemory};

pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"LPC1");
/// 4: a request without deadline is its own state (REQUEST_FIXED), see `channel::state`.
/// 5: a service-waiting flag per slot (each slot from 1 up has its own service thread).
/// 6: the loans' lent words in the header, out of the buffers (which the peer maps read-only).
/// 7: the one-way queue after the slots, its size in the header.
pub(crate) const LAYOUT_VERSION: u32 = 7;
pub(crate) const HEADER_SIZE: usize = LENT_WORDS + 2 * MAX_BULK_BUFFERS * 4;
/// At most this many bulk buffers (loans) each side may create per connection.
pub(crate) const MAX_BULK_BUFFERS: usize = 64;
const LENT_WORDS: usize = 128;
/// State, waiting flag and frame header; the inline payload starts right after, so that a
/// small payload (up to 16 bytes) shares the cache line of the state word.
pub(crate) const SLOT_HEADER_SIZE: usize = 48;
pub(crate) const FRAME_SIZE: usize = SLOT_HEADER_SIZE - FRAME_OFFSET;
/// The slot's last cache line: the taken word.
const SLOT_TRAILER_SIZE: usize = 64;
const FRAME_OFFSET: usize = 8;
/// The frame header and the first inline payload bytes: the rest of the slot's first cache
/// line, copied in or out at once (a small call's whole request or reply).
pub(crate) const HEAD_SIZE: usize = 64 - FRAME_OFFSET;
/// The payload bytes in a slot's head.
pub(crate) const HEAD_PAYLOAD: usize = HEAD_SIZE - FRAME_SIZE;
// The smallest slot's inline area holds the head's payload bytes: writing a head never
// reaches the slot's trailer.
const _: () =
    assert!(MIN_SLOT_SIZE as usize - SLOT_HEADER_SIZE - SLOT_TRAILER_SIZE >= HEAD_PAYLOAD);
pub(crate) const SLOTS_USED: usize = 24;
const DOORBELL: usize = 64;
const SERVICE_SLEEPING: usize = 68;
const QUEUE_SIZE: usize = 28;
/// The queue's control lines before its ring: the client's (tail, sender waiting), the
/// service's (head).
pub(crate) const QUEUE_CONTROL: usize = 128;
const QUEUE_HEAD: usize = 64;
/// Bounds of a one-way queue's ring (a power of two).
pub(crate) const MIN_QUEUE: u32 = 4096;
pub(crate) const MAX_QUEUE: u32 = 16 << 20;

/// Upper bounds on what a peer may announce, so a hostile handshake cannot make us map or
/// iterate absurd amounts.
pub(crate) const MAX_SLOTS: u32 = 64;
pub(crate) const MAX_SLOT_SIZE: u32 = 1 << 20;
pub(crate) const MIN_SLOT_SIZE: u32 = 128;

/// The shape of a region: how many slots, how large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) slot_count: u32,
    pub(crate) slot_size: u32,
    /// Bytes of the one-way queue's ring; 0 for none.
    pub(crate) queue_size: u32,
}

impl Geometry {
    /// Checks the bounds; the error says what is wrong.
    pub(crate) fn validate(self) -> Result<Geometry, String> {
        if self.slot_count == 0 || self.slot_count > MAX_SLOTS {
            return Err(format!(
                "slot count {} not in 1..={MAX_SLOTS}",
                self.slot_count
            ));
        }
        if self.slot_size < MIN_SLOT_SIZE
            || self.slot_size > MAX_SLOT_SIZE
            || !self.slot_size.is_multiple_of(64)
        {
            return Err(format!(
                "slot size {} not a multiple of 64 in {MIN_SLOT_SIZE}..={MAX_SLOT_SIZE}",
                self.slot_size
            ));
        }
        if self.queue_size != 0
            && (!self.queue_size.is_power_of_two()
                || self.queue_size < MIN_QUEUE
                || self.queue_size > MAX_QUEUE)
        {
            return Err(format!(
                "one-way queue size {} not 0 or a power of two in {MIN_QUEUE}..={MAX_QUEUE}",
                self.queue_size
            ));
        }
        Ok(self)
    }

    pub(crate) fn region_len(self) -> usize {
        let queue = match self.queue_size {
            0 => 0,
            size => QUEUE_CONTROL + size as usize,
        };
        self.queue_offset() + queue
    }

    /// Where the one-way queue starts (right after the slots).
    fn queue_offset(self) -> usize {
        HEADER_SIZE + self.slot_count as usize * self.slot_size as usize
    }

    pub(crate) fn inline_capacity(self) -> usize {
        self.slot_size as usize - SLOT_HEADER_SIZE - SLOT_TRAILER_SIZE
    }

    fn slot_offset(self, index: u32) -> usize {
        HEADER_SIZE + index as usize * self.slot_size as usize
    }
}

/// Which side of a connection: the one that created the region, or the one that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client = 0,
    Service = 1,
}

/// A connection's region with a validated header.
#[derive(Debug)]
pub(crate) struct ConnectionMemory {
    region: Region,
    /// A second mapping of the same region, for the lent words: loans keep it (and only it)
    /// alive, so a loan never points into memory unmapped under it.
    lent: Arc<Region>,
    geometry: Geometry,
    side: Side,
}

/// The lent word of one bulk buffer (see the layout), with the mapping it lies in.
#[derive(Debug, Clone)]
pub(crate) struct LentWord {
    region: Arc<Region>,
    offset: usize,
}

impl LentWord {
    pub(crate) fn get(&self) -> &AtomicU32 {
        self.region.atomic_u32(self.offset)
    }
}

/// Maps `shm` twice (see [`ConnectionMemory::lent`]).
fn map_twice(shm: &SharedMemory) -> Result<(Region, Arc<Region>), String> {
    let map = |e: std::io::Error| format!("cannot map the connection's shared memory: {e}");
    let region = Region::new(shm.map().map_err(map)?);
    let lent = Arc::new(Region::new(shm.map().map_err(map)?));
    Ok((region, lent))
}

impl ConnectionMemory {
    /// Lays out a fresh (zero-filled) region: the service side.
    pub(crate) fn initialize(
        shm: &SharedMemory,
        geometry: Geometry,
    ) -> Result<ConnectionMemory, String> {
        let geometry = geometry.validate()?;
        let (region, lent) = map_twice(shm)?;
        if region.len() < geometry.region_len() {
            return Err("region smaller than its geometry".into());
        }
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        header[8..12].copy_from_slice(&geometry.slot_count.to_le_bytes());
        header[12..16].copy_from_slice(&geometry.slot_size.to_le_bytes());
        header[16..24].copy_from_slice(&(geometry.region_len() as u64).to_le_bytes());
        // Written apart: the word between (24, slots used) is only ever used atomically.
        region
            .copy_in(0, &header)
            .and_then(|()| region.copy_in(QUEUE_SIZE, &geometry.queue_size.to_le_bytes()))
            .map_err(|_| "region too small".to_string())?;
        Ok(ConnectionMemory {
            region,
            lent,
            geometry,
            side: Side::Service,
        })
    }

    /// Adopts a region received from the service: the header must match the geometry the
    /// handshake announced, and the object must be exactly as large as it needs.
    pub(crate) fn open(shm: &SharedMemory, geometry: Geometry) -> Result<ConnectionMemory, String> {
        let geometry = geometry.validate()?;
        if shm.len() != geometry.region_len() {
            return Err(format!(
                "shared region is {} bytes, its geometry needs {}",
                shm.len(),
                geometry.region_len()
            ));
        }
        let (region, lent) = map_twice(shm)?;
        if region.len() < geometry.region_len() {
            return Err(format!(
                "shared region is {} bytes, its geometry needs {}",
                region.len(),
                geometry.region_len()
            ));
        }
        // Read apart from the word between (24, slots used), which is only used atomically.
        let (header, queue): ([u8; 24], [u8; 4]) = region
            .read_array(0)
            .and_then(|h| Ok((h, region.read_array(QUEUE_SIZE)?)))
            .map_err(|_| "region too small".to_string())?;
        let word = |i: usize| {
            let bytes = if i == QUEUE_SIZE {
                &queue[..]
            } else {
                &header[i..i + 4]
            };
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        };
        if word(0) != MAGIC {
            return Err("shared region has a bad magic number".into());
        }
        if word(4) != LAYOUT_VERSION {
            return Err(format!(
                "shared region layout version {} (expected {LAYOUT_VERSION})",
                word(4)
            ));
        }
        if word(8) != geometry.slot_count
            || word(12) != geometry.slot_size
            || word(QUEUE_SIZE) != geometry.queue_size
        {
            return Err("shared region header disagrees with the handshake".into());
        }
        Ok(ConnectionMemory {
            region,
            lent,
            geometry,
            side: Side::Client,
        })
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// This side of the connection.
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// The lent word of bulk buffer `id` created by `creator`.
    ///
    /// # Panics
    /// If `id` is not below [`MAX_BULK_BUFFERS`] (ids are checked when received).
    pub(crate) fn lent(&self, creator: Side, id: u32) -> LentWord {
        assert!((id as usize) < MAX_BULK_BUFFERS, "bulk buffer id {id}");
        LentWord {
            region: self.lent.clone(),
            offset: LENT_WORDS + (creator as usize * MAX_BULK_BUFFERS + id as usize) * 4,
        }
    }

    /// How many slots, from slot 0, the client has ever used: the service looks for requests
    /// in those only, so that an idle connection keeps only the pages of the slots it used
    /// resident, not all of them. Written by the client before its first request in a slot;
    /// a client that lies only hides its own requests (the service clamps it to the count).
    #[inline]
    pub(crate) fn slots_used(&self) -> &AtomicU32 {
        self.region.atomic_u32(SLOTS_USED)
    }

    /// The service's doorbell word.
    pub(crate) fn doorbell(&self) -> &AtomicU32 {
        self.region.atomic_u32(DOORBELL)
    }

    /// Nonzero while the service is (about to be) asleep on the doorbell.
    pub(crate) fn service_sleeping(&self) -> &AtomicU32 {
        self.region.atomic_u32(SERVICE_SLEEPING)
    }

    /// The one-way queue, if the connection has one.
    pub(crate) fn queue(&self) -> Option<QueueView<'_>> {
        if self.geometry.queue_size == 0 {
            return None;
        }
        let base = self.geometry.queue_offset();
        Some(QueueView {
            region: &self.region,
            base,
            size: self.geometry.queue_size as usize,
        })
    }

    /// The view of slot `index`.
    ///
    /// # Panics
    /// If `index` is not below the slot count (indices come from our own loops and bitmaps).
    pub(crate) fn slot(&self, index: u32) -> SlotView<'_> {
        assert!(
            index < self.geometry.slot_count,
            "slot index {index} out of range"
        );
        SlotView {
            region: &self.region,
            base: self.geometry.slot_offset(index),
            inline_capacity: self.geometry.inline_capacity(),
            taken: self.geometry.slot_offset(index) + self.geometry.slot_size as usize
                - SLOT_TRAILER_SIZE,
        }
    }
}

/// The one-way queue: its control words and its ring. Offsets into the ring are reduced
/// modulo its size by the caller (`channel::queue`) and every access is bounds-checked here.
#[derive(Clone, Copy)]
pub(crate) struct QueueView<'a> {
    region: &'a Region,
    base: usize,
    size: usize,
}

impl<'a> QueueView<'a> {
    /// Bytes of the ring (a power of two).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Bytes the client has ever written (wrapping): written by the client only.
    pub(crate) fn tail(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.base)
    }

    /// Nonzero while a client thread waits for room (it sleeps on this word, which the
    /// service clears when it wakes it).
    pub(crate) fn sender_waiting(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.base + 4)
    }

    /// Bytes the service has ever consumed (wrapping): written by the service only.
    pub(crate) fn head(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.base + QUEUE_HEAD)
    }

    /// Copies `bytes` into the ring at `offset` (which must leave room for them: no wrap).
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > self.size)
        {
            return Err(OutOfBounds);
        }
        self.region
            .copy_in(self.base + QUEUE_CONTROL + offset, bytes)
    }

    /// Copies `N` bytes of the ring at `offset` out.
    pub(crate) fn read_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], OutOfBounds> {
        if offset.checked_add(N).is_none_or(|end| end > self.size) {
            return Err(OutOfBounds);
        }
        self.region.read_array(self.base + QUEUE_CONTROL + offset)
    }

    /// Copies `len` bytes of the ring at `offset` to the end of `out`.
    pub(crate) fn copy_out(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), OutOfBounds> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(OutOfBounds);
        }
        self.region
            .copy_out(self.base + QUEUE_CONTROL + offset, len, out)
    }
}

/// One call slot.
#[derive(Clone, Copy)]
pub(crate) struct SlotView<'a> {
    region: &'a Region,
    base: usize,
    inline_capacity: usize,
    taken: usize,
}

impl<'a> SlotView<'a> {
    /// The state word (also the futex the client sleeps on).
    pub(crate) fn state(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.base)
    }

    /// The call (low 32 bits of its id) the service last took without changing the state.
    pub(crate) fn taken(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.taken)
    }

    /// Nonzero while the client sleeps on the state word.
    pub(crate) fn client_waiting(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.base + 4)
    }

    /// Nonzero while the service thread of this slot (slots 1 and up have one each) sleeps on
    /// the state word, waiting for a request. On the slot's last cache line, beside the taken
    /// word: only a client calling from several threads at once reads it.
    pub(crate) fn service_waiting(&self) -> &'a AtomicU32 {
        self.region.atomic_u32(self.taken + 4)
    }

    /// The frame header and the first [`HEAD_PAYLOAD`] inline payload bytes, in one copy.
    #[inline]
    pub(crate) fn read_head(&self) -> [u8; HEAD_SIZE] {
        self.region
            .read_array(self.base + FRAME_OFFSET)
            .expect("slot head inside the validated region")
    }

    /// Writes the frame header and the first [`HEAD_PAYLOAD`] inline payload bytes at once.
    #[inline]
    pub(crate) fn write_head(&self, head: &[u8; HEAD_SIZE]) {
        self.region
            .write_array(self.base + FRAME_OFFSET, head)
            .expect("slot head inside the validated region")
    }

    pub(crate) fn inline_capacity(&self) -> usize {
        self.inline_capacity
    }

    /// Copies `len` inline payload bytes out; `len` must have been checked against
    /// [`SlotView::inline_capacity`].
    pub(crate) fn copy_inline_out(&self, len: usize, out: &mut Vec<u8>) -> Result<(), OutOfBounds> {
        if len > self.inline_capacity {
            return Err(OutOfBounds);
        }
        self.region.copy_out(self.base + SLOT_HEADER_SIZE, len, out)
    }

    pub(crate) fn copy_inline_in(&self, bytes: &[u8]) -> Result<(), OutOfBounds> {
        if bytes.len() > self.inline_capacity {
            return Err(OutOfBounds);
        }
        self.region.copy_in(self.base + SLOT_HEADER_SIZE, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEOMETRY: Geometry = Geometry {
        slot_count: 2,
        slot_size: 128,
        queue_size: 0,
    };

    fn region(len: usize) -> SharedMemory {
        SharedMemory::create("layout-test", len).unwrap()
    }

    #[test]
    fn a_region_opens_with_the_geometry_it_was_laid_out_with() {
        let shm = region(GEOMETRY.region_len());
        ConnectionMemory::initialize(&shm, GEOMETRY).unwrap();
        let reopened = ConnectionMemory::open(&shm, GEOMETRY).unwrap();
        assert_eq!(reopened.geometry(), GEOMETRY);
        let other = Geometry {
            slot_count: 1,
            slot_size: 128,
            queue_size: 0,
        };
        let shm = region(other.region_len());
        ConnectionMemory::initialize(&shm, GEOMETRY).unwrap_err();
        ConnectionMemory::initialize(&region(GEOMETRY.region_len()), GEOMETRY).unwrap();
    }

    #[test]
    fn a_header_that_disagrees_with_the_handshake_is_refused() {
        let shm = region(GEOMETRY.region_len());
        ConnectionMemory::initialize(&shm, GEOMETRY).unwrap();
        // Same length, other geometry.
        let other = Geometry {
            slot_count: 1,
            slot_size: 128 + GEOMETRY.slot_size,
            queue_size: 0,
        };
        assert_eq!(other.region_len(), GEOMETRY.region_len());
        let err = ConnectionMemory::open(&shm, other).unwrap_err();
        assert!(err.contains("disagrees"), "{err}");
    }

    #[test]
    fn a_region_without_our_header_is_refused() {
        let shm = region(GEOMETRY.region_len());
        let err = ConnectionMemory::open(&shm, GEOMETRY).unwrap_err();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn a_region_of_another_size_than_its_geometry_is_refused() {
        for len in [GEOMETRY.region_len() - 64, GEOMETRY.region_len() + 4096] {
            let shm = region(len);
            let err = ConnectionMemory::open(&shm, GEOMETRY).unwrap_err();
            assert!(err.contains("needs"), "{err}");
        }
    }

    #[test]
    fn absurd_geometries_are_refused() {
        for g in [
            Geometry {
                slot_count: 0,
                slot_size: 128,
                queue_size: 0,
            },
            Geometry {
                slot_count: 65,
                slot_size: 128,
                queue_size: 0,
            },
            Geometry {
                slot_count: 1,
                slot_size: 100,
                queue_size: 0,
            },
            Geometry {
                slot_count: 1,
                slot_size: 64,
                queue_size: 0,
            },
            Geometry {
                slot_count: 1,
                slot_size: 2 << 20,
                queue_size: 0,
            },
        ] {
            assert!(g.validate().is_err(), "{g:?}");
        }
    }
}
