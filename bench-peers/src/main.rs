//! `bench-peers`: the systems lpc is compared with — iceoryx2 request-response, tarpc over a
//! Unix socket, ipc-channel, and gRPC with tonic over a Unix socket — on lpc-bench's
//! workloads, timed with lpc-bench's own harness, between two processes.
//!
//! ```sh
//! bench-peers measure --system tarpc --workloads small,echo:1024,connect [--samples N] …
//! ```
//!
//! Prints one JSON [`Record`] per line on stdout (progress and errors go to stderr);
//! `lpc-bench --peers <this executable>` runs it for each peer and merges the lines into its
//! report. The server side is this executable re-run as a child (`serve`, hidden).

mod board;
mod grpc;
mod iox;
mod ipc;
mod oneway;
mod rpc;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use lpc_bench::child::Peer;
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{self, measure, Budget};

/// How long the server child has to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it has to exit once told to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections timed by the connect workload.
const CONNECT_SAMPLES: usize = 300;

#[derive(Parser)]
#[command(
    name = "bench-peers",
    about = "lpc-bench's peers, on lpc-bench's workloads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one peer on some workloads; one JSON record per line on stdout.
    Measure {
        #[arg(long, value_enum)]
        system: System,
        /// Comma-separated: `small`, `echo:<bytes>`, `connect`.
        #[arg(long, value_delimiter = ',', value_parser = Workload::parse)]
        workloads: Vec<Workload>,
        #[arg(long, default_value_t = 200_000)]
        samples: usize,
        #[arg(long, default_value_t = 20_000)]
        warmup: usize,
        #[arg(long, default_value_t = 1.5)]
        seconds: f64,
        /// Run client and server on this one CPU (records are named `<system>-1cpu`).
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// The server side of `system`, in `dir`, for payloads up to `max` bytes.
    #[command(hide = true)]
    Serve {
        #[arg(long, value_enum)]
        system: System,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        max: usize,
        /// Serve on tokio's multi-thread runtime (tarpc, tonic) instead of a current-thread one.
        #[arg(long)]
        multi_thread: bool,
    },
    /// The writer process of the blackboard's `get` with a writer: updates it back to back.
    #[command(hide = true)]
    BoardWriter {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The subscriber process of iceoryx2's publish-subscribe (the one-way workloads).
    #[command(hide = true)]
    PubsubSubscriber {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Iceoryx2,
    Tarpc,
    IpcChannel,
    Tonic,
    /// crossbeam-channel between two threads (the one-way workloads only).
    CrossbeamChannel,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Iceoryx2 => "iceoryx2",
            System::Tarpc => "tarpc",
            System::IpcChannel => "ipc-channel",
            System::Tonic => "tonic",
            System::CrossbeamChannel => "crossbeam-channel",
        }
    }

    fn connect(self, dir: &Path, max: usize) -> Result<Box<dyn Client>, String> {
        Ok(match self {
            System::Iceoryx2 => Box::new(iox::IoxClient::connect(dir, max)?),
            System::Tarpc => Box::new(rpc::TarpcClient::connect(dir)?),
            System::IpcChannel => Box::new(ipc::IpcClient::connect(dir)?),
            System::Tonic => Box::new(grpc::TonicClient::connect(dir)?),
            System::CrossbeamChannel => return Err(ONEWAY_ONLY.into()),
        })
    }

    fn serve(self, dir: &Path, max: usize, multi_thread: bool) -> Result<(), String> {
        match self {
            System::Iceoryx2 => iox::serve(dir, max),
            System::Tarpc => rpc::serve(dir, multi_thread),
            System::IpcChannel => ipc::serve(dir),
            System::Tonic => grpc::serve(dir, multi_thread),
            System::CrossbeamChannel => Err(ONEWAY_ONLY.into()),
        }
    }

    /// The server configurations to try: tokio-based servers run both on a current-thread
    /// and on the (default) multi-thread runtime, and each workload keeps the faster.
    fn flavours(self) -> &'static [bool] {
        match self {
            System::Tarpc | System::Tonic => &[false, true],
            System::Iceoryx2 | System::IpcChannel | System::CrossbeamChannel => &[false],
        }
    }
}

/// Why crossbeam-channel has no client or server.
const ONEWAY_ONLY: &str = "crossbeam-channel is measured on the one-way workloads only";

