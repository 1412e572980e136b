//! One-way calls and events (issue 14, item 4): one-way small messages per second from one
//! client thread, one-way latency from the sender to the handler, event fan-out to 1, 4 and 16
//! subscriber processes, and the count of the system calls a tight loop of one-way calls to a
//! sleeping service makes (counted by `strace`, outside the process, not by lpc).
//!
//! * **Messages per second**: one thread posts `note(x)` (one `u64`) back to back in chunks of
//!   [`CHUNK`] for the budget's time, then makes a two-way call (`count`), which the service
//!   answers only once every message posted before it is handled: the rate counts messages
//!   *handled*, the drain included, and the service checks that they came in order.
//! * **Latency**: `stamp(sent_ns)` posted every [`PACE`] (the service keeps up, and stays
//!   awake), and every [`IDLE_PACE`] (the service has gone to sleep on its doorbell before each
//!   one); the handler reads `CLOCK_MONOTONIC` again and keeps the difference.
//! * **Fan-out**: this process is the service and emits; `n` subscriber processes receive.
//!   First events back to back for the budget's time (events per second delivered to each
//!   subscriber; the default ring, drop-oldest: what a subscriber too slow for them loses is
//!   counted), then events every [`FANOUT_PACE`] for the latency, emit to receive.
//! * **System calls**: a child process posts [`SYSCALL_BURSTS`] bursts of notes under
//!   `strace -f`; before each burst this process waits until every thread of the service is
//!   asleep (`S` in `/proc/<pid>/task/*/stat`). Marker system calls (`getpgid` of pids that
//!   cannot exist) bound each burst in the trace; the system calls the posting thread made
//!   between them are counted, beside lpc's own count of its doorbell rings and waits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lpc::{ClientOptions, Server, ServerOptions, SubscribeOptions, Subscription};
use lpc_bench::child::{self, Peer};
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{self, monotonic_ns, Budget, Summary};
use serde::{Deserialize, Serialize};

/// The system name of lpc's one-way rows.
pub const SYSTEM: &str = "lpc-oneway";
/// The system name of lpc's event rows.
pub const EVENTS: &str = "lpc-events";
/// Posts timed together (the loop reads the clock once per chunk).
pub const CHUNK: u64 = 4096;
/// Between two stamped messages of the latency measurement (the peers use the same).
pub const PACE: Duration = Duration::from_micros(2);
/// Between two stamped messages when the service is to be asleep for each.
pub const IDLE_PACE: Duration = Duration::from_millis(1);
/// Most stamped messages of the asleep latency.
const IDLE_SAMPLES: usize = 2_000;
/// Between two stamped events of the fan-out latency: each may wake every subscriber.
pub const FANOUT_PACE: Duration = Duration::from_micros(200);
/// Bursts of the system-call count, each against a service asleep.
pub const SYSCALL_BURSTS: u32 = 5;
/// Posts per burst.
pub const SYSCALL_BURST: u64 = 200_000;
/// The most system calls per message the target allows: none per message, a wake-up per
/// burst and a wait per half queue amortised.
pub const SYSCALL_LIMIT: f64 = 0.01;
/// The pids of the marker system calls (beyond any pid_max: the calls fail, and say where
/// the burst begins and ends in the trace).
const MARK_START: i32 = 999_999_901;
const MARK_END: i32 = 999_999_902;
const CHILD_LIMIT: Duration = Duration::from_secs(300);
const READY: Duration = Duration::from_secs(30);
const EXIT: Duration = Duration::from_secs(10);

/// The one-way service: notes counted and checked in order, stamps turned into latencies.
#[lpc::service]
pub trait Notes {
    /// A small one-way message: the service checks that `x` is one more than the last.
    #[lpc(oneway)]
    fn note(&self, x: u64);
    /// A one-way message carrying the sender's `CLOCK_MONOTONIC`: the handler keeps the
    /// latency.
    #[lpc(oneway)]
    fn stamp(&self, sent_ns: u64);
    /// Notes handled so far (answered after every message posted before it is handled).
    fn count(&self) -> u64;
    /// Notes that did not follow the one before them.
    fn out_of_order(&self) -> u64;
    /// The latencies (ns) of the stamps handled since the last call.
    fn latencies(&self) -> Vec<u64>;
}

