//! The consistency core of a shared value: its layout, the seqlock over its two copies, the
//! writer lock and the change notification, over a [`Region`] (docs/architecture.md, "Shared
//! values and named segments"). Nothing here knows names, shapes or types; `value` builds
//! the shared value on it, and `model` runs this very code under loom (`cfg(loom)`), where
//! the region is the model's memory and every word a loom atomic.
//!
//! ```text
//! 0     header: magic, version and kind, length, layout, shape fingerprint (8-byte words)
//! 64    control line: writer lock (owner thread), published generation, futex words
//! 128   the value's shape (postcard of `(Shape, TypeTable)`)
//! data  two copies, each: sequence word, length word, the encoded value in 64-bit words
//! ```
//!
//! A write goes to the copy that is not published, inside that copy's seqlock, and is
//! published by one atomic store of the generation (whose low bit names the copy). A writer
//! killed mid-write leaves only the unpublished copy torn, with an odd sequence word; readers
//! never look at it. Writers take a lock word holding the owner thread's identity; a waiter
//! that finds the owner dead takes the lock over.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shm::{OutOfBounds, Region};
use crate::sys::{
    fence, monotonic_ns, thread_alive, thread_identity, wait, wake, AtomicU32, AtomicU64,
    WaitOutcome,
};

// Under loom a spin is a yield to the scheduler (else loom explores the loop forever), and
// nothing spins for long (`sys::model`).
#[cfg(loom)]
use loom::{hint::spin_loop, thread::yield_now};
#[cfg(not(loom))]
use std::{hint::spin_loop, thread::yield_now};

// The control line.
pub(super) const C_LOCK: usize = 64;
pub(super) const C_CURRENT: usize = 72;
const C_LOCK_GEN: usize = 80;
const C_LOCK_WAITERS: usize = 84;
const C_CHANGE: usize = 88;
const C_CHANGE_WAITERS: usize = 92;
pub(super) const SHAPE_OFFSET: usize = 128;
// In each copy.
const COPY_SEQ: usize = 0;
const COPY_LEN: usize = 8;
const COPY_DATA: usize = 16;

/// Values up to this many bytes are copied out to the stack by a read, larger ones to the heap.
const STACK_BYTES: usize = 256;
/// Tries at taking the writer lock before sleeping on it (none under loom: see the imports).
const LOCK_SPINS: u32 = if cfg!(loom) { 1 } else { 100 };
/// A writer's wait for the lock sleeps in slices this long, checking the owner's liveness
/// after each: a writer killed holding the lock delays the others by about this much.
const LOCK_SLICE: Duration = Duration::from_millis(5);
/// A change waiter re-checks the generation this often (a writer killed between publishing and
/// waking the waiters would otherwise leave them asleep until the next write).
const CHANGE_SLICE: Duration = Duration::from_millis(250);
/// How long a read may keep finding copies rewritten under it (only a writer that never stops
/// rewriting, or a hostile one, can make a read take that long).
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The layout of a value object of this shape size and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) shape_len: usize,
    pub(super) capacity: usize,
    pub(super) data_offset: usize,
    pub(super) copy_stride: usize,
    pub(super) total_len: usize,
}

impl Layout {
    pub(super) fn new(shape_len: usize, capacity: usize) -> Layout {
        let data_offset = round_up(SHAPE_OFFSET + shape_len, 64);
        let copy_stride = round_up(COPY_DATA + round_up(capacity.max(1), 8), 64);
        Layout {
            shape_len,
            capacity,
            data_offset,
            copy_stride,
            total_len: round_up(data_offset + 2 * copy_stride, 4096),
        }
    }

    pub(super) fn copy(&self, index: u64) -> usize {
        self.data_offset + (index & 1) as usize * self.copy_stride
    }
}

/// Writes the value a fresh object is created with, `bytes` (at most the capacity): generation
/// 0 publishes copy 0, with sequence 2 (even: complete), before any other process can reach
/// the memory.
pub(super) fn initialize(
    region: &Region,
    layout: &Layout,
    bytes: &[u8],
) -> Result<(), OutOfBounds> {
    let copy = layout.copy(0);
    region.store_words(copy + COPY_SEQ, &[2, bytes.len() as u64])?;
    region.store_words(copy + COPY_DATA, &bytes_as_words(bytes))
}

