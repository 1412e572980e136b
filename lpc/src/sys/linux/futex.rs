//! Waiting on a 32-bit word in shared memory: `futex(2)` without `FUTEX_PRIVATE_FLAG`, so that
//! a waiter in one process is woken by a waker in another (the kernel keys a shared futex by the
//! page of the mapped file, not by the virtual address).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use crate::sys::{Lane, WaitOutcome};

/// `futex(word, FUTEX_WAIT, expected, timeout)`: sleeps while `*word == expected`, until woken,
/// interrupted, or `timeout` passes. Returns at once if the word already differs. The lane
/// needs nothing: the kernel compares and sleeps in one step, so no wake is taken by a sleeper
/// whose value is still there.
pub(crate) fn wait_in(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
    _lane: Lane,
) -> WaitOutcome {
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos().into(),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(Errno::TIMEDOUT) => WaitOutcome::TimedOut,
        // EAGAIN (the word changed), EINTR (a signal) and success all mean "look again".
        _ => WaitOutcome::Woken,
    }
}

/// `futex(word, FUTEX_WAKE, n)`: wakes up to `n` waiters on `word`.
pub(crate) fn wake_in(word: &AtomicU32, n: u32, _lane: Lane) {
    // The only documented failures are EFAULT/EINVAL for a bad address, which a `&AtomicU32`
    // into a live mapping cannot be; nothing useful could be done with one anyway.
    let _ = futex::wake(word, futex::Flags::empty(), n);
}
