//! Which call slots of a connection are free for this client's threads.
//!
//! A lock-free bitmap for the common case; a queue, served in order, for threads that find
//! every slot busy; and a quarantine for slots whose call was abandoned while the service was
//! still running it (they come back when the service marks them FREE). A slot is held through
//! a [`SlotGuard`], which frees it on every path out of a call unless told otherwise.
//!
//! **Fairness.** A thread that finds no free slot joins the back of the queue and parks. A
//! slot freed while threads wait goes to the thread at the front, handed over under the
//! queue's lock (the waiter finds its slot index in its queue entry), and a thread arriving
//! while others wait queues behind them instead of taking a slot that is being handed over:
//! so every waiter is served after at most the threads that queued before it, whatever the
//! load. With nobody waiting, taking and freeing a slot is one compare-and-swap and one
//! atomic OR on the bitmap, plus a load of the waiter count (no lock).
//!
//! **Quarantined slots** come back only when the service frees them, which it does without
//! telling the client; a waiting thread therefore wakes every [`TICK`] to look (and, while a
//! quarantined slot is all it waits for, to check that the service still lives).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::channel::state;
use crate::channel::Channel;

thread_local! {
    /// The slot this thread used last: reusing it keeps its cache lines warm on both sides.
    static LAST_SLOT: Cell<u32> = const { Cell::new(0) };
}

/// How often a waiting thread wakes to take back quarantined slots the service has freed.
const TICK: Duration = Duration::from_millis(10);

/// A queue entry's slot before one is handed over.
const UNSERVED: u32 = u32::MAX;

pub(crate) struct SlotPool {
    free: AtomicU64,
    count: u32,
    /// Threads in the queue, readable without its lock: nonzero sends newcomers to the back
    /// of the queue and makes `release` hand the slot over.
    waiters: AtomicU32,
    abandoned_count: AtomicU32,
    queue: Mutex<Queue>,
    abandoned: Mutex<Vec<u32>>,
}

/// The threads waiting for a slot, oldest first.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Waiter>>,
    /// The connection is lost: no slot will be freed, and nobody may wait any more.
    closed: bool,
}

/// One waiting thread.
struct Waiter {
    /// The slot handed over to it, or `UNSERVED`; written under the queue's lock.
    slot: AtomicU32,
    thread: Thread,
}

