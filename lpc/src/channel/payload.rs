//! Payloads written straight into a slot and read straight out of it: the encoder writes into
//! the slot's inline area or spill buffer ([`PayloadWriter`]), and the decoder reads a spilled
//! payload where it lies ([`SpillSource`]), so that a large byte buffer is copied once on each
//! side instead of three times.

use std::cell::Cell;
use std::io;
use std::sync::MutexGuard;

use super::{Channel, ChannelError, Spill, MIN_SPILL};
use crate::shm::layout::{FRAME_SIZE, HEAD_PAYLOAD, HEAD_SIZE};
use crate::shm::Region;
use crate::sys::SharedMemory;
use crate::wire::codec::{Short, Sink, Source};
use crate::wire::frame::{FrameHeader, FLAG_SPILL};
use crate::wire::handshake::Message;

/// Small writes are gathered in a private buffer and flushed to the spill buffer this many
/// bytes at a time; a write at least this large goes straight into shared memory.
const STAGE: usize = 4096;

thread_local! {
    /// Each thread's spare buffers, one for writing payloads and one for reading them, lent
    /// to its calls' [`Buffer`]s: repeated calls with payloads larger than a slot's head reuse
    /// them (their memory already faulted in) without a call that fits the head touching them.
    static SPARES: [Cell<Vec<u8>>; 2] = const { [Cell::new(Vec::new()), Cell::new(Vec::new())] };
}

/// Largest buffer kept as a thread's spare; larger ones are freed after use. Keeping up to
/// 32 MiB per calling thread spares repeated large calls the page faults of fresh memory (the
/// benchmarks showed them dominating a 1 MiB call); `Loan` avoids the copies entirely.
pub(crate) const KEEP_BUFFER: usize = 32 << 20;

/// A private buffer for the part of a payload that is not in the slot's head: empty until
/// first needed, then the thread's spare (given back when dropped).
pub(crate) struct Buffer {
    pub(crate) vec: Vec<u8>,
    spare: usize,
}

impl Buffer {
    /// A buffer to stage a payload that is written.
    pub(crate) const fn for_writing() -> Buffer {
        Buffer {
            vec: Vec::new(),
            spare: 0,
        }
    }

    /// A buffer to copy a payload that is read into.
    pub(crate) const fn for_reading() -> Buffer {
        Buffer {
            vec: Vec::new(),
            spare: 1,
        }
    }

    /// The buffer, borrowing the thread's spare if it has no memory yet. (A call made while
    /// another's buffer holds the spare, from serde code, finds none and allocates.)
    pub(crate) fn get(&mut self) -> &mut Vec<u8> {
        if self.vec.capacity() == 0 {
            self.vec = SPARES
                .try_with(|spares| spares[self.spare].take())
                .unwrap_or_default();
            self.vec.clear();
        }
        &mut self.vec
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.vec
    }
}

impl Drop for Buffer {
    #[inline]
    fn drop(&mut self) {
        if self.vec.capacity() != 0 {
            self.give_back();
        }
    }
}

impl Buffer {
    #[cold]
    fn give_back(&mut self) {
        let vec = std::mem::take(&mut self.vec);
        if vec.capacity() <= KEEP_BUFFER {
            // At thread exit the spares may be gone already: the buffer is then just freed.
            let _ = SPARES.try_with(|spares| spares[self.spare].set(vec));
        }
    }
}

/// Where a finished payload is: what its frame must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) len: u64,
    pub(crate) flags: u32,
    pub(crate) spill_generation: u32,
    /// Where an inline payload waits until the frame is published ([`Channel::publish`]), so
    /// that all the stores to the slot's first cache line come in one burst (the peer keeps
    /// reading that line while it waits; every store that finds the line taken away costs
    /// another transfer).
    pub(crate) staged: Staged,
}

/// Where an inline payload waits for its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staged {
    /// Nowhere: spilled, or already in the slot.
    No,
    /// Here: a payload of up to [`HEAD_PAYLOAD`] bytes, written with the frame in one copy.
    Head([u8; HEAD_PAYLOAD]),
    /// In the writer's staging buffer.
    Stage,
}

