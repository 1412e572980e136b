//! The results as a markdown table, the target ratios, and the full report.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::affinity::Placement;
use crate::stats::Summary;
use crate::System;

/// One measured system.
pub struct Row {
    pub system: System,
    pub placement: Placement,
    pub summary: Summary,
}

/// An lpc system and its floor; with the issue's target (`system`'s p50 at most `limit` times
/// `floor`'s), if it has one.
pub struct Comparison {
    pub system: System,
    pub floor: System,
    pub limit: Option<f64>,
    /// Judge by the batch mean rather than the p50 (for small differences, where the
    /// p50's 10 ns clock steps are too coarse).
    pub by_batch: bool,
}

pub const COMPARISONS: [Comparison; 4] = [
    Comparison {
        system: System::LpcAdaptive,
        floor: System::RawSpin,
        limit: Some(3.0),
        by_batch: false,
    },
    Comparison {
        system: System::LpcAdaptive,
        floor: System::LpcNoStats,
        limit: Some(1.05),
        by_batch: true,
    },
    Comparison {
        system: System::LpcBlock,
        floor: System::RawFutex,
        limit: Some(1.5),
        by_batch: false,
    },
    Comparison {
        system: System::LpcBlock1cpu,
        floor: System::RawFutex1cpu,
        limit: None,
        by_batch: false,
    },
];

/// The run's settings, for the report.
pub struct Settings {
    pub samples: usize,
    pub warmup: usize,
    pub timer_overhead_ns: u64,
}

fn find(rows: &[Row], system: System) -> Option<&Summary> {
    rows.iter().find(|r| r.system == system).map(|r| &r.summary)
}

/// The p50 ratio and the batch-mean ratio of a comparison, if both systems ran.
fn ratio(rows: &[Row], c: &Comparison) -> Option<(f64, f64)> {
    let (s, f) = (find(rows, c.system)?, find(rows, c.floor)?);
    (f.p50 > 0 && f.batch_mean > 0.0)
        .then(|| (s.p50 as f64 / f.p50 as f64, s.batch_mean / f.batch_mean))
}

/// The results table (markdown).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| system | CPUs | p50 | p99 | p99.9 | max | batch mean | calls/s | p50 ÷ floor |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let s = &row.summary;
        let vs_floor = COMPARISONS
            .iter()
            .find(|c| c.system == row.system)
            .and_then(|c| Some((ratio(rows, c)?.0, c.floor)))
            .map_or_else(
                || "—".to_owned(),
                |(r, floor)| format!("{r:.2}× `{}`", floor.name()),
            );
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.system.name(),
            row.placement.describe(),
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            micros(s.max as f64),
            micros(s.batch_mean),
            thousands(s.calls_per_sec),
            vs_floor,
        );
    }
    out
}

/// One line per comparison: the p50 ratio, the target and whether it is met, and the
/// batch-mean ratio (free of timer overhead) for context.
pub fn target_lines(rows: &[Row]) -> Vec<String> {
    COMPARISONS
        .iter()
        .filter_map(|c| {
            let (p50, batch) = ratio(rows, c)?;
            let judged = if c.by_batch { batch } else { p50 };
            let verdict = match c.limit {
                Some(limit) if judged <= limit => format!("target ≤ {limit}×: **met**"),
                Some(limit) => format!("target ≤ {limit}×: **NOT met**"),
                None => "no target".to_owned(),
            };
            let (s, f) = (c.system.name(), c.floor.name());
            Some(if c.by_batch {
                format!(
                    "`{s}` batch mean ÷ `{f}` batch mean = **{batch:.3}×** ({verdict}); p50 ratio {p50:.2}×"
                )
            } else {
                format!("`{s}` p50 ÷ `{f}` p50 = **{p50:.2}×** ({verdict}); batch-mean ratio {batch:.2}×")
            })
        })
        .collect()
}

/// What an idle service cost.
pub struct Idle {
    pub clients: usize,
    pub seconds: u64,
    pub cpu_seconds: f64,
    pub tick_seconds: f64,
    pub rss_kib: u64,
}

impl Idle {
    /// One line with the target.
    pub fn line(&self) -> String {
        let share = self.cpu_seconds / self.seconds as f64 * 100.0;
        let verdict = if share < 1.0 {
            "**met**"
        } else {
            "**NOT met**"
        };
        format!(
            "Idle service with {} connected idle clients: {:.3} s of CPU over {} s = **{share:.2}%** of a core \
             (resolution {:.0} ms; target < 1%: {verdict}); RSS {:.1} MiB",
            self.clients,
            self.cpu_seconds,
            self.seconds,
            self.tick_seconds * 1000.0,
            self.rss_kib as f64 / 1024.0
        )
    }
}

