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
    },
}

/// A measured system, in the order they run (each floor next to its lpc counterpart).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    RawSpin,
    LpcAdaptive,
    RawFutex,
    LpcBlock,
}

impl System {
    const ALL: [System; 4] = [System::RawSpin, System::LpcAdaptive, System::RawFutex, System::LpcBlock];

    fn name(self) -> &'static str {
        match self {
            System::RawSpin => "raw-spin",
            System::LpcAdaptive => "lpc-adaptive",
            System::RawFutex => "raw-futex",
            System::LpcBlock => "lpc-block",
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
    child::exit_with_parent();
    match command {
        ChildCommand::ChildRaw { file, futex } => {
            floor::answer(file, if *futex { Mode::Futex } else { Mode::Spin })
        }
        ChildCommand::ChildService { dir, name, block } => child::serve_calc(dir, name, *block),
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
        let round_trips = (self.warmup + 2 * self.samples) as u32;
        Duration::from_secs(60) + Duration::from_micros(200) * round_trips
    }

    fn run(&self, system: System) -> Result<stats::Summary, String> {
        match system {
            System::RawSpin => self.raw(system, Mode::Spin),
            System::RawFutex => self.raw(system, Mode::Futex),
            System::LpcAdaptive => self.lpc(system, false),
            System::LpcBlock => self.lpc(system, true),
        }
    }

    fn raw(&self, system: System, mode: Mode) -> Result<stats::Summary, String> {
        let path = self.dir.0.join(format!("{}.words", system.name()));
        let mut pinger =
            Pinger::create(&path, mode).map_err(|e| format!("creating {}: {e}", path.display()))?;
        let mut args: Vec<OsString> = vec!["child-raw".into(), "--file".into(), path.clone().into()];
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

    fn lpc(&self, system: System, block: bool) -> Result<stats::Summary, String> {
        let dir: &Path = &self.dir.0;
        let name = format!("bench-{}", system.name());
        let mut args: Vec<OsString> = vec![
            "child-service".into(),
            "--dir".into(),
            dir.into(),
            "--name".into(),
            name.clone().into(),
        ];
        if block {
            args.push("--block".into());
        }
        let peer = Peer::spawn(system.name(), &args, self.child_limit())?;
        peer.wait_ready(READY_TIMEOUT)?;
        let wait = if block { WaitStrategy::Block } else { WaitStrategy::Adaptive };
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

fn run_parent(cli: &Cli) -> Result<(), String> {
    let systems: Vec<System> =
        System::ALL.into_iter().filter(|s| cli.only.is_empty() || cli.only.contains(s)).collect();
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
        let summary = bench.run(system).map_err(|e| format!("{}: {e}", system.name()))?;
        rows.push(Row { system, summary });
    }
    print!("{}", report::table(&rows));
    println!();
    for line in report::target_lines(&rows) {
        println!("{line}");
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, report::full(&rows, &settings))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("lpc-bench: report written to {}", path.display());
    }
    Ok(())
}
