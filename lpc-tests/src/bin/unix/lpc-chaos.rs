//! `lpc-chaos driver [--seconds N] [--clients N] [--threads N] [--keep N] [--seed S]
//! [--grace-ms MS] [--rss-tolerance-kb KB]`: the chaos run.
//!
//! The driver starts a `Probe` service and `--clients` client processes (this same binary in
//! the hidden roles `service NAME` and `client NAME SLOT SEED THREADS GRACE_MS`) in a runtime
//! directory of its own. For `--seconds` it SIGKILLs a random client, or now and then the
//! service, every 100–800 ms (seeded), and restarts it. The first `--keep` clients (default 2)
//! are never killed: they live through every service restart. The clients call continuously
//! with a deadline on every call and reconnect (`ClientOptions::reconnect`); they check every
//! result and time every call, and report their counters to the driver on stdout.
//!
//! Before and after the chaos the driver pauses the clients (each holding one idle, live
//! connection) and measures the service and the clients; at the end it stops the clients and
//! measures the idle service. It prints a human summary, then the same as one line of JSON
//! (the last line of stdout), and exits with 1 if an invariant failed: a wrong result, a call
//! that returned later than its deadline plus the grace, a process that died on its own, a
//! restart that did not come up, or a leak (descriptors, threads, memory, shared memory,
//! files). See `docs/reliability.md`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lpc::{CallPhase, Error};
use lpc_tests::{dev_shm_entries, status_field, ProbeClient, ProbeError, Record};

/// The service's name in the run's runtime directory.
const NAME: &str = "chaos";

/// Call slots per connection (the service's default).
const SLOTS: u64 = 16;

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("driver") => driver::run(&args[1..]),
        Some("service") => service(args.get(1).map_or(NAME, String::as_str)),
        Some("client") => client::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: lpc-chaos driver [--seconds N] [--clients N] [--threads N] [--keep N] \
                 [--seed S] [--grace-ms MS] [--rss-tolerance-kb KB]"
            );
            ExitCode::from(2)
        }
    }
}

/// The service role: serves `Probe` in `$LPC_RUNTIME_DIR`, prints `ready <pid>`, and exits
/// when its stdin closes (so that it never outlives a driver that died).
fn service(name: &str) -> ExitCode {
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        std::process::exit(0);
    });
    let server = match lpc::Server::bind(name) {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready {}", std::process::id());
    match server.serve(lpc_tests::ProbeServer::new(lpc_tests::ProbeService)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpc-chaos service: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A small deterministic generator (SplitMix64): the run is reproducible from its seed, up to
/// the timing of the processes.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Shared memory created with `memfd_create` and mapped by process `pid`: (mappings, kB).
fn memfd_mappings(pid: u32) -> (u64, u64) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut count = 0;
    let mut bytes = 0;
    for line in maps.lines().filter(|l| l.contains("/memfd:")) {
        count += 1;
        let range = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = range.split_once('-') {
            let a = u64::from_str_radix(a, 16).unwrap_or(0);
            let b = u64::from_str_radix(b, 16).unwrap_or(0);
            bytes += b.saturating_sub(a);
        }
    }
    (count, bytes / 1024)
}

/// The open descriptors of process `pid`: (all, sockets, memfds). A connection is one socket
/// on each side; a memfd descriptor is a spill buffer received but not yet claimed by its slot
/// (at most one per slot of a live connection).
fn fd_kinds(pid: u32) -> (u64, u64, u64) {
    let (mut all, mut sockets, mut memfds) = (0, 0, 0);
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            all += 1;
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            if target.starts_with("socket:") {
                sockets += 1;
            } else if target.starts_with("/memfd:") {
                memfds += 1;
            }
        }
    }
    (all, sockets, memfds)
}

