//! The futex in the model.
//!
//! As in the kernel (`futex_wait_setup` and `futex_wake` in `kernel/futex/`): a waiter counts
//! itself among the waiters of the (single, here) hash bucket, then a full barrier, then takes
//! the bucket's lock and reads the word, and sleeps only if it still holds the expected value;
//! a waker, after its store to the word, makes a full barrier and reads the count of waiters:
//! if there are none it returns without the lock, otherwise it takes the lock and wakes up to
//! `n` of those sleeping on that very word. So the check and the sleep are atomic with
//! respect to wakers, and a wake adds no ordering between the threads when nobody waits,
//! which a model that always took the lock would add, hiding missing orderings in lpc.
//!
//! **A wait ignores its timeout**: it returns only when woken, or at once if the word no
//! longer holds the expected value. lpc always re-checks after a wait, so a timeout is never
//! what makes it correct; in the model a lost wake-up therefore shows as a deadlock, which
//! loom reports, instead of being rescued by the timer. (A wait never returns spuriously
//! either, which the real one may: lpc's callers loop, and such returns would only add
//! interleavings.)

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use loom::sync::atomic::AtomicUsize;
use loom::sync::{Condvar, Mutex};

use crate::sys::{fence, AtomicU32, Lane, WaitOutcome};

/// The futex hash bucket: every word of the model hashes to it.
struct Bucket {
    /// Waiters counted before they take the lock, as the kernel's `hb->waiters`.
    waiters: AtomicUsize,
    queue: Mutex<Queue>,
    woken: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Who sleeps, on which word (its address), by ticket.
    sleepers: Vec<(usize, u64)>,
    next_ticket: u64,
}

loom::lazy_static! {
    static ref BUCKET: Bucket = Bucket {
        waiters: AtomicUsize::new(0),
        queue: Mutex::new(Queue::default()),
        woken: Condvar::new(),
    };
}

/// Creates the bucket of this execution. Called when shared memory or an endpoint is made,
/// normally in the model's main thread before it spawns any: the first use of a loom lazy
/// static orders its initialising thread before every later user, an ordering that is then
/// already there through the spawns.
pub(super) fn set_up() {
    let _ = &*BUCKET;
}

fn address(word: &AtomicU32) -> usize {
    std::ptr::from_ref(word) as usize
}

/// `futex(word, FUTEX_WAIT, expected)`, with `timeout` ignored (see the module docs).
pub(crate) fn wait_in(
    word: &AtomicU32,
    expected: u32,
    _timeout: Option<Duration>,
    _lane: Lane,
) -> WaitOutcome {
    let bucket = &*BUCKET;
    bucket.waiters.fetch_add(1, Relaxed);
    fence(SeqCst);
    let mut queue = bucket.queue.lock().unwrap();
    if word.load(Relaxed) != expected {
        drop(queue);
        bucket.waiters.fetch_sub(1, Relaxed);
        return WaitOutcome::Woken;
    }
    let ticket = queue.next_ticket;
    queue.next_ticket += 1;
    queue.sleepers.push((address(word), ticket));
    // Woken when a waker has taken our ticket out (and counted us out of the waiters).
    while queue.sleepers.iter().any(|&(_, t)| t == ticket) {
        queue = bucket.woken.wait(queue).unwrap();
    }
    WaitOutcome::Woken
}

/// `futex(word, FUTEX_WAKE, n)`.
pub(crate) fn wake_in(word: &AtomicU32, n: u32, _lane: Lane) {
    let bucket = &*BUCKET;
    fence(SeqCst);
    if bucket.waiters.load(Relaxed) == 0 {
        return;
    }
    let mut queue = bucket.queue.lock().unwrap();
    let address = address(word);
    let mut woken = 0;
    queue.sleepers.retain(|&(a, _)| {
        let wake = a == address && woken < n;
        woken += u32::from(wake);
        !wake
    });
    if woken > 0 {
        bucket.waiters.fetch_sub(woken as usize, Relaxed);
        bucket.woken.notify_all();
    }
}