/// Writes one payload for `slot`: into a private staging buffer while it is small enough to
/// travel inline, then into the slot's spill buffer (replaced by a larger one, announced to
/// the peer, when it runs out). Bytes past `limit` are counted, not kept, so that the caller
/// learns the full size of what it may not send.
pub(crate) struct PayloadWriter<'a> {
    channel: &'a Channel,
    slot: u32,
    limit: u64,
    /// The first bytes of the payload, while it is this small (a small call's arguments or
    /// result never touch `stage`); [`LEFT_HEAD`] once it outgrew them.
    head: [u8; HEAD_PAYLOAD],
    head_len: usize,
    stage: &'a mut Buffer,
    /// The slot's outgoing spill buffer, once the payload is known not to fit inline.
    spill: Option<MutexGuard<'a, Spill>>,
    /// Bytes already in the spill buffer (they precede those in `stage`).
    flushed: usize,
    /// Bytes written past the limit: counted, not kept.
    dropped: u64,
    /// Boxed: rare, and the writer is moved around on every call.
    failed: Option<Box<ChannelError>>,
}

impl Channel {
    /// A writer for the payload of `slot`, which the caller owns. `stage` is a private buffer
    /// to gather small writes in (cleared here; kept by the caller for the next payload).
    pub(crate) fn writer<'a>(
        &'a self,
        slot: u32,
        limit: u64,
        stage: &'a mut Buffer,
    ) -> PayloadWriter<'a> {
        stage.vec.clear();
        PayloadWriter {
            channel: self,
            slot,
            limit,
            head: [0; HEAD_PAYLOAD],
            head_len: 0,
            stage,
            spill: None,
            flushed: 0,
            dropped: 0,
            failed: None,
        }
    }

    /// Writes `payload` for `slot` whole (inline ones too, at once), then its frame,
    /// `header` with the payload's length and place.
    pub(crate) fn write_payload(
        &self,
        slot: u32,
        payload: &[u8],
        header: FrameHeader,
    ) -> Result<(), ChannelError> {
        let mut stage = Buffer::for_writing();
        let mut writer = self.writer(slot, u64::MAX, &mut stage);
        let _ = writer.put_all(payload);
        let written = writer.finish()?;
        self.publish(slot, header, written, stage.as_slice());
        Ok(())
    }

    /// Writes the frame of a finished payload into `slot`: `header` with the payload's
    /// length and place from `written`, after the staged inline payload (from `stage`, the
    /// writer's staging buffer) if it has one; a small payload goes with the frame in one
    /// copy. The frame is published by the state change that follows.
    #[inline]
    pub(crate) fn publish(&self, slot: u32, header: FrameHeader, written: Written, stage: &[u8]) {
        let view = self.slot(slot);
        let header = FrameHeader {
            flags: header.flags | written.flags,
            len: written.len,
            spill_generation: written.spill_generation,
            ..header
        };
        let mut head = [0u8; HEAD_SIZE];
        head[..FRAME_SIZE].copy_from_slice(&header.encode());
        match written.staged {
            Staged::Head(bytes) => head[FRAME_SIZE..].copy_from_slice(&bytes),
            Staged::Stage => {
                // Longer than the head (it left the head): the head repeats its first bytes.
                view.copy_inline_in(stage)
                    .expect("staged payloads fit inline");
                head[FRAME_SIZE..].copy_from_slice(&stage[..HEAD_PAYLOAD]);
            }
            Staged::No => {}
        }
        view.write_head(&head);
    }
}

/// `PayloadWriter::head_len` once the payload outgrew the head (more than any length there).
const LEFT_HEAD: usize = HEAD_PAYLOAD + 1;

/// Copies `src` (at most [`HEAD_PAYLOAD`] bytes) to the start of `dst`, which has room, in
/// fixed-size pieces (a call to `memcpy` costs more than the copy for a few bytes).
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        // One to three bytes: the first, the last and the middle one.
        dst[0] = src[0];
        dst[n - 1] = src[n - 1];
        dst[n / 2] = src[n / 2];
    }
}

