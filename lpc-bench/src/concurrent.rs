//! Calls that never wait on each other: the small call from thread B while thread A of the same
//! client sleeps in a slow call, against the same call alone; and 8 threads of one client
//! mixing slow and fast calls, against the same threads making fast calls only.
//!
//! One service process and one client (one connection) for all of it. The service serves
//! slot 0 on the connection's own thread and each further slot the client uses on a thread of
//! its own (`lpc/src/server/connection.rs`); a calling thread takes a free slot for each call,
//! preferring the one it used last (`lpc/src/client/slots.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Barrier, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use lpc_bench::stats::{self, Budget, Summary};
use serde::{Deserialize, Serialize};

use crate::service::BenchClient;

/// Thread A's slow call: `sleep_us(SLOW_US)`, back to back.
pub const SLOW_US: u64 = 10_000;
/// Threads of the mixed load.
pub const MIX_THREADS: u32 = 8;
/// In the mixed load, each thread makes one slow call after every `MIX_EVERY` fast ones.
pub const MIX_EVERY: u32 = 100;
/// The mixed load's slow call: `sleep_us(MIX_SLOW_US)`.
pub const MIX_SLOW_US: u64 = 1_000;
/// Rounds of the mixed-load measurement: each runs the mixed load and the fast-only load for
/// a `MIX_ROUNDS`th of the time budget (in alternating order).
pub const MIX_ROUNDS: usize = 4;

/// What the section measured (see [`beside_slow`] and [`mixed_load`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Concurrent {
    /// Where the client and the service of the small-call figures ran (`2 CPUs`: the client's
    /// threads on one, the service on another).
    pub cpus: String,
    /// Thread A's slow call: `sleep_us(slow_us)`.
    pub slow_us: u64,
    /// Rounds the three small-call figures were interleaved over.
    pub rounds: usize,
    /// `add` from a thread calling alone: no other call of the client in flight, and a thread
    /// whose preferred slot is slot 0 (served by the connection's own thread), as a
    /// single-threaded client's is.
    pub alone: Summary,
    /// `add` from thread B while A is paused: no other call in flight, on B's usual slot (not
    /// slot 0, which A took first).
    pub b_alone: Summary,
    /// `add` from thread B while thread A is in `sleep_us(slow_us)`.
    pub b_beside_slow: Summary,
    /// Thread A's slow calls, each timed (its rate: A's calls over the time they took).
    pub slow: Summary,
    /// Where the client and the service of the mixed loads ran.
    pub mix_cpus: String,
    /// The same threads making fast calls only, then mixing slow ones in.
    pub mixes: Vec<Mix>,
}

/// Threads of one client calling for a fixed time (see [`mixed_load`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mix {
    pub threads: u32,
    /// One slow call after every `slow_every` fast ones; 0: fast calls only.
    pub slow_every: u32,
    /// The slow call: `sleep_us(slow_us)`.
    pub slow_us: u64,
    pub fast_calls: u64,
    pub slow_calls: u64,
    /// Wall time of all rounds, in seconds.
    pub seconds: f64,
    /// Time the threads spent in slow calls, added up over the threads, in seconds.
    pub slow_seconds: f64,
    /// The fast calls, each timed; its rate is fast calls per second, all threads together.
    pub fast: Summary,
}

impl Mix {
    /// All calls (fast and slow) per second, all threads together.
    pub fn calls_per_sec(&self) -> f64 {
        (self.fast_calls + self.slow_calls) as f64 / self.seconds
    }

    pub fn fast_per_sec(&self) -> f64 {
        self.fast_calls as f64 / self.seconds
    }

    /// Fast calls per second of a thread's time outside its slow calls (the threads' time
    /// taken as the wall time): what slow calls holding up fast ones would lower.
    pub fn fast_per_thread_outside_slow(&self) -> f64 {
        let outside = f64::from(self.threads) * self.seconds - self.slow_seconds;
        if outside > 0.0 {
            self.fast_calls as f64 / outside
        } else {
            0.0
        }
    }

