//! The results as markdown: the tables with their ratio columns, the issue's targets with
//! their verdicts, and the full report (`docs/benchmarks.md`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use lpc_bench::record::{size_label, Record, Workload};
use lpc_bench::stats::Summary;
use serde::{Deserialize, Serialize};

use crate::concurrent::Concurrent;
use crate::peers;

/// The run's settings, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub command: String,
    pub quick: bool,
    pub samples: usize,
    pub warmup: usize,
    pub seconds: f64,
    pub timer_overhead_ns: u64,
}

/// What an idle service cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    pub clients: usize,
    pub seconds: u64,
    pub cpu_seconds: f64,
    pub tick_seconds: f64,
    /// RSS with `clients` idle clients connected.
    pub rss_kib: u64,
    /// That RSS split as `/proc/<pid>/status` does: anonymous, file-backed, shared memory.
    #[serde(default)]
    pub rss_parts_kib: [u64; 3],
    /// The service's threads with the clients connected.
    #[serde(default)]
    pub threads: u64,
    /// RSS before any client connected.
    pub rss_alone_kib: u64,
    /// Shared memory the service maps per connection, in bytes.
    pub shm_per_connection: u64,
}

/// One interface's handshake (see `Runner::handshake`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    /// The trait name: `Bench` or `Large`.
    pub interface: String,
    pub methods: usize,
    /// User types in its type table.
    pub types: usize,
    /// Bytes of the postcard encoding of its `InterfaceInfo`, the welcome's largest part.
    pub description_bytes: u64,
    /// The first `info()` of a fresh process (one sample per process).
    pub trace: Summary,
    /// Connect + first call + disconnect.
    pub connect: Summary,
    /// Encoding, decoding and comparing the description once, in one process: the part of a
    /// connect that grows with the interface.
    pub check: Summary,
    /// The small call over a connection of this interface.
    pub call: Summary,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub settings: Settings,
    pub machine: String,
    pub kernel: String,
    pub date: String,
    pub load_before: String,
    pub load_after: String,
    pub records: Vec<Record>,
    pub idle: Option<Idle>,
    /// The handshake of the small and the large interface (empty if not measured).
    #[serde(default)]
    pub handshake: Vec<Handshake>,
    /// Calls that never wait on each other (`None` if not measured).
    #[serde(default)]
    pub concurrent: Option<Concurrent>,
    /// The shared-value torn-read check (`None` if not measured).
    #[serde(default)]
    pub torn: Option<crate::shared::TornCheck>,
    /// One-way calls' and events' measurements beside their records (`None` if not
    /// measured).
    #[serde(default)]
    pub oneway: Option<crate::oneway::OnewayExtra>,
    /// Why the peers are missing, if they are.
    pub peer_note: Option<String>,
}

impl Results {
    fn get(&self, system: &str, workload: Workload) -> Option<&Summary> {
        self.records
            .iter()
            .find(|r| r.system == system && r.workload == workload)
            .and_then(|r| r.summary.as_ref())
    }

    fn record(&self, system: &str, workload: Workload) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.system == system && r.workload == workload)
    }
}

/// The floor each lpc system of the small call is compared with.
const SMALL_FLOORS: [(&str, &str); 7] = [
    ("lpc-adaptive", "raw-spin"),
    ("lpc-adaptive-nostats", "raw-spin"),
    ("lpc-block", "raw-futex"),
    ("lpc-block-1cpu", "raw-futex-1cpu"),
    ("lpc-adaptive-1cpu", "raw-futex-1cpu"),
    ("lpc-adaptive", "raw-unix"),
    ("lpc-adaptive", "raw-unix-1cpu"),
];

/// The lpc system every peer is compared with.
const LPC: &str = "lpc-adaptive";
/// lpc's payloads through loaned buffers (compared with the peers too).
const LOAN: &str = "lpc-loan";

