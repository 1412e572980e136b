//! One measured (system, workload) pair: what `lpc-bench` reports, and what `bench-peers`
//! prints as one JSON line for `lpc-bench` to merge into the same report.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The small call: `add(i32, i32) -> i32`, or the system's smallest equivalent.
    Small,
    /// `n` bytes in and the same `n` bytes back (for `memcpy`: `n` bytes copied once).
    Echo(u64),
    /// The small call from `n` threads sharing one client.
    Threads(u32),
    /// The small call from `n` client processes, each with its own connection.
    Procs(u32),
    /// Connecting plus the first small call.
    Connect,
    /// A loan of `n` bytes, written once before timing, passed to the service, which reads
    /// its first and last bytes in place and returns a loan of `n` bytes of its own with those
    /// two written: what a zero-copy call costs apart from touching the data.
    LoanPass(u64),
    /// `get` of a shared value (`[u64; 8]`, 64 bytes; a blackboard entry for iceoryx2) that
    /// no one writes.
    SharedGet,
    /// The same `get` while another process rewrites the value back to back.
    SharedGetWriting,
    /// `set` of that value, no other writer.
    SharedSet,
    /// One-way small messages (one `u64`) from one thread, back to back: messages per second
    /// delivered to the handler (or the receiver), the last one included.
    Post,
    /// One-way latency, sender to handler (receiver), of stamped messages paced so that the
    /// receiver keeps up: the sender's `CLOCK_MONOTONIC` in the message, read again there.
    PostLatency,
    /// The same with one message every millisecond: the service asleep on its doorbell each
    /// time (lpc only; the peers measured busy-poll).
    PostLatencyIdle,
    /// Events from one emitter to `n` subscriber processes.
    Fanout(u32),
}

impl Workload {
    /// The payload sizes measured by default.
    pub const ECHO_SIZES: [u64; 4] = [1 << 10, 64 << 10, 1 << 20, 16 << 20];
    /// The loan sizes of [`Workload::LoanPass`].
    pub const LOAN_PASS_SIZES: [u64; 5] = [1 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20];

    /// Bytes moved per operation, counted for GB/s (in + out; once for `memcpy`).
    pub fn bytes(self, system: &str) -> u64 {
        match self {
            Workload::Echo(n) if system == "memcpy" => n,
            Workload::Echo(n) => 2 * n,
            _ => 0,
        }
    }

    /// `add`, `1 KiB`, `16 MiB`, `4 threads`…
    pub fn label(self) -> String {
        match self {
            Workload::Small => "add".into(),
            Workload::Echo(n) => size_label(n),
            Workload::Threads(1) => "1 thread".into(),
            Workload::Threads(n) => format!("{n} threads"),
            Workload::Procs(1) => "1 process".into(),
            Workload::Procs(n) => format!("{n} processes"),
            Workload::Connect => "connect + first call".into(),
            Workload::LoanPass(n) => format!("loan of {}", size_label(n)),
            Workload::SharedGet => "get, no writer".into(),
            Workload::SharedGetWriting => "get, a writer process writing".into(),
            Workload::SharedSet => "set".into(),
            Workload::Post => "one-way messages".into(),
            Workload::PostLatency => "one-way latency".into(),
            Workload::PostLatencyIdle => "one-way latency, service asleep".into(),
            Workload::Fanout(1) => "events to 1 subscriber".into(),
            Workload::Fanout(n) => format!("events to {n} subscribers"),
        }
    }

    /// The form used on command lines: `small`, `echo:1024`, `connect`.
    pub fn arg(self) -> String {
        match self {
            Workload::Small => "small".into(),
            Workload::Echo(n) => format!("echo:{n}"),
            Workload::Threads(n) => format!("threads:{n}"),
            Workload::Procs(n) => format!("procs:{n}"),
            Workload::Connect => "connect".into(),
            Workload::LoanPass(n) => format!("pass:{n}"),
            Workload::SharedGet => "shared-get".into(),
            Workload::SharedGetWriting => "shared-get-writing".into(),
            Workload::SharedSet => "shared-set".into(),
            Workload::Post => "post".into(),
            Workload::PostLatency => "post-latency".into(),
            Workload::PostLatencyIdle => "post-latency-idle".into(),
            Workload::Fanout(n) => format!("fanout:{n}"),
        }
    }

    /// Parses [`Workload::arg`]'s form.
    pub fn parse(s: &str) -> Result<Workload, String> {
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
        Ok(match s.split_once(':') {
            None if s == "small" => Workload::Small,
            None if s == "connect" => Workload::Connect,
            None if s == "shared-get" => Workload::SharedGet,
            None if s == "shared-get-writing" => Workload::SharedGetWriting,
            None if s == "shared-set" => Workload::SharedSet,
            None if s == "post" => Workload::Post,
            None if s == "post-latency" => Workload::PostLatency,
            None if s == "post-latency-idle" => Workload::PostLatencyIdle,
            Some(("fanout", n)) => Workload::Fanout(number(n)? as u32),
            Some(("echo", n)) => Workload::Echo(number(n)?),
            Some(("threads", n)) => Workload::Threads(number(n)? as u32),
            Some(("procs", n)) => Workload::Procs(number(n)? as u32),
            Some(("pass", n)) => Workload::LoanPass(number(n)?),
            _ => return Err(format!("unknown workload {s:?}")),
        })
    }
}

/// `1 KiB`, `64 KiB`, `16 MiB`, `100 B`.
pub fn size_label(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// One result line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// `raw-spin`, `lpc-adaptive`, `iceoryx2`…
    pub system: String,
    pub workload: Workload,
    /// Where the two processes ran: `unpinned`, `2 CPUs`, `1 CPU`.
    pub cpus: String,
    /// The measurement; `None` when the system was skipped for this workload.
    pub summary: Option<Summary>,
    /// Why it was skipped, or a remark on how it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Record {
    pub fn measured(system: &str, workload: Workload, cpus: &str, summary: Summary) -> Record {
        Record {
            system: system.into(),
            workload,
            cpus: cpus.into(),
            summary: Some(summary),
            note: None,
        }
    }

    pub fn skipped(system: &str, workload: Workload, why: impl Into<String>) -> Record {
        Record {
            system: system.into(),
            workload,
            cpus: "—".into(),
            summary: None,
            note: Some(why.into()),
        }
    }

    /// GB/s (10⁹ bytes per second) from the batch mean, if the workload moves bytes.
    pub fn gb_per_sec(&self) -> Option<f64> {
        let s = self.summary.as_ref()?;
        let bytes = self.workload.bytes(&self.system);
        (bytes > 0 && s.batch_mean > 0.0).then(|| bytes as f64 / s.batch_mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_args_round_trip() {
        for w in [
            Workload::Small,
            Workload::Echo(1 << 20),
            Workload::Threads(4),
            Workload::Procs(2),
            Workload::Connect,
            Workload::SharedGet,
            Workload::SharedGetWriting,
            Workload::SharedSet,
            Workload::Post,
            Workload::PostLatency,
            Workload::PostLatencyIdle,
            Workload::Fanout(16),
        ] {
            assert_eq!(Workload::parse(&w.arg()).unwrap(), w);
        }
        assert!(Workload::parse("echo:x").is_err());
        assert_eq!(Workload::Echo(16 << 20).label(), "16 MiB");
        assert_eq!(Workload::Echo(1024).label(), "1 KiB");
    }

    #[test]
    fn json_round_trip() {
        let r = Record::skipped("tonic", Workload::Echo(64), "because");
        let line = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back.workload, Workload::Echo(64));
        assert_eq!(back.note.as_deref(), Some("because"));
    }
}
