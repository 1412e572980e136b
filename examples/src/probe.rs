//! Options: call timeouts and cancellation, reconnecting after the service restarts, and
//! admitting another user.
//!
//! - `work(ms)` runs for `ms` milliseconds unless the caller gives up first: it polls
//!   `lpc::cancelled()`, which turns true once the caller's deadline passed (or the caller
//!   died, or the service stops), and returns early.
//! - `pid()` tells a reconnecting client which service process answered.
//! - `whoami()` returns the caller's credentials as the kernel recorded them at connect
//!   (`lpc::caller()`), which is what an access policy decides on.

use std::time::{Duration, Instant};

/// The probe's interface.
#[lpc::service]
pub trait Probe {
    /// Works for `ms` milliseconds, or less if the caller gives up; returns whether it
    /// finished.
    fn work(&self, ms: u64) -> bool;
    /// The service's process id.
    fn pid(&self) -> u32;
    /// The caller's pid, uid and gid, as the service sees them.
    fn whoami(&self) -> String;
}

/// The probe the service runs.
pub struct ProbeService;

impl Probe for ProbeService {
    fn work(&self, ms: u64) -> bool {
        let started = Instant::now();
        if let Some(deadline) = lpc::deadline() {
            let left = deadline.saturating_duration_since(started);
            println!(
                "service: work({ms}) started; the caller waits {} ms",
                left.as_millis()
            );
        }
        while started.elapsed() < Duration::from_millis(ms) {
            if lpc::cancelled() {
                // Whatever this returns now is thrown away: nobody waits for it.
                println!(
                    "service: work({ms}) cancelled after {} ms: the caller gave up",
                    started.elapsed().as_millis()
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn whoami(&self) -> String {
        match lpc::caller() {
            Some(c) => format!(
                "pid {}, uid {}, gid {}",
                c.pid().map_or("unknown".into(), |p| p.to_string()),
                c.uid().map_or("?".into(), |u| u.to_string()),
                c.gid().map_or("?".into(), |g| g.to_string())
            ),
            None => "unknown".into(),
        }
    }
}
