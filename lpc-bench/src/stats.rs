//! Timing round trips and summarising them.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The summary of one system's run.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Per-round-trip latency percentiles, in nanoseconds.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// Mean of a separate batch of untimed round trips: total time / count, in nanoseconds.
    pub batch_mean: f64,
    /// Round trips per second in the batch.
    pub calls_per_sec: f64,
}

/// Runs `warmup` round trips, then `samples` individually timed ones, then `samples` more
/// timed only as a batch.
pub fn measure(
    warmup: usize,
    samples: usize,
    mut round_trip: impl FnMut() -> Result<(), String>,
) -> Result<Summary, String> {
    for _ in 0..warmup {
        round_trip()?;
    }
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        round_trip()?;
        latencies.push(duration_ns(start.elapsed()));
    }
    let start = Instant::now();
    for _ in 0..samples {
        round_trip()?;
    }
    let batch = start.elapsed();
    Ok(summarise(latencies, batch))
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

fn summarise(mut latencies: Vec<u64>, batch: Duration) -> Summary {
    latencies.sort_unstable();
    let n = latencies.len();
    let secs = batch.as_secs_f64();
    Summary {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        p999: percentile(&latencies, 0.999),
        max: latencies.last().copied().unwrap_or(0),
        batch_mean: secs * 1e9 / n as f64,
        calls_per_sec: if secs > 0.0 {
            n as f64 / secs
        } else {
            f64::INFINITY
        },
    }
}

/// Nearest-rank percentile `p` (0 < p ≤ 1) of sorted `values`.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn duration_ns(d: Duration) -> u64 {
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
        let s = summarise(vec![3, 1, 2, 4], Duration::from_micros(4));
        assert_eq!((s.p50, s.p99, s.max), (2, 4, 4));
        assert!((s.batch_mean - 1000.0).abs() < 1e-9);
        assert!((s.calls_per_sec - 1e6).abs() < 1e-3);
    }
}
