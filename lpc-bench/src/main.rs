//! `lpc-bench`: the round-trip latency of lpc calls between two processes, next to the floors
//! of the machine (a raw shared-memory ping-pong by spinning, and by futex).
//!
//! ```sh
//! cargo run --release -p lpc-bench -- [--samples N] [--warmup N] [--only SYSTEMS] [--markdown PATH]
//! ```
//!
//! Prints a markdown table on stdout (progress goes to stderr); `--markdown` also writes the
//! full report. Each system runs against a fresh child process: this executable re-run with a
//! hidden subcommand.

mod affinity;
mod child;
mod floor;
mod report;
mod stats;

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use lpc::{ClientOptions, WaitStrategy};
use lpc_examples::calc::CalcClient;

use crate::affinity::{Pinned, Placement};
use crate::child::Peer;
use crate::floor::{Mode, Pinger};
use crate::report::{Row, Settings};

/// How long a child has to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child has to exit once told to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "lpc-bench",
    about = "Round-trip latency of lpc calls between two processes, against the raw shared-memory floors"
)]
struct Cli {
    /// Round trips timed one by one per system (and as many again timed as one batch).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    samples: u64,
    /// Untimed round trips before measuring.
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
    /// Only these systems (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<System>,
    /// Seconds to watch an idle service with `--idle-clients` connected clients (0: skip).
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Connected, idle clients during the idle measurement.
    #[arg(long, default_value_t = 50)]
    idle_clients: usize,
    /// Also write the full report (markdown) to this file.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<ChildCommand>,
}

/// The child's side; not for direct use.
#[derive(Subcommand)]
enum ChildCommand {
    /// Answer a raw ping-pong on the shared words in `file`.
    #[command(hide = true)]
    ChildRaw {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        futex: bool,
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Serve the calc example.
    #[command(hide = true)]
    ChildService {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        block: bool,
        #[arg(long)]
        no_stats: bool,
        #[arg(long)]
        cpu: Option<usize>,
    },
}

/// A measured system, in the order they run (each floor next to its lpc counterpart).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    RawSpin,
    LpcAdaptive,
    #[value(name = "lpc-adaptive-nostats")]
    LpcNoStats,
    RawFutex,
    LpcBlock,
    #[value(name = "raw-futex-1cpu")]
    RawFutex1cpu,
    #[value(name = "lpc-block-1cpu")]
    LpcBlock1cpu,
}

impl System {
    const ALL: [System; 7] = [
        System::RawSpin,
        System::LpcAdaptive,
        System::LpcNoStats,
        System::RawFutex,
        System::LpcBlock,
        System::RawFutex1cpu,
        System::LpcBlock1cpu,
    ];

