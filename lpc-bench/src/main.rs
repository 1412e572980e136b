//! `lpc-bench`: lpc between two processes, next to the floors of the machine (raw
//! shared-memory ping-pong by spinning and by futex, a Unix-socket ping-pong, `memcpy`) and,
//! with `--peers`, next to iceoryx2, tarpc, ipc-channel and tonic on the same workloads.
//!
//! ```sh
//! scripts/bench.sh                     # everything, peers included: docs/benchmarks.md + chart
//! cargo run --release -p lpc-bench -- [--quick] [--only SECTIONS] [--markdown PATH] …
//! ```
//!
//! Prints the report on stdout (progress goes to stderr). Each system runs against a fresh
//! child process: this executable re-run with a hidden subcommand.

mod chart;
mod concurrent;
mod floor;
mod large;
mod oneway;
mod peers;
mod report;
mod runs;
mod service;
mod shared;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{self, Budget};
use lpc_bench::{affinity, child};

use crate::floor::Mode;
use crate::report::{Results, Settings};
use crate::runs::Runner;

#[derive(Parser)]
#[command(
    name = "lpc-bench",
    about = "lpc between two processes, against the floors of the machine and against peers"
)]
struct Cli {
    /// A smoke run: few samples, short budgets, 1 s idle, fewer thread/process counts.
    #[arg(long)]
    quick: bool,
    /// Most round trips timed one by one per measurement (and as many again timed as one
    /// batch). Default 200,000 (2,000 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    samples: Option<u64>,
    /// Most untimed round trips before measuring. Default 20,000 (200 with --quick).
    #[arg(long)]
    warmup: Option<u64>,
    /// Time budget of the timed round trips of one measurement, in seconds (at least 20 are
    /// timed whatever the budget). Default 1.5 (0.1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Payload sizes in bytes each way (comma-separated). Default 1 KiB, 64 KiB, 1 MiB, 16 MiB.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u64>,
    /// Thread counts sharing one client (comma-separated). Default 1,2,4,8 (1,2 with --quick).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<u32>,
    /// Client process counts (comma-separated). Default 1 to 8 (1,2 with --quick).
    #[arg(long, value_delimiter = ',')]
    procs: Vec<u32>,
    /// Only these sections (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Only these systems (comma-separated: `lpc-adaptive`, `raw-unix`, `tarpc`…; for
    /// profiling one); all by default. Threads, concurrent, processes, connect and
    /// handshake are `lpc-adaptive`.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// The `bench-peers` executable (built by scripts/bench.sh): also measure the peers.
    #[arg(long, value_name = "PATH")]
    peers: Option<PathBuf>,
    /// Seconds to watch an idle service with `--idle-clients` connected clients.
    /// Default 10 (1 with --quick).
    #[arg(long)]
    idle_seconds: Option<u64>,
    /// Subscriber process counts of the event fan-out (comma-separated). Default 1,4,16
    /// (1,2 with --quick).
    #[arg(long, value_delimiter = ',')]
    subscribers: Vec<u32>,
    /// Connected, idle clients during the idle measurement.
    #[arg(long, default_value_t = 50)]
    idle_clients: usize,
    /// Also write the full report (markdown) to this file.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Also write the raw results (JSON) to this file, for `--replay`.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also draw latency against payload size (PNG; needs the `chart` feature).
    #[arg(long, value_name = "PATH")]
    chart: Option<PathBuf>,
    /// Measure nothing: rebuild the report (and chart) from results saved with `--json`.
    #[arg(long, value_name = "PATH")]
    replay: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<ChildCommand>,
}