/// Why [`SlotPool::acquire`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The deadline passed.
    TimedOut,
    /// The connection is lost (see [`SlotPool::close`]), or the service died while only
    /// quarantined slots were left to wait for.
    Closed,
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
            abandoned_count: AtomicU32::new(0),
            queue: Mutex::new(Queue::default()),
            abandoned: Mutex::new(Vec::new()),
        }
    }

    /// A free slot, if any, without waiting (quarantined slots the service has freed since
    /// count as free). None while other threads wait: the next free slot is theirs.
    #[inline]
    pub(crate) fn try_acquire(&self, channel: &Channel) -> Option<SlotGuard<'_>> {
        if self.waiters.load(Ordering::Relaxed) != 0 {
            return None;
        }
        self.try_acquire_index(channel)
            .map(|index| self.guard(index))
    }

    fn guard(&self, index: u32) -> SlotGuard<'_> {
        SlotGuard {
            pool: self,
            index,
            fate: Fate::Release,
        }
    }

    #[inline]
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
        // The thread's last slot, if this pool has it (a comparison, not `%`: a division costs
        // tens of cycles on the call's path).
        let hint = LAST_SLOT.with(Cell::get);
        let hint = if hint < self.count { hint } else { 0 };
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

    /// Any free slot, for a waiter (the thread handing it over keeps its own hint).
    fn take_any(&self) -> Option<u32> {
        let mut free = self.free.load(Ordering::Acquire);
        while free != 0 {
            let index = free.trailing_zeros();
            match self.free.compare_exchange_weak(
                free,
                free & !(1 << index),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index),
                Err(now) => free = now,
            }
        }
        None
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits in line for a slot, until `deadline` (forever if `None`), the connection is
    /// closed, or — while only quarantined slots are left to wait for — `peer_gone` says the
    /// service died. Threads are served in the order they started waiting.
    #[cold]
    #[inline(never)]
    pub(crate) fn acquire(
        &self,
        channel: &Channel,
        deadline: Option<Instant>,
        peer_gone: &dyn Fn() -> bool,
    ) -> Result<SlotGuard<'_>, NoSlot> {
        let me = Arc::new(Waiter {
            slot: AtomicU32::new(UNSERVED),
            thread: std::thread::current(),
        });
        {
            let mut queue = self.lock_queue();
            if queue.closed {
                return Err(NoSlot::Closed);
            }
            queue.waiting.push_back(me.clone());
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // Dekker pair with `release` (OR into the bitmap, then read the waiter count):
            // either it sees us and hands its slot over, or we see its slot here.
            fence(Ordering::SeqCst);
            self.serve(&mut queue, Some(channel));
        }
        loop {
            if let Some(slot) = self.handed_over(&me) {
                return Ok(slot);
            }
            let mut tick = TICK;
            if let Some(deadline) = deadline {
                tick = tick.min(deadline.saturating_duration_since(Instant::now()));
            }
            if !tick.is_zero() {
                // Woken early by the hand-over (or by a stale wake-up: the loop looks again).
                std::thread::park_timeout(tick);
            }
            if let Some(slot) = self.handed_over(&me) {
                return Ok(slot);
            }
            let mut queue = self.lock_queue();
            // Under the lock nothing more is handed over: look one last time before leaving.
            if let Some(slot) = self.handed_over(&me) {
                return Ok(slot);
            }
            let end = if queue.closed {
                Some(NoSlot::Closed)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(NoSlot::TimedOut)
            } else if self.abandoned_count.load(Ordering::Relaxed) > 0 && peer_gone() {
                Some(NoSlot::Closed)
            } else {
                None
            };
            if let Some(end) = end {
                self.leave(&mut queue, &me);
                // Our place goes to the next in line, if a slot is free.
                self.serve(&mut queue, Some(channel));
                return Err(end);
            }
            // Slots the service has freed since they were quarantined, to the front.
            self.serve(&mut queue, Some(channel));
        }
    }

    /// The slot handed over to `me`, if any.
    fn handed_over(&self, me: &Waiter) -> Option<SlotGuard<'_>> {
        let index = me.slot.load(Ordering::Acquire);
        (index != UNSERVED).then(|| {
            LAST_SLOT.with(|s| s.set(index));
            self.guard(index)
        })
    }

    /// Hands free slots (and, given the channel, quarantined ones the service has freed) to
    /// the waiters at the front of the queue.
    fn serve(&self, queue: &mut Queue, channel: Option<&Channel>) {
        if queue.waiting.is_empty() {
            return;
        }
        if let Some(channel) = channel {
            if self.abandoned_count.load(Ordering::Relaxed) > 0 {
                self.reclaim(channel);
            }
        }
        while let Some(first) = queue.waiting.front() {
            let Some(index) = self.take_any() else { break };
            first.slot.store(index, Ordering::Release);
            first.thread.unpark();
            queue.waiting.pop_front();
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Removes `me` from the queue (not served, and giving up).
    fn leave(&self, queue: &mut Queue, me: &Arc<Waiter>) {
        let before = queue.waiting.len();
        queue.waiting.retain(|w| !Arc::ptr_eq(w, me));
        if queue.waiting.len() < before {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The connection is lost: wakes every waiting thread (they get [`NoSlot::Closed`]) and
    /// lets no more wait.
    pub(crate) fn close(&self) {
        let mut queue = self.lock_queue();
        queue.closed = true;
        for waiter in queue.waiting.drain(..) {
            waiter.thread.unpark();
        }
        self.waiters.store(0, Ordering::SeqCst);
    }

    #[inline]
    fn release(&self, index: u32) {
        self.free.fetch_or(1 << index, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.hand_over();
        }
    }

    #[cold]
    fn hand_over(&self) {
        let mut queue = self.lock_queue();
        self.serve(&mut queue, None);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::shm::layout::{ConnectionMemory, Geometry};
    use crate::sys::{SharedMemory, Stream};

    /// A client's channel over a fresh region of `slots` slots.
    fn channel(slots: u32) -> Channel {
        let geometry = Geometry {
            slot_count: slots,
            slot_size: 256,
            queue_size: 0,
        };
        let shm = SharedMemory::create("test", geometry.region_len()).unwrap();
        let memory = ConnectionMemory::initialize(&shm, geometry).unwrap();
        let (a, _b) = Stream::pair().unwrap();
        Channel::new("test", memory, Arc::new(a))
    }

    fn waiters(pool: &SlotPool) -> u32 {
        pool.waiters.load(Ordering::SeqCst)
    }

    fn until(what: &str, f: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < give_up, "never: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    const ALIVE: &dyn Fn() -> bool = &|| false;

    #[test]
    fn waiters_are_served_in_the_order_they_came() {
        let channel = channel(1);
        let pool = SlotPool::new(1);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let held = pool.try_acquire(&channel).expect("a free slot");
            for id in 0..6 {
                let (pool, channel, order) = (&pool, &channel, &order);
                s.spawn(move || {
                    let slot = pool.acquire(channel, None, ALIVE).expect("a slot");
                    order.lock().unwrap().push(id);
                    std::thread::sleep(Duration::from_millis(2));
                    drop(slot);
                });
                until("the thread queued", || waiters(pool) == id + 1);
            }
            drop(held);
        });
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(waiters(&pool), 0);
        assert!(pool.try_acquire(&channel).is_some());
    }

    #[test]
    fn a_newcomer_does_not_take_a_free_slot_from_a_waiter() {
        let channel = channel(2);
        let pool = SlotPool::new(2);
        let held = (pool.try_acquire(&channel), pool.try_acquire(&channel));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.acquire(&channel, None, ALIVE).map(|g| g.index()));
            until("queued", || waiters(&pool) == 1);
            // A slot free in the bitmap but not yet handed over (as between `release`'s OR and
            // its look at the waiters): the newcomer leaves it to the waiter.
            pool.free.fetch_or(1 << 1, Ordering::SeqCst);
            assert!(pool.try_acquire(&channel).is_none());
            pool.hand_over();
            assert_eq!(waiter.join().unwrap(), Ok(1));
        });
        drop(held);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline_and_leaves_the_line() {
        let channel = channel(1);
        let pool = SlotPool::new(1);
        let held = pool.try_acquire(&channel).unwrap();
        let started = Instant::now();
        let end = pool.acquire(&channel, Some(started + Duration::from_millis(30)), ALIVE);
        assert_eq!(end.err(), Some(NoSlot::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(waiters(&pool), 0);
        drop(held);
        assert!(pool.try_acquire(&channel).is_some());
    }

    #[test]
    fn closing_wakes_every_waiter() {
        let channel = channel(2);
        let pool = SlotPool::new(2);
        let held = (pool.try_acquire(&channel), pool.try_acquire(&channel));
        let ends = std::thread::scope(|s| {
            let threads: Vec<_> = (0..3)
                .map(|_| s.spawn(|| pool.acquire(&channel, None, ALIVE).err()))
                .collect();
            until("all queued", || waiters(&pool) == 3);
            pool.close();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(ends, [Some(NoSlot::Closed); 3]);
        assert_eq!(
            pool.acquire(&channel, None, ALIVE).err(),
            Some(NoSlot::Closed)
        );
        drop(held);
    }

    #[test]
    fn a_quarantined_slot_comes_back_to_a_waiter_once_the_service_frees_it() {
        let channel = channel(1);
        let pool = SlotPool::new(1);
        let mut slot = pool.try_acquire(&channel).unwrap();
        channel
            .slot(0)
            .state()
            .store(state::ABANDONED, Ordering::SeqCst);
        slot.quarantine();
        drop(slot);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.acquire(&channel, None, ALIVE).map(|g| g.index()));
            until("queued", || waiters(&pool) == 1);
            std::thread::sleep(TICK * 2);
            channel.slot(0).state().store(state::FREE, Ordering::SeqCst);
            assert_eq!(waiter.join().unwrap(), Ok(0));
        });
    }

    #[test]
    fn waiting_only_for_a_quarantined_slot_ends_when_the_service_dies() {
        let channel = channel(1);
        let pool = SlotPool::new(1);
        let mut slot = pool.try_acquire(&channel).unwrap();
        channel
            .slot(0)
            .state()
            .store(state::ABANDONED, Ordering::SeqCst);
        slot.quarantine();
        drop(slot);
        let died = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                pool.acquire(&channel, None, &|| died.load(Ordering::SeqCst))
                    .err()
            });
            until("queued", || waiters(&pool) == 1);
            died.store(true, Ordering::SeqCst);
            assert_eq!(waiter.join().unwrap(), Some(NoSlot::Closed));
        });
    }
}
