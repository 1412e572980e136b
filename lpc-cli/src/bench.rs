//! `lpc bench`: load one method with JSON calls from threads sharing one client.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::call::{call_error, call_once, Target};
use crate::common::{
    fmt_duration, json_safe, safe, CliError, CliResult, Ctx, DIM, HEADER, NAME, WARN,
};

/// How long the load lasts.
#[derive(Clone, Copy)]
pub enum Load {
    Calls(u64),
    Duration(Duration),
}

/// Highest latency the histogram records exactly (longer ones count as this): one hour.
const HIGHEST_NS: u64 = 3_600_000_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid histogram bounds")
}

pub fn run(ctx: &Ctx, target: &Target, load: Load, concurrency: usize) -> CliResult {
    let concurrency = concurrency.max(1);
    let prepared = target.prepare(ctx, "bench")?;
    // One call first: a wrong argument is reported once, as `lpc call` would. Each call gives
    // up after `--timeout`: a service that stops answering ends the run.
    call_once(ctx, &target.service, &prepared, ctx.timeout)?;

    let (what, total) = match load {
        Load::Calls(n) => (format!("{n} calls"), Some(n)),
        Load::Duration(d) => (format!("{} of calls", fmt_duration(d)), None),
    };
    let threads = if concurrency == 1 {
        "1 thread".to_owned()
    } else {
        format!("{concurrency} threads sharing one client")
    };
    anstream::println!(
        "lpc bench: {NAME}{}{NAME:#}.{} with {}: {what}, {threads}",
        safe(&target.service),
        safe(&prepared.method.name),
        json_safe(prepared.args.to_string()),
    );
    anstream::println!(
        "{DIM}note: JSON calls (no compiled stubs: arguments and results travel as JSON); \
         a generated client is faster{DIM:#}"
    );

    let bar = if std::io::stderr().is_terminal() {
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{bar:40.cyan/blue} {pos}/{len} calls  {rate}  eta {eta}",
                    )
                    .expect("valid template")
                    .with_key(
                        "rate",
                        |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0} calls/s", s.per_sec());
                        },
                    ),
                ),
            None => {
                ProgressBar::with_draw_target(Some(load_ms(load)), ProgressDrawTarget::stderr())
                    .with_style(
                        ProgressStyle::with_template("{bar:40.cyan/blue} {elapsed} {msg}")
                            .expect("valid template"),
                    )
            }
        };
        Some(bar)
    } else {
        None
    };

    let claimed = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let app_errors = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<lpc::Error>> = Mutex::new(None);
    let mut histogram = new_histogram();
    let started = Instant::now();
    let deadline = match load {
        Load::Duration(d) => Some(started + d),
        Load::Calls(_) => None,
    };

    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let client = prepared.client.with_timeout(ctx.timeout);
                let (method, args) = (&prepared.method.name, &prepared.args);
                let (claimed, done, app_errors, stop, failure) =
                    (&claimed, &done, &app_errors, &stop, &failure);
                scope.spawn(move || {
                    let mut h = new_histogram();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match (total, deadline) {
                            (Some(n), _) if claimed.fetch_add(1, Ordering::Relaxed) >= n => break,
                            (_, Some(d)) if Instant::now() >= d => break,
                            _ => {}
                        }
                        let t = Instant::now();
                        match client.call_json(method, args) {
                            Ok(reply) => {
                                h.saturating_record((t.elapsed().as_nanos() as u64).max(1));
                                if reply.get("error").is_some() {
                                    app_errors.fetch_add(1, Ordering::Relaxed);
                                }
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert(e);
                                break;
                            }
                        }
                    }
                    h
                })
            })
            .collect();
        if let Some(bar) = &bar {
            while !workers.iter().all(|w| w.is_finished()) {
                let n = done.load(Ordering::Relaxed);
                match load {
                    Load::Calls(_) => bar.set_position(n),
                    Load::Duration(_) => {
                        bar.set_position((started.elapsed().as_millis() as u64).min(load_ms(load)));
                        bar.set_message(format!("{n} calls"));
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for w in workers {
            match w.join() {
                Ok(h) => histogram.add(h).expect("histograms of equal bounds add"),
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(
            call_error(ctx, &target.service, &prepared.method, e).hint(format!(
                "{} calls had completed",
                done.load(Ordering::Relaxed)
            )),
        );
    }
    let calls = histogram.len();
    if calls == 0 {
        return Err(CliError::new("no call completed").hint("give a longer `--duration`"));
    }

    anstream::println!();
    anstream::println!(
        "{HEADER}{calls} calls in {}: {:.0} calls/s{HEADER:#}",
        fmt_duration(elapsed),
        calls as f64 / elapsed.as_secs_f64()
    );
    let app = app_errors.load(Ordering::Relaxed);
    if app > 0 {
        anstream::println!(
            "{WARN}{app} of them returned an application error (an `Err` of `{}`){WARN:#}",
            safe(&prepared.method.output)
        );
    }
    anstream::println!();
    anstream::println!("{HEADER}latency per call{HEADER:#} (client side, JSON encoding included):");
    let ns = |v: u64| fmt_duration(Duration::from_nanos(v));
    for (label, value) in [
        ("min", histogram.min()),
        ("p50", histogram.value_at_quantile(0.50)),
        ("p90", histogram.value_at_quantile(0.90)),
        ("p99", histogram.value_at_quantile(0.99)),
        ("p99.9", histogram.value_at_quantile(0.999)),
        ("max", histogram.max()),
    ] {
        anstream::println!("  {label:<6} {:>10}", ns(value));
    }
    anstream::println!("  {:<6} {:>10}", "mean", ns(histogram.mean() as u64));
    anstream::println!();
    anstream::println!("{HEADER}histogram{HEADER:#}:");
    for line in histogram_lines(&histogram) {
        anstream::println!("  {line}");
    }
    Ok(())
}

fn load_ms(load: Load) -> u64 {
    match load {
        Load::Duration(d) => d.as_millis().max(1) as u64,
        Load::Calls(_) => 0,
    }
}

/// Power-of-two buckets from the fastest to the slowest call, each with a bar.
fn histogram_lines(h: &Histogram<u64>) -> Vec<String> {
    let bucket = |v: u64| 63 - v.max(1).leading_zeros() as usize;
    let mut counts = [0u64; 64];
    for v in h.iter_recorded() {
        counts[bucket(v.value_iterated_to())] += v.count_at_value();
    }
    let (Some(first), Some(last)) = (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) else {
        return Vec::new();
    };
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let total = h.len().max(1);
    (first..=last)
        .map(|i| {
            let lo = fmt_duration(Duration::from_nanos(1u64 << i));
            let hi = fmt_duration(Duration::from_nanos(1u64 << (i + 1).min(63)));
            let n = counts[i];
            let width = ((n as f64 / most as f64) * 40.0).ceil() as usize;
            format!(
                "{:>8} – {:<8} {:<40} {:>9} {:>5.1}%",
                lo,
                hi,
                "█".repeat(width),
                n,
                n as f64 * 100.0 / total as f64
            )
        })
        .collect()
}