/// Parts of the suite.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The small call: lpc (adaptive, always-block, one CPU) and the floors.
    Small,
    /// Payloads of 1 KiB to 16 MiB each way, with memcpy and Unix-socket floors.
    Echo,
    /// 1, 2, 4 and 8 threads sharing one client.
    Threads,
    /// Calls that never wait on each other: the small call from one thread while another
    /// thread of the same client sleeps in a slow call, against the same call alone; 8
    /// threads of one client mixing slow and fast calls.
    Concurrent,
    /// 1 to 8 client processes.
    Procs,
    /// Connecting plus the first call.
    Connect,
    /// The handshake of a large interface (50 methods over 30 types) next to the small one:
    /// the size of its description, the time to trace it, connect plus the first call.
    Handshake,
    /// An idle service's CPU and memory; shared memory per connection.
    Idle,
    /// Shared values (`lpc::Shared`): get with and without a writer, set, and 4 reader
    /// processes checking 10 M reads against 1 writer (iceoryx2's blackboard beside, with
    /// `--peers`).
    Shared,
    /// The small call from C — the typed stubs `lpc gen c` writes, and JSON — beside the Rust
    /// client on one service (needs the `lpc` command and lpc-c's static library beside this
    /// executable: scripts/bench.sh builds them).
    C,
    /// One-way calls and events: one-way small messages per second from one client thread and
    /// their latency to the handler (iceoryx2 publish-subscribe and crossbeam-channel beside,
    /// with `--peers`), event fan-out to 1, 4 and 16 subscriber processes, and the system calls
    /// of a tight loop of one-way calls to a sleeping service (counted with `strace`).
    Oneway,
}

