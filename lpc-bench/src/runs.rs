//! The measurements of lpc and of the floors, each against a fresh child process.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use lpc::{ClientOptions, Comparison, InterfaceInfo, WaitStrategy};
use lpc_bench::affinity::{self, Pinned, Placement};
use lpc_bench::child::{self, Peer};
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{self, measure, Budget, Summary};

use crate::concurrent::{self, Concurrent};
use crate::floor::{self, Mode, Pinger, UnixPinger};
use crate::large::{LargeClient, LARGE_INTERFACE};
use crate::report::{self, Handshake, Idle};
use crate::service::{BenchClient, BENCH_INTERFACE};

/// How long a child has to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child has to exit once told to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections timed by the connect measurement.
const CONNECT_SAMPLES: usize = 500;
/// Rounds of an interleaved measurement.
const INTERLEAVE_ROUNDS: usize = 10;
/// Untimed round trips at the start of each system's turn in a round: the system that had
/// just slept (its service on a futex, its spin budgets shrunk) settles before it is timed.
/// The spinning group then goes on warming up while the pair shares a CPU ([`settle`]): the
/// p99 of ~3 µs that one run in three showed for one of the lpc systems (statistics on or off)
/// came from rounds that began with the service thread on the client's CPU.
const ROUND_WARMUP: usize = 2_000;
/// Longest [`settle`] keeps a pair that shares a CPU warming up before timing it anyway.
const SETTLE_LIMIT: Duration = Duration::from_millis(500);
/// Connections timed per interface by the handshake measurement (fewer with `--samples`).
const HANDSHAKE_SAMPLES: usize = 200;
/// Encoding, decoding and comparing one description in one process (the handshake
/// measurement's explanation of the difference in connect time).
const HANDSHAKE_CHECK: Budget = Budget {
    warmup: 20,
    samples: 200,
    time: Duration::from_millis(100),
};
/// Longest the small calls of the handshake measurement take, per interface.
const HANDSHAKE_CALL_TIME: Duration = Duration::from_millis(500);

/// A member of an interleaved group: a raw futex floor, or an lpc service (always-block or
/// not).
#[derive(Clone, Copy)]
enum Member {
    Raw(&'static str),
    Lpc(&'static str, bool),
}

impl Member {
    fn name(self) -> &'static str {
        match self {
            Member::Raw(name) | Member::Lpc(name, _) => name,
        }
    }
}

/// A private temporary directory, removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("lpc-bench-{}", std::process::id()));
        // A leftover of a dead run that had our pid: ours to clear.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The parent's side of every lpc and floor measurement.
pub struct Runner {
    dir: TempDir,
    budget: Budget,
    /// Only these systems (all if empty).
    systems: Vec<String>,
}

/// A placement made real: the parent thread pinned (until dropped) and the child's arguments.
struct Placed {
    placement: Placement,
    _pinned: Option<Pinned>,
    child_args: Vec<OsString>,
}

impl Placed {
    /// Pins the calling thread as `wanted` asks and says how to pin the child; unpinned if
    /// there are not enough CPUs for it.
    fn new(wanted: Placement) -> Result<Placed, String> {
        let cpus = affinity::allowed_cpus();
        let (placement, parent_cpu, child_cpu) = match (wanted, cpus.as_slice()) {
            (Placement::Apart, [a, b, ..]) => (Placement::Apart, Some(*a), Some(*b)),
            (Placement::Together, [a, ..]) => (Placement::Together, Some(*a), Some(*a)),
            _ => (Placement::Unpinned, None, None),
        };
        let pinned = match parent_cpu {
            Some(cpu) => Some(Pinned::new(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?),
            None => None,
        };
        let child_args = child_cpu
            .map(|cpu| vec!["--cpu".into(), cpu.to_string().into()])
            .unwrap_or_default();
        Ok(Placed {
            placement,
            _pinned: pinned,
            child_args,
        })
    }

    fn cpus(&self) -> &'static str {
        self.placement.describe()
    }
}

/// Where the two processes of a measurement ran: the placement asked for, and the CPU each
/// was on when sampled (while both spun or waited), as `/proc` reports it.
fn ran_on(placed: &Placed, child: u32) -> String {
    let cpu = |c: Option<usize>| c.map_or("?".to_owned(), |c| c.to_string());
    format!(
        "{}: parent on CPU {}, child on CPU {}",
        placed.cpus(),
        cpu(affinity::last_cpu(&std::process::id().to_string())),
        cpu(affinity::busiest_thread_cpu(child))
    )
}

/// Runs `op` untimed until the busiest thread of process `child` and the measuring thread run
/// on different CPUs: at least [`ROUND_WARMUP`] times, and at most for [`SETTLE_LIMIT`].
/// A service thread woken from sleep may land on its waker's CPU, and a spinning pair that
/// shares one takes turns at the scheduler's pace (about 3 µs a call here) until the load
/// balancer moves one of them, which it does within a round. Returns whether they are apart.
fn settle(op: &mut dyn FnMut() -> Result<(), String>, child: u32) -> Result<bool, String> {
    let start = Instant::now();
    loop {
        for _ in 0..ROUND_WARMUP {
            op()?;
        }
        if !sharing_a_cpu(child) {
            return Ok(true);
        }
        if start.elapsed() > SETTLE_LIMIT {
            return Ok(false);
        }
    }
}

/// `ran_on`, saying how many timed rounds began with both on one CPU (if any did).
fn with_shared_rounds(ran_on: &str, shared: usize) -> String {
    if shared == 0 {
        ran_on.to_owned()
    } else {
        format!("{ran_on}; {shared} of {INTERLEAVE_ROUNDS} rounds began on one CPU")
    }
}

/// Whether the measuring thread and the busiest thread of process `child` last ran on the
/// same CPU (a spinning pair that shares one takes turns at the scheduler's pace).
fn sharing_a_cpu(child: u32) -> bool {
    let parent = affinity::last_cpu("thread-self");
    parent.is_some() && parent == affinity::busiest_thread_cpu(child)
}

impl Runner {
    pub fn new(budget: Budget, systems: Vec<String>) -> Result<Runner, String> {
        Ok(Runner {
            dir: TempDir::new()?,
            budget,
            systems,
        })
    }

    /// Whether `system` is to be measured.
    pub fn wants(&self, system: &str) -> bool {
        self.systems.is_empty() || self.systems.iter().any(|s| s == system)
    }

    fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Generous time limit for one child: far beyond any plausible run.
    fn child_limit(&self) -> Duration {
        Duration::from_secs(120) + self.budget.time * 100
    }

    /// The small call: each floor next to its lpc counterpart.
    pub fn small(&self) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        // The cross-check floor first, on its own; then the spinning floor interleaved with
        // lpc (its child parked while lpc runs): on this VM the cost of moving a cache line
        // between the two vCPUs changes several-fold when the host moves them, so only
        // systems measured in the same stretch of time compare.
        if self.wants("raw-spin-bare") {
            out.push(self.bare(false)?);
        }
        out.extend(self.spin_group()?);
        // The futex floor's cross-check, pinned as `raw-futex` is.
        if self.wants("raw-futex-bare") {
            out.push(self.bare(true)?);
        }
        // The blocking systems sleep while idle: each floor is measured interleaved with its
        // lpc counterparts, so that the machine's drift weighs on both alike.
        out.extend(self.blocking_group(
            Placement::Apart,
            &[Member::Raw("raw-futex"), Member::Lpc("lpc-block", true)],
        )?);
        out.extend(self.blocking_group(
            Placement::Together,
            &[
                Member::Raw("raw-futex-1cpu"),
                Member::Lpc("lpc-block-1cpu", true),
                Member::Lpc("lpc-adaptive-1cpu", false),
            ],
        )?);
        if self.wants("raw-unix") {
            out.push(self.unix(Workload::Small, 8, Placement::Unpinned)?);
        }
        if self.wants("raw-unix-1cpu") {
            out.push(self.unix(Workload::Small, 8, Placement::Together)?);
        }
        Ok(out)
    }

    /// The small call of `members`, all alive at once in `wanted` placement and measured
    /// interleaved (see [`stats::measure_interleaved`]).
    fn blocking_group(&self, wanted: Placement, members: &[Member]) -> Result<Vec<Record>, String> {
        let members: Vec<Member> = members
            .iter()
            .copied()
            .filter(|m| self.wants(m.name()))
            .collect();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = members.iter().map(|m| m.name()).collect();
        eprintln!("lpc-bench: {} (interleaved)…", names.join(", "));
        let placed = Placed::new(wanted)?;
        let mut raws: Vec<(Pinger, Peer, PathBuf)> = Vec::new();
        let mut lpcs: Vec<(BenchClient, Peer)> = Vec::new();
        for member in &members {
            match *member {
                Member::Raw(system) => {
                    let path = self.dir().join(format!("{system}.words"));
                    let pinger = Pinger::create(&path, Mode::Futex)
                        .map_err(|e| format!("creating {}: {e}", path.display()))?;
                    let mut args: Vec<OsString> = vec![
                        "child-raw".into(),
                        "--file".into(),
                        path.clone().into(),
                        "--futex".into(),
                    ];
                    args.extend(placed.child_args.iter().cloned());
                    let peer = Peer::spawn(system, &args, self.child_limit())?;
                    peer.wait_ready(READY_TIMEOUT)?;
                    raws.push((pinger, peer, path));
                }
                Member::Lpc(system, block) => {
                    let (peer, name) = self.service(system, block, true, &placed.child_args)?;
                    let wait = if block {
                        WaitStrategy::Block
                    } else {
                        WaitStrategy::Adaptive
                    };
                    let client = BenchClient::connect_with(&name, &self.options().wait(wait))
                        .map_err(|e| e.to_string())?;
                    lpcs.push((client, peer));
                }
            }
        }
        let summaries = {
            let mut raw_ops: Vec<Box<dyn FnMut() -> Result<(), String> + '_>> = raws
                .iter_mut()
                .map(|(pinger, _, _)| {
                    Box::new(move || pinger.round_trip())
                        as Box<dyn FnMut() -> Result<(), String> + '_>
                })
                .collect();
            let mut lpc_ops: Vec<Box<dyn FnMut() -> Result<(), String> + '_>> = lpcs
                .iter()
                .map(|(client, _)| {
                    let mut i: i32 = 0;
                    Box::new(move || {
                        let a = std::hint::black_box(i);
                        let sum = client.add(a, 1).map_err(|e| e.to_string())?;
                        if sum != a.wrapping_add(1) {
                            return Err(format!("add({a}, 1) returned {sum}"));
                        }
                        i = i.wrapping_add(1);
                        Ok(())
                    }) as Box<dyn FnMut() -> Result<(), String> + '_>
                })
                .collect();
            // In the members' order.
            let (mut raw_iter, mut lpc_iter) = (raw_ops.iter_mut(), lpc_ops.iter_mut());
            let mut ops: Vec<&mut dyn FnMut() -> Result<(), String>> = members
                .iter()
                .map(|m| match m {
                    Member::Raw(_) => raw_iter.next().expect("one op per raw member").as_mut(),
                    Member::Lpc(..) => lpc_iter.next().expect("one op per lpc member").as_mut(),
                })
                .map(|op| op as &mut dyn FnMut() -> Result<(), String>)
                .collect();
            stats::measure_interleaved(&self.budget, INTERLEAVE_ROUNDS, &mut ops)
                .map_err(|e| format!("{}: {e}", names.join(", ")))?
        };
        for (pinger, peer, path) in raws {
            pinger.stop();
            peer.finish(EXIT_TIMEOUT)?;
            let _ = std::fs::remove_file(&path);
        }
        for (client, peer) in lpcs {
            drop(client);
            peer.finish(EXIT_TIMEOUT)?;
        }
        Ok(names
            .iter()
            .zip(summaries)
            .map(|(name, summary)| Record::measured(name, Workload::Small, placed.cpus(), summary))
            .collect())
    }