/// What the fan-out emits.
#[lpc::events]
pub trait Feed {
    /// One of the events sent back to back.
    fn burst(&self, seq: u64);
    /// One of the paced events: the emitter's `CLOCK_MONOTONIC`.
    fn stamp(&self, sent_ns: u64);
    /// The end of a phase: `emitted` events were emitted in it.
    fn end(&self, emitted: u64);
}

/// [`Notes`]' implementation. One connection's one-way messages are handled one at a time,
/// in order: the counters are loaded and stored, with no read-modify-write.
#[derive(Default)]
pub struct Noter {
    count: AtomicU64,
    next: AtomicU64,
    disorder: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

impl Notes for Noter {
    fn note(&self, x: u64) {
        if x != self.next.load(Ordering::Relaxed) {
            let n = self.disorder.load(Ordering::Relaxed);
            self.disorder.store(n + 1, Ordering::Relaxed);
        }
        self.next.store(x.wrapping_add(1), Ordering::Relaxed);
        let n = self.count.load(Ordering::Relaxed);
        self.count.store(n + 1, Ordering::Relaxed);
    }

    fn stamp(&self, sent_ns: u64) {
        let latency = monotonic_ns().saturating_sub(sent_ns);
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(latency);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn out_of_order(&self) -> u64 {
        self.disorder.load(Ordering::Relaxed)
    }

    fn latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The system-call count of a tight loop of posts to a sleeping service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Syscalls {
    /// Posts in all (`bursts` × the burst).
    pub messages: u64,
    pub bursts: u32,
    /// System calls the posting thread made inside the bursts, as `strace -f` saw them.
    pub thread: u64,
    /// System calls of every thread of the client process inside the bursts.
    pub process: u64,
    /// The posting thread's, by name.
    pub by_name: BTreeMap<String, u64>,
    /// lpc's own count (`lpc::testing::oneway_system_calls`) over the same posts: doorbell
    /// rings (`futex_wake`) and waits for room (`futex_wait`).
    pub wakes: u64,
    pub waits: u64,
}

impl Syscalls {
    pub fn per_message(&self) -> f64 {
        self.thread as f64 / self.messages.max(1) as f64
    }
}

/// One fan-out measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fanout {
    pub subscribers: u32,
    /// Events emitted back to back, and for how long.
    pub emitted: u64,
    pub emit_seconds: f64,
    /// Per subscriber: events received, events it missed (counted by lpc), and seconds from
    /// its first event to the end marker.
    pub received: Vec<u64>,
    pub missed: Vec<u64>,
    pub receive_seconds: Vec<f64>,
    /// Emit to receive, every subscriber's paced events together.
    pub latency: Summary,
    /// The paced events' pace, in nanoseconds.
    pub pace_ns: u64,
}

impl Fanout {
    /// Events per second delivered to each subscriber (received ÷ its seconds).
    pub fn rates(&self) -> Vec<f64> {
        self.received
            .iter()
            .zip(&self.receive_seconds)
            .map(|(&n, &s)| if s > 0.0 { n as f64 / s } else { 0.0 })
            .collect()
    }

    /// Events emitted per second.
    pub fn emit_rate(&self) -> f64 {
        self.emitted as f64 / self.emit_seconds.max(1e-9)
    }