    /// `` `add` only `` or `` 100 × `add`, then `sleep_us(1000)` ``.
    pub fn label(&self) -> String {
        if self.slow_every == 0 {
            "`add` only".into()
        } else {
            format!(
                "{} × `add`, then `sleep_us({})`",
                self.slow_every, self.slow_us
            )
        }
    }
}

/// `add(a, 1)` with its result checked; `a` counts up from `seed`.
fn add_op(client: &BenchClient, seed: i32) -> impl FnMut() -> Result<(), String> + '_ {
    let mut i = seed;
    move || {
        let a = std::hint::black_box(i);
        i = i.wrapping_add(1);
        let sum = client.add(a, 1).map_err(|e| e.to_string())?;
        if sum == a.wrapping_add(1) {
            Ok(())
        } else {
            Err(format!("add({a}, 1) returned {sum}"))
        }
    }
}

/// `sleep_us(us)` with its result checked.
fn slow_call(client: &BenchClient, us: u64) -> Result<(), String> {
    let back = client.sleep_us(us).map_err(|e| e.to_string())?;
    if back == us {
        Ok(())
    } else {
        Err(format!("sleep_us({us}) returned {back}"))
    }
}

/// The warm-up of [`stats::measure`]: up to `budget.warmup` calls or a quarter of its time.
fn warm_up(budget: &Budget, op: &mut dyn FnMut() -> Result<(), String>) -> Result<(), String> {
    let start = Instant::now();
    for i in 0..budget.warmup {
        op()?;
        if i % 16 == 15 && start.elapsed() > budget.time / 4 {
            break;
        }
    }
    Ok(())
}

/// What a measuring thread is asked to do.
enum Task {
    Warm,
    /// One round of [`stats::measure_round`] (with its minimum of samples), after a
    /// warm-up of its own (the first budget).
    Round(Budget, Budget, usize),
}

/// A round's latencies, round trips timed and batch time.
type Timed = (Vec<u64>, usize, Duration);

/// A thread making small calls on request, one task at a time.
struct Measurer<'scope> {
    name: &'static str,
    tasks: Sender<Task>,
    results: Receiver<Result<Timed, String>>,
    _thread: ScopedJoinHandle<'scope, ()>,
}

impl<'scope> Measurer<'scope> {
    fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        name: &'static str,
        client: &'env BenchClient,
        budget: Budget,
        seed: i32,
    ) -> Measurer<'scope> {
        let (tasks, task_rx) = mpsc::channel::<Task>();
        let (result_tx, results) = mpsc::channel();
        let thread = scope.spawn(move || {
            let mut op = add_op(client, seed);
            for task in task_rx {
                let result = match task {
                    Task::Warm => {
                        warm_up(&budget, &mut op).map(|()| (Vec::new(), 0, Duration::ZERO))
                    }
                    Task::Round(warm, per_round, min_samples) => {
                        let mut latencies = Vec::new();
                        warm_up(&warm, &mut op).and_then(|()| {
                            stats::measure_round(&per_round, min_samples, &mut latencies, &mut op)
                                .map(|(n, wall)| (latencies, n, wall))
                        })
                    }
                };
                let failed = result.is_err();
                if result_tx.send(result).is_err() || failed {
                    return;
                }
            }
        });
        Measurer {
            name,
            tasks,
            results,
            _thread: thread,
        }
    }

    fn run(&self, task: Task) -> Result<Timed, String> {
        let stopped = || format!("thread {} stopped", self.name);
        self.tasks.send(task).map_err(|_| stopped())?;
        self.results
            .recv()
            .map_err(|_| stopped())?
            .map_err(|e| format!("thread {}: {e}", self.name))
    }
}

/// What thread A says.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// Its first slow call of a run returned: it is back to back in the next.
    Running,
    /// It stopped calling, as asked.
    Paused,
}

