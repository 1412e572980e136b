//! Per-method statistics, kept without a lock on the call path.
//!
//! Each connection has its own counters, written only by its thread (a relaxed load and store:
//! no locked instruction, no cache line shared with another connection's thread), read by
//! whoever asks for [`crate::query`]. When a connection closes, its counts are folded into the
//! service's totals under a mutex — once per connection, never per call. Every call is counted;
//! one call in [`SAMPLE_EVERY`] is timed (reading the clock twice costs about as much as a
//! whole small call), which is plenty for percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::wire::info::{LatencyHistogram, MethodStats, LATENCY_BUCKETS};
use crate::wire::interface::InterfaceDescriptor;

/// One call in this many is timed.
pub(crate) const SAMPLE_EVERY: u64 = 16;

/// A counter with a single writer.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        // Single writer: load + store is enough, and cheaper than fetch_add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct MethodCounters {
    calls: Counter,
    errors: Counter,
    latency: [Counter; LATENCY_BUCKETS],
}

impl Default for MethodCounters {
    fn default() -> Self {
        MethodCounters {
            calls: Counter::default(),
            errors: Counter::default(),
            latency: std::array::from_fn(|_| Counter::default()),
        }
    }
}

/// The counters of one connection.
pub(crate) struct ConnectionStats {
    methods: Box<[MethodCounters]>,
    unknown: Counter,
    total: Counter,
}

impl ConnectionStats {
    pub(crate) fn new(interface: &InterfaceDescriptor) -> ConnectionStats {
        ConnectionStats {
            methods: interface
                .methods
                .iter()
                .map(|_| MethodCounters::default())
                .collect(),
            unknown: Counter::default(),
            total: Counter::default(),
        }
    }

    /// Whether the next call should be timed.
    pub(crate) fn sample_next(&self) -> bool {
        self.total.get().is_multiple_of(SAMPLE_EVERY)
    }

    /// Records a call of method `index` (`None`: an unknown id). Connection thread only.
    pub(crate) fn record(&self, index: Option<usize>, failed: bool, elapsed: Option<Duration>) {
        self.total.add(1);
        let Some(m) = index.and_then(|i| self.methods.get(i)) else {
            self.unknown.add(1);
            return;
        };
        m.calls.add(1);
        if failed {
            m.errors.add(1);
        }
        if let Some(elapsed) = elapsed {
            let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            m.latency[LatencyHistogram::bucket_of(ns)].add(1);
        }
    }

    /// Calls made on this connection.
    pub(crate) fn total(&self) -> u64 {
        self.total.get()
    }

    /// Adds this connection's counts to `methods` and returns its unknown-method count.
    pub(crate) fn add_to(&self, methods: &mut [MethodStats]) -> u64 {
        for (sum, m) in methods.iter_mut().zip(self.methods.iter()) {
            sum.calls += m.calls.get();
            sum.errors += m.errors.get();
            if sum.latency.buckets.len() < LATENCY_BUCKETS {
                sum.latency.buckets.resize(LATENCY_BUCKETS, 0);
            }
            for (b, c) in sum.latency.buckets.iter_mut().zip(m.latency.iter()) {
                *b += c.get();
            }
        }
        self.unknown.get()
    }
}

/// The counts of connections that have closed.
#[derive(Debug)]
pub(crate) struct ClosedTotals {
    inner: Mutex<(Vec<MethodStats>, u64)>,
}

impl ClosedTotals {
    pub(crate) fn new(interface: &InterfaceDescriptor) -> ClosedTotals {
        ClosedTotals {
            inner: Mutex::new((empty(interface), 0)),
        }
    }

    /// Folds a closing connection's counts in.
    pub(crate) fn absorb(&self, stats: &ConnectionStats) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (methods, unknown) = &mut *inner;
        *unknown += stats.add_to(methods);
    }

    /// A copy of the totals.
    pub(crate) fn snapshot(&self) -> (Vec<MethodStats>, u64) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Zeroed statistics for every method of `interface`.
pub(crate) fn empty(interface: &InterfaceDescriptor) -> Vec<MethodStats> {
    interface
        .methods
        .iter()
        .map(|m| MethodStats {
            name: m.name.to_owned(),
            calls: 0,
            errors: 0,
            latency: LatencyHistogram {
                buckets: vec![0; LATENCY_BUCKETS],
            },
        })
        .collect()
}