    /// The share of the events emitted that subscribers missed.
    pub fn lost(&self) -> f64 {
        let missed: u64 = self.missed.iter().sum();
        missed as f64 / (self.emitted * u64::from(self.subscribers)).max(1) as f64
    }
}

/// What this section measured beside its records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OnewayExtra {
    pub syscalls: Option<Syscalls>,
    /// Why the system calls were not counted, if they were not.
    pub syscalls_note: Option<String>,
    pub fanout: Vec<Fanout>,
}

/// Measures everything of this section: the one-way records (lpc's), fan-out to each of
/// `subscribers`, and the system-call count.
pub fn measure(budget: &Budget, subscribers: &[u32]) -> Result<(Vec<Record>, OnewayExtra), String> {
    let dir = temp_dir()?;
    let result = measure_in(&dir, budget, subscribers);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_in(
    dir: &Path,
    budget: &Budget,
    subscribers: &[u32],
) -> Result<(Vec<Record>, OnewayExtra), String> {
    let mut records = Vec::new();
    let (service, name) = start_service(dir, "notes")?;
    let client = NotesClient::connect_with(&name, &options(dir)).map_err(|e| e.to_string())?;
    eprintln!("lpc-bench: {SYSTEM}: messages from one thread…");
    records.push(throughput(&client, budget)?);
    eprintln!("lpc-bench: {SYSTEM}: latency, paced every {PACE:?}…");
    let n = budget.samples;
    let s = latency(&client, budget, PACE, n)?;
    let mut r = Record::measured(SYSTEM, Workload::PostLatency, "unpinned", s);
    r.note = Some(format!("a stamped message every {PACE:?}"));
    records.push(r);
    eprintln!("lpc-bench: {SYSTEM}: latency, service asleep (every {IDLE_PACE:?})…");
    let n = budget
        .samples
        .min(IDLE_SAMPLES)
        .min((budget.time.as_nanos() / IDLE_PACE.as_nanos()) as usize)
        .max(stats::MIN_SAMPLES);
    let s = latency(&client, budget, IDLE_PACE, n)?;
    let mut r = Record::measured(SYSTEM, Workload::PostLatencyIdle, "unpinned", s);
    r.note = Some(format!(
        "a stamped message every {IDLE_PACE:?}: the service asleep on its doorbell before each"
    ));
    records.push(r);
    drop(client);
    service.finish(EXIT)?;

    let mut extra = OnewayExtra::default();
    eprintln!(
        "lpc-bench: {SYSTEM}: system calls of {SYSCALL_BURSTS} bursts of {SYSCALL_BURST} posts \
         to a sleeping service (strace)…"
    );
    match syscalls(dir) {
        Ok(s) => {
            eprintln!(
                "lpc-bench:   {} posts: {} system calls of the posting thread ({:.6} per \
                 message), {} of the process; lpc counted {} wake-ups, {} waits",
                s.messages,
                s.thread,
                s.per_message(),
                s.process,
                s.wakes,
                s.waits
            );
            extra.syscalls = Some(s);
        }
        Err(e) => {
            eprintln!("lpc-bench:   system calls not counted: {e}");
            extra.syscalls_note = Some(e);
        }
    }
    for &n in subscribers {
        eprintln!("lpc-bench: {EVENTS}: fan-out to {n} subscriber processes…");
        let f = fanout(dir, budget, n)?;
        let rates = f.rates();
        eprintln!(
            "lpc-bench:   {n} subscribers: {} events/s emitted, {} per subscriber (mean), \
             {:.2}% lost; paced p50 {} p99 {}",
            crate::report::thousands(f.emit_rate()),
            crate::report::thousands(rates.iter().sum::<f64>() / rates.len().max(1) as f64),
            f.lost() * 100.0,
            crate::report::micros(f.latency.p50 as f64),
            crate::report::micros(f.latency.p99 as f64),
        );
        extra.fanout.push(f);
    }
    Ok((records, extra))
}

fn options(dir: &Path) -> ClientOptions {
    ClientOptions::new().runtime_dir(dir)
}

/// Starts a `Notes` service child named `name`.
fn start_service(dir: &Path, name: &str) -> Result<(Peer, String), String> {
    let name = format!("bench-{name}");
    let args: Vec<OsString> = vec![
        "child-service".into(),
        "--dir".into(),
        dir.into(),
        "--name".into(),
        name.clone().into(),
        "--notes".into(),
    ];
    let peer = Peer::spawn("notes service", &args, CHILD_LIMIT)?;
    peer.wait_ready(READY)?;
    Ok((peer, name))
}

/// Posts in chunks for the budget's time, then a call that returns once all are handled.
fn throughput(client: &NotesClient, budget: &Budget) -> Result<Record, String> {
    let e = |e: lpc::Error| e.to_string();
    let mut x = 0u64;
    let warm = Instant::now();
    while x < budget.warmup as u64 && warm.elapsed() < budget.time / 4 {
        for _ in 0..256 {
            client.note(x).map_err(e)?;
            x += 1;
        }
    }
    let handled = client.count().map_err(e)?;
    if handled != x {
        return Err(format!("{x} notes posted, {handled} handled"));
    }
    let mut chunks = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        for _ in 0..CHUNK {
            client.note(std::hint::black_box(x)).map_err(e)?;
            x += 1;
        }
        chunks.push(stats::duration_ns(t.elapsed()) / CHUNK);
        if start.elapsed() >= budget.time {
            break;
        }
    }
    let posting = start.elapsed();
    let handled = client.count().map_err(e)?;
    let all = start.elapsed();
    if handled != x {
        return Err(format!("{x} notes posted, {handled} handled"));
    }
    let disorder = client.out_of_order().map_err(e)?;
    if disorder != 0 {
        return Err(format!("{disorder} notes came out of order"));
    }
    let n = chunks.len() * CHUNK as usize;
    let mut r = Record::measured(
        SYSTEM,
        Workload::Post,
        "unpinned",
        stats::summarise(chunks, n, all),
    );
    r.note = Some(format!(
        "{} posted/s while posting ({} messages, {:.3} s, then {:.1} µs to drain); \
         percentiles: ns per message over chunks of {CHUNK}",
        crate::report::thousands(n as f64 / posting.as_secs_f64()),
        crate::report::thousands(n as f64),
        posting.as_secs_f64(),
        (all - posting).as_secs_f64() * 1e6,
    ));
    Ok(r)
}

/// Up to `n` stamped messages, one every `pace` (spinning for short paces, sleeping for long
/// ones), for at most the budget's time; the handler's latencies.
fn latency(
    client: &NotesClient,
    budget: &Budget,
    pace: Duration,
    n: usize,
) -> Result<Summary, String> {
    let e = |e: lpc::Error| e.to_string();
    client.latencies().map_err(e)?;
    let start = Instant::now();
    let mut next = start;
    let mut sent = 0;
    while sent < n {
        client.stamp(monotonic_ns()).map_err(e)?;
        sent += 1;
        next += pace;
        if pace >= Duration::from_micros(100) {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        } else {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
        }
        if sent >= stats::MIN_SAMPLES && start.elapsed() > budget.time {
            break;
        }
    }
    let wall = start.elapsed();
    let latencies = client.latencies().map_err(e)?;
    if latencies.len() != sent {
        return Err(format!("{sent} stamps posted, {} handled", latencies.len()));
    }
    Ok(stats::summarise(latencies, sent, wall))
}

/// Child side of the system-call count: connects, says ready, then per `go` line posts
/// `count` notes between the two marker system calls and says `burst`; at `end` (or when the
/// parent leaves) checks that the service handled them all and says `done <handled> <wakes>
/// <waits>`.
pub fn post_loop(
    dir: &Path,
    name: &str,
    count: u64,
    from_parent: &Receiver<String>,
) -> Result<(), String> {
    let client = NotesClient::connect_with(name, &options(dir)).map_err(|e| e.to_string())?;
    child::ready();
    let mut x = 0u64;
    let before = lpc::testing::oneway_system_calls();
    loop {
        match from_parent.recv_timeout(CHILD_LIMIT).as_deref() {
            Ok("go") => {}
            Ok("end") => break,
            other => return Err(format!("expected go or end, got {other:?}")),
        }
        mark(MARK_START);
        for _ in 0..count {
            if let Err(e) = client.note(x) {
                return Err(e.to_string());
            }
            x += 1;
        }
        mark(MARK_END);
        child::tell_parent("burst");
    }
    let after = lpc::testing::oneway_system_calls();
    let handled = client.count().map_err(|e| e.to_string())?;
    let disorder = client.out_of_order().map_err(|e| e.to_string())?;
    if handled != x || disorder != 0 {
        return Err(format!(
            "{x} notes posted, {handled} handled, {disorder} out of order"
        ));
    }
    child::tell_parent(&format!(
        "done {handled} {} {}",
        after.0 - before.0,
        after.1 - before.1
    ));
    Ok(())
}

/// A system call that fails at once (`getpgid` of a pid that cannot exist), for the trace.
fn mark(pid: i32) {
    let _ = rustix::process::getpgid(rustix::process::Pid::from_raw(pid));
}

/// Where `strace` is, if anywhere on `PATH`.
fn find_strace() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("strace"))
            .find(|p| p.is_file())
    })
}