/// The full markdown report.
pub fn full(rows: &[Row], settings: &Settings, idle: Option<&Idle>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# lpc benchmarks: call round-trip latency\n");
    let _ = writeln!(out, "Generated by:\n");
    let _ = writeln!(
        out,
        "```sh\ncargo run --release -p lpc-bench -- --markdown docs/benchmarks.md\n```\n"
    );
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(out, "- Kernel: {}", kernel());
    let _ = writeln!(out, "- Date: {} (UTC)", today());
    let _ = writeln!(
        out,
        "- Round trips per system: {} warm-up, {} timed one by one, {} more timed as one batch",
        thousands(settings.warmup as f64),
        thousands(settings.samples as f64),
        thousands(settings.samples as f64)
    );
    let _ = writeln!(
        out,
        "- Timer overhead (median of an empty `Instant::now()`…`elapsed()`): {} ns, included in \
         every per-call percentile alike, not in the batch mean\n",
        settings.timer_overhead_ns
    );
    let _ = writeln!(out, "## Results\n");
    out.push_str(&table(rows));
    out.push('\n');
    for line in target_lines(rows) {
        let _ = writeln!(out, "- {line}");
    }
    if let Some(idle) = idle {
        let _ = writeln!(out, "- {}", idle.line());
    }
    out.push('\n');
    out.push_str(
        "Absolute numbers drift from run to run, by tens of percent on a small shared VM; \
         compare systems within one run, where a floor and its lpc counterpart are measured \
         back to back under the same conditions.\n\n",
    );
    out.push_str(HOW_MEASURED);
    out
}

const HOW_MEASURED: &str = "## How it is measured

Every system is a round trip between **two processes**: `lpc-bench` re-executes itself as a
child (a hidden subcommand), waits (bounded) for the child's `ready` line, and drives it from
the parent. Each system gets a fresh child; a floor and its lpc counterpart run back to back.

- `raw-spin`: the floor for spinning. Parent and child map the same file
  (`lpc::floor::SharedWords`). The parent stores an odd sequence number in a ping word; the
  child busy-waits (`std::hint::spin_loop`) until it sees it and stores the number + 1 in a
  pong word on another cache line; the parent busy-waits for that. Release stores, acquire
  loads, nothing else.
- `raw-futex`: the floor for always-blocking. The same ping-pong, but each side only ever
  sleeps in `FUTEX_WAIT` (shared futex) and signals with a store followed by `FUTEX_WAKE`
  (always: the floor keeps no \"is the peer asleep\" flag, so it pays for a wake even when
  the peer is not asleep yet; lpc skips that call, which is how it can beat this floor when
  both processes share a CPU).
- `lpc-adaptive`: a real lpc call, `CalcClient::add(i, 1)` of the `calc` example, with the
  result checked: arguments encoded, framed and written to a call slot, the service's
  connection thread dispatching it, the result decoded. Default client and service options
  (apart from the runtime directory): both sides spin adaptively before sleeping.
- `lpc-adaptive-nostats`: the same as `lpc-adaptive` with the service's per-method
  statistics off (`ServerOptions::statistics(false)`): the difference is what `lpc monitor`'s
  statistics cost a small call (target ≤ 5%, judged on the batch mean, whose resolution is
  finer than the p50's 10 ns clock steps).
- `lpc-block`: the same call with the service's `ServerOptions::spin(false)` and the client's
  `WaitStrategy::Block`: both sides always sleep on futexes.
- `raw-futex-1cpu`, `lpc-block-1cpu`: the blocking pair again, with both processes on one CPU.
- Idle: a calc service process with 50 connections (one call each, then nothing) for 10 s;
  its CPU time is the growth of utime + stime in `/proc/<pid>/stat` (clock-tick resolution),
  its memory the `VmRSS` of `/proc/<pid>/status` at the end.

The **CPUs** column says where the two processes ran. The spinning systems are not pinned
(two busy processes stay on separate CPUs by themselves; lpc never spins in a process allowed
only one CPU). The blocking systems are pinned, parent and child on two different CPUs
(\"2 CPUs\") or both on the same one (\"1 CPU\"), because a futex wake-up costs very
different amounts in the two cases (on a VM, waking a sleeper on another, idle, vCPU means the
hypervisor must wake that vCPU, tens of microseconds), and unpinned the pair would land on one
or the other at the scheduler's whim.

For each system: a warm-up, then every round trip timed individually with
`std::time::Instant` (p50, p99, p99.9 and max are nearest-rank percentiles of the sorted
samples), then a separate batch of untimed round trips whose total time gives the batch mean
and calls/s. The ratio column divides lpc's p50 by its floor's p50; the targets are
`lpc-adaptive` ≤ 3× `raw-spin` and `lpc-block` ≤ 1.5× `raw-futex`. The batch-mean ratio is
given alongside: it carries no timer overhead, but for the blocking systems on a VM the batch
is more exposed to how the hypervisor happens to wake idle vCPUs, so the p50 is the figure
to compare there.
";

/// `123.4 ns` as `0.123 µs`.
fn micros(ns: f64) -> String {
    format!("{:.3} µs", ns / 1000.0)
}

/// An integer with thousands separators.
fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "∞".into();
    }
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPU model (from `lscpu`, else /proc/cpuinfo) and the CPUs this process may use.
fn machine() -> String {
    let from_lscpu = std::process::Command::new("lscpu")
        .env("LC_ALL", "C")
        .output()
        .ok()
        .and_then(|o| field(&String::from_utf8_lossy(&o.stdout), "Model name"));
    let model = from_lscpu
        .or_else(|| {
            let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
            field(&info, "model name")
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cpus} CPU{}", if cpus == 1 { "" } else { "s" })
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown".into())
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(micros(1234.0), "1.234 µs");
    }
}
