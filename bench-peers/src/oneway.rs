//! One-way messages beside lpc's (lpc-bench's `oneway` section): iceoryx2 0.10
//! publish-subscribe between two processes, and crossbeam-channel between two threads of one
//! process, on the same two workloads and with the same harness as lpc's rows:
//!
//! * `post`: one `u64` per message, sent back to back in chunks of 4,096 for the budget's
//!   time, then an end marker (`u64::MAX`); the receiver checks that every message follows the
//!   one before and answers the marker with its count. Messages per second count the messages
//!   *received*, up to that answer.
//! * `post-latency`: the sender's `CLOCK_MONOTONIC` in each message, one every 2 µs, read
//!   again by the receiver.
//!
//! Both are lossless, as lpc's one-way queue is: iceoryx2 without safe overflow and with the
//! `RetryUntilDelivered` backpressure, a subscriber buffer of 4,096 samples (lpc's 64 KiB
//! queue holds 4,096 such messages); a bounded crossbeam channel of 4,096. iceoryx2's
//! subscriber busy-polls (its lowest-latency mode, as its own benchmarks run it); crossbeam's
//! receiver blocks in `recv` (which spins briefly, then parks).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use lpc_bench::child::{self, Peer};
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{self, monotonic_ns, Budget, Summary};

/// Messages the receiver's buffer holds (lpc's default 64 KiB queue holds as many notes).
const DEPTH: usize = 4096;
/// Messages timed together.
const CHUNK: u64 = 4096;
/// Between two stamped messages (lpc-bench's `oneway::PACE`).
const PACE: Duration = Duration::from_micros(2);
/// The end of a phase.
const END: u64 = u64::MAX;
/// How long to wait for the receiver's answer to an end marker.
const ANSWER: Duration = Duration::from_secs(30);

/// Set when the parent closes the subscriber child's stdin.
static STOP: AtomicBool = AtomicBool::new(false);

/// A sender of one-way messages to a receiver that counts and checks them.
trait Sink {
    fn note(&mut self, x: u64) -> Result<(), String>;
    /// Sends the end marker after notes; the receiver's count of them.
    fn end_notes(&mut self) -> Result<u64, String>;
    fn stamp(&mut self, sent_ns: u64) -> Result<(), String>;
    /// Sends the end marker after stamps; the receiver's latencies.
    fn end_stamps(&mut self) -> Result<Vec<u64>, String>;
}

/// Measures `workloads` (`post`, `post-latency`) of `system` (`iceoryx2` or
/// `crossbeam-channel`).
pub fn measure(
    label: &str,
    crossbeam: bool,
    workloads: &[Workload],
    budget: &Budget,
    dir: &Path,
) -> Vec<Record> {
    let mut sink: Box<dyn Sink> = if crossbeam {
        Box::new(Crossbeam::start())
    } else {
        match Iox::start(dir) {
            Ok(s) => Box::new(s),
            Err(e) => {
                return workloads
                    .iter()
                    .map(|&w| Record::skipped(label, w, format!("failed: {e}")))
                    .collect()
            }
        }
    };
    let cpus = if crossbeam {
        "unpinned (two threads of one process)"
    } else {
        "unpinned"
    };
    workloads
        .iter()
        .map(|&w| {
            eprintln!("bench-peers: {label} {}…", w.label());
            let result = match w {
                Workload::Post => throughput(sink.as_mut(), budget),
                Workload::PostLatency => latency(sink.as_mut(), budget)
                    .map(|s| (s, format!("a stamped message every {PACE:?}"))),
                _ => Err("not a one-way workload".into()),
            };
            match result {
                Ok((summary, note)) => {
                    let mut r = Record::measured(label, w, cpus, summary);
                    r.note = Some(note);
                    r
                }
                Err(e) => {
                    eprintln!("bench-peers: {label} {}: {e}", w.label());
                    Record::skipped(label, w, format!("failed: {e}"))
                }
            }
        })
        .collect()
}