/// The system-call count (see the module's documentation).
fn syscalls(dir: &Path) -> Result<Syscalls, String> {
    let strace =
        find_strace().ok_or("strace is not installed (scripts/setup.sh installs it)".to_owned())?;
    let (service, name) = start_service(dir, "notes-syscalls")?;
    let log = dir.join("post-loop.strace");
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let args: Vec<OsString> = vec![
        "-f".into(),
        "-qq".into(),
        "-o".into(),
        log.clone().into(),
        exe.into(),
        "child-post-loop".into(),
        "--dir".into(),
        dir.into(),
        "--name".into(),
        name.into(),
        "--count".into(),
        SYSCALL_BURST.to_string().into(),
    ];
    let mut poster = Peer::spawn_program(&strace, "post loop (under strace)", &args, CHILD_LIMIT)?;
    poster.wait_ready(READY)?;
    for _ in 0..SYSCALL_BURSTS {
        wait_asleep(service.pid(), READY)?;
        poster.send_line("go")?;
        let line = poster.next_line(CHILD_LIMIT)?;
        if line != "burst" {
            return Err(format!("the post loop said {line:?}"));
        }
    }
    poster.send_line("end")?;
    let line = poster.next_line(CHILD_LIMIT)?;
    let fields: Vec<u64> = line
        .strip_prefix("done ")
        .ok_or_else(|| format!("the post loop said {line:?}"))?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [handled, wakes, waits] = fields[..] else {
        return Err(format!("the post loop said {line:?}"));
    };
    poster.finish(EXIT)?;
    service.finish(EXIT)?;
    let messages = u64::from(SYSCALL_BURSTS) * SYSCALL_BURST;
    if handled != messages {
        return Err(format!("{messages} posts, {handled} handled"));
    }
    let trace = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    let mut counted = count_trace(&trace)?;
    if counted.bursts != SYSCALL_BURSTS {
        return Err(format!(
            "the trace shows {} bursts, not {SYSCALL_BURSTS}",
            counted.bursts
        ));
    }
    counted.messages = messages;
    counted.wakes = wakes;
    counted.waits = waits;
    Ok(counted)
}