/// The child's side; not for direct use.
// The prefix names the subcommands (`child-raw`, …), telling them apart from user commands.
#[allow(clippy::enum_variant_names)]
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
    /// Answer the bare ping-pong (`raw-spin-bare`) on the shared words in `file`.
    #[command(hide = true)]
    ChildBare {
        #[arg(long)]
        file: PathBuf,
        /// Sleep on a futex instead of spinning (`raw-futex-bare`).
        #[arg(long)]
        futex: bool,
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Echo `size`-byte messages on a Unix socket at `path`.
    #[command(hide = true)]
    ChildUnix {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Serve the bench service.
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
        /// Serve the large interface (`large.rs`) instead.
        #[arg(long)]
        large: bool,
        /// Serve the one-way interface (`oneway.rs`) instead.
        #[arg(long)]
        notes: bool,
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Trace the bench (or large) interface's shapes once and say how long it took.
    #[command(hide = true)]
    ChildTrace {
        #[arg(long)]
        large: bool,
    },
    /// Call the bench service for `seconds` once told to go; write the latencies to `out`.
    #[command(hide = true)]
    ChildClient {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        warmup: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Set the shared value in `dir` back to back until the parent leaves.
    #[command(hide = true)]
    ChildSharedWriter {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Once told `go`, get and check `reads` values of the shared value in `dir`.
    #[command(hide = true)]
    ChildSharedReader {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        reads: u64,
        /// Read through `lpc::SharedPlain` (its bytes) instead of `lpc::Shared` (serde).
        #[arg(long)]
        plain: bool,
    },
    /// Once told `go`, post `count` one-way notes to the service in `dir` (between marker
    /// system calls, for strace); again for each `go`, until `end`.
    #[command(hide = true)]
    ChildPostLoop {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        count: u64,
    },
    /// Subscribe to the fan-out's events and report each phase.
    #[command(hide = true)]
    ChildSubscriber {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// For profiling: `count` gets of a shared value no one writes.
    #[command(hide = true)]
    ChildSharedLoop {
        #[arg(long)]
        count: u64,
        /// Through `lpc::SharedPlain` instead of `lpc::Shared`.
        #[arg(long)]
        plain: bool,
    },
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
    let cpu = match command {
        ChildCommand::ChildRaw { cpu, .. }
        | ChildCommand::ChildBare { cpu, .. }
        | ChildCommand::ChildUnix { cpu, .. }
        | ChildCommand::ChildService { cpu, .. } => *cpu,
        ChildCommand::ChildClient { .. }
        | ChildCommand::ChildTrace { .. }
        | ChildCommand::ChildSharedWriter { .. }
        | ChildCommand::ChildSharedReader { .. }
        | ChildCommand::ChildPostLoop { .. }
        | ChildCommand::ChildSubscriber { .. }
        | ChildCommand::ChildSharedLoop { .. } => None,
    };
    if let Some(cpu) = cpu {
        // Before any thread starts, so that all of them inherit it.
        affinity::pin_to(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    if let ChildCommand::ChildSharedLoop { count, plain } = command {
        // Run by hand (under valgrind), with no parent on stdin.
        return shared::get_loop(*count, *plain);
    }
    let from_parent = child::exit_with_parent();
    match command {
        ChildCommand::ChildRaw { file, futex, .. } => {
            floor::answer(file, if *futex { Mode::Futex } else { Mode::Spin })
        }
        ChildCommand::ChildBare { file, futex, .. } => floor::answer_bare(file, *futex),
        ChildCommand::ChildUnix { path, size, .. } => floor::answer_unix(path, *size),
        ChildCommand::ChildService {
            dir,
            name,
            block,
            no_stats,
            large,
            notes,
            ..
        } => {
            let served = match (*large, *notes) {
                (true, _) => service::Served::Large,
                (false, true) => service::Served::Notes,
                (false, false) => service::Served::Bench,
            };
            service::serve(dir, name, *block, !*no_stats, served)
        }
        ChildCommand::ChildClient {
            dir,
            name,
            seconds,
            warmup,
            out,
        } => runs::client_process(dir, name, *seconds, *warmup, out, &from_parent),
        ChildCommand::ChildTrace { large } => runs::trace_once(*large),
        ChildCommand::ChildSharedWriter { dir } => shared::writer(dir),
        ChildCommand::ChildSharedReader { dir, reads, plain } => {
            shared::reader(dir, *reads, *plain, &from_parent)
        }
        ChildCommand::ChildPostLoop { dir, name, count } => {
            oneway::post_loop(dir, name, *count, &from_parent)
        }
        ChildCommand::ChildSubscriber { dir, name, out } => oneway::subscriber(dir, name, out),
        ChildCommand::ChildSharedLoop { .. } => unreachable!("handled above"),
    }
}

fn run_parent(cli: &Cli) -> Result<(), String> {
    let results = match &cli.replay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => measure_all(cli)?,
    };
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("lpc-bench: results written to {}", path.display());
    }
    let chart_link = match &cli.chart {
        Some(path) => {
            chart::draw(&results, path)?;
            eprintln!("lpc-bench: chart written to {}", path.display());
            Some(path.clone())
        }
        None => None,
    };
    let markdown = report::full(&results, chart_link.as_deref(), cli.markdown.as_deref());
    print!("{markdown}");
    if let Some(path) = &cli.markdown {
        std::fs::write(path, &markdown).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("lpc-bench: report written to {}", path.display());
    }
    Ok(())
}

fn measure_all(cli: &Cli) -> Result<Results, String> {
    let quick = cli.quick;
    let budget = Budget {
        samples: usize::try_from(cli.samples.unwrap_or(if quick { 2_000 } else { 200_000 }))
            .map_err(|e| e.to_string())?,
        warmup: usize::try_from(cli.warmup.unwrap_or(if quick { 200 } else { 20_000 }))
            .map_err(|e| e.to_string())?,
        time: Duration::from_secs_f64(cli.seconds.unwrap_or(if quick { 0.1 } else { 1.5 })),
    };
    let wants = |s: Section| cli.only.is_empty() || cli.only.contains(&s);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!(
            "lpc-bench: warning: this process may use only {cpus} CPU; the spinning systems \
             will measure scheduler time slices, and lpc will not spin at all"
        );
    }
    let load_before = report::load_average();
    let runner = Runner::new(budget, cli.systems.clone())?;
    let settings = Settings {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick,
        samples: budget.samples,
        warmup: budget.warmup,
        seconds: budget.time.as_secs_f64(),
        timer_overhead_ns: stats::timer_overhead_ns(),
    };
    let mut records: Vec<Record> = Vec::new();
    let mut push = |new: Vec<Record>| {
        for r in &new {
            eprintln!("lpc-bench:   {}", report::progress_line(r));
        }
        records.extend(new);
    };
    let sizes: Vec<u64> = if cli.sizes.is_empty() {
        Workload::ECHO_SIZES.to_vec()
    } else {
        cli.sizes.clone()
    };
    let echo: Vec<Workload> = sizes.iter().map(|&n| Workload::Echo(n)).collect();
    if wants(Section::Small) {
        push(runner.small()?);
    }
    if wants(Section::Echo) {
        push(runner.echo(&sizes)?);
    }
    let lpc = runner.wants("lpc-adaptive");
    if wants(Section::Threads) && lpc {
        let counts: Vec<u32> = match (&cli.threads[..], quick) {
            ([], true) => vec![1, 2],
            ([], false) => vec![1, 2, 4, 8],
            (given, _) => given.to_vec(),
        };
        push(runner.threads(&counts)?);
    }
    let concurrent = if wants(Section::Concurrent) && lpc {
        Some(runner.concurrent()?)
    } else {
        None
    };
    if wants(Section::Procs) && lpc {
        let counts: Vec<u32> = match (&cli.procs[..], quick) {
            ([], true) => vec![1, 2],
            ([], false) => (1..=8).collect(),
            (given, _) => given.to_vec(),
        };
        push(runner.procs(&counts)?);
    }
    if wants(Section::Connect) && lpc {
        push(vec![runner.connect()?]);
    }
    let handshake = if wants(Section::Handshake) && lpc {
        // Each trace is a fresh process: a few are enough for a median.
        runner.handshake(if quick { 5 } else { 15 })?
    } else {
        Vec::new()
    };
    if wants(Section::C) && lpc {
        push(runner.c_clients()?);
    }
    let torn = if wants(Section::Shared) {
        let (rows, torn) = shared::measure_lpc(&budget)?;
        push(rows);
        Some(torn)
    } else {
        None
    };
    let oneway = if wants(Section::Oneway) {
        let counts: Vec<u32> = match (&cli.subscribers[..], quick) {
            ([], true) => vec![1, 2],
            ([], false) => vec![1, 4, 16],
            (given, _) => given.to_vec(),
        };
        let (rows, extra) = oneway::measure(&budget, &counts)?;
        push(rows);
        Some(extra)
    } else {
        None
    };
    let mut peer_note = None;
    match &cli.peers {
        Some(path) => {
            let mut workloads = Vec::new();
            if wants(Section::Small) {
                workloads.push(Workload::Small);
            }
            if wants(Section::Echo) {
                workloads.extend(echo.iter().copied());
            }
            if wants(Section::Connect) {
                workloads.push(Workload::Connect);
            }
            // On one CPU too (the socket-based peers are faster there on a VM, as the raw
            // Unix socket is): the calls, not connect.
            let pinned: Vec<Workload> = workloads
                .iter()
                .copied()
                .filter(|w| *w != Workload::Connect)
                .collect();
            let cpu = affinity::allowed_cpus().first().copied();
            for system in peers::SYSTEMS.into_iter().filter(|s| runner.wants(s)) {
                let mut workloads = workloads.clone();
                if system == "iceoryx2" && wants(Section::Shared) {
                    // Its blackboard, beside lpc's shared value.
                    workloads.extend([
                        Workload::SharedGet,
                        Workload::SharedGetWriting,
                        Workload::SharedSet,
                    ]);
                }
                if system == "iceoryx2" && wants(Section::Oneway) {
                    // Its publish-subscribe, beside lpc's one-way calls.
                    workloads.extend([Workload::Post, Workload::PostLatency]);
                }
                if !workloads.is_empty() {
                    eprintln!("lpc-bench: {system}…");
                    push(peers::run(path, system, &workloads, &budget, None));
                }
                if pinned.is_empty() || cpu.is_none() {
                    continue;
                }
                let label = format!("{system}-1cpu");
                match peers::no_single_cpu(system) {
                    Some(why) => push(
                        pinned
                            .iter()
                            .map(|&w| Record::skipped(&label, w, why))
                            .collect(),
                    ),
                    None => {
                        eprintln!("lpc-bench: {label}…");
                        push(peers::run(path, system, &pinned, &budget, cpu));
                    }
                }
            }
            if wants(Section::Oneway) && runner.wants(peers::CROSSBEAM) {
                // The reference for channels inside one process, beside lpc's one-way calls.
                eprintln!("lpc-bench: {}…", peers::CROSSBEAM);
                let workloads = [Workload::Post, Workload::PostLatency];
                push(peers::run(
                    path,
                    peers::CROSSBEAM,
                    &workloads,
                    &budget,
                    None,
                ));
            }
        }
        None => {
            peer_note = Some(
                "not measured in this run (run `scripts/bench.sh`, or pass `--peers` the \
                 `bench-peers` executable)"
                    .to_owned(),
            );
        }
    }
    let idle = if wants(Section::Idle) {
        let seconds = cli.idle_seconds.unwrap_or(if quick { 1 } else { 10 });
        eprintln!(
            "lpc-bench: idle service with {} clients for {seconds} s…",
            cli.idle_clients
        );
        Some(runner.idle(cli.idle_clients, seconds)?)
    } else {
        None
    };
    Ok(Results {
        settings,
        machine: report::machine(),
        kernel: report::kernel(),
        date: report::today(),
        load_before,
        load_after: report::load_average(),
        records,
        idle,
        handshake,
        concurrent,
        torn,
        oneway,
        peer_note,
    })
}
