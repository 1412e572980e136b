//! The raw mechanisms under lpc, bare: for benchmarks that measure lpc against the floor of
//! the machine (a shared-memory ping-pong by spinning, and by futex). Not a stable API.

use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::shm::Region;
use crate::sys::{self, SharedMemory};

/// A small shared region of 32-bit words, mapped from a file both processes can open.
#[derive(Debug)]
pub struct SharedWords {
    region: Region,
    // Held: on Windows a named section stays reachable by its name only while a handle to
    // it is open (a view alone keeps the memory, not the name).
    _shm: SharedMemory,
}

impl SharedWords {
    /// Creates the file at `path` with `count` zeroed words (a multiple of 16 words is a
    /// whole number of cache lines) and maps it.
    pub fn create(path: &Path, count: usize) -> std::io::Result<SharedWords> {
        let shm = SharedMemory::create_file(path, count.max(1) * 4)?;
        Ok(SharedWords {
            region: Region::new(shm.map()?),
            _shm: shm,
        })
    }

    /// Maps the file a peer created with [`SharedWords::create`].
    pub fn open(path: &Path) -> std::io::Result<SharedWords> {
        let shm = SharedMemory::open_file(path)?;
        Ok(SharedWords {
            region: Region::new(shm.map()?),
            _shm: shm,
        })
    }

    /// Word `index`.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn word(&self, index: usize) -> &AtomicU32 {
        self.region.atomic_u32(index * 4)
    }
}

/// `FUTEX_WAIT` (shared, not private) on `word` while it holds `expected`, up to `timeout`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    sys::wait(word, expected, timeout);
}

/// `FUTEX_WAKE` of one waiter on `word`.
pub fn futex_wake(word: &AtomicU32) {
    sys::wake(word, 1);
}