/// Counts the system calls between each pair of markers in an `strace -f` log: the marking
/// thread's and every thread's (continuations of calls begun before, `<... resumed>`, and
/// signal and exit lines are not calls).
pub fn count_trace(trace: &str) -> Result<Syscalls, String> {
    let start = format!("getpgid({MARK_START}");
    let end = format!("getpgid({MARK_END}");
    let mut out = Syscalls {
        messages: 0,
        bursts: 0,
        thread: 0,
        process: 0,
        by_name: BTreeMap::new(),
        wakes: 0,
        waits: 0,
    };
    let mut inside: Option<&str> = None;
    for line in trace.lines() {
        let (tid, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim_start();
        if call.starts_with("<...") || call.starts_with("+++") || call.starts_with("---") {
            continue;
        }
        if call.starts_with(&start) {
            if inside.is_some() {
                return Err("a burst began inside another in the trace".into());
            }
            inside = Some(tid);
            continue;
        }
        if call.starts_with(&end) {
            if inside != Some(tid) {
                return Err("a burst ended in the trace that had not begun".into());
            }
            inside = None;
            out.bursts += 1;
            continue;
        }
        let Some(marker) = inside else {
            continue;
        };
        out.process += 1;
        if tid == marker {
            out.thread += 1;
            let name = call.split('(').next().unwrap_or(call).to_owned();
            *out.by_name.entry(name).or_default() += 1;
        }
    }
    if inside.is_some() {
        return Err("the trace ends inside a burst".into());
    }
    Ok(out)
}

/// Waits until every thread of process `pid` sleeps (state `S`): the service's connection
/// thread has stopped spinning and sleeps on its doorbell.
fn wait_asleep(pid: u32, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if all_asleep(pid)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the service's threads were not all asleep within {timeout:?}"
            ));
        }
        std::thread::yield_now();
    }
}

