//! Which call slots of a connection are free for this client's threads.
//!
//! A lock-free bitmap for the common case; a condition variable for threads that find every
//! slot busy; and a quarantine for slots whose call was abandoned while the service was still
//! running it (they come back when the service marks them FREE). A slot is held through a
//! [`SlotGuard`], which frees it on every path out of a call unless told otherwise.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::channel::state;
use crate::channel::Channel;

thread_local! {
    /// The slot this thread used last: reusing it keeps its cache lines warm on both sides.
    static LAST_SLOT: Cell<u32> = const { Cell::new(0) };
}

pub(crate) struct SlotPool {
    free: AtomicU64,
    count: u32,
    waiters: AtomicU32,
    lock: Mutex<()>,
    freed: Condvar,
    abandoned: Mutex<Vec<u32>>,
    abandoned_count: AtomicU32,
}

impl SlotPool {
    pub(crate) fn new(count: u32) -> SlotPool {
        debug_assert!((1..=64).contains(&count));
        let free = if count == 64 {
            u64::MAX
        } else {
            (1u64 << count) - 1
        };
        SlotPool {
            free: AtomicU64::new(free),
            count,
            waiters: AtomicU32::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
            abandoned: Mutex::new(Vec::new()),
            abandoned_count: AtomicU32::new(0),
        }
    }

    /// A free slot, if any, without waiting (quarantined slots the service has freed since
    /// count as free).
    #[inline]
    pub(crate) fn try_acquire(&self, channel: &Channel) -> Option<SlotGuard<'_>> {
        self.try_acquire_index(channel).map(|index| SlotGuard {
            pool: self,
            index,
            fate: Fate::Release,
        })
    }

    fn try_acquire_index(&self, channel: &Channel) -> Option<u32> {
        if let Some(index) = self.take_free() {
            return Some(index);
        }
        if self.abandoned_count.load(Ordering::Relaxed) > 0 && self.reclaim(channel) {
            return self.take_free();
        }
        None
    }

    fn take_free(&self) -> Option<u32> {
        let hint = LAST_SLOT.with(Cell::get) % self.count;
        let mut free = self.free.load(Ordering::Acquire);
        while free != 0 {
            let index = if free & (1 << hint) != 0 {
                hint
            } else {
                free.trailing_zeros()
            };
            match self.free.compare_exchange_weak(
                free,
                free & !(1 << index),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    LAST_SLOT.with(|s| s.set(index));
                    return Some(index);
                }
                Err(now) => free = now,
            }
        }
        None
    }

    /// A free slot, waiting up to `deadline` (forever if `None`) while all are busy.
    pub(crate) fn acquire(
        &self,
        channel: &Channel,
        deadline: Option<Instant>,
    ) -> Option<SlotGuard<'_>> {
        loop {
            if let Some(guard) = self.try_acquire(channel) {
                return Some(guard);
            }
            let mut wait = Duration::from_millis(10);
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                wait = wait.min(deadline - now);
            }
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            if self.free.load(Ordering::SeqCst) == 0 {
                // Bounded: abandoned slots are freed by the service without telling us.
                let _ = self.freed.wait_timeout(guard, wait);
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn release(&self, index: u32) {
        self.free.fetch_or(1 << index, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.freed.notify_one();
        }
    }

    /// Parks a slot whose call was abandoned while the service ran it.
    fn quarantine(&self, index: u32) {
        self.abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(index);
        self.abandoned_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns quarantined slots that the service has since freed. True if any came back.
    fn reclaim(&self, channel: &Channel) -> bool {
        let mut abandoned = self.abandoned.lock().unwrap_or_else(|p| p.into_inner());
        let before = abandoned.len();
        abandoned.retain(|&index| {
            if channel.slot(index).state().load(Ordering::Acquire) == state::FREE {
                self.free.fetch_or(1 << index, Ordering::SeqCst);
                false
            } else {
                true
            }
        });
        let returned = before - abandoned.len();
        self.abandoned_count
            .fetch_sub(returned as u32, Ordering::Relaxed);
        returned > 0
    }
}

/// What becomes of a slot when its [`SlotGuard`] drops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Free for the next call (the call ended, whatever its outcome).
    Release,
    /// Parked until the service frees it: the call was abandoned while the service ran it.
    Quarantine,
    /// Left taken: the connection is lost, and no call will use it again.
    KeepTaken,
}

/// One call's hold on a slot. Dropping it frees the slot, quarantines it, or leaves it
/// taken, as the call decided; every way out of a call passes here.
pub(crate) struct SlotGuard<'a> {
    pool: &'a SlotPool,
    index: u32,
    fate: Fate,
}

impl SlotGuard<'_> {
    /// The slot's index.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The call was abandoned while the service runs it: the slot comes back only once the
    /// service has freed it.
    pub(crate) fn quarantine(&mut self) {
        self.fate = Fate::Quarantine;
    }

    /// The connection is lost: the slot is never used again.
    pub(crate) fn keep_taken(&mut self) {
        self.fate = Fate::KeepTaken;
    }
}

impl Drop for SlotGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.fate {
            Fate::Release => self.pool.release(self.index),
            Fate::Quarantine => self.pool.quarantine(self.index),
            Fate::KeepTaken => {}
        }
    }
}
