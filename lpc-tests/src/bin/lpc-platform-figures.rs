//! `lpc-platform-figures [--calls N]`: the small call's latency beside the platform's floors,
//! measured in one run on whatever platform it runs on — written for Windows under Wine,
//! where lpc-bench (Linux-specific: CPU placement, perf counters) does not run.
//!
//! * **spin ping-pong**: two processes, one shared section, each spinning on the other's
//!   cache line (the floor of any shared-memory call);
//! * **doorbell ping-pong**: the same, but each side sleeps on lpc's doorbell (`sys::wait`
//!   / `sys::wake`: a futex on Linux, a named semaphore per word on Windows) — the floor of a
//!   call to a sleeping peer;
//! * **lpc small call**: `add(i32, i32)` to `lpc-test-service` in another process;
//! * **peer-death detection**: from killing the service mid-call to the caller's
//!   `Disconnected`.
//!
//! Prints a Markdown table (p50, p99 of each round trip, read with `Instant`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use lpc::floor::{futex_wait, futex_wake, SharedWords};
use lpc_tests::{client_options, ProbeClient, Process};

const PING: usize = 0;
const PONG: usize = 16;
const READY: usize = 32;
const STOP: u32 = u32::MAX;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn row(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "| {name} | {:.2} µs | {:.2} µs | {} |",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        times.len()
    );
    p50
}

/// The child side of a ping-pong: answers every ping with a pong of the same number.
fn pong(path: &Path, doorbell: bool) {
    let words = SharedWords::open(path).expect("the parent's section");
    let (ping, pong) = (words.word(PING), words.word(PONG));
    words.word(READY).store(1, Release);
    let mut last = 0;
    loop {
        let mut now = ping.load(Acquire);
        while now == last {
            if doorbell {
                futex_wait(ping, last, Some(Duration::from_secs(10)));
            } else {
                std::hint::spin_loop();
            }
            now = ping.load(Acquire);
        }
        if now == STOP {
            return;
        }
        last = now;
        pong.store(now, Release);
        if doorbell {
            futex_wake(pong);
        }
    }
}

/// The parent side: `rounds` round trips with a child process, each timed.
fn ping_pong(dir: &Path, doorbell: bool, rounds: u32) -> Vec<Duration> {
    let path = dir.join(if doorbell { "bell" } else { "spin" });
    let words = SharedWords::create(&path, 64).expect("a section");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["pong", if doorbell { "bell" } else { "spin" }])
        .arg(&path)
        .stdin(Stdio::null())
        .spawn()
        .expect("the ping-pong child");
    let deadline = Instant::now() + Duration::from_secs(30);
    while words.word(READY).load(Acquire) == 0 {
        assert!(
            Instant::now() < deadline,
            "the child never opened the section"
        );
        std::thread::yield_now();
    }
    let (ping, pong) = (words.word(PING), words.word(PONG));
    let mut times = Vec::with_capacity(rounds as usize);
    for i in 1..=rounds {
        let started = Instant::now();
        ping.store(i, Release);
        if doorbell {
            futex_wake(ping);
        }
        loop {
            let now = pong.load(Acquire);
            if now == i {
                break;
            }
            if doorbell {
                futex_wait(pong, now, Some(Duration::from_secs(10)));
            } else {
                std::hint::spin_loop();
            }
        }
        times.push(started.elapsed());
    }
    ping.store(STOP, Release);
    futex_wake(ping);
    let _ = child.wait();
    times
}

fn service_program() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.with_file_name(format!("lpc-test-service{}", std::env::consts::EXE_SUFFIX))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("pong") {
        return pong(Path::new(&args[2]), args[1] == "bell");
    }
    let calls: u32 = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("lpc-figures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "{} {}, {} CPUs; {calls} round trips each",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!("| round trip | p50 | p99 | samples |");
    println!("|---|---:|---:|---:|");
    let spin = row(
        "spin ping-pong (two processes)",
        ping_pong(&dir, false, calls),
    );
    let bell = row(
        "doorbell ping-pong (two processes, each sleeping)",
        ping_pong(&dir, true, calls.min(5_000)),
    );

    let runtime = dir.join("rt");
    let program = service_program();
    let mut service = Process::start(&program, &["probe"], &runtime, "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(&runtime)).unwrap();
    for i in 0..1_000 {
        probe.add(i, 1).unwrap();
    }
    let times = (0..calls as i32)
        .map(|i| {
            let started = Instant::now();
            assert_eq!(probe.add(i, 1).unwrap(), i + 1);
            started.elapsed()
        })
        .collect();
    let call = row("lpc small call `add(i32, i32)`", times);
    drop(probe);
    service.kill();

    let mut deaths = Vec::new();
    for _ in 0..5 {
        let mut service = Process::start(&program, &["probe"], &runtime, "ready");
        let probe = ProbeClient::connect_with("probe", &client_options(&runtime)).unwrap();
        let caller = std::thread::spawn(move || {
            let result = probe.sleep_ms(30_000);
            (result.is_err(), Instant::now())
        });
        service.expect_line("sleeping", Duration::from_secs(30));
        let killed = Instant::now();
        service.kill();
        let (failed, returned) = caller.join().unwrap();
        assert!(failed, "a call to a killed service must fail");
        deaths.push(returned - killed);
    }
    row("peer death: kill → the caller's Disconnected", deaths);
    println!();
    println!(
        "lpc small call ÷ spin ping-pong: {:.2}×; ÷ doorbell ping-pong: {:.2}×",
        call.as_secs_f64() / spin.as_secs_f64(),
        call.as_secs_f64() / bell.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