    fn name(self) -> &'static str {
        match self {
            System::RawSpin => "raw-spin",
            System::LpcAdaptive => "lpc-adaptive",
            System::LpcNoStats => "lpc-adaptive-nostats",
            System::RawFutex => "raw-futex",
            System::LpcBlock => "lpc-block",
            System::RawFutex1cpu => "raw-futex-1cpu",
            System::LpcBlock1cpu => "lpc-block-1cpu",
        }
    }

    /// Where parent and child run (see [`affinity`]).
    fn placement(self) -> Placement {
        match self {
            System::RawSpin | System::LpcAdaptive | System::LpcNoStats => Placement::Unpinned,
            System::RawFutex | System::LpcBlock => Placement::Apart,
            System::RawFutex1cpu | System::LpcBlock1cpu => Placement::Together,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(command) => run_child(command),
        None => run_parent(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_child(command: &ChildCommand) -> Result<(), String> {
    let (ChildCommand::ChildRaw { cpu, .. } | ChildCommand::ChildService { cpu, .. }) = command;
    if let Some(cpu) = *cpu {
        // Before any thread starts, so that all of them inherit it.
        affinity::pin_to(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    child::exit_with_parent();
    match command {
        ChildCommand::ChildRaw { file, futex, .. } => {
            floor::answer(file, if *futex { Mode::Futex } else { Mode::Spin })
        }
        ChildCommand::ChildService {
            dir,
            name,
            block,
            no_stats,
            ..
        } => child::serve_calc(dir, name, *block, !*no_stats),
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

struct Bench {
    dir: TempDir,
    warmup: usize,
    samples: usize,
}

impl Bench {
    /// Generous time limit for one child: far beyond any plausible run.
    fn child_limit(&self) -> Duration {
        let round_trips = u32::try_from(self.warmup.saturating_add(self.samples.saturating_mul(2)))
            .unwrap_or(u32::MAX);
        Duration::from_secs(60) + Duration::from_micros(200) * round_trips
    }

    /// Runs `system`; returns its summary and the placement it actually ran with (unpinned
    /// if there are not enough CPUs for the one it asks for).
    fn run(&self, system: System) -> Result<(stats::Summary, Placement), String> {
        let cpus = affinity::allowed_cpus();
        let (placement, parent_cpu, child_cpu) = match (system.placement(), cpus.as_slice()) {
            (Placement::Apart, [a, b, ..]) => (Placement::Apart, Some(*a), Some(*b)),
            (Placement::Together, [a, ..]) => (Placement::Together, Some(*a), Some(*a)),
            _ => (Placement::Unpinned, None, None),
        };
        let _pinned = match parent_cpu {
            Some(cpu) => Some(Pinned::new(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?),
            None => None,
        };
        let mut child_args: Vec<OsString> = Vec::new();
        if let Some(cpu) = child_cpu {
            child_args.extend(["--cpu".into(), cpu.to_string().into()]);
        }
        let summary = match system {
            System::RawSpin => self.raw(system, Mode::Spin, child_args),
            System::RawFutex | System::RawFutex1cpu => self.raw(system, Mode::Futex, child_args),
            System::LpcAdaptive => self.lpc(system, false, child_args),
            System::LpcNoStats => {
                child_args.push("--no-stats".into());
                self.lpc(system, false, child_args)
            }
            System::LpcBlock | System::LpcBlock1cpu => self.lpc(system, true, child_args),
        }?;
        Ok((summary, placement))
    }

    fn raw(
        &self,
        system: System,
        mode: Mode,
        mut args: Vec<OsString>,
    ) -> Result<stats::Summary, String> {
        let path = self.dir.0.join(format!("{}.words", system.name()));
        let mut pinger =
            Pinger::create(&path, mode).map_err(|e| format!("creating {}: {e}", path.display()))?;
        args.splice(
            0..0,
            ["child-raw".into(), "--file".into(), path.clone().into()],
        );
        if mode == Mode::Futex {
            args.push("--futex".into());
        }
        let peer = Peer::spawn(system.name(), &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        let summary = stats::measure(self.warmup, self.samples, || pinger.round_trip())?;
        pinger.stop();
        peer.finish(EXIT_TIMEOUT)?;
        let _ = std::fs::remove_file(&path);
        Ok(summary)
    }

    fn lpc(
        &self,
        system: System,
        block: bool,
        mut args: Vec<OsString>,
    ) -> Result<stats::Summary, String> {
        let dir: &Path = &self.dir.0;
        let name = format!("bench-{}", system.name());
        args.splice(
            0..0,
            [
                "child-service".into(),
                "--dir".into(),
                dir.into(),
                "--name".into(),
                name.clone().into(),
            ],
        );
        if block {
            args.push("--block".into());
        }
        let peer = Peer::spawn(system.name(), &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        let wait = if block {
            WaitStrategy::Block
        } else {
            WaitStrategy::Adaptive
        };
        let options = ClientOptions::new().runtime_dir(dir).wait(wait);
        let calc = CalcClient::connect_with(&name, &options).map_err(|e| e.to_string())?;
        let mut i: i32 = 0;
        let summary = stats::measure(self.warmup, self.samples, || {
            let a = std::hint::black_box(i);
            let sum = calc.add(a, 1).map_err(|e| e.to_string())?;
            if sum != a.wrapping_add(1) {
                return Err(format!("add({a}, 1) returned {sum}"));
            }
            i = i.wrapping_add(1);
            Ok(())
        })?;
        drop(calc);
        peer.finish(EXIT_TIMEOUT)?;
        Ok(summary)
    }
}

/// What an idle service costs: CPU time and memory of a service process while `clients`
/// connections stay open and make no call, over `seconds`.
fn idle(bench: &Bench, clients: usize, seconds: u64) -> Result<report::Idle, String> {
    let dir: &Path = &bench.dir.0;
    let name = "bench-idle";
    let args: Vec<OsString> = vec![
        "child-service".into(),
        "--dir".into(),
        dir.into(),
        "--name".into(),
        name.into(),
    ];
    let peer = Peer::spawn("idle", &args, Duration::from_secs(seconds + 60))?;
    peer.wait_ready(READY_TIMEOUT)?;
    let options = ClientOptions::new().runtime_dir(dir);
    let connections = (0..clients)
        .map(|i| {
            let calc = CalcClient::connect_with(name, &options).map_err(|e| e.to_string())?;
            calc.add(i as i32, 1).map_err(|e| e.to_string())?;
            Ok(calc)
        })
        .collect::<Result<Vec<_>, String>>()?;
    // Let the service's connection threads finish their post-call spin.
    std::thread::sleep(Duration::from_millis(200));
    let pid = peer.pid();
    let before = cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let after = cpu_ticks(pid)?;
    let rss_kib = status_kib(pid, "VmRSS")?;
    drop(connections);
    peer.finish(EXIT_TIMEOUT)?;
    let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok(report::Idle {
        clients,
        seconds,
        cpu_seconds: (after - before) as f64 / ticks_per_second,
        tick_seconds: 1.0 / ticks_per_second,
        rss_kib,
    })
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

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, name: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
}

fn run_parent(cli: &Cli) -> Result<(), String> {
    let systems: Vec<System> = System::ALL
        .into_iter()
        .filter(|s| cli.only.is_empty() || cli.only.contains(s))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!(
            "lpc-bench: warning: this process may use only {cpus} CPU; the spinning systems \
             will measure scheduler time slices, and lpc will not spin at all"
        );
    }
    let bench = Bench {
        dir: TempDir::new()?,
        warmup: usize::try_from(cli.warmup).map_err(|e| e.to_string())?,
        samples: usize::try_from(cli.samples).map_err(|e| e.to_string())?,
    };
    let settings = Settings {
        samples: bench.samples,
        warmup: bench.warmup,
        timer_overhead_ns: stats::timer_overhead_ns(),
    };
    let mut rows = Vec::new();
    for system in systems {
        eprintln!("lpc-bench: {}…", system.name());
        let (summary, placement) = bench
            .run(system)
            .map_err(|e| format!("{}: {e}", system.name()))?;
        rows.push(Row {
            system,
            placement,
            summary,
        });
    }
    let idle = if cli.idle_seconds > 0 {
        eprintln!(
            "lpc-bench: idle service with {} clients for {} s…",
            cli.idle_clients, cli.idle_seconds
        );
        Some(idle(&bench, cli.idle_clients, cli.idle_seconds)?)
    } else {
        None
    };
    print!("{}", report::table(&rows));
    println!();
    for line in report::target_lines(&rows) {
        println!("{line}");
    }
    if let Some(idle) = &idle {
        println!("{}", idle.line());
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, report::full(&rows, &settings, idle.as_ref()))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("lpc-bench: report written to {}", path.display());
    }
    Ok(())
}