fn all_asleep(pid: u32) -> Result<bool, String> {
    let tasks = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path().join("stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue; // a thread that just ended
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state != Some("S") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Fan-out to `n` subscriber processes, this process the service.
fn fanout(dir: &Path, budget: &Budget, n: u32) -> Result<Fanout, String> {
    let name = format!("bench-feed-{n}");
    let events = FeedEmitter::new();
    let server = Server::bind_with(&name, ServerOptions::new().runtime_dir(dir))
        .map_err(|e| e.to_string())?
        .with_events(&events);
    let handle = server
        .spawn(NotesServer::new(Noter::default()))
        .map_err(|e| e.to_string())?;
    let mut subs = Vec::new();
    for i in 0..n {
        let out = dir.join(format!("fanout-{n}-{i}.latencies"));
        let args: Vec<OsString> = vec![
            "child-subscriber".into(),
            "--dir".into(),
            dir.into(),
            "--name".into(),
            name.clone().into(),
            "--out".into(),
            out.clone().into(),
        ];
        let peer = Peer::spawn("subscriber", &args, CHILD_LIMIT)?;
        subs.push((peer, out));
    }
    for (peer, _) in &subs {
        peer.wait_ready(READY)?;
    }
    let deadline = Instant::now() + READY;
    while events.hub().subscriber_count() < n as usize {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {n} subscribers registered",
                events.hub().subscriber_count()
            ));
        }
        std::thread::yield_now();
    }
    // Back to back.
    let start = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < budget.time {
        for _ in 0..1024 {
            events.burst(seq);
            seq += 1;
        }
    }
    let emit_seconds = start.elapsed().as_secs_f64();
    events.end(seq);
    let mut f = Fanout {
        subscribers: n,
        emitted: seq,
        emit_seconds,
        received: Vec::new(),
        missed: Vec::new(),
        receive_seconds: Vec::new(),
        latency: stats::summarise(Vec::new(), 0, Duration::ZERO),
        pace_ns: stats::duration_ns(FANOUT_PACE),
    };
    for (peer, _) in &subs {
        let [received, missed, ns, _] = phase_line(peer)?;
        if received + missed != seq {
            return Err(format!(
                "a subscriber received {received} and missed {missed} of {seq} events"
            ));
        }
        f.received.push(received);
        f.missed.push(missed);
        f.receive_seconds.push(ns as f64 / 1e9);
    }
    // Paced, for the latency.
    let count = budget
        .samples
        .min((budget.time.as_nanos() / FANOUT_PACE.as_nanos()) as usize)
        .max(stats::MIN_SAMPLES);
    let start = Instant::now();
    let mut next = start;
    for _ in 0..count {
        events.stamp(monotonic_ns());
        next += FANOUT_PACE;
        while Instant::now() < next {
            std::hint::spin_loop();
        }
    }
    let wall = start.elapsed();
    events.end(count as u64);
    let mut latencies = Vec::new();
    for (peer, out) in &subs {
        let [received, missed, _, stamps] = phase_line(peer)?;
        if received + missed != count as u64 || stamps != received {
            return Err(format!(
                "a subscriber received {received} ({stamps} stamps) and missed {missed} of \
                 {count} paced events"
            ));
        }
        let bytes = std::fs::read(out).map_err(|e| format!("{}: {e}", out.display()))?;
        latencies.extend(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }
    let total = latencies.len();
    f.latency = stats::summarise(latencies, total, wall);
    for (peer, out) in subs {
        peer.finish(EXIT)?;
        let _ = std::fs::remove_file(out);
    }
    handle.shutdown().map_err(|e| e.to_string())?;
    Ok(f)
}