fn throughput(sink: &mut dyn Sink, budget: &Budget) -> Result<(Summary, String), String> {
    let warm = Instant::now();
    let mut sent = 0u64;
    while sent < budget.warmup as u64 && warm.elapsed() < budget.time / 4 {
        for _ in 0..256 {
            sink.note(sent)?;
            sent += 1;
        }
    }
    let got = sink.end_notes()?;
    if got != sent {
        return Err(format!("{sent} sent, {got} received in order"));
    }
    let mut chunks = Vec::new();
    let mut x = 0u64;
    let start = Instant::now();
    loop {
        let t = Instant::now();
        for _ in 0..CHUNK {
            sink.note(std::hint::black_box(x))?;
            x += 1;
        }
        chunks.push(stats::duration_ns(t.elapsed()) / CHUNK);
        if start.elapsed() >= budget.time {
            break;
        }
    }
    let sending = start.elapsed();
    let got = sink.end_notes()?;
    let all = start.elapsed();
    if got != x {
        return Err(format!("{x} sent, {got} received in order"));
    }
    let n = chunks.len() * CHUNK as usize;
    let note = format!(
        "{}/s sent while sending ({:.3} s), then {:.1} µs to the receiver's answer; \
         percentiles: ns per message over chunks of {CHUNK}",
        thousands(n as f64 / sending.as_secs_f64()),
        sending.as_secs_f64(),
        (all - sending).as_secs_f64() * 1e6
    );
    Ok((stats::summarise(chunks, n, all), note))
}

fn latency(sink: &mut dyn Sink, budget: &Budget) -> Result<Summary, String> {
    let start = Instant::now();
    let mut next = start;
    let mut sent = 0;
    while sent < budget.samples {
        sink.stamp(monotonic_ns())?;
        sent += 1;
        next += PACE;
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        if sent >= stats::MIN_SAMPLES && start.elapsed() > budget.time {
            break;
        }
    }
    let wall = start.elapsed();
    let latencies = sink.end_stamps()?;
    if latencies.len() != sent {
        return Err(format!("{sent} stamps sent, {} received", latencies.len()));
    }
    Ok(stats::summarise(latencies, sent, wall))
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Counts notes in order: `Some(count)` at the end marker (`END - 1` if one was out of order).
#[derive(Default)]
struct Counter {
    next: u64,
    count: u64,
    disorder: bool,
}

impl Counter {
    fn take(&mut self, x: u64) -> Option<u64> {
        if x == END {
            let answer = if self.disorder { END - 1 } else { self.count };
            *self = Counter::default();
            return Some(answer);
        }
        self.disorder |= x != self.next;
        self.next = x + 1;
        self.count += 1;
        None
    }
}

// crossbeam-channel: the reference for channels between the threads of one process (what
// std's mpsc is built on since Rust 1.67): the floor of a one-way message that crosses no
// process boundary.

struct Crossbeam {
    notes: crossbeam_channel::Sender<u64>,
    stamps: crossbeam_channel::Sender<u64>,
    counts: crossbeam_channel::Receiver<u64>,
    latencies: crossbeam_channel::Receiver<Vec<u64>>,
}

impl Crossbeam {
    fn start() -> Crossbeam {
        let (notes, note_rx) = crossbeam_channel::bounded::<u64>(DEPTH);
        let (count_tx, counts) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let mut counter = Counter::default();
            for x in note_rx {
                if let Some(n) = counter.take(x) {
                    let _ = count_tx.send(n);
                }
            }
        });
        let (stamps, stamp_rx) = crossbeam_channel::bounded::<u64>(DEPTH);
        let (lat_tx, latencies) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for sent in stamp_rx {
                if sent == END {
                    let _ = lat_tx.send(std::mem::take(&mut got));
                } else {
                    got.push(monotonic_ns().saturating_sub(sent));
                }
            }
        });
        Crossbeam {
            notes,
            stamps,
            counts,
            latencies,
        }
    }
}

impl Sink for Crossbeam {
    fn note(&mut self, x: u64) -> Result<(), String> {
        self.notes.send(x).map_err(|e| e.to_string())
    }

    fn end_notes(&mut self) -> Result<u64, String> {
        self.note(END)?;
        self.counts.recv_timeout(ANSWER).map_err(|e| e.to_string())
    }

    fn stamp(&mut self, sent_ns: u64) -> Result<(), String> {
        self.stamps.send(sent_ns).map_err(|e| e.to_string())
    }

    fn end_stamps(&mut self) -> Result<Vec<u64>, String> {
        self.stamp(END)?;
        self.latencies
            .recv_timeout(ANSWER)
            .map_err(|e| e.to_string())
    }
}

// iceoryx2 publish-subscribe.

type IoxPublisher = Publisher<ipc::Service, u64, ()>;
type IoxSubscriber = Subscriber<ipc::Service, u64, ()>;

/// The three services of a run (named after its directory): notes and stamps from the
/// publisher, answers from the subscriber child.
struct Services {
    notes: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>,
    stamps: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>,
    answers: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>,
}

fn e(e: &dyn std::fmt::Debug) -> String {
    format!("iceoryx2 publish-subscribe: {e:?}")
}