/// A connected client of one peer.
pub trait Client {
    /// The small call.
    fn add(&mut self, a: i32, b: i32) -> Result<i32, String>;
    /// Sends `n` bytes whose first is `stamp` and receives the echo, checking its length and
    /// first byte.
    fn echo(&mut self, n: usize, stamp: u8) -> Result<(), String>;
}

/// Checks an echo's length and first byte.
pub fn check_echo(back: &[u8], n: usize, stamp: u8) -> Result<(), String> {
    if back.len() != n || (n > 0 && back[0] != stamp) {
        return Err(format!("the echo of {n} bytes came back different"));
    }
    Ok(())
}

/// `n` bytes whose first is `stamp` (the rest a fixed pattern).
pub fn stamped(buf: &mut Vec<u8>, n: usize, stamp: u8) {
    if buf.len() != n {
        *buf = (0..n).map(|i| i as u8).collect();
    }
    if let Some(first) = buf.first_mut() {
        *first = stamp;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Measure {
            system,
            workloads,
            samples,
            warmup,
            seconds,
            cpu,
        } => measure_peer(
            system,
            &workloads,
            &Budget {
                samples,
                warmup,
                time: Duration::from_secs_f64(seconds),
            },
            cpu,
        ),
        Command::Serve {
            system,
            dir,
            max,
            multi_thread,
        } => system.serve(&dir, max, multi_thread),
        Command::BoardWriter { dir } => board::writer(&dir),
        Command::PubsubSubscriber { dir } => oneway::subscriber_child(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-peers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A private temporary directory, removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("bench-peers-{}", std::process::id()));
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

fn emit(record: &Record) {
    let line = serde_json::to_string(record).expect("a record serializes");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn measure_peer(
    system: System,
    workloads: &[Workload],
    budget: &Budget,
    cpu: Option<usize>,
) -> Result<(), String> {
    if let Some(cpu) = cpu {
        // Before any thread or child starts: all of them inherit it, as under `taskset`.
        lpc_bench::affinity::pin_to(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    let placement = Placement {
        label: match cpu {
            Some(_) => format!("{}-1cpu", system.name()),
            None => system.name().to_owned(),
        },
        cpus: if cpu.is_some() { "1 CPU" } else { "unpinned" },
    };
    let dir = TempDir::new()?;
    let shared = |w: &Workload| {
        matches!(
            w,
            Workload::SharedGet | Workload::SharedGetWriting | Workload::SharedSet
        )
    };
    let (board, workloads): (Vec<Workload>, Vec<Workload>) =
        workloads.iter().copied().partition(shared);
    if !board.is_empty() {
        let records = if system == System::Iceoryx2 {
            board::measure_board(&placement.label, &board, budget, &dir.0).unwrap_or_else(|e| {
                eprintln!("bench-peers: {} blackboard: {e}", placement.label);
                board
                    .iter()
                    .map(|&w| Record::skipped(&placement.label, w, format!("failed: {e}")))
                    .collect()
            })
        } else {
            board
                .iter()
                .map(|&w| Record::skipped(&placement.label, w, "no shared value measured"))
                .collect()
        };
        records.iter().for_each(emit);
    }
    let (posts, workloads): (Vec<Workload>, Vec<Workload>) = workloads
        .iter()
        .copied()
        .partition(|w| matches!(w, Workload::Post | Workload::PostLatency));
    if !posts.is_empty() {
        let records = match system {
            System::Iceoryx2 => oneway::measure(&placement.label, false, &posts, budget, &dir.0),
            System::CrossbeamChannel => {
                oneway::measure(&placement.label, true, &posts, budget, &dir.0)
            }
            _ => posts
                .iter()
                .map(|&w| Record::skipped(&placement.label, w, "no one-way messages measured"))
                .collect(),
        };
        records.iter().for_each(emit);
    }
    if workloads.is_empty() {
        return Ok(());
    }
    let workloads = &workloads[..];
    let max = workloads
        .iter()
        .map(|w| match w {
            Workload::Echo(n) => *n as usize,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
        .max(64);
    let flavours = system.flavours();
    // Per workload, the best result over the server configurations (lowest p50).
    let mut best: Vec<Option<Record>> = vec![None; workloads.len()];
    for &multi_thread in flavours {
        let results = measure_flavour(
            system,
            &placement,
            workloads,
            budget,
            &dir.0,
            max,
            multi_thread,
        )
        .unwrap_or_else(|e| {
            eprintln!("bench-peers: {}: {e}", placement.label);
            let why = format!("failed: {e}");
            workloads
                .iter()
                .map(|&w| Record::skipped(&placement.label, w, why.clone()))
                .collect()
        });
        for (slot, mut record) in best.iter_mut().zip(results) {
            if flavours.len() > 1 && record.summary.is_some() {
                record.note = Some(
                    if multi_thread {
                        "server on tokio's multi-thread runtime"
                    } else {
                        "server on a tokio current-thread runtime"
                    }
                    .into(),
                );
            }
            let better = match (slot.as_ref().and_then(|r| r.summary), record.summary) {
                (None, _) => true,
                (Some(old), Some(new)) => new.p50 < old.p50,
                (Some(_), None) => false,
            };
            if better {
                *slot = Some(record);
            }
        }
    }
    for record in best.into_iter().flatten() {
        emit(&record);
    }
    Ok(())
}

/// How the records of a run are labelled.
struct Placement {
    /// `tarpc`, or `tarpc-1cpu` when pinned.
    label: String,
    cpus: &'static str,
}

/// Measures `workloads` against one server child.
fn measure_flavour(
    system: System,
    placement: &Placement,
    workloads: &[Workload],
    budget: &Budget,
    dir: &Path,
    max: usize,
    multi_thread: bool,
) -> Result<Vec<Record>, String> {
    let name = system.name();
    let mut args: Vec<OsString> = vec![
        "serve".into(),
        "--system".into(),
        name.into(),
        "--dir".into(),
        dir.into(),
        "--max".into(),
        max.to_string().into(),
    ];
    if multi_thread {
        args.push("--multi-thread".into());
    }
    let limit = Duration::from_secs(120) + budget.time * 20 * workloads.len() as u32;
    let server = Peer::spawn(name, &args, limit)?;
    server.wait_ready(READY_TIMEOUT)?;
    let mut client = system.connect(dir, max)?;
    let mut stamp = 0u8;
    let mut out = Vec::new();
    let flavour = if multi_thread {
        " (multi-thread server)"
    } else {
        ""
    };
    let label = placement.label.as_str();
    for &w in workloads {
        eprintln!("bench-peers: {label}{flavour} {}…", w.label());
        let result = match w {
            Workload::Small => {
                let mut i: i32 = 0;
                measure(budget, || {
                    let a = std::hint::black_box(i);
                    let sum = client.add(a, 1)?;
                    if sum != a.wrapping_add(1) {
                        return Err(format!("add({a}, 1) returned {sum}"));
                    }
                    i = i.wrapping_add(1);
                    Ok(())
                })
            }
            Workload::Echo(n) => measure(budget, || {
                stamp = stamp.wrapping_add(1);
                client.echo(n as usize, stamp)
            }),
            Workload::Connect => connects(system, dir, max, budget),
            other => {
                out.push(Record::skipped(
                    label,
                    other,
                    "lpc-bench measures threads and processes for lpc only",
                ));
                continue;
            }
        };
        out.push(match result {
            Ok(summary) => Record::measured(label, w, placement.cpus, summary),
            Err(e) => {
                eprintln!("bench-peers: {label} {}: {e}", w.label());
                Record::skipped(label, w, format!("failed: {e}"))
            }
        });
    }
    drop(client);
    server.finish(EXIT_TIMEOUT)?;
    Ok(out)
}

/// Connect plus the first small call (and the disconnect), timed one by one.
fn connects(
    system: System,
    dir: &Path,
    max: usize,
    budget: &Budget,
) -> Result<stats::Summary, String> {
    let once = || -> Result<(), String> {
        let mut client = system.connect(dir, max)?;
        let sum = client.add(20, 22)?;
        if sum != 42 {
            return Err(format!("add(20, 22) returned {sum}"));
        }
        Ok(())
    };
    let budget = budget.at_most(CONNECT_SAMPLES);
    for _ in 0..budget.warmup.min(10) {
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
    Ok(stats::summarise(latencies, count, started.elapsed()))
}
