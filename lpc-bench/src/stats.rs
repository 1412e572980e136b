//! Timing round trips and summarising them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The summary of one measurement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Summary {
    /// Round trips timed one by one.
    pub samples: usize,
    /// Per-round-trip latency percentiles, in nanoseconds.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// Mean of a separate batch of untimed round trips: total time / count, in nanoseconds.
    /// (For several threads or processes: wall time / all their round trips.)
    pub batch_mean: f64,
    /// Round trips per second in the batch (all threads or processes together).
    pub calls_per_sec: f64,
}

/// How much to measure: at most `samples` round trips timed one by one (and as many again
/// as one batch), stopping early once the timed ones took `time` (but never with fewer than
/// [`MIN_SAMPLES`]); before them, up to `warmup` round trips or a quarter of `time`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub warmup: usize,
    pub samples: usize,
    pub time: Duration,
}

impl Budget {
    /// The budget of one of `rounds` rounds of an interleaved measurement (no warm-up; the
    /// samples and time spread over the rounds), and the fewest samples a round may stop at.
    pub fn per_round(&self, rounds: usize) -> (Budget, usize) {
        let rounds = rounds.max(1);
        let per_round = Budget {
            warmup: 0,
            samples: self.samples.div_ceil(rounds),
            time: self.time / rounds as u32,
        };
        let min_samples = per_round.samples.min(MIN_SAMPLES.div_ceil(rounds));
        (per_round, min_samples)
    }
}

/// Fewest round trips timed, whatever the time budget.
pub const MIN_SAMPLES: usize = 20;

impl Budget {
    /// The same budget with at most `samples` timed round trips.
    pub fn at_most(self, samples: usize) -> Budget {
        Budget {
            samples: self.samples.min(samples),
            warmup: self.warmup.min(samples),
            ..self
        }
    }
}

/// Warms up, times round trips one by one, then times as many again as one batch.
pub fn measure(
    budget: &Budget,
    mut round_trip: impl FnMut() -> Result<(), String>,
) -> Result<Summary, String> {
    let start = Instant::now();
    let warmup_time = budget.time / 4;
    for i in 0..budget.warmup {
        round_trip()?;
        if i % 16 == 15 && start.elapsed() > warmup_time {
            break;
        }
    }
    let min_samples = budget.samples.min(MIN_SAMPLES);
    let mut latencies = Vec::with_capacity(budget.samples.min(1 << 22));
    let timed = Instant::now();
    while latencies.len() < budget.samples {
        let start = Instant::now();
        round_trip()?;
        let elapsed = start.elapsed();
        latencies.push(duration_ns(elapsed));
        if latencies.len() >= min_samples && start + elapsed - timed > budget.time {
            break;
        }
    }
    let n = latencies.len();
    let start = Instant::now();
    for _ in 0..n {
        round_trip()?;
    }
    let batch = start.elapsed();
    Ok(summarise(latencies, n, batch))
}

/// Like [`measure`] for several systems at once, alternating between them: each round times
/// a slice of every system's round trips (one by one, then as a batch) before the next round,
/// so that a drift of the machine (another process, the hypervisor) during the run weighs on
/// all of them alike. The budget's samples and time are spread over `rounds`.
pub fn measure_interleaved(
    budget: &Budget,
    rounds: usize,
    ops: &mut [&mut dyn FnMut() -> Result<(), String>],
) -> Result<Vec<Summary>, String> {
    let rounds = rounds.max(1);
    let (per_round, min_samples) = budget.per_round(rounds);
    for op in ops.iter_mut() {
        let start = Instant::now();
        for i in 0..budget.warmup {
            op()?;
            if i % 16 == 15 && start.elapsed() > budget.time / 4 {
                break;
            }
        }
    }
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); ops.len()];
    let mut batches = vec![(0usize, Duration::ZERO); ops.len()];
    for _ in 0..rounds {
        for (i, op) in ops.iter_mut().enumerate() {
            let (n, wall) = measure_round(&per_round, min_samples, &mut latencies[i], *op)?;
            batches[i].0 += n;
            batches[i].1 += wall;
        }
    }
    Ok(latencies
        .into_iter()
        .zip(batches)
        .map(|(l, (count, wall))| summarise(l, count, wall))
        .collect())
}