/// Thread A: for each run requested on `runs`, slow calls back to back until `pause`.
fn slow_caller(
    client: &BenchClient,
    runs: &Receiver<()>,
    pause: &AtomicBool,
    events: &Sender<Event>,
) -> Result<Vec<u64>, String> {
    let mut latencies = Vec::new();
    for () in runs {
        let mut first = true;
        loop {
            let start = Instant::now();
            slow_call(client, SLOW_US)?;
            latencies.push(stats::duration_ns(start.elapsed()));
            if first {
                first = false;
                if events.send(Event::Running).is_err() {
                    return Ok(latencies);
                }
            }
            if pause.load(Ordering::Acquire) {
                if events.send(Event::Paused).is_err() {
                    return Ok(latencies);
                }
                break;
            }
        }
    }
    Ok(latencies)
}

/// The parent's handle on thread A.
struct Slow<'a> {
    runs: Sender<()>,
    events: Receiver<Event>,
    pause: &'a AtomicBool,
}

impl Slow<'_> {
    fn expect(&self, want: Event) -> Result<(), String> {
        match self.events.recv() {
            Ok(event) if event == want => Ok(()),
            Ok(event) => Err(format!("thread A: expected {want:?}, got {event:?}")),
            Err(_) => Err("thread A stopped".into()),
        }
    }

    /// Starts A's slow calls; returns once the first has returned (A is in the second).
    fn start(&self) -> Result<(), String> {
        self.runs
            .send(())
            .map_err(|_| "thread A stopped".to_owned())?;
        self.expect(Event::Running)
    }

    /// Stops A's slow calls; returns once its current one has returned.
    fn pause(&self) -> Result<(), String> {
        self.pause.store(true, Ordering::Release);
        let paused = self.expect(Event::Paused);
        self.pause.store(false, Ordering::Release);
        paused
    }
}

/// The small call alone (thread C: slot 0), from thread B alone (B's slot), and from B while
/// thread A keeps calling `sleep_us(SLOW_US)` back to back; and A's slow calls, in that order.
/// In `rounds` rounds, each timing a `rounds`th of the samples and time of the three in turn
/// (one by one, then as a batch), so that the machine's drift weighs on all three alike.
///
/// Order: A starts first, so its first call takes slot 0; B warms up while A sleeps, so B
/// takes another slot (and keeps it: the slot a thread used last is the one it tries first);
/// then, with A paused, C warms up on slot 0. B's calls beside A are timed only once A's first
/// slow call of the round has returned, so that A is in a slow call throughout (but for the
/// microseconds between two of them, once every `SLOW_US`).
pub fn beside_slow(
    client: &BenchClient,
    budget: &Budget,
    rounds: usize,
) -> Result<[Summary; 4], String> {
    let rounds = rounds.max(1);
    let (per_round, min_samples) = budget.per_round(rounds);
    // Each round of each row starts after a pause of up to `SLOW_US` of its thread: a few
    // untimed calls first (up to a `rounds`th of the warm-up, or a quarter of the round's
    // time).
    let warm = Budget {
        warmup: budget.warmup.div_ceil(rounds),
        ..per_round
    };
    let pause = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (runs, run_rx) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        let pause_ref = &pause;
        // Owning its sender, so that its end wakes a parent waiting for its next event.
        let a = scope.spawn(move || slow_caller(client, &run_rx, pause_ref, &event_tx));
        let slow = Slow {
            runs,
            events,
            pause: &pause,
        };
        let b = Measurer::spawn(scope, "B", client, *budget, 1 << 20);
        let c = Measurer::spawn(scope, "C", client, *budget, 2 << 20);
        let measured = (|| -> Result<[(Vec<u64>, usize, Duration); 3], String> {
            slow.start()?;
            b.run(Task::Warm)?;
            slow.pause()?;
            c.run(Task::Warm)?;
            let mut out: [(Vec<u64>, usize, Duration); 3] = Default::default();
            let mut add = |i: usize, (latencies, n, wall): Timed| {
                out[i].0.extend(latencies);
                out[i].1 += n;
                out[i].2 += wall;
            };
            let round = || Task::Round(warm, per_round, min_samples);
            for _ in 0..rounds {
                add(0, c.run(round())?);
                add(1, b.run(round())?);
                slow.start()?;
                let beside = b.run(round());
                slow.pause()?;
                add(2, beside?);
            }
            Ok(out)
        })();
        // Ends the three threads: A's current run (if any) and its wait for the next.
        pause.store(true, Ordering::Release);
        drop(slow);
        drop((b, c));
        let slow_latencies = a
            .join()
            .map_err(|_| "thread A panicked".to_owned())?
            .map_err(|e| format!("thread A: {e}"))?;
        let [alone, b_alone, beside] = measured?.map(|(l, n, w)| stats::summarise(l, n, w));
        let count = slow_latencies.len();
        let spent = Duration::from_nanos(slow_latencies.iter().sum());
        Ok([
            alone,
            b_alone,
            beside,
            stats::summarise(slow_latencies, count, spent),
        ])
    })
}