impl PayloadWriter<'_> {
    /// Makes the spill buffer hold at least `end` bytes, keeping the `flushed` ones.
    fn reserve(&mut self, end: usize) -> Result<(), ChannelError> {
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self
                .spill
                .insert(Channel::spill(&self.channel.outgoing, self.slot)),
        };
        if spill.region.as_ref().is_some_and(|r| r.len() >= end) {
            return Ok(());
        }
        let size = end
            .checked_next_power_of_two()
            .unwrap_or(end)
            .max(MIN_SPILL);
        if self.flushed == 0 {
            // Nothing to carry over: the old buffer's memory goes back before the new one is
            // charged, so that one large payload after another fits a budget of twice its size.
            spill.region = None;
            spill.charge = None;
        }
        let charge = self.channel.charge(size)?;
        // Only this side writes it: the peer can map it read-only, no more.
        let (shm, mapping) = SharedMemory::create_one_writer("lpc-spill", size)?;
        let region = Region::new(mapping);
        if let Some(old) = &spill.region {
            old.copy_to(0, &region, 0, self.flushed)
                .expect("flushed bytes fit both buffers");
        }
        let generation = spill.generation.wrapping_add(1);
        // Announced now, before any frame names it; the descriptor closes when `shm` drops,
        // the mapping keeps the memory alive.
        self.channel.stream.send(
            &Message::Spill {
                slot: self.slot,
                generation,
            }
            .encode(),
            Some(&shm),
        )?;
        spill.generation = generation;
        spill.region = Some(region);
        spill.charge = charge;
        Ok(())
    }

    /// Copies `bytes` into the spill buffer after the flushed ones.
    fn spill_bytes(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        let end = self.flushed + bytes.len();
        self.reserve(end)?;
        let spill = self.spill.as_ref().expect("reserved above");
        spill
            .region
            .as_ref()
            .expect("reserved above")
            .copy_in(self.flushed, bytes)
            .expect("reserved above");
        self.flushed = end;
        Ok(())
    }

    /// Bytes written so far, including those past the limit.
    fn total(&self) -> u64 {
        (self.flushed + self.stage.vec.len()) as u64 + self.dropped
    }

    /// Moves the payload out of the head into the staging buffer: it outgrew the head.
    #[cold]
    fn leave_head(&mut self) {
        self.stage
            .get()
            .extend_from_slice(&self.head[..self.head_len]);
        self.head_len = LEFT_HEAD;
    }

    /// Whether `more` bytes would take the payload past the limit; if so they (and all that
    /// follow) are only counted.
    fn over_limit(&mut self, more: usize) -> bool {
        if self.dropped == 0 && self.total() + more as u64 <= self.limit {
            return false;
        }
        self.dropped += more as u64;
        true
    }

    /// Moves the staged bytes into the spill buffer.
    fn flush(&mut self) -> Result<(), ChannelError> {
        let stage = std::mem::take(&mut self.stage.vec);
        let staged = stage.len();
        let result = if self.over_limit(0) {
            self.dropped += staged as u64;
            Ok(())
        } else {
            self.spill_bytes(&stage)
        };
        self.stage.vec = stage;
        self.stage.vec.clear();
        result
    }

    fn fail(&mut self, e: ChannelError) -> Result<(), ()> {
        self.failed = Some(Box::new(e));
        Err(())
    }

    /// Takes the failure that stopped the writer, if any (the encoder only sees "full").
    pub(crate) fn take_failure(&mut self) -> Option<ChannelError> {
        self.failed.take().map(|e| *e)
    }

    /// Publishes nothing yet: puts a spilled payload where the frame will say it is (an inline
    /// one stays staged, see [`Written::staged`]) and returns what the frame must say.
    /// `TooLarge` if more than the limit was written.
    #[inline(always)]
    pub(crate) fn finish(self) -> Result<Written, ChannelError> {
        if self.head_len <= HEAD_PAYLOAD {
            if self.head_len as u64 > self.limit {
                return self.finish_spilled();
            }
            let written = Written {
                len: self.head_len as u64,
                flags: 0,
                spill_generation: 0,
                staged: Staged::Head(self.head),
            };
            // Nothing to drop while in the head (no spill lock, no failure; the rest are
            // borrows): skipping the drop glue keeps the small call's path short.
            std::mem::forget(self);
            return Ok(written);
        }
        if self.spill.is_none() && self.dropped == 0 && self.failed.is_none() {
            let view = self.channel.slot(self.slot);
            let len = self.stage.vec.len();
            if len <= view.inline_capacity() && len as u64 <= self.limit {
                std::mem::forget(self);
                return Ok(Written {
                    len: len as u64,
                    flags: 0,
                    spill_generation: 0,
                    staged: Staged::Stage,
                });
            }
        }
        self.finish_spilled()
    }

    #[cold]
    fn finish_spilled(mut self) -> Result<Written, ChannelError> {
        if self.head_len <= HEAD_PAYLOAD {
            self.leave_head();
        }
        if let Some(e) = self.failed.take() {
            return Err(*e);
        }
        let total = self.total();
        if total > self.limit {
            return Err(ChannelError::TooLarge {
                size: total,
                limit: self.limit,
            });
        }
        self.flush()?;
        let generation = self.spill.as_ref().expect("flushed above").generation;
        Ok(Written {
            len: total,
            flags: FLAG_SPILL,
            spill_generation: generation,
            staged: Staged::No,
        })
    }
}