    /// `sizes` bytes each way: memcpy and Unix-socket floors, lpc adaptive and always-block.
    pub fn echo(&self, sizes: &[u64]) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        for &n in sizes.iter().filter(|_| self.wants("memcpy")) {
            eprintln!("lpc-bench: memcpy {}…", Workload::Echo(n).label());
            let summary = floor::memcpy(&self.budget, n as usize)?;
            out.push(Record::measured(
                "memcpy",
                Workload::Echo(n),
                Placement::Unpinned.describe(),
                summary,
            ));
        }
        for &n in sizes.iter().filter(|_| self.wants("raw-unix")) {
            out.push(self.unix(Workload::Echo(n), n as usize, Placement::Unpinned)?);
        }
        for &n in sizes.iter().filter(|_| self.wants("raw-unix-1cpu")) {
            out.push(self.unix(Workload::Echo(n), n as usize, Placement::Together)?);
        }
        let workloads: Vec<Workload> = sizes.iter().map(|&n| Workload::Echo(n)).collect();
        out.extend(self.lpc("lpc-adaptive", Placement::Unpinned, false, true, &workloads)?);
        out.extend(self.lpc("lpc-block", Placement::Apart, true, true, &workloads)?);
        let mut loans = workloads;
        loans.extend(Workload::LOAN_PASS_SIZES.map(Workload::LoanPass));
        out.extend(self.lpc("lpc-loan", Placement::Unpinned, false, true, &loans)?);
        Ok(out)
    }

    /// `raw-spin`, `lpc-adaptive` and `lpc-adaptive-nostats`, interleaved round by round
    /// (`INTERLEAVE_ROUNDS`); the floor's child sleeps while lpc is measured.
    fn spin_group(&self) -> Result<Vec<Record>, String> {
        let members: Vec<(&str, bool)> = [("lpc-adaptive", true), ("lpc-adaptive-nostats", false)]
            .into_iter()
            .filter(|(name, _)| self.wants(name))
            .collect();
        let raw = self.wants("raw-spin");
        if members.is_empty() && !raw {
            return Ok(Vec::new());
        }
        eprintln!("lpc-bench: raw-spin, lpc-adaptive, lpc-adaptive-nostats (interleaved)…");
        let placed = Placed::new(Placement::Unpinned)?;
        let path = self.dir().join("raw-spin.words");
        let mut pinger = Pinger::create(&path, Mode::Spin)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let args: Vec<OsString> = vec!["child-raw".into(), "--file".into(), path.clone().into()];
        let raw_peer = Peer::spawn("raw-spin", &args, self.child_limit())?;
        raw_peer.wait_ready(READY_TIMEOUT)?;
        pinger.park();
        let mut lpcs = Vec::new();
        for &(system, stats) in &members {
            let (peer, name) = self.service(system, false, stats, &placed.child_args)?;
            let options = self.options().wait(WaitStrategy::Adaptive);
            let client = BenchClient::connect_with(&name, &options).map_err(|e| e.to_string())?;
            lpcs.push((system, client, peer));
        }
        let call = |client: &BenchClient, i: &mut i32| -> Result<(), String> {
            let a = std::hint::black_box(*i);
            let sum = client.add(a, 1).map_err(|e| e.to_string())?;
            if sum != a.wrapping_add(1) {
                return Err(format!("add({a}, 1) returned {sum}"));
            }
            *i = i.wrapping_add(1);
            Ok(())
        };
        let (per_round, min_samples) = self.budget.per_round(INTERLEAVE_ROUNDS);
        let mut raw_latencies = Vec::new();
        let mut raw_batch = (0, Duration::ZERO);
        let mut raw_ran_on = String::new();
        let mut lpc_latencies: Vec<Vec<u64>> = vec![Vec::new(); lpcs.len()];
        let mut lpc_batch = vec![(0, Duration::ZERO); lpcs.len()];
        let mut lpc_ran_on = vec![String::new(); lpcs.len()];
        // Rounds timed with both on one CPU: `settle` gave up waiting for them to part.
        let mut lpc_shared = vec![0usize; lpcs.len()];
        let mut raw_shared = 0usize;
        let mut counter = 0i32;
        for round in 0..=INTERLEAVE_ROUNDS {
            // Round 0 warms every system up and is not counted.
            let warm = round == 0;
            let mut scratch = Vec::new();
            if raw {
                pinger.unpark();
                let op = &mut || pinger.round_trip();
                let apart = settle(op, raw_peer.pid()).map_err(|e| format!("raw-spin: {e}"))?;
                if !warm && !apart {
                    raw_shared += 1;
                }
                let latencies = if warm {
                    &mut scratch
                } else {
                    &mut raw_latencies
                };
                let (n, wall) = stats::measure_round(&per_round, min_samples, latencies, op)
                    .map_err(|e| format!("raw-spin: {e}"))?;
                if !warm {
                    raw_batch.0 += n;
                    raw_batch.1 += wall;
                }
                raw_ran_on = ran_on(&placed, raw_peer.pid());
                pinger.park();
            }
            for (i, (system, client, peer)) in lpcs.iter().enumerate() {
                let op = &mut || call(client, &mut counter);
                let apart = settle(op, peer.pid()).map_err(|e| format!("{system}: {e}"))?;
                if !warm && !apart {
                    lpc_shared[i] += 1;
                }
                scratch.clear();
                let latencies = if warm {
                    &mut scratch
                } else {
                    &mut lpc_latencies[i]
                };
                let (n, wall) = stats::measure_round(&per_round, min_samples, latencies, op)
                    .map_err(|e| format!("{system}: {e}"))?;
                if !warm {
                    lpc_batch[i].0 += n;
                    lpc_batch[i].1 += wall;
                }
                lpc_ran_on[i] = ran_on(&placed, peer.pid());
            }
        }
        let mut out = Vec::new();
        pinger.unpark();
        pinger.stop();
        raw_peer.finish(EXIT_TIMEOUT)?;
        let _ = std::fs::remove_file(&path);
        if raw {
            let summary = stats::summarise(raw_latencies, raw_batch.0, raw_batch.1);
            out.push(Record::measured(
                "raw-spin",
                Workload::Small,
                &with_shared_rounds(&raw_ran_on, raw_shared),
                summary,
            ));
        }
        for (i, (system, client, peer)) in lpcs.into_iter().enumerate() {
            drop(client);
            peer.finish(EXIT_TIMEOUT)?;
            let latencies = std::mem::take(&mut lpc_latencies[i]);
            let summary = stats::summarise(latencies, lpc_batch[i].0, lpc_batch[i].1);
            out.push(Record::measured(
                system,
                Workload::Small,
                &with_shared_rounds(&lpc_ran_on[i], lpc_shared[i]),
                summary,
            ));
        }
        Ok(out)
    }

    /// A cross-check floor (`floor::bare_round_trips`), timed by its own loop: `raw-spin-bare`
    /// unpinned as `raw-spin`, or (`futex`) `raw-futex-bare` on two CPUs as `raw-futex`.
    fn bare(&self, futex: bool) -> Result<Record, String> {
        let (system, placement, samples) = if futex {
            // A futex round trip costs some 50 µs on this VM: 20,000 of them take a second.
            (
                "raw-futex-bare",
                Placement::Apart,
                self.budget.samples.min(20_000),
            )
        } else {
            (
                "raw-spin-bare",
                Placement::Unpinned,
                self.budget.samples.min(200_000),
            )
        };
        eprintln!("lpc-bench: {system}…");
        let placed = Placed::new(placement)?;
        let path = self.dir().join(format!("{system}.words"));
        // The parent's side of the file, created as for `raw-spin`; the bare loop maps it again.
        let _created = Pinger::create(&path, Mode::Spin)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let mut args: Vec<OsString> =
            vec!["child-bare".into(), "--file".into(), path.clone().into()];
        if futex {
            args.push("--futex".into());
        }
        args.extend(placed.child_args.iter().cloned());
        let peer = Peer::spawn(system, &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        let pid = peer.pid();
        let (summary, ran_on) = std::thread::scope(|s| {
            let watch = s.spawn(|| {
                // Where both processes run while they ping-pong (sampled once they are at it).
                std::thread::sleep(Duration::from_millis(20));
                ran_on(&placed, pid)
            });
            let summary = floor::bare_round_trips(&path, samples, futex);
            (summary, watch.join().unwrap_or_default())
        });
        let summary = summary.map_err(|e| format!("{system}: {e}"))?;
        peer.finish(EXIT_TIMEOUT)?;
        let _ = std::fs::remove_file(&path);
        Ok(Record::measured(system, Workload::Small, &ran_on, summary))
    }

    /// The Unix-socket floor: `size` bytes each way between two processes, unpinned or both
    /// on one CPU (`raw-unix-1cpu`).
    fn unix(&self, workload: Workload, size: usize, wanted: Placement) -> Result<Record, String> {
        let system = if wanted == Placement::Together {
            "raw-unix-1cpu"
        } else {
            "raw-unix"
        };
        eprintln!("lpc-bench: {system} {}…", workload.label());
        let placed = Placed::new(wanted)?;
        let path = self.dir().join(format!("{system}-{size}.sock"));
        let mut args: Vec<OsString> = vec![
            "child-unix".into(),
            "--path".into(),
            path.clone().into(),
            "--size".into(),
            size.to_string().into(),
        ];
        args.extend(placed.child_args.iter().cloned());
        let peer = Peer::spawn(system, &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        let mut pinger = UnixPinger::connect(&path, size)
            .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
        let summary =
            measure(&self.budget, || pinger.round_trip()).map_err(|e| format!("{system}: {e}"))?;
        drop(pinger);
        peer.finish(EXIT_TIMEOUT)?;
        let _ = std::fs::remove_file(&path);
        Ok(Record::measured(system, workload, placed.cpus(), summary))
    }

    /// Starts a bench service child named after `system`.
    fn service(
        &self,
        system: &str,
        block: bool,
        stats: bool,
        extra: &[OsString],
    ) -> Result<(Peer, String), String> {
        let name = format!("bench-{system}");
        let mut args: Vec<OsString> = vec![
            "child-service".into(),
            "--dir".into(),
            self.dir().into(),
            "--name".into(),
            name.clone().into(),
        ];
        if block {
            args.push("--block".into());
        }
        if !stats {
            args.push("--no-stats".into());
        }
        args.extend(extra.iter().cloned());
        let peer = Peer::spawn(system, &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        Ok((peer, name))
    }

    fn options(&self) -> ClientOptions {
        ClientOptions::new().runtime_dir(self.dir())
    }

    /// lpc calls: `workloads` (small and echo only) on one connection to a fresh service.
    fn lpc(
        &self,
        system: &str,
        wanted: Placement,
        block: bool,
        stats: bool,
        workloads: &[Workload],
    ) -> Result<Vec<Record>, String> {
        if !self.wants(system) {
            return Ok(Vec::new());
        }
        let placed = Placed::new(wanted)?;
        let (peer, name) = self.service(system, block, stats, &placed.child_args)?;
        let wait = if block {
            WaitStrategy::Block
        } else {
            WaitStrategy::Adaptive
        };
        let client = BenchClient::connect_with(&name, &self.options().wait(wait))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for &workload in workloads {
            eprintln!("lpc-bench: {system} {}…", workload.label());
            let summary = match workload {
                Workload::Small => small_calls(&client, &self.budget),
                Workload::Echo(n) if system == "lpc-loan" => {
                    loan_calls(&client, &self.budget, n as usize)
                }
                Workload::Echo(n) => echo_calls(&client, &self.budget, n as usize),
                Workload::LoanPass(n) => loan_pass_calls(&client, &self.budget, n as usize),
                other => return Err(format!("{other:?} is not a call workload")),
            }
            .map_err(|e| format!("{system} {}: {e}", workload.label()))?;
            out.push(Record::measured(system, workload, placed.cpus(), summary));
        }
        drop(client);
        peer.finish(EXIT_TIMEOUT)?;
        Ok(out)
    }

    /// The small call from `counts` threads sharing one client (adaptive, unpinned).
    pub fn threads(&self, counts: &[u32]) -> Result<Vec<Record>, String> {
        let system = "lpc-adaptive";
        let (peer, name) = self.service("threads", false, true, &[])?;
        let client =
            BenchClient::connect_with(&name, &self.options()).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for &n in counts {
            let workload = Workload::Threads(n);
            eprintln!("lpc-bench: {system} {}…", workload.label());
            let barrier = Barrier::new(n as usize + 1);
            let (latencies, wall) = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .map(|t| {
                        let (client, barrier, budget) = (&client, &barrier, &self.budget);
                        scope.spawn(move || {
                            timed_loop(client, budget, t as i32, || {
                                barrier.wait();
                            })
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                let mut all = Vec::new();
                for handle in handles {
                    match handle.join() {
                        Ok(Ok(latencies)) => all.extend(latencies),
                        Ok(Err(e)) => return Err(e),
                        Err(_) => return Err("a calling thread panicked".to_owned()),
                    }
                }
                Ok((all, start.elapsed()))
            })?;
            let count = latencies.len();
            let summary = stats::summarise(latencies, count, wall);
            out.push(Record::measured(
                system,
                workload,
                Placement::Unpinned.describe(),
                summary,
            ));
        }
        drop(client);
        peer.finish(EXIT_TIMEOUT)?;
        Ok(out)
    }

    /// Calls that never wait on each other (`concurrent.rs`), `lpc-adaptive`: the small call
    /// beside another thread's slow call against the same call alone, one service process
    /// and one client, apart on two CPUs (unpinned, which service thread shares the caller's
    /// CPU decides the small call's cost: see the report); then 8 threads of one client
    /// mixing slow and fast calls, against a fresh service, unpinned, like the threads
    /// measurement.
    pub fn concurrent(&self) -> Result<Concurrent, String> {
        let system = "lpc-adaptive";
        eprintln!("lpc-bench: {system} a small call beside another thread's slow call…");
        let placed = Placed::new(Placement::Apart)?;
        let (peer, name) = self.service("concurrent", false, true, &placed.child_args)?;
        let client =
            BenchClient::connect_with(&name, &self.options()).map_err(|e| e.to_string())?;
        let measured = concurrent::beside_slow(&client, &self.budget, INTERLEAVE_ROUNDS);
        drop(client);
        let finished = peer.finish(EXIT_TIMEOUT);
        let [alone, b_alone, b_beside_slow, slow] = measured?;
        finished?;
        let cpus = placed.cpus().to_owned();
        drop(placed);
        eprintln!(
            "lpc-bench: {system} {} threads mixing slow and fast calls…",
            concurrent::MIX_THREADS
        );
        let (peer, name) = self.service("concurrent-mix", false, true, &[])?;
        let client =
            BenchClient::connect_with(&name, &self.options()).map_err(|e| e.to_string())?;
        let mixes = concurrent::mixed_load(&client, &self.budget);
        drop(client);
        let finished = peer.finish(EXIT_TIMEOUT);
        let mixes = mixes?;
        finished?;
        let measured = Concurrent {
            cpus,
            slow_us: concurrent::SLOW_US,
            rounds: INTERLEAVE_ROUNDS,
            alone,
            b_alone,
            b_beside_slow,
            slow,
            mix_cpus: Placement::Unpinned.describe().to_owned(),
            mixes,
        };
        for line in report::concurrent_lines(&measured) {
            eprintln!("lpc-bench:   {line}");
        }
        Ok(measured)
    }

    /// The small call from `counts` client processes at once, each with its own connection
    /// to one service (adaptive, unpinned).
    pub fn procs(&self, counts: &[u32]) -> Result<Vec<Record>, String> {
        let system = "lpc-adaptive";
        let (service, name) = self.service("procs", false, true, &[])?;
        let mut out = Vec::new();
        for &k in counts {
            let workload = Workload::Procs(k);
            eprintln!("lpc-bench: {system} {}…", workload.label());
            let mut clients = Vec::new();
            for i in 0..k {
                let file = self.dir().join(format!("latencies-{k}-{i}"));
                let args: Vec<OsString> = vec![
                    "child-client".into(),
                    "--dir".into(),
                    self.dir().into(),
                    "--name".into(),
                    name.clone().into(),
                    "--seconds".into(),
                    self.budget.time.as_secs_f64().to_string().into(),
                    "--warmup".into(),
                    self.budget.warmup.to_string().into(),
                    "--out".into(),
                    file.clone().into(),
                ];
                let peer = Peer::spawn("client", &args, self.child_limit())?;
                clients.push((peer, file));
            }
            for (peer, _) in &clients {
                peer.wait_ready(READY_TIMEOUT + self.budget.time)?;
            }
            for (peer, _) in &mut clients {
                peer.send_line("go")?;
            }
            let mut latencies = Vec::new();
            let (mut count, mut wall, mut rate) = (0usize, Duration::ZERO, 0.0);
            for (peer, file) in clients {
                let line = peer.next_line(READY_TIMEOUT + self.budget.time * 4)?;
                let (calls, ns) = parse_done(&line)?;
                count += calls;
                wall = wall.max(Duration::from_nanos(ns));
                rate += calls as f64 * 1e9 / ns.max(1) as f64;
                let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                latencies.extend(
                    bytes
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
                );
                let _ = std::fs::remove_file(&file);
                peer.finish(EXIT_TIMEOUT)?;
            }
            let mut summary = stats::summarise(latencies, count, wall);
            // Each process's own rate, added up (they all ran for the same time at once).
            summary.calls_per_sec = rate;
            summary.batch_mean = 1e9 / rate;
            out.push(Record::measured(
                system,
                workload,
                Placement::Unpinned.describe(),
                summary,
            ));
        }
        service.finish(EXIT_TIMEOUT)?;
        Ok(out)
    }

    /// Connecting plus the first call (and the disconnect), timed one by one.
    pub fn connect(&self) -> Result<Record, String> {
        let system = "lpc-adaptive";
        eprintln!("lpc-bench: {system} connect…");
        let (peer, name) = self.service("connect", false, true, &[])?;
        let options = self.options();
        let once = || -> Result<(), String> {
            let client = BenchClient::connect_with(&name, &options).map_err(|e| e.to_string())?;
            let sum = client.add(20, 22).map_err(|e| e.to_string())?;
            if sum != 42 {
                return Err(format!("add(20, 22) returned {sum}"));
            }
            Ok(())
        };
        let budget = self.budget.at_most(CONNECT_SAMPLES);
        for _ in 0..budget.warmup.min(20) {
            once()?;
        }
        let mut latencies = Vec::new();
        let started = Instant::now();
        while latencies.len() < budget.samples {
            let start = Instant::now();
            once()?;
            latencies.push(stats::duration_ns(start.elapsed()));
            if latencies.len() >= stats::MIN_SAMPLES && started.elapsed() > budget.time {
                break;
            }
        }
        let count = latencies.len();
        let summary = stats::summarise(latencies, count, started.elapsed());
        peer.finish(EXIT_TIMEOUT)?;
        Ok(Record::measured(
            system,
            Workload::Connect,
            Placement::Unpinned.describe(),
            summary,
        ))
    }

    /// The small call from C (`c-typed`: the stubs `lpc gen c` writes for the Bench
    /// interface; `c-json`: by name with JSON) beside the Rust client (`rust-typed`), on one
    /// service, interleaved round by round; the C client is `lpc-bench/c/bench_c.c`, built
    /// here with the system's compiler (`-O2`) against lpc-c's static library. Needs the
    /// `lpc` command and `liblpc_c.a` beside this executable (scripts/bench.sh builds them).
    pub fn c_clients(&self) -> Result<Vec<Record>, String> {
        const ROUNDS: usize = 3;
        eprintln!("lpc-bench: c-typed, c-json, rust-typed (interleaved)…");
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.parent().ok_or("no directory of this executable")?;
        let (lpc_cmd, lib) = (bin.join("lpc"), bin.join("liblpc_c.a"));
        if !lpc_cmd.exists() || !lib.exists() {
            let why = format!(
                "needs {} and {} (scripts/bench.sh builds them)",
                lpc_cmd.display(),
                lib.display()
            );
            return Ok(["c-typed", "c-json", "rust-typed"]
                .iter()
                .map(|s| Record::skipped(s, Workload::Small, why.clone()))
                .collect());
        }
        let (peer, name) = self.service("c", false, true, &[])?;
        let work = self.dir().join("c-client");
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let run = |command: &mut std::process::Command| -> Result<String, String> {
            let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{command:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        run(std::process::Command::new(&lpc_cmd)
            .args(["gen", "c", &name, "--out"])
            .arg(&work)
            .env("LPC_RUNTIME_DIR", self.dir()))?;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let program = work.join("bench_c");
        run(std::process::Command::new("cc")
            .args(["-O2", "-std=c99", "-Wall", "-Werror", "-I"])
            .arg(root.join("../lpc-c/include"))
            .arg("-I")
            .arg(&work)
            .arg(root.join("c/bench_c.c"))
            .arg(work.join("bench.c"))
            .arg(&lib)
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&program))?;
        let samples = (self.budget.samples / ROUNDS).max(stats::MIN_SAMPLES);
        let client = BenchClient::connect_with(&name, &self.options().wait(WaitStrategy::Adaptive))
            .map_err(|e| e.to_string())?;
        let mut latencies: [Vec<u64>; 3] = Default::default();
        let mut batch = [(0usize, Duration::ZERO); 3];
        for _ in 0..ROUNDS {
            for (i, mode) in ["typed", "json"].iter().enumerate() {
                let file = work.join(format!("{mode}.ns"));
                let out = run(std::process::Command::new(&program)
                    .args([name.as_str(), mode, &samples.to_string()])
                    .arg(&file)
                    .env("LPC_RUNTIME_DIR", self.dir()))?;
                let wall: u64 = out
                    .split_whitespace()
                    .nth(2)
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| format!("bench_c said {out:?}"))?;
                let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
                let before = latencies[i].len();
                latencies[i].extend(text.lines().filter_map(|l| l.parse::<u64>().ok()));
                batch[i].0 += latencies[i].len() - before;
                batch[i].1 += Duration::from_nanos(wall);
            }
            // The Rust client, timed the same way: each call alone, after as many untimed.
            let mut a = 0i32;
            for _ in 0..samples {
                client.add(a, 1).map_err(|e| e.to_string())?;
                a = a.wrapping_add(1);
            }
            let started = Instant::now();
            for _ in 0..samples {
                let t = Instant::now();
                let sum = client.add(a, 1).map_err(|e| e.to_string())?;
                latencies[2].push(stats::duration_ns(t.elapsed()));
                if sum != a.wrapping_add(1) {
                    return Err(format!("add({a}, 1) returned {sum}"));
                }
                a = a.wrapping_add(1);
            }
            batch[2].0 += samples;
            batch[2].1 += started.elapsed();
        }
        drop(client);
        peer.finish(EXIT_TIMEOUT)?;
        Ok(["c-typed", "c-json", "rust-typed"]
            .iter()
            .zip(latencies)
            .zip(batch)
            .map(|((system, l), (n, wall))| {
                Record::measured(
                    system,
                    Workload::Small,
                    Placement::Unpinned.describe(),
                    stats::summarise(l, n, wall),
                )
            })
            .collect())
    }

    /// The handshake of the large interface (`large.rs`, 50 methods over 30 types) next to
    /// the small `Bench` one: the size of each description as it crosses (postcard, as in the
    /// welcome), the time to trace it once in a fresh process (`trace_runs` processes, each
    /// timing its first `info()`), connect + first call + disconnect against a service of
    /// each (both alive, timed in alternating rounds), and small calls over a connection of
    /// each (interleaved): the shapes cross at connect only.
    pub fn handshake(&self, trace_runs: usize) -> Result<Vec<Handshake>, String> {
        let system = "lpc-adaptive";
        eprintln!("lpc-bench: {system} handshake, Bench and Large interfaces…");
        let mut traces: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..trace_runs.max(1) {
            for (i, large) in [false, true].into_iter().enumerate() {
                let mut args: Vec<OsString> = vec!["child-trace".into()];
                if large {
                    args.push("--large".into());
                }
                let peer = Peer::spawn("trace", &args, self.child_limit())?;
                let line = peer.next_line(READY_TIMEOUT)?;
                let ns = line
                    .strip_prefix("traced ")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("expected `traced <ns>`, got {line:?}"))?;
                peer.finish(EXIT_TIMEOUT)?;
                traces[i].push(ns);
            }
        }
        let infos = [
            BENCH_INTERFACE.info().map_err(|e| e.to_string())?,
            LARGE_INTERFACE.info().map_err(|e| e.to_string())?,
        ];
        let (small, small_name) = self.service("handshake-small", false, true, &[])?;
        let (large, large_name) =
            self.service("handshake-large", false, true, &["--large".into()])?;
        let options = self.options();
        let connect_small = || -> Result<(), String> {
            let client =
                BenchClient::connect_with(&small_name, &options).map_err(|e| e.to_string())?;
            check_add(client.add(20, 22).map_err(|e| e.to_string())?, 20, 22)
        };
        let connect_large = || -> Result<(), String> {
            let client =
                LargeClient::connect_with(&large_name, &options).map_err(|e| e.to_string())?;
            check_add(client.add(20, 22).map_err(|e| e.to_string())?, 20, 22)
        };
        let connects: [&dyn Fn() -> Result<(), String>; 2] = [&connect_small, &connect_large];
        let budget = self.budget.at_most(HANDSHAKE_SAMPLES);
        for _ in 0..budget.warmup.min(20) {
            for connect in connects {
                connect()?;
            }
        }
        let per_round = budget.samples.div_ceil(INTERLEAVE_ROUNDS);
        let mut latencies: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let mut spent = [Duration::ZERO; 2];
        for _ in 0..INTERLEAVE_ROUNDS {
            for (i, connect) in connects.into_iter().enumerate() {
                for _ in 0..per_round {
                    let start = Instant::now();
                    connect()?;
                    let elapsed = start.elapsed();
                    latencies[i].push(stats::duration_ns(elapsed));
                    spent[i] += elapsed;
                }
            }
        }
        small.finish(EXIT_TIMEOUT)?;
        large.finish(EXIT_TIMEOUT)?;
        // The calls on two CPUs, the services on one and the caller on the other: unpinned,
        // whichever service the scheduler puts on the caller's CPU pays wake-ups there, and
        // that, not the interface, decides which is faster.
        let placed = Placed::new(Placement::Apart)?;
        let (small, small_name) =
            self.service("handshake-small-calls", false, true, &placed.child_args)?;
        let mut args = placed.child_args.clone();
        args.push("--large".into());
        let (large, large_name) = self.service("handshake-large-calls", false, true, &args)?;
        let calls = {
            let small_client =
                BenchClient::connect_with(&small_name, &options).map_err(|e| e.to_string())?;
            let large_client =
                LargeClient::connect_with(&large_name, &options).map_err(|e| e.to_string())?;
            let (mut a, mut b) = (0i32, 0i32);
            let mut small_add = || -> Result<(), String> {
                let x = std::hint::black_box(a);
                a = a.wrapping_add(1);
                check_add(small_client.add(x, 1).map_err(|e| e.to_string())?, x, 1)
            };
            let mut large_add = || -> Result<(), String> {
                let x = std::hint::black_box(b);
                b = b.wrapping_add(1);
                check_add(large_client.add(x, 1).map_err(|e| e.to_string())?, x, 1)
            };
            let call_budget = Budget {
                time: self.budget.time.min(HANDSHAKE_CALL_TIME),
                ..self.budget
            };
            stats::measure_interleaved(
                &call_budget,
                INTERLEAVE_ROUNDS,
                &mut [&mut small_add, &mut large_add],
            )?
        };
        small.finish(EXIT_TIMEOUT)?;
        large.finish(EXIT_TIMEOUT)?;
        drop(placed);
        let mut out = Vec::new();
        for (i, (((info, trace), connect), call)) in infos
            .into_iter()
            .zip(traces)
            .zip(latencies)
            .zip(calls)
            .enumerate()
        {
            let description = postcard::to_stdvec(info)
                .map_err(|e| format!("encoding the {} interface: {e}", info.name))?;
            // What the two ends do with the description at each connect, in one process.
            let check = measure(&HANDSHAKE_CHECK, || {
                let bytes = postcard::to_stdvec(info).map_err(|e| e.to_string())?;
                let remote: InterfaceInfo =
                    postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let comparison = lpc::compare_interfaces(info, &remote);
                if comparison != Comparison::default() {
                    return Err(format!("{} differs from itself", info.name));
                }
                std::hint::black_box(remote);
                Ok(())
            })?;
            let count = trace.len();
            let trace_total = Duration::from_nanos(trace.iter().sum());
            let samples = connect.len();
            let row = Handshake {
                interface: info.name.clone(),
                methods: info.methods.len(),
                types: info.types.len(),
                description_bytes: description.len() as u64,
                trace: stats::summarise(trace, count, trace_total),
                connect: stats::summarise(connect, samples, spent[i]),
                check,
                call,
            };
            eprintln!("lpc-bench:   {}", report::handshake_line(&row));
            out.push(row);
        }
        Ok(out)
    }

    /// What an idle service costs: its memory alone; then its CPU time and memory while
    /// `clients` connections stay open and make no call, over `seconds`; and the shared
    /// memory each connection maps.
    pub fn idle(&self, clients: usize, seconds: u64) -> Result<Idle, String> {
        let (peer, name) = self.service("idle", false, true, &[])?;
        let pid = peer.pid();
        std::thread::sleep(Duration::from_millis(200));
        let rss_alone_kib = status_kib(pid, "VmRSS")?;
        let options = self.options();
        let connections = (0..clients)
            .map(|i| {
                let client =
                    BenchClient::connect_with(&name, &options).map_err(|e| e.to_string())?;
                client.add(i as i32, 1).map_err(|e| e.to_string())?;
                Ok(client)
            })
            .collect::<Result<Vec<_>, String>>()?;
        // Let the service's connection threads finish their post-call spin.
        std::thread::sleep(Duration::from_millis(200));
        let shm_per_connection = memfd_bytes(pid)? / clients.max(1) as u64;
        let before = cpu_ticks(pid)?;
        std::thread::sleep(Duration::from_secs(seconds));
        let after = cpu_ticks(pid)?;
        let rss_kib = status_kib(pid, "VmRSS")?;
        let rss_parts_kib = [
            status_kib(pid, "RssAnon")?,
            status_kib(pid, "RssFile")?,
            status_kib(pid, "RssShmem")?,
        ];
        let threads = status_kib(pid, "Threads")?;
        drop(connections);
        peer.finish(EXIT_TIMEOUT)?;
        let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
        Ok(Idle {
            clients,
            seconds,
            cpu_seconds: (after - before) as f64 / ticks_per_second,
            tick_seconds: 1.0 / ticks_per_second,
            rss_kib,
            rss_parts_kib,
            threads,
            rss_alone_kib,
            shm_per_connection,
        })
    }
}

/// Small calls, each result checked.
fn small_calls(client: &BenchClient, budget: &Budget) -> Result<Summary, String> {
    let mut i: i32 = 0;
    measure(budget, || {
        let a = std::hint::black_box(i);
        let sum = client.add(a, 1).map_err(|e| e.to_string())?;
        if sum != a.wrapping_add(1) {
            return Err(format!("add({a}, 1) returned {sum}"));
        }
        i = i.wrapping_add(1);
        Ok(())
    })
}

/// `size` bytes echoed: each call's result is the next call's argument.
fn echo_calls(client: &BenchClient, budget: &Budget, size: usize) -> Result<Summary, String> {
    let mut data = Some(vec![0xa5u8; size]);
    let mut stamp = 0u8;
    measure(budget, || {
        let mut bytes = data.take().unwrap_or_default();
        stamp = stamp.wrapping_add(1);
        if let Some(first) = bytes.first_mut() {
            *first = stamp;
        }
        let back = client.echo(bytes).map_err(|e| e.to_string())?;
        if back.len() != size || back.first().is_some_and(|&b| b != stamp) {
            return Err(format!("echo of {size} bytes came back different"));
        }
        data = Some(back);
        Ok(())
    })
}

/// `size` bytes echoed through loaned buffers: the caller copies its bytes into a loan (as it
/// would from wherever they are), the service copies them into a loan of its own, and the
/// caller reads that in place.
fn loan_calls(client: &BenchClient, budget: &Budget, size: usize) -> Result<Summary, String> {
    let source = vec![0xa5u8; size];
    let mut stamp = 0u8;
    measure(budget, || {
        let mut loan = client.client().loan(size).map_err(|e| e.to_string())?;
        let bytes = loan.as_mut().map_err(|e| e.to_string())?;
        bytes.copy_from_slice(&source);
        stamp = stamp.wrapping_add(1);
        if let Some(first) = bytes.first_mut() {
            *first = stamp;
        }
        let back = client.echo_loan(&loan).map_err(|e| e.to_string())?;
        if back.len() != size || back.get(0).is_some_and(|b| b != stamp) {
            return Err(format!("loan echo of {size} bytes came back different"));
        }
        Ok(())
    })
}

/// A loan of `size` bytes, filled once before timing, passed to the service and one of `size`
/// bytes received back, each side touching only the first and last bytes: the cost of the
/// zero-copy call itself, which should not grow with the size.
fn loan_pass_calls(client: &BenchClient, budget: &Budget, size: usize) -> Result<Summary, String> {
    let mut loan = client.client().loan(size).map_err(|e| e.to_string())?;
    loan.as_mut().map_err(|e| e.to_string())?.fill(0xa5);
    let mut stamp = 0u8;
    measure(budget, || {
        stamp = stamp.wrapping_add(1);
        // The caller writes in place (here one byte: the rest was written before timing).
        let bytes = loan
            .as_mut()
            .map_err(|e| format!("the loan is not writable after the call: {e}"))?;
        if let Some(first) = bytes.first_mut() {
            *first = stamp;
        }
        let back = client
            .pass_loan(&loan, size as u64)
            .map_err(|e| e.to_string())?;
        let expect = (size > 0).then_some(stamp);
        if back.len() != size || back.get(0) != expect {
            return Err(format!("loan pass of {size} bytes came back different"));
        }
        Ok(())
    })
}

/// One caller of several: warms up, waits at `start`, then calls for the budget's time,
/// timing each call.
fn timed_loop(
    client: &BenchClient,
    budget: &Budget,
    seed: i32,
    start: impl FnOnce(),
) -> Result<Vec<u64>, String> {
    let call = |a: i32| -> Result<(), String> {
        let sum = client.add(a, 1).map_err(|e| e.to_string())?;
        if sum != a.wrapping_add(1) {
            return Err(format!("add({a}, 1) returned {sum}"));
        }
        Ok(())
    };
    let warm = Instant::now();
    for i in 0..budget.warmup {
        call(seed.wrapping_add(i as i32))?;
        if warm.elapsed() > budget.time / 4 {
            break;
        }
    }
    start();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut a = seed;
    loop {
        let start = Instant::now();
        call(a)?;
        let elapsed = start.elapsed();
        latencies.push(stats::duration_ns(elapsed));
        a = a.wrapping_add(1);
        if start + elapsed - started > budget.time {
            return Ok(latencies);
        }
    }
}

/// Child side of the multi-process measurement: connect, warm up, say ready, wait for `go`,
/// call for `seconds`, write the latencies (little-endian u64 nanoseconds) to `out`, and say
/// `done <calls> <elapsed ns>`.
pub fn client_process(
    dir: &Path,
    name: &str,
    seconds: f64,
    warmup: usize,
    out: &Path,
    from_parent: &Receiver<String>,
) -> Result<(), String> {
    let client = BenchClient::connect_with(name, &ClientOptions::new().runtime_dir(dir))
        .map_err(|e| e.to_string())?;
    let budget = Budget {
        warmup,
        samples: usize::MAX,
        time: Duration::from_secs_f64(seconds),
    };
    let started = std::cell::Cell::new(Instant::now());
    let latencies = timed_loop(&client, &budget, std::process::id() as i32, || {
        child::ready();
        match from_parent.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == "go" => {}
            _ => std::process::exit(2),
        }
        started.set(Instant::now());
    })?;
    let elapsed = started.get().elapsed();
    let bytes: Vec<u8> = latencies.iter().flat_map(|l| l.to_le_bytes()).collect();
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    child::tell_parent(&format!(
        "done {} {}",
        latencies.len(),
        stats::duration_ns(elapsed)
    ));
    Ok(())
}

/// `a + b` (wrapping) or an error naming the call.
fn check_add(sum: i32, a: i32, b: i32) -> Result<(), String> {
    if sum == a.wrapping_add(b) {
        Ok(())
    } else {
        Err(format!("add({a}, {b}) returned {sum}"))
    }
}

/// Child side of the trace timing: the first `info()` of this fresh process (of the large
/// interface, or of `Bench`), timed, then `traced <ns>`.
pub fn trace_once(large: bool) -> Result<(), String> {
    let interface = if large {
        &LARGE_INTERFACE
    } else {
        &BENCH_INTERFACE
    };
    let start = Instant::now();
    let info = interface.info();
    let elapsed = start.elapsed();
    std::hint::black_box(info).map_err(|e| e.to_string())?;
    child::tell_parent(&format!("traced {}", stats::duration_ns(elapsed)));
    Ok(())
}

/// `done <calls> <ns>`.
fn parse_done(line: &str) -> Result<(usize, u64), String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("done"), Some(calls), Some(ns)) => Ok((
            calls.parse().map_err(|_| format!("bad line {line:?}"))?,
            ns.parse().map_err(|_| format!("bad line {line:?}"))?,
        )),
        _ => Err(format!("expected `done`, got {line:?}")),
    }
}

/// utime + stime of process `pid`, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| "malformed /proc stat".to_string())
    };
    // Fields 14 and 15 overall are the 12th and 13th after the name (field 3 is index 0).
    Ok(field(11)? + field(12)?)
}

/// A numeric field of `/proc/<pid>/status` (the number before any unit).
fn status_kib(pid: u32, name: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
}

/// Bytes of connection memory (memfds named `lpc:<service>`) process `pid` maps.
fn memfd_bytes(pid: u32) -> Result<u64, String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| e.to_string())?;
    Ok(maps
        .lines()
        .filter(|l| l.contains("/memfd:lpc:"))
        .filter_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some(end - start)
        })
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_lines() {
        assert_eq!(parse_done("done 12 3400").unwrap(), (12, 3400));
        assert!(parse_done("ready").is_err());
    }
}