/// One round of the mixed load for every thread (`None` in its place ends the threads).
#[derive(Clone, Copy)]
struct Spec {
    mixed: bool,
    time: Duration,
    max_calls: usize,
}

/// What one thread did in one round.
struct RoundOut {
    fast: Vec<u64>,
    fast_calls: u64,
    slow_calls: u64,
    slow_time: Duration,
}

/// One thread's round: fast calls (each timed), and with `spec.mixed` a slow call after
/// every [`MIX_EVERY`] of them, until `spec.time` has passed or `spec.max_calls` were made.
/// `since_slow` carries the thread's count of fast calls since its last slow one.
fn mix_round(
    client: &BenchClient,
    add: &mut dyn FnMut() -> Result<(), String>,
    spec: Spec,
    since_slow: &mut u32,
) -> Result<RoundOut, String> {
    let mut out = RoundOut {
        fast: Vec::with_capacity(1 << 14),
        fast_calls: 0,
        slow_calls: 0,
        slow_time: Duration::ZERO,
    };
    let started = Instant::now();
    let mut calls = 0;
    while calls < spec.max_calls && started.elapsed() < spec.time {
        if spec.mixed && *since_slow >= MIX_EVERY {
            let start = Instant::now();
            slow_call(client, MIX_SLOW_US)?;
            out.slow_time += start.elapsed();
            *since_slow = 0;
            out.slow_calls += 1;
        } else {
            let start = Instant::now();
            add()?;
            out.fast.push(stats::duration_ns(start.elapsed()));
            out.fast_calls += 1;
            if spec.mixed {
                *since_slow += 1;
            }
        }
        calls += 1;
    }
    Ok(out)
}