impl PayloadWriter<'_> {
    #[cold]
    fn put_slow(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if self.over_limit(bytes.len()) {
            return Ok(());
        }
        let result = self.flush().and_then(|()| {
            if bytes.len() < STAGE {
                self.stage.vec.extend_from_slice(bytes);
                Ok(())
            } else {
                self.spill_bytes(bytes)
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }
}

impl Sink for PayloadWriter<'_> {
    #[inline]
    fn put(&mut self, byte: u8) -> Result<(), ()> {
        if self.head_len < HEAD_PAYLOAD {
            self.head[self.head_len] = byte;
            self.head_len += 1;
            return Ok(());
        }
        self.put_staged(&[byte])
    }

    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if self.head_len + bytes.len() <= HEAD_PAYLOAD {
            copy_small(&mut self.head[self.head_len..], bytes);
            self.head_len += bytes.len();
            return Ok(());
        }
        self.put_staged(bytes)
    }
}

impl PayloadWriter<'_> {
    /// Writes past the head: into the staging buffer, flushed to the spill buffer when full.
    #[inline(never)]
    fn put_staged(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if self.head_len <= HEAD_PAYLOAD {
            self.leave_head();
        }
        if self.stage.vec.len() + bytes.len() < STAGE {
            self.stage.vec.extend_from_slice(bytes);
            return Ok(());
        }
        self.put_slow(bytes)
    }
}

/// Small reads are served from a private copy of this many bytes at a time.
const CHUNK: usize = 256;

/// A spilled payload read where it lies: every byte is copied out before it is looked at, and
/// each at most once, so a peer that rewrites the buffer meanwhile can only make the payload
/// fail to decode (as any bad payload would), never change a value after it was checked.
pub(crate) struct SpillSource<'a> {
    region: &'a Region,
    /// Next unread byte of the region (after those in `chunk`).
    pos: usize,
    end: usize,
    /// Read-ahead for small reads (allocated on first use, so that a payload read only in
    /// large pieces never needs it).
    chunk: Vec<u8>,
    chunk_pos: usize,
    /// Private copies handed out by `take_temp`.
    temp: Vec<u8>,
    /// Where the rest of the payload is copied if a type needs to borrow from it; once that
    /// happened, `local` holds the unread rest.
    spare: Option<&'a mut Vec<u8>>,
    local: Option<&'a [u8]>,
}

