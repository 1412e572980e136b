//! [`Region`]'s accessors under the loom model (`cfg(loom)`): the same signatures and bounds
//! checks as over a real mapping, but each access goes to the model's memory
//! (`sys::model::memory`), where loom sees it: a word is a loom atomic, and a copy in or out
//! is a tracked write or read of each 64-byte line it touches, so that loom reports a payload
//! or frame copy that the state transitions do not order against the peer's.
//!
//! The words and bytes live in the shared-memory object, not here, so that the two regions
//! of one connection (the service's and the client's, each over its own mapping) see the same
//! memory.

use std::sync::atomic::Ordering::Relaxed;

use super::{OutOfBounds, Region};
use crate::sys::{AtomicU32, AtomicU64};

impl Region {
    /// The 32-bit atomic word at `offset`.
    ///
    /// # Panics
    /// If `offset` is misaligned or out of bounds (a bug in lpc), or if lpc copied bytes to or
    /// from this word before (the model keeps words and bytes apart).
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4),
            "misaligned atomic offset {offset}"
        );
        self.check_write(offset, 4)
            .expect("atomic offset out of bounds");
        self.map.word(offset)
    }

    /// Copies `len` bytes at `offset` to the end of `out`.
    pub(crate) fn copy_out(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), OutOfBounds> {
        self.check(offset, len)?;
        let old = out.len();
        out.resize(old + len, 0);
        self.map.copy_out(offset, &mut out[old..]);
        Ok(())
    }

    /// Copies `len` bytes at `offset` of this region to `dst_offset` of `dst`.
    pub(crate) fn copy_to(
        &self,
        offset: usize,
        dst: &Region,
        dst_offset: usize,
        len: usize,
    ) -> Result<(), OutOfBounds> {
        self.check(offset, len)?;
        dst.check_write(dst_offset, len)?;
        let mut bytes = vec![0; len];
        self.map.copy_out(offset, &mut bytes);
        dst.map.copy_in(dst_offset, &bytes);
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    pub(crate) fn read_into(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, out.len())?;
        self.map.copy_out(offset, out);
        Ok(())
    }

    /// Copies `N` bytes at `offset` into an array.
    pub(crate) fn read_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], OutOfBounds> {
        self.check(offset, N)?;
        let mut out = [0u8; N];
        self.map.copy_out(offset, &mut out);
        Ok(out)
    }

    /// Copies an array of `N` bytes into the region at `offset`.
    pub(crate) fn write_array<const N: usize>(
        &self,
        offset: usize,
        bytes: &[u8; N],
    ) -> Result<(), OutOfBounds> {
        self.copy_in(offset, bytes)
    }

    /// Copies `bytes` into the region at `offset`.
    pub(crate) fn copy_in(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        self.check_write(offset, bytes.len())?;
        self.map.copy_in(offset, bytes);
        Ok(())
    }

    // The accessors of shared values (`shm::words` over a real mapping), as `shared::seqlock`
    // uses them: each 64-bit word a loom atomic, so that loom chooses what every relaxed load
    // of a copy sees, as the real words' relaxed atomic loads may.

    /// The 64-bit atomic word at `offset`.
    ///
    /// # Panics
    /// If `offset` is not a multiple of 8, or the region is read-only.
    pub(crate) fn atomic_u64_at(&self, offset: usize) -> Result<&AtomicU64, OutOfBounds> {
        assert!(self.writable(), "atomic word of a read-only mapping");
        assert!(
            offset.is_multiple_of(8),
            "misaligned atomic offset {offset}"
        );
        self.check(offset, 8)?;
        Ok(self.map.word64(offset))
    }

    /// The 32-bit atomic word at `offset` (writable regions only).
    pub(crate) fn atomic_u32_at(&self, offset: usize) -> Result<&AtomicU32, OutOfBounds> {
        assert!(self.writable(), "atomic word of a read-only mapping");
        assert!(
            offset.is_multiple_of(4),
            "misaligned atomic offset {offset}"
        );
        self.check(offset, 4)?;
        Ok(self.map.word(offset))
    }

    /// Copies `out.len()` bytes at `offset` (8-aligned) with a relaxed load of each 64-bit
    /// word they lie in.
    pub(crate) fn load_word_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let len = out.len().div_ceil(8) * 8;
        self.check(offset, len)?;
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let word = self.atomic_u64_at(offset + 8 * i)?.load(Relaxed);
            let n = chunk.len();
            chunk.copy_from_slice(&word.to_ne_bytes()[..n]);
        }
        Ok(())
    }

    /// Stores `words` at `offset` (8-aligned) with relaxed atomic stores.
    pub(crate) fn store_words(&self, offset: usize, words: &[u64]) -> Result<(), OutOfBounds> {
        self.check_write(offset, words.len() * 8)?;
        for (i, &word) in words.iter().enumerate() {
            self.atomic_u64_at(offset + 8 * i)?.store(word, Relaxed);
        }
        Ok(())
    }
}