/// [`MIX_THREADS`] threads sharing `client`, all starting each round together: fast calls
/// only, and fast calls with `sleep_us(MIX_SLOW_US)` after every [`MIX_EVERY`], each for the
/// budget's time in all, in [`MIX_ROUNDS`] alternating rounds, after a warm-up of the mixed
/// load. The threads' slow calls are staggered: thread t's first comes after
/// t × `MIX_EVERY` ÷ `MIX_THREADS` fast calls fewer than thread 0's.
pub fn mixed_load(client: &BenchClient, budget: &Budget) -> Result<Vec<Mix>, String> {
    let n = MIX_THREADS as usize;
    let spec: Mutex<Option<Spec>> = Mutex::new(None);
    let (start, end) = (Barrier::new(n + 1), Barrier::new(n + 1));
    std::thread::scope(|scope| {
        let (out_tx, outs) = mpsc::channel::<Result<RoundOut, String>>();
        for t in 0..MIX_THREADS {
            let (spec, start, end, out_tx) = (&spec, &start, &end, out_tx.clone());
            scope.spawn(move || {
                let mut add = add_op(client, (t as i32 + 1) << 24);
                let mut since_slow = t * MIX_EVERY / MIX_THREADS;
                let mut failed = false;
                loop {
                    start.wait();
                    let Some(spec) = *spec.lock().unwrap_or_else(|p| p.into_inner()) else {
                        return;
                    };
                    // A thread that failed keeps meeting the others at the barriers, idle.
                    let result = if failed {
                        Err("failed in an earlier round".to_owned())
                    } else {
                        mix_round(client, &mut add, spec, &mut since_slow)
                    };
                    failed |= result.is_err();
                    let _ = out_tx.send(result);
                    end.wait();
                }
            });
        }
        drop(out_tx);
        // One round of every thread: their results and the wall time from start to end.
        let round = |s: Spec| -> Result<(Vec<RoundOut>, Duration), String> {
            *spec.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            start.wait();
            let began = Instant::now();
            end.wait();
            let wall = began.elapsed();
            let results = (0..n)
                .map(|_| {
                    outs.recv()
                        .map_err(|_| "a calling thread stopped".to_owned())?
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((results, wall))
        };
        let measured = (|| -> Result<Vec<Mix>, String> {
            round(Spec {
                mixed: true,
                time: budget.time / 4,
                max_calls: budget.warmup,
            })?;
            let time = budget.time / MIX_ROUNDS as u32;
            let mut mixes: Vec<(Mix, Vec<u64>)> = [0, MIX_EVERY]
                .map(|every| {
                    let mix = Mix {
                        threads: MIX_THREADS,
                        slow_every: every,
                        slow_us: if every == 0 { 0 } else { MIX_SLOW_US },
                        fast_calls: 0,
                        slow_calls: 0,
                        seconds: 0.0,
                        slow_seconds: 0.0,
                        fast: stats::summarise(Vec::new(), 0, Duration::ZERO),
                    };
                    (mix, Vec::new())
                })
                .into();
            for r in 0..MIX_ROUNDS {
                // Alternating which comes first.
                for k in [r % 2, 1 - r % 2] {
                    let (results, wall) = round(Spec {
                        mixed: k == 1,
                        time,
                        max_calls: usize::MAX,
                    })?;
                    let (mix, latencies) = &mut mixes[k];
                    mix.seconds += wall.as_secs_f64();
                    for out in results {
                        mix.fast_calls += out.fast_calls;
                        mix.slow_calls += out.slow_calls;
                        mix.slow_seconds += out.slow_time.as_secs_f64();
                        latencies.extend(out.fast);
                    }
                }
            }
            // Fast calls only first.
            Ok(mixes
                .into_iter()
                .map(|(mut mix, latencies)| {
                    mix.fast = stats::summarise(
                        latencies,
                        mix.fast_calls as usize,
                        Duration::from_secs_f64(mix.seconds),
                    );
                    mix
                })
                .collect())
        })();
        // Ends the threads.
        *spec.lock().unwrap_or_else(|p| p.into_inner()) = None;
        start.wait();
        measured
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(slow_every: u32, fast_calls: u64, slow_calls: u64, slow_seconds: f64) -> Mix {
        Mix {
            threads: 8,
            slow_every,
            slow_us: 1000,
            fast_calls,
            slow_calls,
            seconds: 2.0,
            slow_seconds,
            fast: stats::summarise(vec![1], 1, Duration::from_secs(1)),
        }
    }

    #[test]
    fn rates() {
        let m = mix(100, 1_000_000, 10_000, 10.0);
        assert_eq!(m.calls_per_sec(), 505_000.0);
        assert_eq!(m.fast_per_sec(), 500_000.0);
        // 8 threads × 2 s, 10 s of which in slow calls: 6 s outside them.
        assert!((m.fast_per_thread_outside_slow() - 1e6 / 6.0).abs() < 1e-6);
        assert_eq!(m.label(), "100 × `add`, then `sleep_us(1000)`");
        let m = mix(0, 1_600_000, 0, 0.0);
        assert_eq!(m.fast_per_thread_outside_slow(), 100_000.0);
        assert_eq!(m.label(), "`add` only");
    }
}