/// Why the seqlock refused: `value` words it with the value's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A read found a consistent copy claiming `len` bytes, beyond the capacity: a hostile
    /// writer's.
    BeyondCapacity { len: usize, capacity: usize },
    /// A read found no consistent copy within [`READ_TIMEOUT`].
    NoConsistentCopy,
    /// This thread already holds the writer lock.
    Reentrant,
    /// The writer lock stayed held by `owner` for `timeout`.
    LockTimeout { owner: u64, timeout: Duration },
    /// A write of `len` bytes, more than the capacity.
    TooLarge { len: usize, capacity: usize },
    /// A copy fell outside the region (a bug in lpc: the layout was checked).
    OutOfBounds,
    /// A fixed-size read found a published length other than its type's.
    WrongLength { len: u64, expected: usize },
}

/// What a read saw of the copy its generation publishes, before reading its words.
struct Published<'a> {
    generation: u64,
    /// The copy's offset.
    offset: usize,
    /// Its sequence word, and the (even) value it held.
    seq: &'a AtomicU64,
    s1: u64,
    /// Its published length (unchecked).
    len: u64,
}

/// The backoff of a reader that found the copy rewritten under it: spin, yield every 64
/// tries, give up after [`READ_TIMEOUT`] (a writer that never stops, or a hostile one).
#[derive(Default)]
struct Retry {
    tries: u32,
    deadline: Option<u64>,
}

impl Retry {
    #[cold]
    fn again(&mut self) -> Result<(), Refusal> {
        self.tries += 1;
        if cfg!(loom) || self.tries.is_multiple_of(64) {
            yield_now();
            let deadline = *self
                .deadline
                .get_or_insert_with(|| deadline_after(READ_TIMEOUT));
            if monotonic_ns() > deadline {
                return Err(Refusal::NoConsistentCopy);
            }
        } else {
            spin_loop();
        }
        Ok(())
    }
}

/// Where a write stands, for the crash tests' hooks (`name::hook`) and the loom model's
/// writer that dies: given each step's name, says whether the writer goes on.
pub(super) type Steps<'a> = &'a dyn Fn(&'static str) -> bool;

/// The seqlock of one value object, over its checked layout.
#[derive(Debug)]
pub(super) struct Seqlock {
    pub(super) region: Region,
    pub(super) layout: Layout,
    pub(super) lock_timeout: Duration,
}

/// Proof that this thread holds the writer lock; released on drop.
pub(super) struct WriterLock<'a> {
    seqlock: &'a Seqlock,
    me: u64,
}

/// The sequence word of the copy `generation` was written to, once that write completed, if no
/// writer ever died writing to that copy: each copy's word starts at 0 (copy 0's at 2, for the
/// value it is created with, generation 0) and grows by 2 a write, and the copies take turns.
/// A writer that dies leaves its copy's word odd, and the next write of that copy then adds 3
/// more: from then on the word is larger than this for every generation of that copy.
fn sequence_after(generation: u64) -> u64 {
    generation.wrapping_add(2 - (generation & 1))
}