/// `key=value` tokens after the first word of a line.
fn parse_fields(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

mod client {
    //! The client role: `client NAME SLOT SEED THREADS GRACE_MS`.
    //!
    //! Prints `ready` at once, connects (retrying while the service is down), then runs
    //! `THREADS` calling threads on one reconnecting client. Every 200 ms it prints
    //! `report k=v ...` with its cumulative counters. Commands on stdin: `pause` (the threads
    //! finish their call and wait; the client makes sure its connection is live and answers
    //! `paused live=.. fds=.. sockets=.. memfd_fds=.. memfd_maps=.. memfd_kb=.. rss_anon_kb=..
    //! reconnecting_calls=..`), `resume`, `stop` (or end of input: finish, print
    //! `final k=v ...`, exit 0).

    use super::*;

    /// Counters of one client process; maxima are the keys starting with `max_`.
    #[derive(Default)]
    struct Stats {
        values: BTreeMap<&'static str, u64>,
        /// First message of each unexpected error kind, printed once.
        reported: Vec<&'static str>,
    }

    impl Stats {
        fn add(&mut self, key: &'static str) {
            *self.values.entry(key).or_default() += 1;
        }
        fn max(&mut self, key: &'static str, v: u64) {
            let e = self.values.entry(key).or_default();
            *e = (*e).max(v);
        }
        fn line(&self, word: &str) -> String {
            let mut s = word.to_owned();
            for (k, v) in &self.values {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        }
    }

    /// The counter of an error.
    fn error_kind(e: &Error) -> &'static str {
        match e {
            Error::Disconnected { phase, .. } => match phase {
                CallPhase::Connecting => "err_disconnected_connecting",
                CallPhase::NotSent => "err_disconnected_not_sent",
                CallPhase::NotTaken => "err_disconnected_not_taken",
                CallPhase::Executing => "err_disconnected_executing",
                CallPhase::ReplyLost => "err_disconnected_reply_lost",
            },
            // A timeout while (re)connecting has no method.
            Error::Timeout { method: None, .. } => "err_timeout_connecting",
            Error::Timeout { phase, .. } => match phase {
                CallPhase::Connecting => "err_timeout_connecting",
                CallPhase::NotSent => "err_timeout_not_sent",
                CallPhase::NotTaken => "err_timeout_not_taken",
                CallPhase::Executing => "err_timeout_executing",
                CallPhase::ReplyLost => "err_timeout_reply_lost",
            },
            Error::NotFound { .. } => "err_not_found",
            Error::Busy { .. } => "err_busy",
            // A loan made on a connection that another thread then found lost, passed to the
            // call that reconnected: refused before anything is sent.
            Error::Protocol { detail, .. } if detail.contains("belongs to another connection") => {
                "err_loan_of_lost_connection"
            }
            Error::Protocol { .. } => "err_protocol",
            Error::Io { .. } => "err_io",
            Error::Remote { .. } => "err_remote",
            _ => "err_other",
        }
    }

    /// Whether an error kind is one that chaos explains (peer death, deadlines, a service
    /// that is down). Others are counted and their first message printed.
    fn expected(kind: &str) -> bool {
        kind.starts_with("err_disconnected")
            || kind.starts_with("err_timeout")
            || kind == "err_not_found"
            || kind == "err_busy"
            || kind == "err_loan_of_lost_connection"
    }

    /// What a call came to.
    enum Outcome {
        Ok,
        Wrong(String),
        Failed(Error),
    }

    #[derive(PartialEq, Eq, Clone, Copy)]
    enum Mode {
        Run,
        Pause,
        Stop,
    }

    struct Control {
        state: Mutex<(Mode, usize)>,
        changed: Condvar,
    }

    struct Shared {
        slot: usize,
        stats: Mutex<Stats>,
        control: Control,
        grace: Duration,
    }

    impl Shared {
        /// Records one call.
        fn record(
            &self,
            op: &'static str,
            deadline: Duration,
            wall: Duration,
            reconnecting: bool,
            outcome: Outcome,
        ) {
            let wall_us = wall.as_micros() as u64;
            let over_us = wall.saturating_sub(deadline).as_micros() as u64;
            let mut s = self.stats.lock().unwrap();
            s.add("calls");
            s.max("max_wall_us", wall_us);
            s.max("max_over_deadline_us", over_us);
            // How far past the deadline, by outcome: where lateness comes from.
            s.max(
                match &outcome {
                    Outcome::Ok | Outcome::Wrong(_) => "max_over_deadline_us_ok",
                    Outcome::Failed(Error::Timeout { .. }) => "max_over_deadline_us_timeout",
                    Outcome::Failed(Error::Disconnected { .. }) => {
                        "max_over_deadline_us_disconnected"
                    }
                    Outcome::Failed(_) => "max_over_deadline_us_other_error",
                },
                over_us,
            );
            if reconnecting {
                s.add("reconnecting_calls");
                s.max("max_reconnecting_wall_us", wall_us);
            }
            if wall > deadline + self.grace {
                s.add("late");
                eprintln!(
                    "lpc-chaos client {}: LATE: {op} with deadline {deadline:?} took {wall:?} \
                     (reconnecting: {reconnecting}; outcome: {})",
                    self.slot,
                    match &outcome {
                        Outcome::Ok => "ok".to_owned(),
                        Outcome::Wrong(w) => format!("wrong: {w}"),
                        Outcome::Failed(e) => format!("{e}"),
                    }
                );
            }
            match outcome {
                Outcome::Ok => {
                    s.add("ok");
                    s.add(match op {
                        "add" => "ok_add",
                        "echo" => "ok_echo_inline",
                        "echo_spilled" => "ok_echo_spilled",
                        "echo_large" => "ok_echo_large",
                        "touch" => "ok_touch",
                        "sqrt" => "ok_sqrt",
                        "loan_sum" => "ok_loan_sum",
                        "loan_make" => "ok_loan_make",
                        _ => "ok_sleep",
                    });
                }
                Outcome::Wrong(what) => {
                    s.add("wrong");
                    eprintln!(
                        "lpc-chaos client {}: WRONG RESULT of {op}: {what}",
                        self.slot
                    );
                }
                Outcome::Failed(e) => {
                    let kind = error_kind(&e);
                    s.add("errors");
                    s.add(kind);
                    if !expected(kind) && !s.reported.contains(&kind) {
                        s.reported.push(kind);
                        eprintln!("lpc-chaos client {}: {kind} in {op}: {e}", self.slot);
                    }
                }
            }
        }
    }

    pub(super) fn run(args: &[String]) -> ExitCode {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        let name = arg(0).to_owned();
        let slot: usize = arg(1).parse().unwrap_or(0);
        let seed: u64 = arg(2).parse().unwrap_or(1);
        let threads: usize = arg(3).parse().unwrap_or(2).max(1);
        let grace = Duration::from_millis(arg(4).parse().unwrap_or(100));
        println!("ready");

        let (tx, commands) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim().to_owned()).is_err() {
                    return;
                }
            }
            let _ = tx.send("stop".into());
        });

        let shared = Arc::new(Shared {
            slot,
            stats: Mutex::new(Stats::default()),
            control: Control {
                state: Mutex::new((Mode::Run, 0)),
                changed: Condvar::new(),
            },
            grace,
        });
        {
            let shared = shared.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(200));
                println!("{}", shared.stats.lock().unwrap().line("report"));
            });
        }

        let options = lpc::ClientOptions::new()
            .reconnect(true)
            .connect_timeout(Duration::from_secs(1));
        // Connect, retrying while the service is down; keep commands for later.
        let mut pending = VecDeque::new();
        let probe = loop {
            match ProbeClient::connect_with(&name, &options) {
                Ok(p) => break p,
                Err(e) => {
                    let mut s = shared.stats.lock().unwrap();
                    s.add("connect_failures");
                    let kind = error_kind(&e);
                    if !expected(kind) && !s.reported.contains(&kind) {
                        s.reported.push(kind);
                        eprintln!("lpc-chaos client {slot}: {kind} connecting: {e}");
                    }
                }
            }
            while let Ok(c) = commands.try_recv() {
                if c == "stop" {
                    return finish(&shared);
                }
                pending.push_back(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        };

        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let shared = shared.clone();
                let probe = probe.clone();
                let rng = Rng::new(seed ^ ((t as u64 + 1) << 48));
                std::thread::spawn(move || work(&shared, &probe, rng))
            })
            .collect();

        let control = &shared.control;
        let set = |mode: Mode| {
            control.state.lock().unwrap().0 = mode;
            control.changed.notify_all();
        };
        loop {
            let command = match pending.pop_front() {
                Some(c) => c,
                None => commands.recv().unwrap_or_else(|_| "stop".into()),
            };
            match command.as_str() {
                "pause" => {
                    set(Mode::Pause);
                    let mut state = control.state.lock().unwrap();
                    while state.1 < threads {
                        state = control.changed.wait(state).unwrap();
                    }
                    drop(state);
                    // Hold a live connection while the driver measures.
                    let live = ensure_live(&shared, &probe);
                    let pid = std::process::id();
                    let (maps, kb) = memfd_mappings(pid);
                    let (fds, sockets, memfds) = fd_kinds(pid);
                    let reconnecting = shared
                        .stats
                        .lock()
                        .unwrap()
                        .values
                        .get("reconnecting_calls")
                        .copied()
                        .unwrap_or(0);
                    println!(
                        "paused live={} fds={fds} sockets={sockets} memfd_fds={memfds} \
                         memfd_maps={maps} memfd_kb={kb} rss_anon_kb={} \
                         reconnecting_calls={reconnecting}",
                        u8::from(live),
                        status_field(pid, "RssAnon")
                    );
                }
                "resume" => set(Mode::Run),
                "stop" => break,
                _ => {}
            }
        }
        set(Mode::Stop);
        for w in workers {
            let _ = w.join();
        }
        finish(&shared)
    }

    fn finish(shared: &Shared) -> ExitCode {
        println!("{}", shared.stats.lock().unwrap().line("final"));
        ExitCode::SUCCESS
    }

    /// Calls until one call succeeds (at most 10 s): the connection is then live.
    fn ensure_live(shared: &Shared, probe: &ProbeClient) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let deadline = Duration::from_millis(500);
            let reconnecting = probe.client().is_disconnected();
            let start = Instant::now();
            let result = probe.with_timeout(deadline).add(20, 22);
            let wall = start.elapsed();
            let outcome = match result {
                Ok(42) => Outcome::Ok,
                Ok(other) => Outcome::Wrong(format!("add(20, 22) returned {other}")),
                Err(e) => Outcome::Failed(e),
            };
            let ok = matches!(outcome, Outcome::Ok);
            shared.record("add", deadline, wall, reconnecting, outcome);
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Time spent in timed sections.
    #[derive(Default)]
    struct Stopwatch(Duration);

    impl Stopwatch {
        fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
            let start = Instant::now();
            let r = f();
            self.0 += start.elapsed();
            r
        }
    }

    /// One calling thread.
    fn work(shared: &Shared, probe: &ProbeClient, mut rng: Rng) {
        let control = &shared.control;
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            {
                let mut state = control.state.lock().unwrap();
                loop {
                    match state.0 {
                        Mode::Run => break,
                        Mode::Stop => return,
                        Mode::Pause => {
                            state.1 += 1;
                            control.changed.notify_all();
                            while state.0 == Mode::Pause {
                                state = control.changed.wait(state).unwrap();
                            }
                            state.1 -= 1;
                        }
                    }
                }
            }
            n += 1;
            let deadline = Duration::from_millis(rng.range(200, 1000));
            let p = probe.with_timeout(deadline);
            let reconnecting = probe.client().is_disconnected();
            let pick = rng.range(0, 99);
            // Time spent in lpc, not in making or checking the data.
            let mut sw = Stopwatch::default();
            let (op, result): (&'static str, Result<Option<String>, Error>) = match pick {
                // add, checked.
                0..=24 => {
                    let (a, b) = (rng.next() as i32, rng.next() as i32);
                    let r = sw.time(|| p.add(a, b)).map(|s| {
                        (s != a.wrapping_add(b)).then(|| format!("add({a}, {b}) returned {s}"))
                    });
                    ("add", r)
                }
                // echo: inline (≤ 4000 B), spilled (4 KiB–256 KiB) or large (≤ 2 MiB).
                25..=54 => {
                    let (op, len) = match pick {
                        25..=41 => ("echo", rng.range(0, 4000)),
                        42..=52 => ("echo_spilled", rng.range(4097, 256 << 10)),
                        _ => ("echo_large", rng.range(256 << 10, 2 << 20)),
                    };
                    buf.resize(len as usize, 0);
                    rng.fill(&mut buf);
                    let r = sw.time(|| p.echo(&buf)).map(|back| {
                        (back != buf).then(|| {
                            let at = back.iter().zip(&buf).position(|(x, y)| x != y);
                            format!(
                                "echo of {len} bytes returned {} bytes, \
                                     first difference at {at:?}",
                                back.len()
                            )
                        })
                    });
                    (op, r)
                }
                // touch: &mut parameters come back updated.
                55..=72 => {
                    let id = rng.next() as u32 >> 1;
                    let count = rng.range(0, 32) as usize;
                    let values: Vec<f64> = (0..count).map(|_| (rng.next() >> 11) as f64).collect();
                    let name = format!("client {} call {n}", shared.slot);
                    let mut record = Record {
                        id,
                        name: name.clone(),
                        values: values.clone(),
                    };
                    let counter0 = rng.next() >> 1;
                    let mut counter = counter0;
                    let r = sw.time(|| p.touch(&mut record, &mut counter)).map(|len| {
                        let doubled: Vec<f64> = values.iter().map(|v| v * 2.0).collect();
                        (len != count
                            || record.id != id + 1
                            || record.name != format!("{name} (touched)")
                            || record.values != doubled
                            || counter != counter0 + 1)
                            .then(|| {
                                format!(
                                    "touch returned {len}, record {record:?}, \
                                         counter {counter} (sent id {id}, {count} values, \
                                         counter {counter0})"
                                )
                            })
                    });
                    ("touch", r)
                }
                // An application error travels as a value.
                73..=76 => {
                    let x = -(rng.range(1, 1 << 40) as i64);
                    let r = sw.time(|| p.checked_sqrt(x)).map(|r| {
                        (r != Err(ProbeError::Negative(x)))
                            .then(|| format!("checked_sqrt({x}) returned {r:?}"))
                    });
                    ("sqrt", r)
                }
                // A loan (up to 1 MiB) filled in place and summed by the service in place.
                77..=83 => {
                    let len = rng.range(1, 1 << 20) as usize;
                    let r = sw.time(|| p.client().loan(len)).and_then(|mut loan| {
                        let bytes = loan.as_mut().expect("our own loan");
                        rng.fill(bytes);
                        let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
                        sw.time(|| p.loan_sum(&loan)).map(|back| {
                            (back != sum).then(|| {
                                format!("loan_sum of {len} bytes returned {back}, not {sum}")
                            })
                        })
                    });
                    ("loan_sum", r)
                }
                // A loan made by the service and read here in place.
                84..=89 => {
                    let len = rng.range(0, 1 << 20);
                    let byte = rng.next() as u8;
                    let fill = len <= 64 << 10;
                    let r = sw.time(|| p.loan_make(len, byte, fill)).map(|loan| {
                        let last = loan.len().checked_sub(1).and_then(|i| loan.get(i));
                        let ends =
                            loan.get(0).is_none_or(|b| b == byte) && last.is_none_or(|b| b == byte);
                        let all = !fill || loan.to_vec().iter().all(|&b| b == byte);
                        (loan.len() as u64 != len || !ends || !all).then(|| {
                            format!(
                                "loan_make({len}, {byte}, {fill}) returned {} bytes, \
                                     first {:?}, last {:?}, all filled: {all}",
                                loan.len(),
                                loan.get(0),
                                last
                            )
                        })
                    });
                    ("loan_make", r)
                }
                // sleep_ms: short, or (1 in 5) past the deadline, to time out while the
                // handler runs.
                _ => {
                    let ms = if rng.chance(1, 5) {
                        deadline.as_millis() as u64 + rng.range(20, 300)
                    } else {
                        rng.range(0, 20)
                    };
                    let r = sw.time(|| p.sleep_ms(ms)).map(|back| {
                        (back != ms).then(|| format!("sleep_ms({ms}) returned {back}"))
                    });
                    ("sleep_ms", r)
                }
            };
            let wall = sw.0;
            let outcome = match result {
                Ok(None) => Outcome::Ok,
                Ok(Some(wrong)) => Outcome::Wrong(wrong),
                Err(e) => Outcome::Failed(e),
            };
            // While the service is down, back off a little instead of spinning on NotFound.
            let back_off = matches!(
                &outcome,
                Outcome::Failed(Error::NotFound { .. } | Error::Disconnected { .. })
            );
            shared.record(op, deadline, wall, reconnecting, outcome);
            if buf.capacity() > 1 << 20 {
                buf = Vec::new();
            }
            if back_off {
                std::thread::sleep(Duration::from_millis(rng.range(5, 15)));
            }
        }
    }
}