/// A subscriber's report of a phase: `phase <received> <missed> <ns> <stamps>`.
fn phase_line(peer: &Peer) -> Result<[u64; 4], String> {
    let line = peer.next_line(CHILD_LIMIT)?;
    let fields: Vec<u64> = line
        .strip_prefix("phase ")
        .ok_or_else(|| format!("a subscriber said {line:?}"))?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    fields
        .try_into()
        .map_err(|_| format!("a subscriber said {line:?}"))
}

/// Child side of the fan-out: subscribes, says ready, and for each phase (ended by an `end`
/// event) says `phase <received> <missed> <ns from the first event to the end> <stamps>`,
/// writing the stamped events' latencies (little-endian u64 ns) to `out`.
pub fn subscriber(dir: &Path, name: &str, out: &Path) -> Result<(), String> {
    let options = SubscribeOptions::new().runtime_dir(dir);
    let mut subscription =
        Subscription::<FeedEvent>::open(name, options).map_err(|e| e.to_string())?;
    child::ready();
    loop {
        let (mut received, mut missed) = (0u64, 0u64);
        let mut first = None;
        let mut latencies = Vec::new();
        loop {
            let r = subscription.recv().map_err(|e| e.to_string())?;
            missed += r.missed;
            match r.event {
                FeedEvent::Burst { .. } => {
                    first.get_or_insert_with(Instant::now);
                    received += 1;
                }
                FeedEvent::Stamp { sent_ns } => {
                    let now = monotonic_ns();
                    first.get_or_insert_with(Instant::now);
                    received += 1;
                    latencies.push(now.saturating_sub(sent_ns));
                }
                FeedEvent::End { .. } => break,
            }
        }
        let ns = first.map_or(0, |f| stats::duration_ns(f.elapsed()));
        if !latencies.is_empty() {
            let bytes: Vec<u8> = latencies.iter().flat_map(|l| l.to_le_bytes()).collect();
            std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        child::tell_parent(&format!(
            "phase {received} {missed} {ns} {}",
            latencies.len()
        ));
    }
}

fn temp_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("lpc-bench-oneway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_counted_between_its_markers() {
        let trace = format!(
            "100 read(0,  <unfinished ...>\n\
             101 getpgid({MARK_START}) = -1 ESRCH (No such process)\n\
             101 futex(0x7f, FUTEX_WAKE, 1) = 1\n\
             100 <... read resumed>\"go\\n\", 8192) = 3\n\
             100 write(1, \"x\", 1) = 1\n\
             101 getpgid({MARK_END}) = -1 ESRCH (No such process)\n\
             101 write(1, \"burst\\n\", 6) = 6\n\
             101 getpgid({MARK_START}) = -1 ESRCH (No such process)\n\
             101 getpgid({MARK_END} <unfinished ...>\n\
             100 +++ exited with 0 +++\n"
        );
        let s = count_trace(&trace).unwrap();
        assert_eq!((s.bursts, s.thread, s.process), (2, 1, 2));
        assert_eq!(s.by_name.get("futex"), Some(&1));
        assert!(count_trace(&format!("1 getpgid({MARK_START}) = -1\n")).is_err());
        assert!(count_trace(&format!("1 getpgid({MARK_END}) = -1\n")).is_err());
    }
}