fn deadline_after(d: Duration) -> u64 {
    monotonic_ns().saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Seqlock {
    #[inline]
    fn word(&self, offset: usize) -> &AtomicU64 {
        self.region
            .atomic_u64_at(offset)
            .expect("control words are inside the checked layout")
    }

    #[inline]
    fn word32(&self, offset: usize) -> &AtomicU32 {
        self.region
            .atomic_u32_at(offset)
            .expect("control words are inside the checked layout")
    }

    /// The current version: the number of writes published so far.
    pub(super) fn version(&self) -> u64 {
        self.word(C_CURRENT).load(Ordering::Acquire)
    }

    /// A consistent copy of the published value's bytes, given to `decode`; with its version.
    /// The copy goes to a buffer on the stack for values up to [`STACK_BYTES`] (no heap
    /// allocation), to a `Vec` above.
    #[inline(always)]
    pub(super) fn read<R>(&self, decode: impl FnOnce(&[u8]) -> R) -> Result<(R, u64), Refusal> {
        let mut stack = [0u8; STACK_BYTES];
        let mut heap = Vec::new();
        let current = self.word(C_CURRENT);
        let mut retry = Retry::default();
        loop {
            if let Some(copy) = self.published(current) {
                let len = usize::try_from(copy.len).unwrap_or(usize::MAX);
                // A length beyond the capacity is either a copy being rewritten (the sequence
                // check below says) or a hostile writer's: never used for the copy.
                if len <= self.layout.capacity {
                    let buf: &mut [u8] = if len <= STACK_BYTES {
                        &mut stack[..len]
                    } else {
                        heap.resize(len, 0);
                        &mut heap[..]
                    };
                    self.region
                        .load_word_bytes(copy.offset + COPY_DATA, buf)
                        .expect("copies are inside the checked layout");
                    if self.unchanged(&copy) {
                        return Ok((decode(buf), copy.generation));
                    }
                } else if self.unchanged(&copy) {
                    return Err(Refusal::BeyondCapacity {
                        len,
                        capacity: self.layout.capacity,
                    });
                }
            }
            retry.again()?;
        }
    }

    /// A consistent copy of the published value into `out`, whose length is the value's
    /// (a fixed-size value's: [`SharedPlain`](super::SharedPlain)); its version. The read of
    /// [`Seqlock::read`] with no buffer between: the words go straight into `out`.
    #[inline(always)]
    pub(super) fn read_exact_into(&self, out: &mut [u8]) -> Result<u64, Refusal> {
        let current = self.word(C_CURRENT);
        let mut retry = Retry::default();
        loop {
            if let Some(copy) = self.published(current) {
                // `out` is never longer than the capacity (the caller's type is the value's),
                // so a length equal to it is in bounds, whoever wrote it.
                if copy.len == out.len() as u64 && out.len() <= self.layout.capacity {
                    self.region
                        .load_word_bytes(copy.offset + COPY_DATA, out)
                        .expect("copies are inside the checked layout");
                    if self.unchanged(&copy) {
                        return Ok(copy.generation);
                    }
                } else if self.unchanged(&copy) {
                    return Err(Refusal::WrongLength {
                        len: copy.len,
                        expected: out.len(),
                    });
                }
            }
            retry.again()?;
        }
    }

    /// The copy the current generation publishes, unless a write is rewriting it (its sequence
    /// odd): the first half of a read, up to its length.
    #[inline(always)]
    fn published(&self, current: &AtomicU64) -> Option<Published<'_>> {
        let generation = current.load(Ordering::Acquire);
        let offset = self.layout.copy(generation);
        let seq = self.word(offset + COPY_SEQ);
        let s1 = seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let len = self.word(offset + COPY_LEN).load(Ordering::Relaxed);
        Some(Published {
            generation,
            offset,
            seq,
            s1,
            len,
        })
    }

    /// After `copy`'s words were read: whether what was read is its generation's value, whole.
    #[inline(always)]
    fn unchanged(&self, copy: &Published<'_>) -> bool {
        fence(Ordering::Acquire);
        // The copy unchanged, and holding the value of `generation` itself, not a later one: a
        // reader that loaded the generation and was then overtaken by two writes finds this
        // copy complete again, holding a later value (the loom model found this). Its sequence
        // word says which write it holds when it is the one write `generation`'s leaves
        // ([`sequence_after`]); otherwise (after a writer died on this copy) the generation,
        // still the same, does: having acquired a later write's sequence word orders this load
        // after the write before it.
        copy.seq.load(Ordering::Relaxed) == copy.s1
            && (copy.s1 == sequence_after(copy.generation)
                || self.word(C_CURRENT).load(Ordering::Relaxed) == copy.generation)
    }

    /// Takes the writer lock, waiting at most the lock timeout; takes it over from a dead
    /// owner (a writer killed holding it) within about [`LOCK_SLICE`].
    pub(super) fn lock(&self) -> Result<WriterLock<'_>, Refusal> {
        let me = thread_identity();
        let lock = self.word(C_LOCK);
        for _ in 0..LOCK_SPINS {
            if lock
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(WriterLock { seqlock: self, me });
            }
            spin_loop();
        }
        let deadline = deadline_after(self.lock_timeout);
        let generation = self.word32(C_LOCK_GEN);
        let waiters = self.word32(C_LOCK_WAITERS);
        loop {
            let owner = lock.load(Ordering::Acquire);
            if owner == 0 {
                if lock
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(WriterLock { seqlock: self, me });
                }
                continue;
            }
            if owner == me {
                return Err(Refusal::Reentrant);
            }
            let now = monotonic_ns();
            if now >= deadline {
                return Err(Refusal::LockTimeout {
                    owner,
                    timeout: self.lock_timeout,
                });
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            let seen = generation.load(Ordering::SeqCst);
            let outcome = if lock.load(Ordering::SeqCst) == owner {
                let left = Duration::from_nanos(deadline - now);
                wait(generation, seen, Some(LOCK_SLICE.min(left)))
            } else {
                WaitOutcome::Woken
            };
            waiters.fetch_sub(1, Ordering::SeqCst);
            if outcome == WaitOutcome::TimedOut
                && lock.load(Ordering::Acquire) == owner
                && !thread_alive(owner)
            {
                if let Some(taken) = self.take_over(owner, me) {
                    return Ok(taken);
                }
            }
        }
    }

    /// Takes the writer lock over from `owner`, found dead holding it, for thread `me`; `None`
    /// if another waiter took it first (or `owner` no longer holds it).
    pub(super) fn take_over(&self, owner: u64, me: u64) -> Option<WriterLock<'_>> {
        self.word(C_LOCK)
            .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // The owner died holding it. Its write, if it had begun, went to the copy not
        // published (readers never look at it; ours overwrites it). If it had published
        // without waking the waiters, wake them now.
        let current = self.word(C_CURRENT).load(Ordering::Acquire);
        self.word32(C_CHANGE)
            .store(current as u32, Ordering::SeqCst);
        wake(self.word32(C_CHANGE), u32::MAX);
        Some(WriterLock { seqlock: self, me })
    }

    /// Publishes `bytes` as the new value (the caller holds the lock). `steps` is told each
    /// step (`value.write.half`, `value.write.published`); a writer it stops (`false`) returns
    /// there as if killed, leaving the memory as a killed writer would.
    pub(super) fn write(
        &self,
        _lock: &WriterLock<'_>,
        bytes: &[u8],
        steps: Steps<'_>,
    ) -> Result<(), Refusal> {
        if bytes.len() > self.layout.capacity {
            return Err(Refusal::TooLarge {
                len: bytes.len(),
                capacity: self.layout.capacity,
            });
        }
        let current = self.word(C_CURRENT);
        let generation = current.load(Ordering::Relaxed);
        let next = generation.wrapping_add(1);
        let copy = self.layout.copy(next);
        let seq = self.word(copy + COPY_SEQ);
        let s = seq.load(Ordering::Relaxed);
        // Odd while written (a dead writer may have left it odd: it changes anyway, so that a
        // reader holding the old value sees the difference).
        let odd = if s & 1 == 0 {
            s.wrapping_add(1)
        } else {
            s.wrapping_add(2)
        };
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        self.word(copy + COPY_LEN)
            .store(bytes.len() as u64, Ordering::Relaxed);
        let words = bytes_as_words(bytes);
        let half = words.len() / 2;
        let oob = |_| Refusal::OutOfBounds;
        self.region
            .store_words(copy + COPY_DATA, &words[..half])
            .map_err(oob)?;
        if !steps("value.write.half") {
            return Ok(());
        }
        self.region
            .store_words(copy + COPY_DATA + half * 8, &words[half..])
            .map_err(oob)?;
        seq.store(odd.wrapping_add(1), Ordering::Release);
        current.store(next, Ordering::Release);
        if !steps("value.write.published") {
            return Ok(());
        }
        let change = self.word32(C_CHANGE);
        change.store(next as u32, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.word32(C_CHANGE_WAITERS).load(Ordering::SeqCst) != 0 {
            wake(change, u32::MAX);
        }
        Ok(())
    }

    /// Waits until the version differs from `since`, at most `timeout`; the new version.
    pub(super) fn wait_for_change(&self, since: u64, timeout: Duration) -> Option<u64> {
        let deadline = deadline_after(timeout);
        let current = self.word(C_CURRENT);
        let change = self.word32(C_CHANGE);
        let waiters = self.word32(C_CHANGE_WAITERS);
        loop {
            let now = current.load(Ordering::Acquire);
            if now != since {
                return Some(now);
            }
            let left = Duration::from_nanos(deadline.saturating_sub(monotonic_ns()));
            if left.is_zero() {
                return None;
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            let seen = change.load(Ordering::SeqCst);
            if current.load(Ordering::SeqCst) == since {
                wait(change, seen, Some(CHANGE_SLICE.min(left)));
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        let s = self.seqlock;
        let _ = s
            .word(C_LOCK)
            .compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
        s.word32(C_LOCK_GEN).fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if s.word32(C_LOCK_WAITERS).load(Ordering::SeqCst) != 0 {
            wake(s.word32(C_LOCK_GEN), u32::MAX);
        }
    }
}

fn bytes_as_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_ne_bytes(w)
        })
        .collect()
}
