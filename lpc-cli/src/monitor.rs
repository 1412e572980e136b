//! `lpc monitor`: a service's per-method statistics and clients, refreshed.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anstyle::Style;
use lpc::info::ServiceInfo;

use crate::common::{
    fmt_duration, fmt_pid, fmt_rate, fmt_uptime, safe, table, CliResult, Ctx, DIM, NAME, WARN,
};

pub fn run(ctx: &Ctx, service: &str, interval: Duration, once: bool) -> CliResult {
    let tty = std::io::stdout().is_terminal();
    let mut prev = ctx.query(service)?;
    let mut prev_at = Instant::now();
    if once {
        // Rates need two polls.
        std::thread::sleep(interval);
        let cur = ctx.query(service)?;
        anstream::print!(
            "{}",
            frame(&cur, Some((&prev, prev_at.elapsed())), interval, once)
        );
        return Ok(());
    }
    let mut first = true;
    let mut show = |text: String| {
        if tty {
            // Home, then each line clears its rest, then clear below: no flicker. Written to
            // the raw stdout so that NO_COLOR (which strips escapes) keeps the redraw working.
            let _ = write!(
                std::io::stdout(),
                "{}\x1b[H",
                if first { "\x1b[2J" } else { "" }
            );
            for line in text.lines() {
                anstream::print!("{line}");
                let _ = writeln!(std::io::stdout(), "\x1b[K");
            }
            let _ = write!(std::io::stdout(), "\x1b[J");
        } else {
            anstream::println!("{text}");
        }
        let _ = std::io::stdout().flush();
        first = false;
    };
    show(frame(&prev, None, interval, once));
    loop {
        std::thread::sleep(interval);
        let cur = match ctx.query(service) {
            Ok(cur) => cur,
            Err(e) => {
                return Err(e.hint(format!(
                    "service `{service}` (pid {}) stopped answering",
                    fmt_pid(prev.pid)
                )))
            }
        };
        let now = Instant::now();
        show(frame(&cur, Some((&prev, now - prev_at)), interval, once));
        prev = cur;
        prev_at = now;
    }
}

/// One screen: the service line, the methods table and the clients table.
fn frame(
    cur: &ServiceInfo,
    prev: Option<(&ServiceInfo, Duration)>,
    interval: Duration,
    once: bool,
) -> String {
    let plain = Style::new();
    let mut out = String::new();
    let conns = cur.connections;
    out.push_str(&format!(
        "{NAME}{}{NAME:#}  pid {}  user {}  interface {} ({:016x})  up {}  {conns} connection{}\n",
        safe(&cur.service),
        fmt_pid(cur.pid),
        safe(&cur.user),
        safe(&cur.interface.name),
        cur.interface.fingerprint,
        fmt_uptime(cur.uptime),
        if conns == 1 { "" } else { "s" }
    ));
    if !once {
        out.push_str(&format!(
            "{DIM}refreshed every {}; Ctrl-C quits{DIM:#}\n",
            fmt_duration(interval)
        ));
    }
    out.push('\n');

    let rate = |name: &str, calls: u64| -> String {
        match prev {
            Some((p, dt)) if p.pid == cur.pid && dt > Duration::ZERO => {
                let before = p
                    .methods
                    .iter()
                    .find(|m| m.name == name)
                    .map_or(0, |m| m.calls);
                fmt_rate(calls.saturating_sub(before) as f64 / dt.as_secs_f64())
            }
            _ => "-".into(),
        }
    };
    let mut rows = Vec::new();
    let mut total = 0;
    for m in &cur.methods {
        total = u64::saturating_add(total, m.calls);
        let pct = |p: f64| {
            m.latency
                .percentile(p)
                .map_or("-".into(), |d| format!("≤{}", fmt_duration(d)))
        };
        // One-way methods count the messages handled (posted, never answered).
        let oneway = cur.interface.method(&m.name).is_some_and(|i| i.oneway);
        let name = if oneway {
            format!("{} (one-way)", m.name)
        } else {
            m.name.clone()
        };
        rows.push(vec![
            (name, NAME),
            (m.calls.to_string(), plain),
            (rate(&m.name, m.calls), plain),
            (
                m.errors.to_string(),
                if m.errors > 0 { WARN } else { plain },
            ),
            (pct(0.50), plain),
            (pct(0.90), plain),
            (pct(0.99), plain),
            (pct(0.999), plain),
        ]);
    }
    let total_rate = match prev {
        Some((p, dt)) if p.pid == cur.pid && dt > Duration::ZERO => {
            let before = p
                .methods
                .iter()
                .fold(0u64, |sum, m| sum.saturating_add(m.calls));
            fmt_rate(total.saturating_sub(before) as f64 / dt.as_secs_f64())
        }
        _ => "-".into(),
    };
    rows.push(vec![
        ("total".into(), DIM),
        (total.to_string(), DIM),
        (total_rate, DIM),
        (
            cur.methods
                .iter()
                .fold(0u64, |sum, m| sum.saturating_add(m.errors))
                .to_string(),
            DIM,
        ),
    ]);
    out.push_str(&table(
        &[
            "METHOD", "CALLS", "CALLS/S", "ERRORS", "P50", "P90", "P99", "P99.9",
        ],
        &rows,
    ));
    if cur.unknown_calls > 0 {
        out.push_str(&format!(
            "{WARN}{} calls of unknown methods{WARN:#}\n",
            cur.unknown_calls
        ));
    }
    out.push_str(&format!(
        "{DIM}CALLS/S: over the last {}.  ERRORS: panics and undecodable arguments (of one-way\n\
         messages too: their senders are not told).\n\
         P50..P99.9: time in the service of sampled calls since it started (bucket upper bounds).{DIM:#}\n\n",
        prev.map_or("-".into(), |(_, dt)| fmt_duration(dt))
    ));

    if cur.clients.is_empty() {
        out.push_str("no clients connected\n");
    } else {
        let rows: Vec<_> = cur
            .clients
            .iter()
            .map(|c| {
                vec![
                    (fmt_pid(c.pid), plain),
                    (c.user.clone(), plain),
                    (c.gid.map_or("-".into(), |g| g.to_string()), plain),
                    (
                        if c.process.is_empty() {
                            "?".into()
                        } else {
                            c.process.clone()
                        },
                        NAME,
                    ),
                    (fmt_uptime(c.connected_for), plain),
                    (c.calls.to_string(), plain),
                ]
            })
            .collect();
        out.push_str(&table(
            &["CLIENT PID", "USER", "GID", "PROCESS", "CONNECTED", "CALLS"],
            &rows,
        ));
        if cur.connections > cur.clients.len() as u64 {
            out.push_str(&format!(
                "{DIM}... and {} more connections{DIM:#}\n",
                cur.connections - cur.clients.len() as u64
            ));
        }
    }
    if !cur.subscribers.is_empty() {
        out.push('\n');
        let rows: Vec<_> = cur
            .subscribers
            .iter()
            .map(|s| {
                vec![
                    (fmt_pid(s.pid), plain),
                    (s.user.clone(), plain),
                    (
                        s.events.as_ref().map_or("all".into(), |e| e.join(",")),
                        NAME,
                    ),
                    (s.ring.to_string(), plain),
                    (s.policy.clone(), plain),
                    (s.delivered.to_string(), plain),
                    (s.dropped.to_string(), plain),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "SUBSCRIBER PID",
                "USER",
                "EVENTS",
                "RING",
                "WHEN FULL",
                "DELIVERED",
                "DROPPED",
            ],
            &rows,
        ));
    }
    out
}