/// One round of an interleaved measurement, with no warm-up: up to `per_round.samples` round
/// trips timed one by one (appended to `latencies`; stopping once they took `per_round.time`,
/// but never under `min_samples`), then as many again as one batch. Returns how many were
/// timed and the batch's time.
pub fn measure_round(
    per_round: &Budget,
    min_samples: usize,
    latencies: &mut Vec<u64>,
    op: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(usize, Duration), String> {
    let timed = Instant::now();
    let mut n = 0;
    while n < per_round.samples {
        let start = Instant::now();
        op()?;
        let elapsed = start.elapsed();
        latencies.push(duration_ns(elapsed));
        n += 1;
        if n >= min_samples && start + elapsed - timed > per_round.time {
            break;
        }
    }
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    Ok((n, start.elapsed()))
}

/// The cost of the timing itself: the median of `Instant::now()` + `elapsed()` around nothing.
pub fn timer_overhead_ns() -> u64 {
    let mut latencies: Vec<u64> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            duration_ns(start.elapsed())
        })
        .collect();
    latencies.sort_unstable();
    percentile(&latencies, 0.5)
}

/// Summarises `latencies` (in any order) of individually timed round trips, with `count`
/// round trips taking `wall` in all for the mean and the rate.
pub fn summarise(mut latencies: Vec<u64>, count: usize, wall: Duration) -> Summary {
    latencies.sort_unstable();
    let secs = wall.as_secs_f64();
    Summary {
        samples: latencies.len(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        p999: percentile(&latencies, 0.999),
        max: latencies.last().copied().unwrap_or(0),
        batch_mean: if count > 0 {
            secs * 1e9 / count as f64
        } else {
            0.0
        },
        calls_per_sec: if secs > 0.0 {
            count as f64 / secs
        } else {
            f64::INFINITY
        },
    }
}

/// Nearest-rank percentile `p` (0 < p ≤ 1) of sorted `values`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine, so that a
/// time stamped in one process and read again in another is a latency (read through the vDSO:
/// no system call).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// A duration in whole nanoseconds (saturating).
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&v, 1.0), 1000);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn summary() {
        let s = summarise(vec![3, 1, 2, 4], 4, Duration::from_micros(4));
        assert_eq!((s.samples, s.p50, s.p99, s.max), (4, 2, 4, 4));
        assert!((s.batch_mean - 1000.0).abs() < 1e-9);
        assert!((s.calls_per_sec - 1e6).abs() < 1e-3);
    }

    #[test]
    fn budget_limits_samples_and_time() {
        let budget = Budget {
            warmup: 10,
            samples: 1000,
            time: Duration::from_millis(50),
        };
        let mut calls = 0;
        let s = measure(&budget, || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        assert!(s.samples >= MIN_SAMPLES && s.samples < 100, "{}", s.samples);
        let s = measure(&budget.at_most(5), || Ok(())).unwrap();
        assert_eq!(s.samples, 5);
    }

    #[test]
    fn a_round_times_then_batches_as_many() {
        let per_round = Budget {
            warmup: 0,
            samples: 7,
            time: Duration::from_secs(10),
        };
        let mut calls = 0;
        let mut latencies = vec![1];
        let (n, _) = measure_round(&per_round, 2, &mut latencies, &mut || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((n, latencies.len(), calls), (7, 8, 14));
    }

    #[test]
    fn interleaved_rounds_share_the_budget() {
        let budget = Budget {
            warmup: 3,
            samples: 100,
            time: Duration::from_secs(10),
        };
        let (mut a, mut b) = (0, 0);
        let mut op_a = || -> Result<(), String> {
            a += 1;
            Ok(())
        };
        let mut op_b = || -> Result<(), String> {
            b += 1;
            Ok(())
        };
        let summaries = measure_interleaved(&budget, 4, &mut [&mut op_a, &mut op_b]).unwrap();
        assert_eq!(summaries.len(), 2);
        assert!(summaries.iter().all(|s| s.samples == 100));
        // Warm-up, then 100 timed and 100 in batches each.
        assert_eq!((a, b), (203, 203));
    }
}