mod json {
    //! Just enough JSON to print the summary.

    /// A JSON value.
    pub(super) enum J {
        Num(u64),
        Float(f64),
        Bool(bool),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    impl J {
        pub(super) fn obj<const N: usize>(fields: [(&str, J); N]) -> J {
            J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        }

        pub(super) fn render(&self, out: &mut String) {
            match self {
                J::Num(n) => out.push_str(&n.to_string()),
                J::Float(f) => out.push_str(&format!("{f:.3}")),
                J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                J::Str(s) => string(s, out),
                J::Arr(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        item.render(out);
                    }
                    out.push(']');
                }
                J::Obj(fields) => {
                    out.push('{');
                    for (i, (k, v)) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        string(k, out);
                        out.push(':');
                        v.render(out);
                    }
                    out.push('}');
                }
            }
        }
    }

    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

mod driver {
    //! The driver role.

    use super::json::J;
    use super::*;

    struct Config {
        seconds: f64,
        clients: usize,
        threads: usize,
        seed: u64,
        grace_ms: u64,
        rss_tolerance_kb: u64,
        /// Clients (the first ones) that are never killed: they live through every service
        /// restart, reconnecting each time, and are the survivors checked at the end.
        keep: usize,
    }

    fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            seconds: 60.0,
            clients: 8,
            threads: 2,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            grace_ms: 100,
            rss_tolerance_kb: 0,
            keep: 2,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("bad value for {flag}: {value}");
            match flag.as_str() {
                "--seconds" => c.seconds = value.parse().map_err(|_| bad())?,
                "--clients" => c.clients = value.parse().map_err(|_| bad())?,
                "--threads" => c.threads = value.parse().map_err(|_| bad())?,
                "--seed" => c.seed = value.parse().map_err(|_| bad())?,
                "--grace-ms" => c.grace_ms = value.parse().map_err(|_| bad())?,
                "--rss-tolerance-kb" => c.rss_tolerance_kb = value.parse().map_err(|_| bad())?,
                "--keep" => c.keep = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if c.rss_tolerance_kb == 0 {
            // Per connection, the service may keep a request and a reply buffer of the largest
            // payload (2 MiB) in its allocator's arenas.
            c.rss_tolerance_kb = 4096 * c.clients as u64;
        }
        if c.clients == 0 || c.threads == 0 || c.seconds <= 0.0 {
            return Err("--clients, --threads and --seconds must be positive".into());
        }
        if c.keep >= c.clients {
            return Err("--keep must leave at least one client to kill".into());
        }
        Ok(c)
    }