/// One line of progress for stderr.
pub fn progress_line(r: &Record) -> String {
    match &r.summary {
        Some(s) => format!(
            "{} {}: p50 {} p99 {} ({} calls/s)",
            r.system,
            r.workload.label(),
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            thousands(s.calls_per_sec)
        ),
        None => format!(
            "{} {}: skipped ({})",
            r.system,
            r.workload.label(),
            r.note.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// One line of progress for stderr, for a [`Handshake`].
pub fn handshake_line(h: &Handshake) -> String {
    format!(
        "{} interface ({} methods, {} types): description {} bytes, trace {} (p50 of {}), \
         connect p50 {} p99 {} (encode + decode + compare {}), small call p50 {}",
        h.interface,
        h.methods,
        h.types,
        thousands(h.description_bytes as f64),
        micros(h.trace.p50 as f64),
        h.trace.samples,
        micros(h.connect.p50 as f64),
        micros(h.connect.p99 as f64),
        micros(h.check.p50 as f64),
        micros(h.call.p50 as f64),
    )
}

/// Lines of progress for stderr, for [`Concurrent`].
pub fn concurrent_lines(c: &Concurrent) -> Vec<String> {
    let row = |what: &str, s: &Summary| {
        format!(
            "{what}: p50 {} p99 {} ({} calls/s)",
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            thousands(s.calls_per_sec)
        )
    };
    let mut out = vec![
        row("add alone", &c.alone),
        row("add from B, A paused", &c.b_alone),
        row(
            &format!("add from B while A is in sleep_us({})", c.slow_us),
            &c.b_beside_slow,
        ),
        format!(
            "A's sleep_us({}): {} calls, p50 {}",
            c.slow_us,
            c.slow.samples,
            micros(c.slow.p50 as f64)
        ),
    ];
    for m in &c.mixes {
        out.push(format!(
            "{} threads, {}: {} calls/s, {} fast calls/s, fast p50 {} p99 {}",
            m.threads,
            m.label().replace('`', ""),
            thousands(m.calls_per_sec()),
            thousands(m.fast_per_sec()),
            micros(m.fast.p50 as f64),
            micros(m.fast.p99 as f64)
        ));
    }
    out
}

/// One of the issue's targets, judged.
pub struct Target {
    pub what: &'static str,
    pub figure: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The targets of the issue, with this run's figures.
pub fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let p50 = |system: &str, w: Workload| r.get(system, w).map(|s| s.p50 as f64);
    let small_ratio = |a: &str, b: &str| ratio(p50(a, Workload::Small)?, p50(b, Workload::Small)?);

    let mut limit_target = |what, figure_of: Option<f64>, a: &str, b: &str, limit: f64| {
        out.push(match figure_of {
            Some(x) => Target {
                what,
                figure: format!("`{a}` p50 ÷ `{b}` p50 = {x:.2}×"),
                met: Some(x <= limit),
            },
            None => not_measured(what),
        });
    };
    limit_target(
        "small call p50 ≤ 2× raw spin ping-pong (adaptive)",
        small_ratio("lpc-adaptive", "raw-spin"),
        "lpc-adaptive",
        "raw-spin",
        2.0,
    );
    limit_target(
        "small call p50 ≤ 1.2× raw futex ping-pong (always-block, 2 CPUs)",
        small_ratio("lpc-block", "raw-futex"),
        "lpc-block",
        "raw-futex",
        1.2,
    );
    limit_target(
        "small call pinned to one CPU costs about the always-block figure (adaptive ≤ 1.5× block, both on 1 CPU)",
        small_ratio("lpc-adaptive-1cpu", "lpc-block-1cpu"),
        "lpc-adaptive-1cpu",
        "lpc-block-1cpu",
        1.5,
    );

    // Faster than iceoryx2 at every size, at p50 and at p99: with the plain `Vec<u8>` API,
    // and with loans for the payloads (the small call is the same in both).
    for (lpc, what) in [
        (
            LPC,
            "faster than iceoryx2 request-response at every payload size, p50 and p99 (`Vec<u8>` API)",
        ),
        (
            LOAN,
            "faster than iceoryx2 request-response at every payload size, p50 and p99 (`Loan` API for payloads)",
        ),
    ] {
        let mut workloads = vec![Workload::Small];
        workloads.extend(Workload::ECHO_SIZES.iter().map(|&n| Workload::Echo(n)));
        let mut parts = Vec::new();
        let mut all = Some(true);
        for w in workloads {
            let system = if w == Workload::Small { LPC } else { lpc };
            match (r.get(system, w), r.get("iceoryx2", w)) {
                (Some(l), Some(i)) => {
                    let ok = l.p50 < i.p50 && l.p99 < i.p99;
                    parts.push(format!(
                        "{}: {:.2}× / {:.2}×{}",
                        w.label(),
                        l.p50 as f64 / i.p50.max(1) as f64,
                        l.p99 as f64 / i.p99.max(1) as f64,
                        if ok { "" } else { " ✗" }
                    ));
                    all = all.map(|a| a && ok);
                }
                _ => all = None,
            }
        }
        out.push(Target {
            what,
            figure: if all.is_some() {
                format!("`{lpc}` ÷ `iceoryx2` (p50 / p99): {}", parts.join("; "))
            } else {
                "not measured at every size in this run".into()
            },
            met: all,
        });
    }

    // Against the peer's (or floor's) faster placement: unpinned or both on one CPU.
    let mut faster_target = |what, peer: &str, times: f64| {
        let best = best_placement(r, peer, Workload::Small);
        out.push(match (best, r.get(LPC, Workload::Small)) {
            (Some((p, name)), Some(l)) if l.p50 > 0 => {
                let x = p.p50 as f64 / l.p50 as f64;
                Target {
                    what,
                    figure: format!("`{name}` p50 ÷ `{LPC}` p50 = {x:.1}× (its faster placement)"),
                    met: Some(x >= times),
                }
            }
            _ => not_measured(what),
        });
    };
    faster_target(
        "small call ≥ 30× faster than tarpc over a Unix socket",
        "tarpc",
        30.0,
    );
    faster_target(
        "small call ≥ 10× faster than a raw Unix-socket ping-pong",
        "raw-unix",
        10.0,
    );

    let big = Workload::Echo(16 << 20);
    for (lpc, what) in [
        (
            LPC,
            "16 MiB argument + 16 MiB result at ≥ 0.5× memcpy bandwidth (`Vec<u8>` API)",
        ),
        (
            LOAN,
            "16 MiB argument + 16 MiB result at ≥ 0.5× memcpy bandwidth (`Loan` API)",
        ),
    ] {
        out.push(
            match (
                r.record(lpc, big).and_then(Record::gb_per_sec),
                r.record("memcpy", big).and_then(Record::gb_per_sec),
            ) {
                (Some(l), Some(m)) => Target {
                    what,
                    figure: format!("`{lpc}` {l:.2} GB/s ÷ `memcpy` {m:.2} GB/s = {:.2}×", l / m),
                    met: Some(l / m >= 0.5),
                },
                _ => not_measured(what),
            },
        );
    }

    let what = "zero-copy path: a call passing a 64 MiB loan each way costs about what one \
                with 1 KiB costs (p50 ≤ 1.5×)";
    let pass = |n: u64| r.get(LOAN, Workload::LoanPass(n));
    out.push(match (pass(1 << 10), pass(64 << 20)) {
        (Some(small), Some(big)) => {
            let x = big.p50 as f64 / small.p50.max(1) as f64;
            Target {
                what,
                figure: format!(
                    "`{LOAN}` loan of 64 MiB p50 {} ÷ loan of 1 KiB p50 {} = {x:.2}×",
                    micros(big.p50 as f64),
                    micros(small.p50 as f64)
                ),
                met: Some(x <= 1.5),
            }
        }
        _ => not_measured(what),
    });

    let what = "≥ 3 million calls/s from one client thread";
    out.push(match r.get(LPC, Workload::Small) {
        Some(s) => Target {
            what,
            // The floor's own rate says whether the machine could do it at all in this run
            // (in the host's slow phase a bare ping-pong makes under 2 M round trips/s).
            figure: match r.get("raw-spin", Workload::Small) {
                Some(floor) => format!(
                    "`{LPC}` small call: {} calls/s (batch); the `raw-spin` floor itself: {} \
                     round trips/s",
                    thousands(s.calls_per_sec),
                    thousands(floor.calls_per_sec)
                ),
                None => format!(
                    "`{LPC}` small call: {} calls/s (batch)",
                    thousands(s.calls_per_sec)
                ),
            },
            met: Some(s.calls_per_sec >= 3e6),
        },
        None => not_measured(what),
    });

    let what = "2 client processes (2 cores): each keeps ≥ 40% of the one-client rate";
    out.push(
        match (
            r.get(LPC, Workload::Procs(1)),
            r.get(LPC, Workload::Procs(2)),
        ) {
            (Some(one), Some(two)) => {
                let each = two.calls_per_sec / 2.0;
                let share = each / one.calls_per_sec;
                Target {
                    what,
                    figure: format!(
                        "{} calls/s each ÷ {} calls/s alone = {:.0}%",
                        thousands(each),
                        thousands(one.calls_per_sec),
                        share * 100.0
                    ),
                    met: Some(share >= 0.4),
                }
            }
            _ => not_measured(what),
        },
    );

    let what = "a small call while another thread's call sleeps ≤ 1.5× the same call alone (p50)";
    out.push(match &r.concurrent {
        Some(c) => match ratio(c.b_beside_slow.p50 as f64, c.alone.p50 as f64) {
            Some(x) => Target {
                what,
                figure: format!(
                    "`add` from thread B while thread A is in `sleep_us({})` p50 {} ÷ alone p50 \
                     {} = {x:.2}× ({})",
                    c.slow_us,
                    micros(c.b_beside_slow.p50 as f64),
                    micros(c.alone.p50 as f64),
                    c.cpus
                ),
                met: Some(x <= 1.5),
            },
            None => not_measured(what),
        },
        None => not_measured(what),
    });

    let what = "default shared memory per connection ≤ 256 KiB";
    out.push(match &r.idle {
        Some(idle) => Target {
            what,
            figure: format!(
                "{} mapped per connection by the service",
                size_label_fraction(idle.shm_per_connection)
            ),
            met: Some(idle.shm_per_connection <= 256 << 10),
        },
        None => not_measured(what),
    });
    let what = "idle service RSS ≤ 8 MiB (no client connected)";
    out.push(match &r.idle {
        Some(idle) => Target {
            what,
            figure: format!("{:.1} MiB", idle.rss_alone_kib as f64 / 1024.0),
            met: Some(idle.rss_alone_kib <= 8 << 10),
        },
        None => not_measured(what),
    });
    let what = "idle service RSS ≤ 8 MiB (with idle clients connected)";
    out.push(match &r.idle {
        Some(idle) => Target {
            what,
            figure: format!(
                "{:.1} MiB with {} clients ({})",
                idle.rss_kib as f64 / 1024.0,
                idle.clients,
                rss_parts(idle)
            ),
            met: Some(idle.rss_kib <= 8 << 10),
        },
        None => not_measured(what),
    });
    let what = "idle service with idle clients uses < 1% of a core";
    out.push(match &r.idle {
        Some(idle) => {
            let share = idle.cpu_seconds / idle.seconds as f64 * 100.0;
            Target {
                what,
                figure: format!(
                    "{:.3} s of CPU over {} s with {} clients = {share:.2}% (resolution {:.0} ms)",
                    idle.cpu_seconds,
                    idle.seconds,
                    idle.clients,
                    idle.tick_seconds * 1000.0
                ),
                met: Some(share < 1.0),
            }
        }
        None => not_measured(what),
    });
    shared_targets(r, &mut out);
    oneway_targets(r, &mut out);
    let what = "typed C client's small call within 1.2× of the Rust client's (p50, same service, interleaved)";
    out.push(
        match (
            r.get("c-typed", Workload::Small),
            r.get("rust-typed", Workload::Small),
            r.get("c-json", Workload::Small),
        ) {
            (Some(c), Some(rust), json) if rust.p50 > 0 => {
                let x = c.p50 as f64 / rust.p50 as f64;
                let json = json
                    .map(|j| {
                        format!(
                            "; by name with JSON `c-json` {:.2}× `c-typed`",
                            j.p50 as f64 / c.p50.max(1) as f64
                        )
                    })
                    .unwrap_or_default();
                Target {
                    what,
                    figure: format!("`c-typed` p50 ÷ `rust-typed` p50 = {x:.2}×{json}"),
                    met: Some(x <= 1.2),
                }
            }
            _ => not_measured(what),
        },
    );
    let what = "per-method statistics cost ≤ 5% of a small call (batch mean)";
    out.push(
        match (
            r.get("lpc-adaptive", Workload::Small),
            r.get("lpc-adaptive-nostats", Workload::Small),
        ) {
            (Some(on), Some(off)) if off.batch_mean > 0.0 => {
                let x = on.batch_mean / off.batch_mean;
                Target {
                    what,
                    figure: format!("`lpc-adaptive` ÷ `lpc-adaptive-nostats` batch mean = {x:.3}×"),
                    met: Some(x <= 1.05),
                }
            }
            _ => not_measured(what),
        },
    );
    out
}

/// The shared-value targets: `get` p50 against its limit (beside iceoryx2's blackboard when
/// it ran), and the torn-read check.
fn shared_targets(r: &Results, out: &mut Vec<Target>) {
    use crate::shared::{CHECKED_READS, PLAIN_SYSTEM, READERS, SYSTEM};
    for (w, what, limit) in [
        (
            Workload::SharedGet,
            "shared value: `get` of a 64-byte value p50 ≤ 50 ns with no writer",
            50.0,
        ),
        (
            Workload::SharedGetWriting,
            "shared value: `get` of a 64-byte value p50 ≤ 150 ns while a writer updates continuously",
            150.0,
        ),
    ] {
        // The value is plain data (`[u64; 8]`): `SharedPlain` is lpc's `get` for it, and the
        // serde path (`Shared`, any serde type) is shown beside it.
        out.push(match r.get(PLAIN_SYSTEM, w) {
            Some(s) => {
                let x = s.p50 as f64 / limit;
                let serde = match r.get(SYSTEM, w) {
                    Some(d) => format!("; through serde (`{SYSTEM}`) p50 {} ns", d.p50),
                    None => String::new(),
                };
                let beside = match r.get("iceoryx2", w) {
                    Some(i) => format!(
                        "; ÷ `iceoryx2` blackboard p50 {} ns = {:.2}×",
                        i.p50,
                        s.p50 as f64 / i.p50.max(1) as f64
                    ),
                    None => "; iceoryx2 not measured in this run".into(),
                };
                Target {
                    what,
                    figure: format!(
                        "`{PLAIN_SYSTEM}` p50 {} ns ÷ {limit:.0} ns = {x:.2}×{serde}{beside}",
                        s.p50
                    ),
                    met: Some(x <= 1.0),
                }
            }
            None => not_measured(what),
        });
    }
    let what =
        "shared value: 4 reader processes and 1 writer, zero torn reads over 10 M checked reads";
    out.push(match &r.torn {
        Some(t) => Target {
            what,
            figure: format!(
                "{} torn of {} reads checked by {} processes ({} changes seen, {} writes \
                 published meanwhile, {:.1} s)",
                t.torn,
                thousands(t.reads as f64),
                t.readers,
                thousands(t.changes as f64),
                thousands(t.writes as f64),
                t.seconds
            ),
            met: Some(
                t.torn == 0 && t.reads >= CHECKED_READS && t.readers >= READERS && t.changes > 0,
            ),
        },
        None => not_measured(what),
    });
}

/// The one-way and event targets: ≥ 10 M one-way messages/s from one thread, ahead of
/// iceoryx2 publish-subscribe, and no system call per message to a sleeping service.
fn oneway_targets(r: &Results, out: &mut Vec<Target>) {
    use crate::oneway::{SYSCALL_LIMIT, SYSTEM};
    let lpc = r.get(SYSTEM, Workload::Post);
    let what = "one-way small messages from one client thread ≥ 10 M/s (handled, drain included)";
    out.push(match lpc {
        Some(s) => Target {
            what,
            figure: format!(
                "`{SYSTEM}` {} messages/s ÷ 10 M = {:.2}×",
                thousands(s.calls_per_sec),
                s.calls_per_sec / 1e7
            ),
            met: Some(s.calls_per_sec >= 1e7),
        },
        None => not_measured(what),
    });
    let what = "one-way small messages ahead of iceoryx2 publish-subscribe (messages/s)";
    out.push(match (lpc, r.get("iceoryx2", Workload::Post)) {
        (Some(l), Some(i)) if i.calls_per_sec > 0.0 => {
            let x = l.calls_per_sec / i.calls_per_sec;
            Target {
                what,
                figure: format!("`{SYSTEM}` ÷ `iceoryx2` publish-subscribe = {x:.2}×"),
                met: Some(x > 1.0),
            }
        }
        _ => not_measured(what),
    });
    let what =
        "a tight loop of one-way calls to a sleeping service makes no system call per message";
    out.push(match r.oneway.as_ref().and_then(|o| o.syscalls.as_ref()) {
        Some(c) => Target {
            what,
            figure: format!(
                "{} system calls of the posting thread in {} posts (`strace -f`): {:.5} per message (limit {SYSCALL_LIMIT})",
                c.thread,
                thousands(c.messages as f64),
                c.per_message()
            ),
            met: Some(c.per_message() <= SYSCALL_LIMIT && c.bursts > 0),
        },
        None => not_measured(what),
    });
}

/// The one-way calls' and events' section.
fn oneway_section(r: &Results) -> String {
    use crate::oneway::{CHUNK, EVENTS, FANOUT_PACE, IDLE_PACE, PACE, SYSTEM};
    let mut out = String::from("\n## One-way calls and events\n\n");
    let _ = writeln!(
        out,
        "One-way small messages (`#[lpc(oneway)] fn note(&self, x: u64)`, a 16-byte record in \
         the connection's 64 KiB queue) posted back to back from one client thread in chunks \
         of {CHUNK}, for the run's time; then a two-way call, which the service answers once \
         every message before it is handled: **messages/s counts messages handled**, the \
         drain included, and the handler checks they came in order. Beside it (with \
         `--peers`), iceoryx2 publish-subscribe between two processes (lossless: no safe \
         overflow, `RetryUntilDelivered`, a subscriber buffer of 4,096; its subscriber \
         busy-polls) and crossbeam-channel between two threads of one process (bounded, \
         4,096), both with the same harness, ended by a marker the receiver answers. Latency: \
         the sender's `CLOCK_MONOTONIC` in the message, read again in the handler (receiver); \
         one message every {PACE:?}, and for lpc also every {IDLE_PACE:?}, when its service \
         sleeps on its doorbell before each. Compare rows of one run only.\n"
    );
    out.push_str(
        "| system | workload | messages/s | ns per message (p50 / p99 of chunks) | latency p50 | \
         p99 | p99.9 | ÷ lpc | note |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut any = false;
    for w in [
        Workload::Post,
        Workload::PostLatency,
        Workload::PostLatencyIdle,
    ] {
        for system in [SYSTEM, "iceoryx2", crate::peers::CROSSBEAM] {
            let Some(rec) = r.record(system, w) else {
                continue;
            };
            any = true;
            let name = match system {
                "iceoryx2" => "`iceoryx2` publish-subscribe".to_owned(),
                s => format!("`{s}`"),
            };
            let note = rec.note.clone().unwrap_or_default();
            let Some(s) = &rec.summary else {
                let _ = writeln!(out, "| {name} | {} | | | | | | | {note} |", w.label());
                continue;
            };
            let lpc = r.get(SYSTEM, w);
            if w == Workload::Post {
                let vs = match lpc {
                    Some(l) if system != SYSTEM && l.calls_per_sec > 0.0 => {
                        format!("{:.2}×", s.calls_per_sec / l.calls_per_sec)
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} / {} | | | | {vs} | {note} |",
                    w.label(),
                    thousands(s.calls_per_sec),
                    s.p50,
                    s.p99,
                );
            } else {
                let vs = match lpc {
                    Some(l) if system != SYSTEM && l.p50 > 0 => {
                        format!("{:.2}× (p50)", s.p50 as f64 / l.p50 as f64)
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "| {name} | {} | | | {} | {} | {} | {vs} | {note} |",
                    w.label(),
                    micros(s.p50 as f64),
                    micros(s.p99 as f64),
                    micros(s.p999 as f64),
                );
            }
        }
    }
    if !any {
        out.push_str("| not measured in this run (`--only oneway`) | | | | | | | | |\n");
    }
    let Some(extra) = &r.oneway else {
        return out;
    };
    let _ = writeln!(
        out,
        "\nEvent fan-out (`{EVENTS}`): this process is the service and emits \
         (`#[lpc::events]`, a `u64`); each subscriber is a process of its own with the default \
         64 KiB ring and the default policy, drop oldest. First events emitted back to back \
         for the run's time: what each subscriber received per second (from its first event \
         to the end marker) and what it missed (lpc counts every drop); then one event every \
         {FANOUT_PACE:?}, for the latency from emit to receive (every subscriber's together; a \
         subscriber sleeps on its ring when it is empty, so each event wakes it).\n"
    );
    out.push_str(
        "| subscribers | emitted/s | received/s per subscriber (mean / min) | received/s, all | \
         missed | latency p50 | p99 | p99.9 |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &extra.fanout {
        let rates = f.rates();
        let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {:.1}% | {} | {} | {} |",
            f.subscribers,
            thousands(f.emit_rate()),
            thousands(mean),
            thousands(if min.is_finite() { min } else { 0.0 }),
            thousands(rates.iter().sum()),
            f.lost() * 100.0,
            micros(f.latency.p50 as f64),
            micros(f.latency.p99 as f64),
            micros(f.latency.p999 as f64),
        );
    }
    if extra.fanout.is_empty() {
        out.push_str("| not measured in this run | | | | | | | |\n");
    }
    match (&extra.syscalls, &extra.syscalls_note) {
        (Some(c), _) => {
            let names: Vec<String> = c.by_name.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "\nSystem calls of a tight loop of posts to a sleeping service: a client process \
                 run under `strace -f` posts {} bursts of {} notes; before each burst every \
                 thread of the service sleeps (`S` in `/proc/<pid>/task/*/stat`). Between the \
                 marker system calls around the bursts, the posting thread made **{} system \
                 calls in {} posts ({:.5} per message)**: {}; the whole client process {}. lpc's \
                 own count over the same posts: {} doorbell rings (`futex_wake`, a burst's first \
                 post, or one that found the service asleep again) and {} waits for room \
                 (`futex_wait`, at most one per half queue when the service is the slower).",
                c.bursts,
                thousands((c.messages / u64::from(c.bursts.max(1))) as f64),
                c.thread,
                thousands(c.messages as f64),
                c.per_message(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
                c.process,
                c.wakes,
                c.waits,
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(
                out,
                "\nSystem calls of posts to a sleeping service: not counted ({why})."
            );
        }
        (None, None) => {}
    }
    out
}

/// The shared-value rows, lpc's and iceoryx2's blackboard's.
fn shared_table(r: &Results) -> String {
    use crate::shared::{PLAIN_SYSTEM, SYSTEM};
    let mut out = String::from(
        "| system | operation | p50 | p99 | p99.9 | batch mean | p50 ÷ iceoryx2 p50 | note |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    let mut any = false;
    for w in [
        Workload::SharedGet,
        Workload::SharedGetWriting,
        Workload::SharedSet,
    ] {
        for system in [PLAIN_SYSTEM, SYSTEM, "iceoryx2"] {
            let Some(rec) = r.record(system, w) else {
                continue;
            };
            any = true;
            let note = rec.note.clone().unwrap_or_default();
            match &rec.summary {
                Some(s) => {
                    let vs = match (system != "iceoryx2", r.get("iceoryx2", w)) {
                        (true, Some(i)) => format!("{:.2}×", s.p50 as f64 / i.p50.max(1) as f64),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "| `{system}` | {} | {} ns | {} ns | {} ns | {:.1} ns | {vs} | {note} |",
                        w.label(),
                        s.p50,
                        s.p99,
                        s.p999,
                        s.batch_mean,
                    );
                }
                None => {
                    let _ = writeln!(out, "| `{system}` | {} | | | | | | {note} |", w.label());
                }
            }
        }
    }
    if !any {
        out.push_str("| not measured in this run (`--only shared`) | | | | | | | |\n");
    }
    out
}

/// `anonymous 4.1 MiB, file 2.0 MiB, shared memory 3.4 MiB`.
fn rss_parts(idle: &Idle) -> String {
    let [anon, file, shmem] = idle.rss_parts_kib.map(|k| k as f64 / 1024.0);
    format!("anonymous {anon:.1} MiB, file {file:.1} MiB, shared memory {shmem:.1} MiB")
}

fn not_measured(what: &'static str) -> Target {
    Target {
        what,
        figure: "not measured in this run".into(),
        met: None,
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**NOT met**",
        None => "—",
    }
}

/// The targets table.
pub fn targets_table(r: &Results) -> String {
    let mut out = String::from("| target | this run | verdict |\n|---|---|---|\n");
    for t in targets(r) {
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.figure, verdict(t.met));
    }
    out
}

/// `floor` as a column entry: `1.84× raw-spin`.
fn versus(x: Option<f64>, name: &str) -> String {
    x.map_or_else(String::new, |x| format!("{x:.2}× `{name}`"))
}

/// The small-call table.
fn small_table(r: &Results) -> String {
    let mut out = String::from(
        "| system | CPUs | p50 | p99 | p99.9 | max | batch mean | calls/s | lpc ÷ floor (p50) | peer ÷ lpc (p50 / p99) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let lpc = r.get(LPC, Workload::Small);
    for rec in r.records.iter().filter(|x| x.workload == Workload::Small) {
        let Some(s) = &rec.summary else {
            let _ = writeln!(
                out,
                "| `{}` | — | skipped: {} | | | | | | | |",
                rec.system,
                rec.note.as_deref().unwrap_or("")
            );
            continue;
        };
        let vs_floor = SMALL_FLOORS
            .iter()
            .filter(|(sys, _)| *sys == rec.system)
            .filter_map(|(_, floor)| {
                let f = r.get(floor, Workload::Small)?;
                Some(versus(ratio(s.p50 as f64, f.p50 as f64), floor))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let vs_lpc = if is_peer(&rec.system) {
            lpc.map_or_else(String::new, |l| peer_ratio(s, l))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            shown(rec),
            rec.cpus,
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            micros(s.max as f64),
            micros(s.batch_mean),
            thousands(s.calls_per_sec),
            vs_floor,
            vs_lpc,
        );
    }
    out
}

/// The system's name for a table: `tarpc` (mt server) when its record says how it ran.
fn shown(rec: &Record) -> String {
    let flavour = match rec.note.as_deref() {
        Some(n) if rec.summary.is_some() && n.contains("multi-thread") => " (mt server)",
        Some(n) if rec.summary.is_some() && n.contains("current-thread") => " (ct server)",
        _ => "",
    };
    format!("`{}`{flavour}", rec.system)
}

fn peer_ratio(s: &Summary, lpc: &Summary) -> String {
    format!(
        "{:.1}× / {:.1}×",
        s.p50 as f64 / lpc.p50.max(1) as f64,
        s.p99 as f64 / lpc.p99.max(1) as f64
    )
}

fn is_peer(system: &str) -> bool {
    peers::SYSTEMS.contains(&system.strip_suffix("-1cpu").unwrap_or(system))
}

/// The faster (by p50) of `system` unpinned and `system-1cpu`, with the name it ran under.
fn best_placement<'a>(r: &'a Results, system: &str, w: Workload) -> Option<(&'a Summary, String)> {
    let pinned = format!("{system}-1cpu");
    [system, pinned.as_str()]
        .into_iter()
        .filter_map(|name| Some((r.get(name, w)?, name.to_owned())))
        .min_by_key(|(s, _)| s.p50)
}

/// The payload table: every size, every system.
fn echo_table(r: &Results) -> String {
    let mut out = String::from(
        "| size each way | system | CPUs | p50 | p99 | p99.9 | calls/s | GB/s | lpc ÷ floor | peer ÷ lpc (p50 / p99) |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut sizes: Vec<u64> = r
        .records
        .iter()
        .filter_map(|x| match x.workload {
            Workload::Echo(n) => Some(n),
            _ => None,
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let w = Workload::Echo(n);
        let lpc = r.get(LPC, w);
        let loan = r.get(LOAN, w);
        let memcpy_gbs = r.record("memcpy", w).and_then(Record::gb_per_sec);
        for rec in r.records.iter().filter(|x| x.workload == w) {
            let Some(s) = &rec.summary else {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | — | skipped: {} | | | | | | |",
                    size_label(n),
                    rec.system,
                    rec.note.as_deref().unwrap_or("")
                );
                continue;
            };
            let gbs = rec.gb_per_sec();
            let vs_floor = if rec.system.starts_with("lpc") {
                let unix = best_placement(r, "raw-unix", w)
                    .and_then(|(u, name)| Some((ratio(s.p50 as f64, u.p50 as f64)?, name)));
                let copy = gbs.zip(memcpy_gbs).and_then(|(g, m)| ratio(g, m));
                [
                    unix.map(|(x, name)| format!("p50 {x:.2}× `{name}`")),
                    copy.map(|x| format!("GB/s {x:.2}× `memcpy`")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
            } else {
                String::new()
            };
            let vs_lpc = if is_peer(&rec.system) {
                [(lpc, LPC), (loan, LOAN)]
                    .iter()
                    .filter_map(|(l, name)| Some(format!("{} `{name}`", peer_ratio(s, (*l)?))))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size_label(n),
                shown(rec),
                rec.cpus,
                micros(s.p50 as f64),
                micros(s.p99 as f64),
                micros(s.p999 as f64),
                thousands(s.calls_per_sec),
                gbs.map_or_else(String::new, |g| format!("{g:.2}")),
                vs_floor,
                vs_lpc,
            );
        }
    }
    out
}

/// Threads sharing one client, or client processes.
fn concurrency_table(r: &Results, threads: bool) -> String {
    let (unit, units) = if threads {
        ("thread", "threads")
    } else {
        ("process", "processes")
    };
    let mut out = format!(
        "| {units} | p50 | p99 | p99.9 | max | calls/s, all | calls/s per {unit} | per {unit} ÷ one alone |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let pick = |w: Workload| match w {
        Workload::Threads(n) if threads => Some(n),
        Workload::Procs(n) if !threads => Some(n),
        _ => None,
    };
    let one = r
        .records
        .iter()
        .find(|x| pick(x.workload) == Some(1))
        .and_then(|x| x.summary.as_ref())
        .map(|s| s.calls_per_sec);
    for rec in r.records.iter().filter(|x| x.system == LPC) {
        let (Some(n), Some(s)) = (pick(rec.workload), &rec.summary) else {
            continue;
        };
        let each = s.calls_per_sec / f64::from(n);
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} | {} |",
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            micros(s.max as f64),
            thousands(s.calls_per_sec),
            thousands(each),
            one.and_then(|o| ratio(each, o))
                .map_or_else(String::new, |x| format!("{:.0}%", x * 100.0)),
        );
    }
    out
}

/// The small call alone and beside a slow call (see `concurrent::beside_slow`).
fn beside_slow_table(c: &Concurrent) -> String {
    let mut out = String::from(
        "| call | p50 | p99 | p99.9 | max | timed | calls/s (batch) | p50 ÷ alone | p99 ÷ alone |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let rows = [
        ("`add`, alone (the client's only calling thread)", &c.alone),
        ("`add` from thread B, A paused", &c.b_alone),
        (
            &*format!(
                "`add` from thread B while thread A is in `sleep_us({})`",
                c.slow_us
            ),
            &c.b_beside_slow,
        ),
    ];
    for (what, s) in rows {
        let vs = |a: u64, b: u64| {
            ratio(a as f64, b as f64).map_or_else(String::new, |x| format!("{x:.2}×"))
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} | {} | {} | {} | {} |",
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            micros(s.max as f64),
            thousands(s.samples as f64),
            thousands(s.calls_per_sec),
            vs(s.p50, c.alone.p50),
            vs(s.p99, c.alone.p99),
        );
    }
    let s = &c.slow;
    let _ = writeln!(
        out,
        "| thread A: `sleep_us({})`, back to back | {} | {} | {} | {} | {} | | | |",
        c.slow_us,
        micros(s.p50 as f64),
        micros(s.p99 as f64),
        micros(s.p999 as f64),
        micros(s.max as f64),
        thousands(s.samples as f64),
    );
    out
}

/// Threads mixing slow and fast calls, next to the same threads making fast calls only.
fn mix_table(c: &Concurrent) -> String {
    let mut out = String::from(
        "| threads | each thread calls | seconds | calls/s, all | fast calls/s | ÷ `add` only | slow calls/s | fast call p50 | fast call p99 | fast call p99.9 | fast calls/s per thread outside its slow calls | ÷ `add` only |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let fast_only = c.mixes.iter().find(|m| m.slow_every == 0);
    let share = |x: f64, of: fn(&crate::concurrent::Mix) -> f64| {
        fast_only
            .and_then(|f| ratio(x, of(f)))
            .map_or_else(String::new, |x| format!("{:.0}%", x * 100.0))
    };
    for m in &c.mixes {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.threads,
            m.label(),
            m.seconds,
            thousands(m.calls_per_sec()),
            thousands(m.fast_per_sec()),
            share(m.fast_per_sec(), |f| f.fast_per_sec()),
            thousands(m.slow_calls as f64 / m.seconds),
            micros(m.fast.p50 as f64),
            micros(m.fast.p99 as f64),
            micros(m.fast.p999 as f64),
            thousands(m.fast_per_thread_outside_slow()),
            share(m.fast_per_thread_outside_slow(), |f| {
                f.fast_per_thread_outside_slow()
            }),
        );
    }
    out
}

fn connect_table(r: &Results) -> String {
    let mut out = String::from(
        "| system | p50 | p99 | max | samples | peer ÷ lpc (p50) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let lpc = r.get(LPC, Workload::Connect);
    for rec in r.records.iter().filter(|x| x.workload == Workload::Connect) {
        let Some(s) = &rec.summary else {
            let _ = writeln!(
                out,
                "| `{}` | skipped: {} | | | | |",
                rec.system,
                rec.note.as_deref().unwrap_or("")
            );
            continue;
        };
        let vs = if is_peer(&rec.system) {
            lpc.and_then(|l| ratio(s.p50 as f64, l.p50 as f64))
                .map_or_else(String::new, |x| format!("{x:.1}×"))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {vs} |",
            shown(rec),
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.max as f64),
            s.samples
        );
    }
    out
}

/// Largest socket message (`MAX_MESSAGE` in `lpc/src/wire/handshake.rs`, not public).
const MAX_MESSAGE: u64 = 192 * 1024;

/// The handshake rows, each against the first (the small interface).
fn handshake_table(r: &Results) -> String {
    let mut out = String::from(
        "| interface | methods | user types | description bytes | of the 192 KiB limit | trace, p50 (max) | connect p50 | connect p99 | ÷ small (p50 / p99) | encode + decode + compare, p50 | small call p50 | ÷ small |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let base = r.handshake.first();
    for h in &r.handshake {
        let vs_connect = base.map_or_else(String::new, |b| peer_ratio(&h.connect, &b.connect));
        let vs_call = base
            .and_then(|b| ratio(h.call.p50 as f64, b.call.p50 as f64))
            .map_or_else(String::new, |x| format!("{x:.2}×"));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {:.1}% | {} ({}) | {} | {} | {vs_connect} | {} | {} | {vs_call} |",
            h.interface,
            h.methods,
            h.types,
            thousands(h.description_bytes as f64),
            h.description_bytes as f64 * 100.0 / MAX_MESSAGE as f64,
            micros(h.trace.p50 as f64),
            micros(h.trace.max as f64),
            micros(h.connect.p50 as f64),
            micros(h.connect.p99 as f64),
            micros(h.check.p50 as f64),
            micros(h.call.p50 as f64),
        );
    }
    if r.handshake.is_empty() {
        out.push_str("| not measured in this run | | | | | | | | | | | |\n");
    }
    out
}

fn pinned_table(r: &Results) -> String {
    let mut out = String::from(
        "| system | CPUs | p50 | p99 | p99.9 | batch mean |\n|---|---|---:|---:|---:|---:|\n",
    );
    for system in [
        "lpc-adaptive",
        "lpc-adaptive-1cpu",
        "lpc-block-1cpu",
        "raw-futex-1cpu",
    ] {
        if let Some(rec) = r.record(system, Workload::Small) {
            if let Some(s) = &rec.summary {
                let _ = writeln!(
                    out,
                    "| `{system}` | {} | {} | {} | {} | {} |",
                    rec.cpus,
                    micros(s.p50 as f64),
                    micros(s.p99 as f64),
                    micros(s.p999 as f64),
                    micros(s.batch_mean)
                );
            }
        }
    }
    out
}

/// The full markdown report. `chart` is linked relative to `markdown`'s directory.
pub fn full(r: &Results, chart: Option<&Path>, markdown: Option<&Path>) -> String {
    let mut out = String::new();
    let s = &r.settings;
    out.push_str("# lpc benchmarks\n\n");
    out.push_str(
        "lpc against the floors of this machine (raw shared-memory ping-pong by spinning and by \
         futex, a raw Unix-socket ping-pong, `memcpy`) and against peers (iceoryx2, tarpc, \
         ipc-channel, tonic) on the same workloads, all measured in **one run** of one command:\n\n",
    );
    out.push_str(
        "```sh\nscripts/bench.sh            # scripts/bench.sh --quick for a smoke run\n```\n\n",
    );
    let _ = writeln!(out, "- This run: `{}`", s.command);
    let _ = writeln!(out, "- Machine: {}", r.machine);
    let _ = writeln!(out, "- Kernel: {}", r.kernel);
    let _ = writeln!(out, "- Date: {} (UTC)", r.date);
    let _ = writeln!(
        out,
        "- Load average (1, 5, 15 min) before the run: {}; after: {}",
        r.load_before, r.load_after
    );
    let _ = writeln!(
        out,
        "- Per measurement: up to {} warm-up round trips, then up to {} timed one by one \
         (stopping after {:.1} s, never under 20), then as many again timed as one batch{}",
        thousands(s.warmup as f64),
        thousands(s.samples as f64),
        s.seconds,
        if s.quick {
            " (**--quick** smoke run)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "- Timer overhead (median of an empty `Instant::now()`…`elapsed()`): {} ns, included in \
         every per-call percentile alike, not in the batch mean\n",
        s.timer_overhead_ns
    );
    out.push_str(
        "Absolute numbers drift from run to run, by tens of percent on this small shared VM; \
         every ratio below compares two figures of the same run.\n\n",
    );

    out.push_str("## Targets\n\n");
    out.push_str(&targets_table(r));
    out.push_str(
        "\nWhere a target is not met, [Why targets are not met](#why-targets-are-not-met) \
         gives the profile and the reason.\n\n",
    );

    out.push_str("## Small call\n\n");
    out.push_str(
        "`add(i32, i32) -> i32` for lpc and the peers; one 8-byte message each way for \
         `raw-unix`; one 4-byte word each way for the raw shared-memory floors. The \
         socket-based systems (`raw-unix`, tarpc, ipc-channel, tonic) also run with both \
         processes on one CPU (`…-1cpu`): on this VM a wake-up across CPUs costs tens of \
         microseconds, so they are faster there; targets against them use their faster \
         placement.\n\n",
    );
    out.push_str(&small_table(r));
    if let Some(note) = &r.peer_note {
        let _ = writeln!(out, "\nPeers: {note}.");
    }

    out.push_str("\n## Payloads\n\n");
    out.push_str(
        "`echo(Vec<u8>) -> Vec<u8>`: n bytes in, the same n bytes out (the result becomes the \
         next call's argument, so no allocation is timed that the API does not force). GB/s = \
         (bytes in + bytes out) ÷ batch mean; for `memcpy`, bytes copied ÷ time. `lpc ÷ floor` \
         gives lpc's p50 against `raw-unix` moving the same bytes, and lpc's GB/s against \
         `memcpy` of the same size (against the faster placement of `raw-unix`). `lpc-loan` is the same echo through loaned buffers (`lpc::Loan`, \
         see below); peers are compared with both.\n\n",
    );
    if let Some(chart) = chart {
        let link = relative_link(chart, markdown);
        let _ = writeln!(
            out,
            "![p50 latency against payload size, log-log, one line per system]({link})\n"
        );
    }
    out.push_str(&echo_table(r));

    out.push_str("\n## Loans passed both ways\n\n");
    out.push_str(
        "The zero-copy path on its own: the caller fills a loan of n bytes once, before timing; \
         each call writes its first byte in place, passes it (`pass_loan(&Loan, u64) -> Loan`), \
         and gets back a loan of n bytes of the service's, which reads the first and last bytes \
         of the caller's in place and writes them at the ends of its own. Only handles cross; \
         the cost should not grow with n.\n\n",
    );
    out.push_str(&loan_pass_table(r));

    out.push_str("\n## Threads sharing one client\n\n");
    out.push_str(
        "The small call from n threads of one process, all using one `BenchClient` (one \
         connection, 16 call slots), against one service process; `lpc-adaptive`, unpinned, \
         each thread calling for the measurement's time.\n\n",
    );
    out.push_str(&concurrency_table(r, true));

    out.push_str("\n## Calls that never wait on each other\n\n");
    match &r.concurrent {
        Some(c) => {
            let _ = writeln!(
                out,
                "The service runs the calls of one connection concurrently: slot 0 on the \
                 connection's own thread, each further slot the client uses on a thread of its \
                 own; a client shared by several threads uses one slot per thread in flight \
                 (`lpc-adaptive`, default options).\n\n\
                 **A small call beside a slow one.** One service process and one `BenchClient` \
                 (one connection) used by three threads, the client process and the service \
                 apart ({cpus}: every client thread on one CPU, the service on another; \
                 unpinned, which of the service's threads the scheduler puts on the caller's \
                 CPU can decide what a small call costs, on the 2-vCPU VM of these benchmarks \
                 between about 0.3 and 4 µs from one run to another, and the rows would \
                 compare placements, not calls). \
                 Thread A calls `sleep_us({slow})` (the service sleeps {slow_ms} ms) back to \
                 back; its first call finds every slot free and takes slot 0. Thread B warms up \
                 while A sleeps, so it takes another slot and keeps it (a thread tries the slot \
                 it used last first). Thread C calls only while A and B do not, so it gets \
                 slot 0, as a client's only thread does. Rows: **alone**: `add` from C, no \
                 other call in flight: the small-call table's call; **B, A paused**: `add` from \
                 B with no other call in flight, on B's own slot and service thread; **B while \
                 A is in `sleep_us`**: `add` from B, timed only once A's first slow call of the \
                 round has returned, so that A is inside a slow call throughout (but for the \
                 microseconds between two of them, once every {slow_ms} ms); **thread A**: the \
                 slow calls themselves, each timed. The three `add` rows are measured \
                 interleaved, in {rounds} rounds each timing a {rounds}th of every row's \
                 samples and time (one by one, then as many again as one batch, after a few \
                 untimed calls), A paused for the first two rows and calling for the third, \
                 after a warm-up of each thread. The target compares **B while A is in \
                 `sleep_us`** with **alone** at the p50; **B, A paused** separates what B's \
                 other slot costs from what the slow call beside it costs.\n",
                cpus = c.cpus,
                slow = c.slow_us,
                slow_ms = c.slow_us as f64 / 1000.0,
                rounds = c.rounds,
            );
            out.push_str(&beside_slow_table(c));
            let threads = c.mixes.first().map_or(0, |m| m.threads);
            let (every, slow_us) = c
                .mixes
                .iter()
                .find(|m| m.slow_every > 0)
                .map_or((0, 0), |m| (m.slow_every, m.slow_us));
            let _ = writeln!(
                out,
                "\n**Threads mixing slow and fast calls.** {threads} threads sharing one \
                 client, against a fresh service process, {} (as in the threads table), all \
                 starting each round together and calling for the round's time: `add` only, \
                 or {every} × `add` then one `sleep_us({slow_us})` (the service sleeps {} ms), \
                 repeated, the threads' slow calls staggered (thread t starts t × {every} ÷ \
                 {threads} fast calls into its cycle). Each load runs for the measurement's \
                 time in all, in {} rounds alternating which load runs first, after a warm-up \
                 round of the mixed load. **Calls/s, all**: fast and slow calls of all threads \
                 over the rounds' wall time; **fast calls/s**: the `add` calls alone, and \
                 against the fast-only load's; the latencies are the `add` calls', each \
                 timed. A thread in a slow call makes no fast call meanwhile: the last two \
                 columns count each thread's fast calls over its time outside its own slow \
                 calls (the threads' time taken as the wall time), which slow calls holding up \
                 fast ones would lower below the fast-only load's.\n",
                c.mix_cpus,
                slow_us as f64 / 1000.0,
                crate::concurrent::MIX_ROUNDS,
            );
            out.push_str(&mix_table(c));
            let _ = writeln!(
                out,
                "\nMeasured by `{}`; on its own: `cargo run --release -p lpc-bench -- --only \
                 concurrent --quick --markdown /tmp/concurrent.md`.",
                s.command
            );
        }
        None => out.push_str("Not measured in this run (`--only concurrent`).\n"),
    }

    out.push_str("\n## Client processes\n\n");
    out.push_str(
        "The small call from n client processes at once, each with its own connection to one \
         service process (which serves each connection on its own thread); `lpc-adaptive`, \
         unpinned. On this 2-core machine, two clients mean four busy threads on two cores.\n\n",
    );
    out.push_str(&concurrency_table(r, false));

    out.push_str("\n## Connect plus first call\n\n");
    out.push_str(
        "A new client connects (socket, handshake, interface check, mapping the connection's \
         memory), makes one small call, and disconnects; timed one by one.\n\n",
    );
    out.push_str(&connect_table(r));

    out.push_str("\n## Handshake of a large interface\n\n");
    let traces = r.handshake.first().map_or(0, |h| h.trace.samples);
    let connects = r.handshake.first().map_or(0, |h| h.connect.samples);
    let _ = writeln!(
        out,
        "The welcome carries the service's interface with the shapes of every parameter and \
         result type. `Large` (`lpc-bench/src/large.rs`: a shop's back office, 50 methods over \
         30 user types, with nested structs, enums with payloads, options, sequences, maps and \
         three recursive types) next to `Bench`, the small interface of every other table. \
         **Description bytes**: the postcard encoding of the interface's `InterfaceInfo` \
         (`postcard::to_stdvec(LARGE_INTERFACE.info())`), as it crosses in the welcome; the \
         welcome adds the 5-byte prefix, the service name and four integers (at most 31 bytes \
         besides the name). **Trace**: the first `info()` of a fresh process (tracing every \
         type through its `Deserialize`, once per process), p50 and max of {traces} processes. \
         **Connect**: connect + first call (`add`) + disconnect, as above, {connects} times \
         for each interface against a service process of each, both alive, in alternating \
         rounds; **encode + decode + compare**: what the two ends do with the description at \
         each connect (the service encodes it, the client decodes it and compares it method \
         by method with its own), timed in one process: the part of a connect that grows \
         with the interface. **Small call**: `add` over an open connection of each \
         interface, interleaved, the caller on one CPU and both services on the other \
         (unpinned, whichever service the scheduler puts on the caller's CPU is the slower, \
         whatever its interface): the shapes cross at connect only, so it should cost the \
         same.\n"
    );
    out.push_str(&handshake_table(r));
    let _ = writeln!(
        out,
        "\nMeasured by `{}`; on its own: `cargo run --release -p lpc-bench -- --only \
         handshake --quick --markdown /tmp/handshake.md`.",
        s.command
    );

    out.push_str(&oneway_section(r));

    out.push_str("\n## Shared values\n\n");
    out.push_str(
        "One `[u64; 8]` value (64 bytes in memory; every word is a counter plus 2⁴⁹), in the \
         measuring process, read two ways, interleaved: `lpc-shared-plain` is \
         `lpc::SharedPlain` (the bytes copied out as they are, for plain-data types), \
         `lpc-shared` is `lpc::Shared` (decoded through serde from its fixed-width form, for \
         any serde type); both open the same object. `get` with no writer, `set` with no \
         other writer (`Shared`), and `get` while a writer process calls `set` back to back \
         (unpinned). Each value read is checked whole (all words equal); the torn-read \
         check's readers use both. iceoryx2 (with \
         `--peers`): a blackboard entry of the same `[u64; 8]`, `get` from a reader port and \
         `update_with_copy` from a writer port, the writer of the third row in another \
         process. Times include the timer's overhead.\n\n",
    );
    out.push_str(&shared_table(r));
    if let Some(t) = &r.torn {
        let _ = writeln!(
            out,
            "\nTorn-read check: {} reader processes each `get` and check {} values while one \
             writer process sets the value back to back: {} torn of {} ({} writes published \
             meanwhile, {:.1} s).",
            t.readers,
            thousands((t.reads / u64::from(t.readers.max(1))) as f64),
            t.torn,
            thousands(t.reads as f64),
            thousands(t.writes as f64),
            t.seconds
        );
    }

    out.push_str("\n## Pinned to one CPU\n\n");
    out.push_str(
        "Client and service restricted to the same single CPU (`sched_setaffinity`, as \
         `taskset -c 0` does, before the service starts its threads and before the client \
         connects). lpc must not spin against a peer on its own CPU: `lpc-adaptive-1cpu` (the \
         default options) should cost what always-blocking costs, not a scheduler time \
         slice.\n\n",
    );
    out.push_str(&pinned_table(r));

    if let Some(idle) = &r.idle {
        out.push_str("\n## Idle service and memory\n\n");
        let _ = writeln!(
            out,
            "- RSS of a service process with no client: {:.1} MiB; with {} connected idle \
             clients (one call each, then nothing): {:.1} MiB ({}; {} threads).",
            idle.rss_alone_kib as f64 / 1024.0,
            idle.clients,
            idle.rss_kib as f64 / 1024.0,
            rss_parts(idle),
            idle.threads
        );
        let _ = writeln!(
            out,
            "- CPU time of that service over {} s with the {} idle clients: {:.3} s (utime + \
             stime, resolution {:.0} ms).",
            idle.seconds,
            idle.clients,
            idle.cpu_seconds,
            idle.tick_seconds * 1000.0
        );
        let _ = writeln!(
            out,
            "- Shared memory per connection with the default options: {} (the connection \
             memfds mapped by the service, divided by the connections; spill buffers for large \
             payloads come on top, only while used).",
            size_label_fraction(idle.shm_per_connection)
        );
    }

    out.push('\n');
    out.push_str(HOW_MEASURED);
    out.push('\n');
    out.push_str(PEERS_HOW);
    let skipped: Vec<&Record> = r
        .records
        .iter()
        .filter(|x| x.summary.is_none() && is_peer(&x.system))
        .collect();
    if !skipped.is_empty() {
        out.push_str("\nSkipped in this run:\n\n");
        // One line per (system, reason), listing its workloads.
        let mut lines: Vec<(&str, &str, Vec<String>)> = Vec::new();
        for rec in skipped {
            let why = rec.note.as_deref().unwrap_or("no reason given");
            match lines
                .iter_mut()
                .find(|(s, w, _)| *s == rec.system && *w == why)
            {
                Some((_, _, workloads)) => workloads.push(rec.workload.label()),
                None => lines.push((&rec.system, why, vec![rec.workload.label()])),
            }
        }
        for (system, why, workloads) in lines {
            let _ = writeln!(out, "- `{system}` ({}): {why}", workloads.join(", "));
        }
    }
    out.push('\n');
    out.push_str(ANALYSIS);
    out
}

/// The path of `target` as seen from the directory of `from` (when both are given and
/// share that directory; otherwise `target` as given).
fn relative_link(target: &Path, from: Option<&Path>) -> String {
    let dir = from.and_then(Path::parent);
    match dir {
        Some(dir) => target
            .strip_prefix(dir)
            .unwrap_or(target)
            .display()
            .to_string(),
        None => target.display().to_string(),
    }
}

const HOW_MEASURED: &str = "## How it is measured

Every system is a round trip between **two processes**: `lpc-bench` re-executes itself as a
child (a hidden subcommand), waits (bounded) for the child's `ready` line, and drives it from
the parent; the peers' executable, `bench-peers`, does the same for its own systems and prints
one JSON line per result for `lpc-bench` to merge. Each system gets a fresh child.

For each measurement: a warm-up, then every round trip timed individually with
`std::time::Instant` (p50, p99, p99.9 and max are nearest-rank percentiles of the sorted
samples), then a separate batch of as many untimed round trips, whose total time gives the
batch mean and calls/s (for threads and processes: all calls of all callers over the wall
time, no separate batch). Release builds; the same harness for lpc, floors and peers.

The blocking small-call systems of one placement (`raw-futex` and `lpc-block` on 2 CPUs;
`raw-futex-1cpu`, `lpc-block-1cpu` and `lpc-adaptive-1cpu` on 1 CPU) are alive at the same
time and measured **interleaved**: ten rounds, each timing a tenth of every system's samples
in turn. Their wake-ups cross the hypervisor, whose cost drifts by tens of percent within
minutes on this VM; interleaving makes that drift weigh on a floor and its lpc counterpart
alike. The spinning systems are interleaved the same way (`raw-spin`, `lpc-adaptive`,
`lpc-adaptive-nostats`), the floor's child parked on a futex while lpc runs: on this VM the
cost of moving a cache line between the two vCPUs changes several-fold (0.11 µs or 0.5 µs for
the floor's round trip) when the host moves them, for minutes at a time, so only systems
measured in the same stretch of time compare. The CPUs column says where each process was
when sampled.

- `raw-spin`: the floor for spinning. Parent and child map the same file
  (`lpc::floor::SharedWords`). The parent stores an odd sequence number in a ping word; the
  child busy-waits (`std::hint::spin_loop`) until it sees it and stores the number + 1 in a
  pong word on another cache line; the parent busy-waits for that. Release stores, acquire
  loads, nothing else.
- `raw-spin-bare`: the cross-check of that floor, sharing nothing with the harness but the
  mapping: no `spin_loop` hint, no clock in the wait, its own timing loop (`Instant` around
  each round trip, into a preallocated vector). Measured just before the interleaved group,
  on its own. If `raw-spin` ever costs much more than this, the harness is the floor.
- `raw-futex`: the floor for always-blocking. The same ping-pong, but each side only ever
  sleeps in `FUTEX_WAIT` (shared futex) and signals with a store followed by `FUTEX_WAKE`
  (always: the floor keeps no \"is the peer asleep\" flag, so it pays for a wake even when
  the peer is not asleep yet; lpc skips that call, which is how it can beat this floor when
  both processes share a CPU).
- `raw-futex-bare`: the cross-check of that floor, as `raw-spin-bare` is of `raw-spin`: the
  futex called straight through rustix (not `lpc::floor`), its own timing loop, pinned to
  two CPUs as `raw-futex` is, measured on its own just before `raw-futex`.
- `raw-unix`: a connected `std::os::unix::net::UnixStream`; the parent writes the message
  (8 bytes for the small call, n bytes for a payload), the child reads all of it and writes it
  back, the parent reads all of it. Blocking reads and writes, default socket buffers.
- `memcpy`: `copy_from_slice` of n bytes between two buffers of one process, both touched
  before timing: the bandwidth floor for moving bytes at all.
- `lpc-adaptive`: a real lpc call through a service defined with `#[lpc::service]` in
  lpc-bench (`add(i32, i32) -> i32`, `echo(Vec<u8>) -> Vec<u8>`), results checked: arguments
  encoded into a call slot (or straight into a spill buffer), the service's connection thread
  dispatching, the result decoded. For the echo that is four copies of the n bytes in all (the
  caller's `Vec` into shared memory, out into the handler's `Vec`, and the same back), the
  least a `Vec<u8>` API allows. Default client and service options (apart from the runtime
  directory): both sides spin adaptively before sleeping.
- `lpc-adaptive-nostats`: the same with the service's per-method statistics off
  (`ServerOptions::statistics(false)`): the difference is what `lpc monitor`'s statistics
  cost a small call (judged on the batch mean, whose resolution is finer than the p50's 10 ns
  clock steps).
- `lpc-loan`: payloads through loaned buffers (`lpc::Loan`, `echo_loan(&Loan) -> Loan`): the
  caller takes a loan of n bytes from its connection (`Client::loan`) and copies its bytes in
  (timed: the data starts in the caller's own buffer, as for the other systems), the service
  reads them in place and copies them into a loan of its own for the result, which the caller
  reads in place. Two copies of n bytes per call, like iceoryx2 below; the `Vec<u8>` API makes
  four.
- `lpc-block`: the service's `ServerOptions::spin(false)` and the client's
  `WaitStrategy::Block`: both sides always sleep on futexes.
- `…-1cpu`: both processes on the same single CPU.
- Threads: one client shared by n threads (`std::thread::scope`); processes: n client
  processes started together on a `go` line, each writing its latencies to a file.
- Calls that never wait on each other: the slow call is the bench service's
  `sleep_us(u64) -> u64` (`std::thread::sleep` in the handler); the parent's threads are
  driven over channels and barriers (`lpc-bench/src/concurrent.rs`), nothing timed across
  threads but the mixed loads' wall time. The small call beside a slow one runs with the
  client process on one CPU and the service on another (the client's threads inherit the
  parent thread's affinity); the mixed loads run unpinned against a fresh service.
- Handshake: the interface description's bytes are computed in the parent
  (`postcard::to_stdvec` of `InterfaceInfo`, what the welcome carries); the trace time is
  timed by fresh child processes (`child-trace`), each timing its very first `info()` (the
  traced interface is cached in a static, so it can be timed once per process).
- Idle: a service process; its RSS (`VmRSS` of `/proc/<pid>/status`) alone, then with 50
  connections (one call each, then nothing) for the idle time; its CPU time is the growth of
  utime + stime in `/proc/<pid>/stat` (clock-tick resolution); shared memory per connection
  is the size of the `memfd:lpc:…` mappings in `/proc/<pid>/maps` divided by the connections.

The **CPUs** column says where the two processes ran. The spinning systems, the Unix socket and
the peers are not pinned (two busy processes stay on separate CPUs by themselves; lpc never
spins in a process allowed only one CPU). The futex systems are pinned, parent and child on two
different CPUs (\"2 CPUs\") or both on the same one (\"1 CPU\"), because a futex wake-up costs
very different amounts in the two cases (on a VM, waking a sleeper on another, idle, vCPU means
the hypervisor must wake that vCPU: tens of microseconds), and unpinned the pair would land on
one or the other at the scheduler's whim.
";

const PEERS_HOW: &str = "## Peers: how they are run

All four are built by `bench-peers` (a crate outside the workspace, `cargo build --release`),
each in its fastest reasonable configuration for one synchronous caller, on the same workloads:
the small call as `add(i32, i32) -> i32`, the payloads as an echo of n bytes, and connect plus
first call. The server is a child process of the client process, both unpinned except in the
`…-1cpu` runs. The peers are not run on the two concurrency workloads (threads sharing one
client, several client processes): those measure lpc's own scaling targets, and bench-peers
does not implement them for the peers, so the report has no peer figures there.

- `iceoryx2` 0.10, `ipc::Service` request-response: the client loans a request from shared
  memory, writes the arguments (for payloads, copies the n bytes in: the caller's data is in
  its own buffer, as it is for lpc), sends, and busy-polls its pending response; the server
  busy-polls for requests, loans a response, writes the sum (or copies the request's bytes
  into it) and sends. The client reads the response in place (zero-copy: no copy out).
  Busy-polling on both sides is what iceoryx2's own request-response benchmark does and is
  its lowest-latency mode. Payload services use `[u8]` slices with room for the largest size
  (`initial_max_slice_len`), so no reallocation happens while timing.
- `tarpc` 0.38 over a Unix socket (`tarpc::serde_transport`, length-delimited frames up to
  64 MiB, bincode; bytes as `serde_bytes::ByteBuf`), the client on a tokio current-thread
  runtime (`block_on` per call).
- `ipc-channel` 0.23: a request channel and a reply channel set up through an
  `IpcOneShotServer`; the small call as typed messages (`IpcSender<(i32, i32)>` /
  `IpcSender<i32>`, bincode), the payloads as raw bytes (`IpcBytesSender`).
- `tonic` 0.14 gRPC over a Unix socket (hyper HTTP/2, `tonic-prost` codec with messages
  written as `prost` structs and `bytes::Bytes` payloads, no `protoc` needed), the client on a
  tokio current-thread runtime (`block_on` per call); message size limits raised to 64 MiB and
  the HTTP/2 stream and connection windows to 32 MiB for the large payloads (the defaults cap
  messages at 4 MiB).
- The socket-based peers (tarpc, ipc-channel, tonic) run once more, with client and server
  restricted to one CPU (`…-1cpu`, the affinity set before either starts, as `taskset` does),
  because blocking wake-ups are much cheaper on one CPU of this VM; the targets and the chart
  use each one's faster placement. iceoryx2 is not run on one CPU: it busy-polls on both
  sides, which on one CPU only spins away the time slice the other side needs.
- The tarpc and tonic servers run twice, once on a tokio current-thread runtime and once on
  tokio's default multi-thread runtime, and each workload keeps the faster of the two by p50,
  marked (ct server) or (mt server): neither is best everywhere on this machine (the
  multi-thread server is slower for small calls and faster for large payloads).
";

/// Written by hand from the profiles of the last full run (see `lpc-bench/analysis.md`).
const ANALYSIS: &str = include_str!("../analysis.md");

/// The `LoanPass` measurements, with each p50 against the smallest loan's.
fn loan_pass_table(r: &Results) -> String {
    let mut out = String::from(
        "| loan | p50 | p99 | p99.9 | calls/s | p50 ÷ p50 of the smallest |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut rows: Vec<(u64, &Summary)> = r
        .records
        .iter()
        .filter_map(|rec| match rec.workload {
            Workload::LoanPass(n) if rec.system == LOAN => rec.summary.as_ref().map(|s| (n, s)),
            _ => None,
        })
        .collect();
    rows.sort_by_key(|&(n, _)| n);
    let base = rows.first().map(|(_, s)| s.p50.max(1) as f64);
    for (n, s) in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            size_label(*n),
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            thousands(s.calls_per_sec),
            base.map_or(String::new(), |b| format!("{:.2}×", s.p50 as f64 / b)),
        );
    }
    if rows.is_empty() {
        out.push_str("| not measured in this run | | | | | |\n");
    }
    out
}

/// `123.4 ns` as `0.123 µs`.
pub fn micros(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} µs", ns / 1000.0)
    }
}

/// An integer with thousands separators.
pub fn thousands(value: f64) -> String {
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

/// `69,760 bytes (68.1 KiB)`.
fn size_label_fraction(bytes: u64) -> String {
    format!(
        "{} bytes ({:.1} KiB)",
        thousands(bytes as f64),
        bytes as f64 / 1024.0
    )
}

/// CPU model (from `lscpu`, else /proc/cpuinfo), cores, and the CPUs this process may use.
pub fn machine() -> String {
    let lscpu = std::process::Command::new("lscpu")
        .env("LC_ALL", "C")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let model = field(&lscpu, "Model name")
        .or_else(|| {
            let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
            field(&info, "model name")
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!("{model}, {cpus} CPU{}", if cpus == 1 { "" } else { "s" });
    let detail: Vec<String> = [
        ("Core(s) per socket", "cores per socket"),
        ("Thread(s) per core", "threads per core"),
        ("Socket(s)", "sockets"),
        ("Hypervisor vendor", "hypervisor"),
    ]
    .iter()
    .filter_map(|(k, name)| Some(format!("{name}: {}", field(&lscpu, k)?)))
    .collect();
    if !detail.is_empty() {
        let _ = write!(out, " (lscpu: {})", detail.join(", "));
    }
    out
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown".into())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
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

    fn results(concurrent: Option<Concurrent>) -> Results {
        let settings = Settings {
            command: "lpc-bench".into(),
            quick: true,
            samples: 1,
            warmup: 1,
            seconds: 0.1,
            timer_overhead_ns: 20,
        };
        Results {
            settings,
            machine: String::new(),
            kernel: String::new(),
            date: String::new(),
            load_before: String::new(),
            load_after: String::new(),
            records: Vec::new(),
            idle: None,
            handshake: Vec::new(),
            concurrent,
            torn: None,
            oneway: None,
            peer_note: None,
        }
    }

    #[test]
    fn the_system_call_target() {
        let verdict = |thread: u64| {
            let mut r = results(None);
            r.oneway = Some(crate::oneway::OnewayExtra {
                syscalls: Some(crate::oneway::Syscalls {
                    messages: 1_000_000,
                    bursts: 5,
                    thread,
                    process: thread,
                    by_name: Default::default(),
                    wakes: 5,
                    waits: 0,
                }),
                ..Default::default()
            });
            targets(&r)
                .into_iter()
                .find(|t| t.what.contains("no system call per message"))
                .map(|t| t.met)
                .unwrap()
        };
        assert_eq!(verdict(340), Some(true));
        assert_eq!(verdict(20_000), Some(false));
        assert_eq!(
            targets(&results(None))
                .into_iter()
                .find(|t| t.what.contains("≥ 10 M/s"))
                .map(|t| t.met),
            Some(None)
        );
    }

    fn concurrent(alone_p50: u64, beside_p50: u64) -> Concurrent {
        let at = |p50: u64| Summary {
            p50,
            ..lpc_bench::stats::summarise(vec![p50], 1, std::time::Duration::from_micros(1))
        };
        Concurrent {
            cpus: "2 CPUs".into(),
            slow_us: 10_000,
            rounds: 10,
            alone: at(alone_p50),
            b_alone: at(alone_p50),
            b_beside_slow: at(beside_p50),
            slow: at(10_100_000),
            mix_cpus: "unpinned".into(),
            mixes: Vec::new(),
        }
    }

    #[test]
    fn the_concurrency_target() {
        let verdict = |c: Option<Concurrent>| {
            let r = results(c);
            targets(&r)
                .into_iter()
                .find(|t| {
                    t.what
                        .starts_with("a small call while another thread's call sleeps")
                })
                .map(|t| (t.met, t.figure))
                .unwrap()
        };
        let (met, figure) = verdict(Some(concurrent(300, 450)));
        assert_eq!(met, Some(true), "{figure}");
        assert!(figure.contains("= 1.50×"), "{figure}");
        assert_eq!(verdict(Some(concurrent(300, 451))).0, Some(false));
        assert_eq!(verdict(None).0, None);
        // The section is in the report either way.
        let report = full(&results(Some(concurrent(300, 330))), None, None);
        assert!(report.contains("## Calls that never wait on each other"));
        assert!(report.contains("| `add` from thread B while thread A is in `sleep_us(10000)` |"));
        // Results saved before the section existed still load.
        let mut json = serde_json::to_value(results(None)).unwrap();
        json.as_object_mut().unwrap().remove("concurrent");
        let back: Results = serde_json::from_value(json).unwrap();
        assert!(back.concurrent.is_none());
    }

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
        assert_eq!(micros(12_345_678.0), "12.35 ms");
    }

    #[test]
    fn links() {
        assert_eq!(
            relative_link(
                Path::new("docs/bench-latency.png"),
                Some(Path::new("docs/benchmarks.md"))
            ),
            "bench-latency.png"
        );
        assert_eq!(relative_link(Path::new("x.png"), None), "x.png");
    }
}
