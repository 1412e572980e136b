//! How long to spin before sleeping.
//!
//! Spinning pays when the peer runs on another CPU and answers within a few microseconds:
//! the reply is seen without a system call on either side. It costs when the peer is slow
//! (a long handler) and is harmful when both processes share one CPU (the spinner steals the
//! time the peer needs to answer). The adaptive policy keeps a per-connection budget: it
//! doubles when a spin succeeds and halves when the wait had to sleep anyway, and is zero when
//! the two processes cannot run on different CPUs at once (the union of their CPU affinities,
//! read at connect, is a single CPU): there, spinning only delays the peer it waits for.

use std::sync::atomic::{AtomicU32, Ordering};

/// Longest spin, in nanoseconds.
pub(crate) const MAX_SPIN_NS: u32 = 50_000;
/// Shortest spin the adaptive policy decays to (it keeps probing whether spinning pays).
const MIN_SPIN_NS: u32 = 500;

/// An adaptive spin budget.
#[derive(Debug)]
pub(crate) struct SpinBudget {
    ns: AtomicU32,
    enabled: bool,
}

impl SpinBudget {
    /// A budget for waiting on process `peer` (if known).
    pub(crate) fn new(enabled: bool, peer: Option<u32>) -> SpinBudget {
        let enabled = enabled && crate::sys::can_run_apart(peer);
        SpinBudget {
            ns: AtomicU32::new(if enabled { MAX_SPIN_NS } else { 0 }),
            enabled,
        }
    }

    /// Whether this budget ever spins (adaptive waiting, peers able to run apart).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn current_ns(&self) -> u32 {
        if self.enabled {
            self.ns.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// The last wait ended while spinning.
    pub(crate) fn spin_succeeded(&self) {
        let ns = self.ns.load(Ordering::Relaxed);
        if ns < MAX_SPIN_NS {
            self.ns.store((ns * 2).min(MAX_SPIN_NS), Ordering::Relaxed);
        }
    }

    /// The last wait had to sleep, but its reply came after `ns` in all: if spinning that
    /// long would have caught it, spin that long (with a margin) next time. Without this, a
    /// budget that once decayed to its floor would never catch replies of a few microseconds
    /// again.
    pub(crate) fn reply_took(&self, ns: u64) {
        if self.enabled && ns < u64::from(MAX_SPIN_NS) {
            let want = (ns.saturating_mul(2) as u32).clamp(MIN_SPIN_NS, MAX_SPIN_NS);
            if want > self.ns.load(Ordering::Relaxed) {
                self.ns.store(want, Ordering::Relaxed);
            }
        }
    }

    /// The last wait had to sleep.
    pub(crate) fn spin_failed(&self) {
        let ns = self.ns.load(Ordering::Relaxed);
        if ns > MIN_SPIN_NS {
            self.ns.store((ns / 2).max(MIN_SPIN_NS), Ordering::Relaxed);
        }
    }
}