    /// A line from a child: (slot — `usize::MAX` for the service —, instance, line).
    type Msg = (usize, u32, String);

    const SERVICE_SLOT: usize = usize::MAX;

    struct Proc {
        child: Child,
        stdin: Option<ChildStdin>,
        instance: u32,
    }

    impl Proc {
        fn pid(&self) -> u32 {
            self.child.id()
        }
        fn send(&mut self, command: &str) {
            if let Some(stdin) = &mut self.stdin {
                let _ = writeln!(stdin, "{command}");
            }
        }
        fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// The run's runtime directory, removed at the end.
    struct RunDir(PathBuf);

    impl Drop for RunDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What the driver knows from its children's lines.
    #[derive(Default)]
    struct Seen {
        /// Ready lines: (slot, instance).
        ready: Vec<(usize, u32)>,
        /// Latest cumulative counters of each client instance.
        reports: BTreeMap<(usize, u32), BTreeMap<String, u64>>,
        /// Instances that printed their final counters.
        finished: Vec<(usize, u32)>,
        /// Pause answers of the current pause, by slot.
        paused: BTreeMap<usize, BTreeMap<String, u64>>,
        /// Lines that were not understood.
        errors: Vec<String>,
    }

    impl Seen {
        fn take(&mut self, (slot, instance, line): Msg) {
            let word = line.split_whitespace().next().unwrap_or("");
            match word {
                "ready" => self.ready.push((slot, instance)),
                "report" | "final" => {
                    self.reports.insert((slot, instance), parse_fields(&line));
                    if word == "final" {
                        self.finished.push((slot, instance));
                    }
                }
                "paused" => {
                    self.paused.insert(slot, parse_fields(&line));
                }
                _ => self.errors.push(format!("slot {slot}: {line}")),
            }
        }
    }

    /// A snapshot of a process's resources.
    #[derive(Clone, Copy, Default)]
    struct Usage {
        fds: u64,
        sockets: u64,
        memfd_fds: u64,
        threads: u64,
        rss_kb: u64,
        rss_anon_kb: u64,
        memfd_maps: u64,
        memfd_kb: u64,
    }

    impl Usage {
        fn of(pid: u32) -> Usage {
            let (memfd_maps, memfd_kb) = memfd_mappings(pid);
            let (fds, sockets, memfd_fds) = fd_kinds(pid);
            Usage {
                fds,
                sockets,
                memfd_fds,
                threads: status_field(pid, "Threads"),
                rss_kb: status_field(pid, "VmRSS"),
                rss_anon_kb: status_field(pid, "RssAnon"),
                memfd_maps,
                memfd_kb,
            }
        }
        fn json(&self) -> J {
            J::obj([
                ("fds", J::Num(self.fds)),
                ("sockets", J::Num(self.sockets)),
                ("memfd_fds", J::Num(self.memfd_fds)),
                ("threads", J::Num(self.threads)),
                ("rss_kb", J::Num(self.rss_kb)),
                ("rss_anon_kb", J::Num(self.rss_anon_kb)),
                ("memfd_maps", J::Num(self.memfd_maps)),
                ("memfd_kb", J::Num(self.memfd_kb)),
            ])
        }
        fn text(&self) -> String {
            format!(
                "fds {} ({} sockets, {} memfds), threads {}, RSS {} kB (anon {} kB), \
                 memfd mappings {} ({} kB)",
                self.fds,
                self.sockets,
                self.memfd_fds,
                self.threads,
                self.rss_kb,
                self.rss_anon_kb,
                self.memfd_maps,
                self.memfd_kb
            )
        }
    }

