//! How long to spin before sleeping.
//!
//! Spinning pays when the peer runs on another CPU and answers within a few microseconds:
//! the reply is seen without a system call on either side. It costs when the peer is slow
//! (a long handler) and is harmful when both processes share one CPU (the spinner steals the
//! time the peer needs to answer). The adaptive policy keeps a per-connection budget: it
//! doubles when a spin succeeds and halves when the wait had to sleep anyway, and is zero when
//! the two processes cannot run on different CPUs at once (the union of their CPU affinities,
//! read at connect, is a single CPU): there, spinning only delays the peer it waits for.
//!
//! Between those two cases lies a machine with more busy threads than CPUs (several client
//! processes on two cores, each with its service thread): the peer may be waiting for a CPU
//! that a spinner holds. So a spin is pure only for its first few microseconds, which is when a
//! reply comes if the peer is running; after that each round also yields the CPU
//! ([`Spinner`]), which costs a system call when nobody else wants the CPU and hands it to the
//! peer when it does. When waits keep ending only after yields that ran other threads, the
//! pure phase shrinks to nothing (every round yields at once); when they end without, it grows
//! back. The service's idle spin follows the same budget rules as the client's wait.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest spin, in nanoseconds. Long enough to wait out a handler that copies a megabyte
/// (about 20 µs each way here) without sleeping; with 50 µs, a 1 MiB loan echo slept in most
/// calls (docs/architecture.md, "Waiting without system calls").
pub(crate) const MAX_SPIN_NS: u32 = 200_000;
/// Shortest spin the adaptive policy decays to (it keeps probing whether spinning pays).
const MIN_SPIN_NS: u32 = 500;
/// Longest pure phase of a spin, before each round also yields the CPU. It shrinks to nothing
/// when yields hand the CPU to other threads, so a crowded machine pays for it only until the
/// first such wait.
const MAX_PURE_NS: u32 = 50_000;
/// A yield that took longer than this gave the CPU to another thread.
const SLOW_YIELD: Duration = Duration::from_micros(1);

/// The rounds of one spin of at most a budget: pure spinning first, then spinning that yields
/// the CPU on each round (see the module docs).
#[derive(Debug)]
pub(crate) struct Spinner {
    budget: Duration,
    pure: Duration,
    start: Option<Instant>,
    rounds: u32,
    yielding: bool,
    /// Yields that handed the CPU to another thread.
    slow_yields: u32,
}

impl Spinner {
    pub(crate) fn new(budget: &SpinBudget) -> Spinner {
        let pure = budget.pure_ns.load(Ordering::Relaxed);
        Spinner {
            budget: Duration::from_nanos(budget.current_ns().into()),
            pure: Duration::from_nanos(pure.into()),
            start: None,
            rounds: 0,
            yielding: pure == 0,
            slow_yields: 0,
        }
    }

    /// Rounds waited so far.
    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Waits one round; false once the budget is spent. The clock is read every 64 pure
    /// rounds (the wait usually ends within the first ones), and on every yielding round.
    #[inline]
    pub(crate) fn round(&mut self) -> bool {
        self.rounds = self.rounds.wrapping_add(1);
        if self.yielding {
            let before = Instant::now();
            std::thread::yield_now();
            let after = Instant::now();
            if after - before > SLOW_YIELD {
                self.slow_yields += 1;
            }
            let elapsed = after - *self.start.get_or_insert(before);
            return elapsed < self.budget;
        }
        std::hint::spin_loop();
        if !self.rounds.is_multiple_of(64) {
            return true;
        }
        let elapsed = self.start.get_or_insert_with(Instant::now).elapsed();
        self.yielding = elapsed >= self.pure;
        elapsed < self.budget
    }
}

/// An adaptive spin budget.
#[derive(Debug)]
pub(crate) struct SpinBudget {
    ns: AtomicU32,
    /// How long a spin stays pure (see [`Spinner`]): shrinks when waits end only after
    /// yields that ran another thread (the peer was waiting for a CPU), grows back when they
    /// end without.
    pure_ns: AtomicU32,
    enabled: bool,
}

impl SpinBudget {
    /// A budget for waiting on process `peer` (if known).
    pub(crate) fn new(enabled: bool, peer: Option<u32>) -> SpinBudget {
        let enabled = enabled && crate::sys::can_run_apart(peer);
        SpinBudget {
            ns: AtomicU32::new(if enabled { MAX_SPIN_NS } else { 0 }),
            pure_ns: AtomicU32::new(MAX_PURE_NS),
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

    /// The last wait ended while spinning, in `spinner`.
    pub(crate) fn spin_succeeded(&self, spinner: &Spinner) {
        let ns = self.ns.load(Ordering::Relaxed);
        if ns < MAX_SPIN_NS {
            self.ns.store((ns * 2).min(MAX_SPIN_NS), Ordering::Relaxed);
        }
        let pure = self.pure_ns.load(Ordering::Relaxed);
        let next = if spinner.slow_yields > 0 {
            // Other threads held the CPUs: spinning only kept the peer from one.
            if pure < 256 {
                0
            } else {
                pure / 4
            }
        } else {
            (pure * 2).clamp(256, MAX_PURE_NS)
        };
        if next != pure {
            self.pure_ns.store(next, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spinner_with(slow_yields: u32) -> Spinner {
        Spinner {
            budget: Duration::ZERO,
            pure: Duration::ZERO,
            start: None,
            rounds: 0,
            yielding: false,
            slow_yields,
        }
    }

    #[test]
    fn the_pure_phase_shrinks_when_waits_needed_other_threads_to_run_and_grows_back() {
        let budget = SpinBudget {
            ns: AtomicU32::new(MAX_SPIN_NS),
            pure_ns: AtomicU32::new(MAX_PURE_NS),
            enabled: true,
        };
        // 50 µs, 12.5, 3.1, 0.8, 0.2 (below 256 ns), then none: five crowded waits.
        for _ in 0..5 {
            budget.spin_succeeded(&spinner_with(1));
        }
        assert_eq!(budget.pure_ns.load(Ordering::Relaxed), 0);
        // With no pure phase, a spinner yields from its first round.
        assert!(Spinner::new(&budget).yielding);
        budget.spin_succeeded(&spinner_with(0));
        assert_eq!(budget.pure_ns.load(Ordering::Relaxed), 256);
        for _ in 0..8 {
            budget.spin_succeeded(&spinner_with(0));
        }
        assert_eq!(budget.pure_ns.load(Ordering::Relaxed), MAX_PURE_NS);
        assert!(!Spinner::new(&budget).yielding);
    }

    #[test]
    fn a_spinner_stops_at_its_budget() {
        let budget = SpinBudget {
            ns: AtomicU32::new(20_000),
            pure_ns: AtomicU32::new(1_000),
            enabled: true,
        };
        let mut spinner = Spinner::new(&budget);
        let started = Instant::now();
        while spinner.round() {}
        assert!(started.elapsed() >= Duration::from_micros(20));
        // Past the pure phase it yielded.
        assert!(spinner.yielding);
    }
}