impl<'a> SpillSource<'a> {
    pub(crate) fn new(region: &'a Region, len: usize, spare: &'a mut Vec<u8>) -> SpillSource<'a> {
        spare.clear();
        SpillSource {
            region,
            pos: 0,
            end: len,
            chunk: Vec::new(),
            chunk_pos: 0,
            temp: Vec::new(),
            spare: Some(spare),
            local: None,
        }
    }

    fn buffered(&self) -> usize {
        self.chunk.len() - self.chunk_pos
    }

    /// Appends the next `n` bytes (from the chunk, then the region) to `out`, which has room.
    fn read_to(&mut self, n: usize, out: &mut Vec<u8>) {
        let from_chunk = self.buffered().min(n);
        out.extend_from_slice(&self.chunk[self.chunk_pos..self.chunk_pos + from_chunk]);
        self.chunk_pos += from_chunk;
        let rest = n - from_chunk;
        if rest > 0 {
            self.region
                .copy_out(self.pos, rest, out)
                .expect("length checked against the payload, inside the region");
            self.pos += rest;
        }
    }

    /// The rest of the payload, copied once into private memory borrowed for `'a`.
    pub(crate) fn localize(&mut self) -> Result<&'a [u8], io::Error> {
        self.local_rest().map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("no memory for a {} byte payload", self.remaining()),
            )
        })
    }

    fn local_rest(&mut self) -> Result<&'a [u8], Short> {
        if let Some(local) = self.local {
            return Ok(local);
        }
        let n = self.remaining();
        let spare = self.spare.as_mut().expect("localized only once");
        spare.clear();
        spare.try_reserve(n).map_err(|_| Short::Memory(n))?;
        let spare = self.spare.take().expect("checked above");
        self.read_to(n, spare);
        let local: &'a [u8] = spare;
        self.local = Some(local);
        Ok(local)
    }

    /// Fails unless at least `n` payload bytes are left to take.
    fn has(&self, n: usize) -> Result<(), Short> {
        if n <= self.remaining() {
            Ok(())
        } else {
            Err(Short::End)
        }
    }
}

/// A private copy of `bytes`, if there is memory for it.
fn copied(bytes: &[u8]) -> Result<Vec<u8>, Short> {
    let mut out = Vec::new();
    out.try_reserve_exact(bytes.len())
        .map_err(|_| Short::Memory(bytes.len()))?;
    out.extend_from_slice(bytes);
    Ok(out)
}

impl<'a> Source<'a> for SpillSource<'a> {
    #[inline]
    fn pop(&mut self) -> Option<u8> {
        if let Some(local) = &mut self.local {
            let (&first, rest) = local.split_first()?;
            *local = rest;
            return Some(first);
        }
        if self.chunk_pos == self.chunk.len() {
            let n = (self.end - self.pos).min(CHUNK);
            if n == 0 {
                return None;
            }
            self.chunk.clear();
            self.region
                .copy_out(self.pos, n, &mut self.chunk)
                .expect("inside the payload, inside the region");
            self.pos += n;
            self.chunk_pos = 0;
        }
        let byte = self.chunk[self.chunk_pos];
        self.chunk_pos += 1;
        Some(byte)
    }

    fn take_temp(&mut self, n: usize) -> Result<&[u8], Short> {
        self.has(n)?;
        if let Some(local) = &mut self.local {
            let (taken, rest) = local.split_at(n);
            *local = rest;
            return Ok(taken);
        }
        let mut temp = std::mem::take(&mut self.temp);
        temp.clear();
        if temp.try_reserve(n).is_err() {
            return Err(Short::Memory(n));
        }
        self.read_to(n, &mut temp);
        self.temp = temp;
        Ok(&self.temp)
    }

    fn take_borrowed(&mut self, n: usize) -> Result<&'a [u8], Short> {
        self.has(n)?;
        let local = self.local_rest()?;
        let (taken, rest) = local.split_at(n);
        self.local = Some(rest);
        Ok(taken)
    }

    fn take_owned(&mut self, n: usize) -> Result<Vec<u8>, Short> {
        self.has(n)?;
        if let Some(local) = &mut self.local {
            let (taken, rest) = local.split_at(n);
            *local = rest;
            return copied(taken);
        }
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| Short::Memory(n))?;
        self.read_to(n, &mut out);
        Ok(out)
    }

    fn remaining(&self) -> usize {
        match self.local {
            Some(local) => local.len(),
            None => self.buffered() + (self.end - self.pos),
        }
    }
}