fn services(node: &Node<ipc::Service>, dir: &Path) -> Result<Services, String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench-peers".into());
    let open = |what: &str| {
        let name = ServiceName::new(&format!("lpc-bench/{base}/{what}")).map_err(|x| e(&x))?;
        node.service_builder(&name)
            .publish_subscribe::<u64>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(DEPTH)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .map_err(|x| e(&x))
    };
    Ok(Services {
        notes: open("notes")?,
        stamps: open("stamps")?,
        answers: open("answers")?,
    })
}

fn node() -> Result<Node<ipc::Service>, String> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|x| format!("iceoryx2 node: {x:?}"))
}

fn publisher(
    service: &iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc::Service,
        u64,
        (),
    >,
) -> Result<IoxPublisher, String> {
    service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|x| e(&x))
}

fn subscriber(
    service: &iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc::Service,
        u64,
        (),
    >,
) -> Result<IoxSubscriber, String> {
    service
        .subscriber_builder()
        .buffer_size(DEPTH)
        .create()
        .map_err(|x| e(&x))
}

struct Iox {
    notes: IoxPublisher,
    stamps: IoxPublisher,
    answers: IoxSubscriber,
    child: Peer,
    // Dropped last: the ports above belong to them.
    _services: Services,
    _node: Node<ipc::Service>,
}

impl Iox {
    fn start(dir: &Path) -> Result<Iox, String> {
        let node = node()?;
        let services = services(&node, dir)?;
        let notes = publisher(&services.notes)?;
        let stamps = publisher(&services.stamps)?;
        let answers = subscriber(&services.answers)?;
        let args: Vec<OsString> = vec!["pubsub-subscriber".into(), "--dir".into(), dir.into()];
        let child = Peer::spawn("iceoryx2 subscriber", &args, Duration::from_secs(600))?;
        child.wait_ready(Duration::from_secs(20))?;
        Ok(Iox {
            notes,
            stamps,
            answers,
            child,
            _services: services,
            _node: node,
        })
    }

    fn answer(&self) -> Result<u64, String> {
        let deadline = Instant::now() + ANSWER;
        loop {
            if let Some(sample) = self.answers.receive().map_err(|x| e(&x))? {
                return Ok(*sample.payload());
            }
            if Instant::now() > deadline {
                return Err("the subscriber child did not answer".into());
            }
            std::hint::spin_loop();
        }
    }
}

impl Sink for Iox {
    fn note(&mut self, x: u64) -> Result<(), String> {
        self.notes.send_copy(x).map(drop).map_err(|x| e(&x))
    }

    fn end_notes(&mut self) -> Result<u64, String> {
        self.note(END)?;
        self.answer()
    }

    fn stamp(&mut self, sent_ns: u64) -> Result<(), String> {
        self.stamps.send_copy(sent_ns).map(drop).map_err(|x| e(&x))
    }

    fn end_stamps(&mut self) -> Result<Vec<u64>, String> {
        self.stamps.send_copy(END).map_err(|x| e(&x))?;
        let count = self.answer()?;
        let line = self.child.next_line(ANSWER)?;
        let latencies: Vec<u64> = line
            .strip_prefix("latencies")
            .ok_or_else(|| format!("the subscriber child said {line:?}"))?
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if latencies.len() as u64 != count {
            return Err(format!(
                "the subscriber child counted {count} stamps and sent {} latencies",
                latencies.len()
            ));
        }
        Ok(latencies)
    }
}

/// The subscriber child: busy-polls both services until the parent closes stdin, answering
/// each end marker (with the count of notes in order; for stamps, their count, after a line
/// `latencies <ns>…` on stdout).
pub fn subscriber_child(dir: &Path) -> Result<(), String> {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        STOP.store(true, Ordering::Relaxed);
    });
    let node = node()?;
    let services = services(&node, dir)?;
    let notes = subscriber(&services.notes)?;
    let stamps = subscriber(&services.stamps)?;
    let answers = publisher(&services.answers)?;
    child::ready();
    let mut counter = Counter::default();
    let mut latencies: Vec<u64> = Vec::new();
    while !STOP.load(Ordering::Relaxed) {
        while let Some(sample) = notes.receive().map_err(|x| e(&x))? {
            if let Some(n) = counter.take(*sample.payload()) {
                answers.send_copy(n).map_err(|x| e(&x))?;
            }
        }
        while let Some(sample) = stamps.receive().map_err(|x| e(&x))? {
            let sent = *sample.payload();
            if sent == END {
                let mut line = String::from("latencies");
                for l in &latencies {
                    line.push(' ');
                    line.push_str(&l.to_string());
                }
                child::tell_parent(&line);
                answers
                    .send_copy(latencies.len() as u64)
                    .map_err(|x| e(&x))?;
                latencies.clear();
            } else {
                latencies.push(monotonic_ns().saturating_sub(sent));
            }
        }
        std::hint::spin_loop();
    }
    Ok(())
}
