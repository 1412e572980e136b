//! The peers (iceoryx2, tarpc, ipc-channel, tonic), measured by the `bench-peers` executable
//! (a crate outside the workspace, so that the workspace's CI never builds them), which
//! prints one JSON [`Record`] per line.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::Budget;

/// The peers, in the order they run.
pub const SYSTEMS: [&str; 4] = ["iceoryx2", "tarpc", "ipc-channel", "tonic"];

/// crossbeam-channel between two threads of one process: measured for the one-way section
/// only.
pub const CROSSBEAM: &str = "crossbeam-channel";

/// Why a peer is not also run with both processes on one CPU, if it is not.
pub fn no_single_cpu(system: &str) -> Option<&'static str> {
    (system == "iceoryx2").then_some(
        "not run on one CPU: it busy-polls on both sides, so each would spin away the time \
         slice the other needs",
    )
}

/// Runs `bench-peers` for `system` on `workloads`. Never fails: a workload the peer did not
/// report comes back as skipped, with the reason.
/// With `cpu`, client and server both run on that one CPU and the records are named
/// `<system>-1cpu`.
pub fn run(
    exe: &Path,
    system: &str,
    workloads: &[Workload],
    budget: &Budget,
    cpu: Option<usize>,
) -> Vec<Record> {
    let label = match cpu {
        Some(_) => format!("{system}-1cpu"),
        None => system.to_owned(),
    };
    let list: Vec<String> = workloads.iter().map(|w| w.arg()).collect();
    let mut args: Vec<OsString> = vec![
        "measure".into(),
        "--system".into(),
        system.into(),
        "--workloads".into(),
        list.join(",").into(),
        "--samples".into(),
        budget.samples.to_string().into(),
        "--warmup".into(),
        budget.warmup.to_string().into(),
        "--seconds".into(),
        budget.time.as_secs_f64().to_string().into(),
    ];
    if let Some(cpu) = cpu {
        args.extend(["--cpu".into(), cpu.to_string().into()]);
    }
    let mut records: Vec<Record> = Vec::new();
    let failure = match Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Err(e) => Some(format!("could not start {}: {e}", exe.display())),
        Ok(mut child) => {
            let pid = child.id();
            // A watchdog: far beyond any plausible run of the workloads.
            let limit = Duration::from_secs(120) + budget.time * 20 * workloads.len() as u32;
            let (done, watched) = mpsc::channel::<()>();
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(limit) {
                    eprintln!("lpc-bench: bench-peers ({pid}) exceeded {limit:?}; killing it");
                    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            });
            let stdout = child.stdout.take().expect("stdout is piped");
            let mut bad_line = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Record>(&line) {
                    Ok(record) => {
                        eprintln!("lpc-bench:   {}", crate::report::progress_line(&record));
                        records.push(record);
                    }
                    Err(e) => bad_line = Some(format!("unreadable line {line:?}: {e}")),
                }
            }
            let status = child.wait();
            drop(done);
            match status {
                Ok(s) if s.success() => bad_line,
                Ok(s) => Some(format!("bench-peers {label} ended with {s}")),
                Err(e) => Some(format!("waiting for bench-peers: {e}")),
            }
        }
    };
    for &w in workloads {
        if !records.iter().any(|r| r.workload == w) {
            let why = failure
                .clone()
                .unwrap_or_else(|| "bench-peers reported nothing".into());
            records.push(Record::skipped(&label, w, format!("failed: {why}")));
        }
    }
    records
}
