//! Accessors made of atomic operations only, for memory that other processes write while we
//! read it (shared values and named segments): no plain load or store ever touches the mapping,
//! so a concurrent write is never a data race in Rust's memory model — the torn copy it may
//! cause is detected by the protocol above (a seqlock) or is the caller's business (a segment's
//! bytes), never undefined behaviour. This is how portable-atomic's seqlock fallback copies.
//!
//! Aligned 64-bit words are copied with `AtomicU64` (relaxed), the unaligned ends of a byte
//! range with `AtomicU8`.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::{OutOfBounds, Region};

impl Region {
    #[inline]
    fn word_ptr<A>(&self, offset: usize, size: usize) -> Result<*const A, OutOfBounds> {
        assert!(
            offset.is_multiple_of(size),
            "misaligned atomic offset {offset}"
        );
        self.check(offset, size)?;
        // SAFETY: in bounds (checked); the pointer is only turned into a shared reference to
        // an atomic by the callers below, which is sound for any bit pattern under concurrent
        // atomic access (mappings are page-aligned, so `offset`'s alignment is the address's).
        Ok(unsafe { self.map.as_ptr().add(offset) }
            .cast::<A>()
            .cast_const())
    }

    /// The 64-bit atomic word at `offset`, to write or read-modify-write: the region must be
    /// writable (a read-only region gives out loads only, [`Region::load_u64`]).
    ///
    /// # Panics
    /// If `offset` is not a multiple of 8, or the region is read-only.
    #[inline]
    pub(crate) fn atomic_u64_at(&self, offset: usize) -> Result<&AtomicU64, OutOfBounds> {
        assert!(self.writable(), "atomic word of a read-only mapping");
        let ptr = self.word_ptr::<AtomicU64>(offset, 8)?;
        // SAFETY: in bounds and aligned (checked by `word_ptr`); the borrow lives no longer
        // than the mapping (`&self`); AtomicU64 has u64's size and alignment, every bit pattern
        // is valid, and its operations are sound under concurrent writes from anywhere.
        Ok(unsafe { &*ptr })
    }

    /// [`Region::atomic_u64_at`] for a 32-bit word (writable regions only).
    pub(crate) fn atomic_u32_at(&self, offset: usize) -> Result<&AtomicU32, OutOfBounds> {
        assert!(self.writable(), "atomic word of a read-only mapping");
        let ptr = self.word_ptr::<AtomicU32>(offset, 4)?;
        // SAFETY: as in `atomic_u64_at`.
        Ok(unsafe { &*ptr })
    }

    /// The 32-bit word at `offset` as an atomic that is only ever loaded or waited on (a
    /// futex wait only reads): allowed on a read-only region too, where a store would fault.
    /// Crate-internal callers never store through it on a read-only region.
    pub(crate) fn atomic_u32_for_loads(&self, offset: usize) -> Result<&AtomicU32, OutOfBounds> {
        let ptr = self.word_ptr::<AtomicU32>(offset, 4)?;
        // SAFETY: as in `atomic_u64_at`; atomic loads of read-only memory are permitted for
        // lock-free sizes (std's `atomic` docs), and the callers only load or futex-wait.
        Ok(unsafe { &*ptr })
    }

    /// Loads the 64-bit word at `offset` (read-only regions too).
    pub(crate) fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64, OutOfBounds> {
        let ptr = self.word_ptr::<AtomicU64>(offset, 8)?;
        // SAFETY: as in `atomic_u64_at`; a load, allowed on read-only memory (see above).
        Ok(unsafe { &*ptr }.load(order))
    }