    struct Driver {
        cfg: Config,
        dir: PathBuf,
        exe: PathBuf,
        tx: Sender<Msg>,
        rx: Receiver<Msg>,
        seen: Seen,
        service: Option<Proc>,
        service_instances: u32,
        clients: Vec<Option<Proc>>,
        failures: Vec<String>,
        kills_client: u64,
        kills_service: u64,
        restarts_client: u64,
        restarts_service: u64,
        max_restart: Duration,
    }

    impl Driver {
        /// Reads children's lines until `done` holds or `within` passes; returns whether it held.
        fn wait_for(&mut self, within: Duration, done: impl Fn(&Seen) -> bool) -> bool {
            let until = Instant::now() + within;
            loop {
                if done(&self.seen) {
                    return true;
                }
                let left = until.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(msg) => self.seen.take(msg),
                    Err(RecvTimeoutError::Timeout) => return done(&self.seen),
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the driver holds a sender")
                    }
                }
            }
        }

        /// Takes the lines that arrived, without waiting.
        fn drain(&mut self) {
            while let Ok(msg) = self.rx.try_recv() {
                self.seen.take(msg);
            }
        }

        fn spawn(&self, args: &[String], slot: usize, instance: u32) -> std::io::Result<Proc> {
            let mut child = Command::new(&self.exe)
                .args(args)
                .env("LPC_RUNTIME_DIR", &self.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().expect("piped stdout");
            let tx = self.tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // The service prints `sleeping <ms>` for each sleep_ms call: not for us.
                    if slot == SERVICE_SLOT && !line.starts_with("ready") {
                        continue;
                    }
                    if tx.send((slot, instance, line)).is_err() {
                        break;
                    }
                }
            });
            Ok(Proc {
                child,
                stdin,
                instance,
            })
        }

        /// Starts (or restarts) the service and waits for it to be ready (at most 5 s).
        fn start_service(&mut self) -> bool {
            let instance = self.service_instances;
            self.service_instances += 1;
            let started = Instant::now();
            let proc = match self.spawn(&["service".into(), NAME.into()], SERVICE_SLOT, instance) {
                Ok(p) => p,
                Err(e) => {
                    self.failures.push(format!("cannot start the service: {e}"));
                    return false;
                }
            };
            self.service = Some(proc);
            let ready = self.wait_for(Duration::from_secs(5), |s| {
                s.ready.contains(&(SERVICE_SLOT, instance))
            });
            self.max_restart = self.max_restart.max(started.elapsed());
            if !ready {
                self.failures.push(format!(
                    "service instance {instance} was not ready within 5 s"
                ));
            }
            ready
        }

        /// Starts (or restarts) client `slot` and waits for it to be ready (at most 5 s).
        fn start_client(&mut self, slot: usize, instance: u32) -> bool {
            let started = Instant::now();
            let seed = self.cfg.seed ^ ((slot as u64) << 32) ^ u64::from(instance);
            let args = [
                "client".to_owned(),
                NAME.to_owned(),
                slot.to_string(),
                seed.to_string(),
                self.cfg.threads.to_string(),
                self.cfg.grace_ms.to_string(),
            ];
            match self.spawn(&args, slot, instance) {
                Ok(p) => self.clients[slot] = Some(p),
                Err(e) => {
                    self.failures
                        .push(format!("cannot start client {slot}: {e}"));
                    return false;
                }
            }
            let ready = self.wait_for(Duration::from_secs(5), |s| {
                s.ready.contains(&(slot, instance))
            });
            self.max_restart = self.max_restart.max(started.elapsed());
            if !ready {
                self.failures.push(format!(
                    "client {slot} instance {instance} was not ready within 5 s"
                ));
            }
            ready
        }

        /// Records processes that exited without being killed by the driver, and starts them
        /// again.
        fn check_alive(&mut self) {
            if let Some(s) = &mut self.service {
                if let Ok(Some(status)) = s.child.try_wait() {
                    self.failures.push(format!(
                        "the service (instance {}) died on its own: {status}",
                        s.instance
                    ));
                    self.service = None;
                    self.start_service();
                }
            }
            for slot in 0..self.clients.len() {
                let Some(c) = &mut self.clients[slot] else {
                    continue;
                };
                if let Ok(Some(status)) = c.child.try_wait() {
                    let instance = c.instance;
                    self.failures.push(format!(
                        "client {slot} (instance {instance}) died on its own: {status}"
                    ));
                    self.clients[slot] = None;
                    self.start_client(slot, instance + 1_000_000);
                }
            }
        }

        /// Pauses every client (each then holds one idle, live connection) and measures the
        /// service once its descriptors and threads settle (at most 5 s) — at or below
        /// `settle_to` if given. Returns the service's usage and each client's pause answer.
        fn pause_and_measure(
            &mut self,
            what: &str,
            settle_to: Option<Usage>,
        ) -> (Usage, BTreeMap<usize, BTreeMap<String, u64>>) {
            self.seen.paused.clear();
            for c in self.clients.iter_mut().flatten() {
                c.send("pause");
            }
            let n = self.clients.len();
            if !self.wait_for(Duration::from_secs(15), |s| s.paused.len() == n) {
                self.failures.push(format!(
                    "{what}: only {} of {n} clients paused within 15 s",
                    self.seen.paused.len()
                ));
            }
            for (slot, answer) in &self.seen.paused {
                if answer.get("live") != Some(&1) {
                    self.failures.push(format!(
                        "{what}: client {slot} could not make a successful call within 10 s"
                    ));
                }
            }
            let pid = self.service.as_ref().map_or(0, Proc::pid);
            // Connections of killed clients end asynchronously: wait for the counts to settle.
            let mut last = Usage::of(pid);
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
                let now = Usage::of(pid);
                let stable = now.fds == last.fds && now.threads == last.threads;
                let low =
                    settle_to.is_none_or(|t| now.sockets <= t.sockets && now.threads <= t.threads);
                last = now;
                if stable && low {
                    break;
                }
            }
            let answers = std::mem::take(&mut self.seen.paused);
            (Usage::of(pid), answers)
        }

        fn resume(&mut self) {
            for c in self.clients.iter_mut().flatten() {
                c.send("resume");
            }
        }
    }

    pub(super) fn run(args: &[String]) -> ExitCode {
        let cfg = match parse(args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lpc-chaos: {e}");
                return ExitCode::from(2);
            }
        };
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("lpc-chaos: cannot find my own executable: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dir =
            std::env::temp_dir().join(format!("lpc-chaos-{}-{}", std::process::id(), cfg.seed));
        {
            use std::os::unix::fs::DirBuilderExt;
            if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                eprintln!("lpc-chaos: cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        let run_dir = RunDir(dir.clone());
        let (tx, rx) = mpsc::channel();
        let n = cfg.clients;
        let mut d = Driver {
            cfg,
            dir,
            exe,
            tx,
            rx,
            seen: Seen::default(),
            service: None,
            service_instances: 0,
            clients: (0..n).map(|_| None).collect(),
            failures: Vec::new(),
            kills_client: 0,
            kills_service: 0,
            restarts_client: 0,
            restarts_service: 0,
            max_restart: Duration::ZERO,
        };
        let code = chaos(&mut d);
        // Children first, then the directory.
        d.clients.clear();
        d.service = None;
        drop(run_dir);
        code
    }

    fn chaos(d: &mut Driver) -> ExitCode {
        let began = Instant::now();
        let seconds = d.cfg.seconds;
        println!(
            "lpc-chaos: {seconds} s, {} clients × {} threads ({} never killed), seed {}, \
             runtime dir {}",
            d.cfg.clients,
            d.cfg.threads,
            d.cfg.keep,
            d.cfg.seed,
            d.dir.display()
        );
        let shm_before = dev_shm_entries();
        if !d.start_service() {
            return summary(d, &Default::default());
        }
        // The idle service (no connection yet): what it must come back to at the end.
        let service_pid = d.service.as_ref().map_or(0, Proc::pid);
        std::thread::sleep(Duration::from_millis(200));
        let idle_start = Usage::of(service_pid);

        for slot in 0..d.cfg.clients {
            if !d.start_client(slot, 0) {
                return summary(d, &Default::default());
            }
        }
        // Warm-up: every client calls for a while, nobody is killed.
        std::thread::sleep(Duration::from_millis(700));
        d.drain();
        let (paused_start, clients_start) = d.pause_and_measure("warm-up", None);
        d.resume();

        // The chaos. The service is killed only in the first 3/4, so that the last instance
        // serves (and sees clients die) for at least the last quarter before the final checks.
        let mut rng = Rng::new(d.cfg.seed);
        let chaos_start = Instant::now();
        let mut chaos_end = chaos_start + Duration::from_secs_f64(seconds);
        let service_kills_end = chaos_start + Duration::from_secs_f64(seconds * 0.75);
        let mut since_service_kill = 0u32;
        let mut instances = vec![0u32; d.cfg.clients];
        let mut paused_mid = None;
        let mut next = Instant::now() + Duration::from_millis(rng.range(100, 800));
        loop {
            let now = Instant::now();
            if now >= service_kills_end && paused_mid.is_none() {
                // The service instance that will live to the end, after ≥ 0.3 s of serving.
                // The pause does not count as chaos time.
                std::thread::sleep(Duration::from_millis(300));
                d.drain();
                paused_mid = Some(d.pause_and_measure("mid-run", None).0);
                d.resume();
                chaos_end += now.elapsed();
                next = Instant::now() + Duration::from_millis(rng.range(100, 800));
                continue;
            }
            if now >= chaos_end {
                break;
            }
            if now < next {
                let _ = d.wait_for(next.min(chaos_end) - now, |_| false);
                d.check_alive();
                continue;
            }
            next = Instant::now() + Duration::from_millis(rng.range(100, 800));
            // The service 1 time in 6, and at least every 6th kill while it may be killed.
            let kill_service =
                Instant::now() < service_kills_end && (rng.chance(1, 6) || since_service_kill >= 5);
            if kill_service {
                since_service_kill = 0;
                if let Some(mut s) = d.service.take() {
                    s.kill();
                }
                d.kills_service += 1;
                // Down for a moment: clients meanwhile find no service.
                std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
                if d.start_service() {
                    d.restarts_service += 1;
                }
            } else {
                since_service_kill += 1;
                let slot = rng.range(d.cfg.keep as u64, d.cfg.clients as u64 - 1) as usize;
                if let Some(mut c) = d.clients[slot].take() {
                    c.kill();
                }
                d.kills_client += 1;
                instances[slot] += 1;
                if d.start_client(slot, instances[slot]) {
                    d.restarts_client += 1;
                }
            }
            d.check_alive();
        }
        let chaos_took = chaos_start.elapsed();

        // Settle: nobody is killed any more; every client calls for a moment.
        std::thread::sleep(Duration::from_millis(500));
        d.check_alive();
        d.drain();
        let paused_mid = paused_mid.unwrap_or(paused_start);
        let (paused_end, clients_end) = d.pause_and_measure("end", Some(paused_start));

        // Stop the clients; they print their final counters.
        for c in d.clients.iter_mut().flatten() {
            c.send("stop");
        }
        let finals: Vec<(usize, u32)> = d
            .clients
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| Some((slot, c.as_ref()?.instance)))
            .collect();
        if !d.wait_for(Duration::from_secs(10), |s| {
            finals.iter().all(|f| s.finished.contains(f))
        }) {
            d.failures
                .push("not every client printed its final counters within 10 s".into());
        }
        for (slot, c) in d.clients.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let until = Instant::now() + Duration::from_secs(10);
            let status = loop {
                match c.child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    _ if Instant::now() >= until => break None,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            match status {
                Some(s) if s.success() => {}
                Some(s) => d.failures.push(format!("client {slot} exited with {s}")),
                None => d
                    .failures
                    .push(format!("client {slot} did not exit within 10 s of `stop`")),
            }
        }
        d.check_alive_service_only();

        // The idle service again: back to where it started.
        let service_pid = d.service.as_ref().map_or(0, Proc::pid);
        let mut idle_end = Usage::of(service_pid);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until
            && (idle_end.fds > idle_start.fds
                || idle_end.threads > idle_start.threads
                || idle_end.memfd_maps > 0)
        {
            std::thread::sleep(Duration::from_millis(50));
            idle_end = Usage::of(service_pid);
        }
        let runtime_dir: Vec<String> = std::fs::read_dir(&d.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let shm_after = dev_shm_entries();
        let shm_new: Vec<String> = shm_after
            .iter()
            .filter(|p| !shm_before.contains(p))
            .map(|p| p.display().to_string())
            .collect();

        let m = Measured {
            chaos_took,
            total_took: began.elapsed(),
            idle_start,
            idle_end,
            paused_start,
            paused_mid,
            paused_end,
            clients_start,
            clients_end,
            runtime_dir,
            shm_new,
        };
        summary(d, &m)
    }

    impl Driver {
        fn check_alive_service_only(&mut self) {
            if let Some(s) = &mut self.service {
                if let Ok(Some(status)) = s.child.try_wait() {
                    self.failures
                        .push(format!("the service died on its own at the end: {status}"));
                }
            }
        }
    }

    #[derive(Default)]
    struct Measured {
        chaos_took: Duration,
        total_took: Duration,
        idle_start: Usage,
        idle_end: Usage,
        paused_start: Usage,
        paused_mid: Usage,
        paused_end: Usage,
        clients_start: BTreeMap<usize, BTreeMap<String, u64>>,
        clients_end: BTreeMap<usize, BTreeMap<String, u64>>,
        runtime_dir: Vec<String>,
        shm_new: Vec<String>,
    }

    fn summary(d: &mut Driver, m: &Measured) -> ExitCode {
        d.drain();
        // Sum the last counters each client instance reported; maxima are maxima.
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for fields in d.seen.reports.values() {
            for (k, v) in fields {
                let e = totals.entry(k.clone()).or_default();
                if k.starts_with("max_") {
                    *e = (*e).max(*v);
                } else {
                    *e += v;
                }
            }
        }
        let get = |k: &str| totals.get(k).copied().unwrap_or(0);
        let tol = d.cfg.rss_tolerance_kb;

        // Invariants.
        let mut failures = std::mem::take(&mut d.failures);
        if get("wrong") > 0 {
            failures.push(format!("{} calls returned a wrong result", get("wrong")));
        }
        if get("late") > 0 {
            failures.push(format!(
                "{} calls returned more than {} ms after their deadline",
                get("late"),
                d.cfg.grace_ms
            ));
        }
        if get("ok") == 0 {
            failures.push("no call succeeded".into());
        }
        let measured = m.idle_start.threads > 0;
        if measured {
            // The service with one idle connection per client, after warm-up and at the end
            // (another instance if the service was restarted): one socket per connection, so
            // exactly as many as after warm-up; and at most one thread per call slot the
            // connection's client has used (slot 0's is the connection's own), beside the
            // service's main and reactor threads: bounded, whatever the run did. Other
            // descriptors (not sockets, not spill buffers in transit) do not grow.
            let (s, e) = (&m.paused_start, &m.paused_end);
            let other = |u: &Usage| u.fds - u.sockets - u.memfd_fds;
            let thread_bound = 2 + d.cfg.clients as u64 * SLOTS;
            if e.sockets > s.sockets || e.threads > thread_bound || other(e) > other(s) {
                failures.push(format!(
                    "service with {} idle connections, at the end: {}; after warm-up: {}",
                    d.cfg.clients,
                    e.text(),
                    s.text()
                ));
            }
            // Received, unclaimed spill buffers: at most one per slot of a live connection.
            let bound = d.cfg.clients as u64 * SLOTS;
            if e.memfd_fds > bound {
                failures.push(format!(
                    "service holds {} spill-buffer descriptors, more than {bound} \
                     ({SLOTS} per connection)",
                    e.memfd_fds
                ));
            }
            // Memory: the same instance at mid-run and at the end, paused, then idle. Each
            // thread serving calls may leave a request and a reply of the largest payload in its
            // allocator's arena (glibc keeps one per thread, at most eight per CPU, and keeps
            // what was freed in it): the tolerance covers that many arenas, whichever is larger.
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
            let arenas = e.threads.max(m.paused_mid.threads).min(8 * cpus);
            let tol = tol.max(4096 * arenas);
            if e.rss_anon_kb > m.paused_mid.rss_anon_kb + tol {
                failures.push(format!(
                    "service anonymous memory grew from {} kB (mid-run, same instance) to {} kB \
                     (tolerance {tol} kB)",
                    m.paused_mid.rss_anon_kb, e.rss_anon_kb
                ));
            }
            if m.idle_end.rss_kb > m.paused_mid.rss_kb + tol
                || m.idle_end.rss_anon_kb > m.paused_mid.rss_anon_kb + tol
            {
                failures.push(format!(
                    "idle service at the end holds more memory than with {} connections at \
                     mid-run: {}; mid-run: {} (tolerance {tol} kB)",
                    d.cfg.clients,
                    m.idle_end.text(),
                    m.paused_mid.text()
                ));
            }
            // Every client gone: exactly the descriptors and threads of the idle service at
            // the start, and no shared memory mapped.
            let (s, e) = (&m.idle_start, &m.idle_end);
            if e.fds > s.fds || e.threads > s.threads || e.memfd_maps > 0 {
                failures.push(format!(
                    "idle service at the end: {}; at the start: {}",
                    e.text(),
                    s.text()
                ));
            }
            // Each client, paused with one live connection: one socket, and no more other
            // descriptors than after warm-up.
            for (slot, end) in &m.clients_end {
                let start = m.clients_start.get(slot);
                let f = |x: Option<&BTreeMap<String, u64>>, k: &str| {
                    x.and_then(|x| x.get(k)).copied().unwrap_or(0)
                };
                let other = |x| f(x, "fds") - f(x, "sockets") - f(x, "memfd_fds");
                let (se, ss) = (f(Some(end), "sockets"), f(start, "sockets"));
                if se > ss {
                    failures.push(format!(
                        "client {slot} holds {se} sockets at the end, {ss} after warm-up \
                         (one live connection each time; {} calls found the connection lost)",
                        f(Some(end), "reconnecting_calls")
                    ));
                }
                if other(Some(end)) > other(start) || f(Some(end), "memfd_fds") > SLOTS {
                    failures.push(format!(
                        "client {slot}: {} fds ({se} sockets, {} memfds) at the end, \
                         {} ({ss}, {}) after warm-up",
                        f(Some(end), "fds"),
                        f(Some(end), "memfd_fds"),
                        f(start, "fds"),
                        f(start, "memfd_fds"),
                    ));
                }
            }
            if m.runtime_dir != [format!("{NAME}.sock")] {
                failures.push(format!(
                    "the runtime directory holds {:?}, not just {NAME}.sock",
                    m.runtime_dir
                ));
            }
            if !m.shm_new.is_empty() {
                failures.push(format!("new entries in /dev/shm: {:?}", m.shm_new));
            }
        }
        for e in &d.seen.errors {
            failures.push(format!("unexpected line from a child: {e}"));
        }

        // Human summary.
        let errors: Vec<(String, u64)> = totals
            .iter()
            .filter(|(k, _)| k.starts_with("err_"))
            .map(|(k, v)| (k.trim_start_matches("err_").to_owned(), *v))
            .collect();
        let ms = |k: &str| get(k) as f64 / 1000.0;
        println!("--- lpc-chaos summary ---");
        println!(
            "chaos {:.1} s (whole run {:.1} s), seed {}, {} clients × {} threads",
            m.chaos_took.as_secs_f64(),
            m.total_took.as_secs_f64(),
            d.cfg.seed,
            d.cfg.clients,
            d.cfg.threads
        );
        println!(
            "kills: {} clients, {} service; restarts: {} clients, {} service \
             (slowest ready {:.0} ms)",
            d.kills_client,
            d.kills_service,
            d.restarts_client,
            d.restarts_service,
            d.max_restart.as_secs_f64() * 1000.0
        );
        println!(
            "calls: {} reported, {} ok, {} wrong, {} errors, {} late (> deadline + {} ms)",
            get("calls"),
            get("ok"),
            get("wrong"),
            get("errors"),
            get("late"),
            d.cfg.grace_ms
        );
        println!(
            "ok by kind: add {}, echo inline {}, echo spilled {}, echo large {}, touch {}, \
             sqrt {}, loan_sum {}, loan_make {}, sleep {}",
            get("ok_add"),
            get("ok_echo_inline"),
            get("ok_echo_spilled"),
            get("ok_echo_large"),
            get("ok_touch"),
            get("ok_sqrt"),
            get("ok_loan_sum"),
            get("ok_loan_make"),
            get("ok_sleep")
        );
        println!("errors by kind:");
        for (k, v) in &errors {
            println!("  {k}: {v}");
        }
        println!(
            "initial connects that failed: {}; calls that reconnected first: {}",
            get("connect_failures"),
            get("reconnecting_calls")
        );
        println!(
            "time: longest call {:.1} ms (deadlines 200–1000 ms); most past its deadline \
             {:.1} ms (successes {:.1}, timeouts {:.1}, disconnections {:.1}, other errors \
             {:.1}); longest call that reconnected first {:.1} ms",
            ms("max_wall_us"),
            ms("max_over_deadline_us"),
            ms("max_over_deadline_us_ok"),
            ms("max_over_deadline_us_timeout"),
            ms("max_over_deadline_us_disconnected"),
            ms("max_over_deadline_us_other_error"),
            ms("max_reconnecting_wall_us")
        );
        if measured {
            println!("service idle, start:      {}", m.idle_start.text());
            println!("service idle, end:        {}", m.idle_end.text());
            println!("service paused, warm-up:  {}", m.paused_start.text());
            println!("service paused, mid-run:  {}", m.paused_mid.text());
            println!("service paused, end:      {}", m.paused_end.text());
            for (slot, end) in &m.clients_end {
                let start = m.clients_start.get(slot);
                let f = |x: Option<&BTreeMap<String, u64>>, k: &str| {
                    x.and_then(|x| x.get(k)).copied().unwrap_or(0)
                };
                println!(
                    "client {slot}: fds {} -> {}, sockets {} -> {}, memfd mappings {} -> {} \
                     ({} -> {} kB), anon {} -> {} kB, \
                     reconnecting calls {}",
                    f(start, "fds"),
                    f(Some(end), "fds"),
                    f(start, "sockets"),
                    f(Some(end), "sockets"),
                    f(start, "memfd_maps"),
                    f(Some(end), "memfd_maps"),
                    f(start, "memfd_kb"),
                    f(Some(end), "memfd_kb"),
                    f(start, "rss_anon_kb"),
                    f(Some(end), "rss_anon_kb"),
                    f(Some(end), "reconnecting_calls"),
                );
            }
            println!("runtime dir at the end: {:?}", m.runtime_dir);
            println!("new /dev/shm entries: {}", m.shm_new.len());
        }
        if failures.is_empty() {
            println!("result: PASS");
        } else {
            println!("result: FAIL");
            for f in &failures {
                println!("  - {f}");
            }
        }

        // The same as JSON, last line of stdout.
        let clients: Vec<J> = m
            .clients_end
            .iter()
            .map(|(slot, end)| {
                let start = m.clients_start.get(slot);
                let f = |x: Option<&BTreeMap<String, u64>>, k: &str| {
                    J::Num(x.and_then(|x| x.get(k)).copied().unwrap_or(0))
                };
                J::obj([
                    ("slot", J::Num(*slot as u64)),
                    ("fds_start", f(start, "fds")),
                    ("fds_end", f(Some(end), "fds")),
                    ("sockets_start", f(start, "sockets")),
                    ("sockets_end", f(Some(end), "sockets")),
                    ("memfd_maps_start", f(start, "memfd_maps")),
                    ("memfd_maps_end", f(Some(end), "memfd_maps")),
                    ("memfd_kb_start", f(start, "memfd_kb")),
                    ("memfd_kb_end", f(Some(end), "memfd_kb")),
                    ("reconnecting_calls", f(Some(end), "reconnecting_calls")),
                    ("rss_anon_kb_start", f(start, "rss_anon_kb")),
                    ("rss_anon_kb_end", f(Some(end), "rss_anon_kb")),
                ])
            })
            .collect();
        let json = J::obj([
            ("seconds", J::Float(d.cfg.seconds)),
            ("chaos_seconds", J::Float(m.chaos_took.as_secs_f64())),
            ("clients", J::Num(d.cfg.clients as u64)),
            ("threads_per_client", J::Num(d.cfg.threads as u64)),
            ("clients_never_killed", J::Num(d.cfg.keep as u64)),
            ("seed", J::Num(d.cfg.seed)),
            ("grace_ms", J::Num(d.cfg.grace_ms)),
            ("kills_client", J::Num(d.kills_client)),
            ("kills_service", J::Num(d.kills_service)),
            ("restarts_client", J::Num(d.restarts_client)),
            ("restarts_service", J::Num(d.restarts_service)),
            (
                "max_restart_ms",
                J::Float(d.max_restart.as_secs_f64() * 1000.0),
            ),
            (
                "counters",
                J::Obj(
                    totals
                        .iter()
                        .map(|(k, v)| (k.clone(), J::Num(*v)))
                        .collect(),
                ),
            ),
            ("service_idle_start", m.idle_start.json()),
            ("service_idle_end", m.idle_end.json()),
            ("service_paused_start", m.paused_start.json()),
            ("service_paused_mid", m.paused_mid.json()),
            ("service_paused_end", m.paused_end.json()),
            ("clients_paused", J::Arr(clients)),
            (
                "runtime_dir",
                J::Arr(m.runtime_dir.iter().map(|s| J::Str(s.clone())).collect()),
            ),
            (
                "shm_new",
                J::Arr(m.shm_new.iter().map(|s| J::Str(s.clone())).collect()),
            ),
            (
                "failures",
                J::Arr(failures.iter().map(|s| J::Str(s.clone())).collect()),
            ),
            ("pass", J::Bool(failures.is_empty())),
        ]);
        let mut out = String::new();
        json.render(&mut out);
        println!("{out}");
        if failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