    /// Loads the 32-bit word at `offset` (read-only regions too).
    pub(crate) fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        Ok(self.atomic_u32_for_loads(offset)?.load(order))
    }

    /// Copies `out.len()` 64-bit words from `offset` (8-aligned) with relaxed atomic loads.
    pub(crate) fn load_words(&self, offset: usize, out: &mut [u64]) -> Result<(), OutOfBounds> {
        let len = out.len().checked_mul(8).ok_or(OutOfBounds)?;
        self.check(offset, len)?;
        let first = self.word_ptr::<AtomicU64>(offset, 8)?;
        for (i, word) in out.iter_mut().enumerate() {
            // SAFETY: word `i` is within the checked range and aligned (the first is, and
            // words follow each other); see `atomic_u64_at`.
            *word = unsafe { &*first.add(i) }.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` (8-aligned) with relaxed atomic loads of whole
    /// 64-bit words: `out.len()` rounded up to a multiple of 8 must be in bounds (the bytes of
    /// the last word beyond `out.len()` are loaded and dropped). One bounds check for the
    /// range, one load per word: what a seqlock reader copies a value out with.
    #[inline]
    pub(crate) fn load_word_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        if out.is_empty() {
            return self.check(offset, 0);
        }
        let len = out.len().div_ceil(8).checked_mul(8).ok_or(OutOfBounds)?;
        self.check(offset, len)?;
        let first = self.word_ptr::<AtomicU64>(offset, 8)?;
        let mut chunks = out.chunks_exact_mut(8);
        let mut i = 0;
        for chunk in &mut chunks {
            // SAFETY: word `i` is within the checked range (`len` covers every chunk's word)
            // and aligned (the first is, and words follow each other); see `atomic_u64_at`.
            let word = unsafe { &*first.add(i) }.load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_ne_bytes());
            i += 1;
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            // SAFETY: as above: the last word, inside the range rounded up to whole words.
            let word = unsafe { &*first.add(i) }.load(Ordering::Relaxed);
            let n = tail.len();
            tail.copy_from_slice(&word.to_ne_bytes()[..n]);
        }
        Ok(())
    }

    /// Stores `words` at `offset` (8-aligned) with relaxed atomic stores.
    pub(crate) fn store_words(&self, offset: usize, words: &[u64]) -> Result<(), OutOfBounds> {
        let len = words.len().checked_mul(8).ok_or(OutOfBounds)?;
        self.check_write(offset, len)?;
        let first = self.word_ptr::<AtomicU64>(offset, 8)?;
        for (i, &word) in words.iter().enumerate() {
            // SAFETY: as in `load_words`, on a writable region (checked).
            unsafe { &*first.add(i) }.store(word, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` (any alignment) with relaxed atomic loads.
    pub(crate) fn load_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, out.len())?;
        let base = self.map.as_ptr();
        let end = offset + out.len();
        let mut at = offset;
        while at < end {
            if at.is_multiple_of(8) && end - at >= 8 {
                // SAFETY: `at..at + 8` is in the checked range and 8-aligned (page-aligned
                // mapping); see `atomic_u64_at`.
                let word = unsafe { &*base.add(at).cast::<AtomicU64>() }.load(Ordering::Relaxed);
                out[at - offset..at - offset + 8].copy_from_slice(&word.to_ne_bytes());
                at += 8;
            } else {
                // SAFETY: `at` is in the checked range; AtomicU8 has no alignment requirement.
                out[at - offset] =
                    unsafe { &*base.add(at).cast::<AtomicU8>() }.load(Ordering::Relaxed);
                at += 1;
            }
        }
        Ok(())
    }

    /// Copies `bytes` to `offset` (any alignment) with relaxed atomic stores.
    pub(crate) fn store_bytes(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        self.check_write(offset, bytes.len())?;
        let base = self.map.as_ptr();
        let end = offset + bytes.len();
        let mut at = offset;
        while at < end {
            if at.is_multiple_of(8) && end - at >= 8 {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[at - offset..at - offset + 8]);
                // SAFETY: as in `load_bytes`, on a writable region (checked).
                unsafe { &*base.add(at).cast::<AtomicU64>() }
                    .store(u64::from_ne_bytes(word), Ordering::Relaxed);
                at += 8;
            } else {
                // SAFETY: as in `load_bytes`, on a writable region (checked).
                unsafe { &*base.add(at).cast::<AtomicU8>() }
                    .store(bytes[at - offset], Ordering::Relaxed);
                at += 1;
            }
        }
        Ok(())
    }

    /// The first byte of the mapping, for the `unsafe` raw access a segment offers.
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }
}
