//! Events from a service: a ticker that tells every subscriber the time, and tells the caller
//! of a job how far along it is.
//!
//! ```text
//! ticker-service                      ticker-client
//!   every 100 ms: tick(counter, at)     subscribes (linked to its connection)
//!                                       prints the first ticks
//!   job(5): progress(job, 1, 5) …  ->   calls job(5); prints the progress events, which go
//!           to the caller only          to its subscription only
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the ticker service tells its subscribers.
#[lpc::events]
pub trait TickerEvents {
    /// Every 100 ms, to every subscriber: a counter from 1 and the time (nanoseconds since
    /// the Unix epoch).
    fn tick(&self, counter: u64, at_ns: u64);
    /// To the caller of `job` alone, after each step: `done` of `of` steps of job `job`.
    fn progress(&self, job: u32, done: u32, of: u32);
}

/// The ticker's calls.
#[lpc::service]
pub trait Ticker {
    /// Runs a job of `steps` steps (10 ms each), sending `progress` to the caller after each;
    /// returns the job's number.
    fn job(&self, steps: u32) -> u32;
}

/// The service: its emitter, and a job counter.
pub struct TickerService {
    events: TickerEventsEmitter,
    jobs: AtomicU32,
}

impl TickerService {
    pub fn new(events: TickerEventsEmitter) -> TickerService {
        TickerService {
            events,
            jobs: AtomicU32::new(0),
        }
    }
}

impl Ticker for TickerService {
    fn job(&self, steps: u32) -> u32 {
        let job = self.jobs.fetch_add(1, Ordering::Relaxed) + 1;
        let caller = self.events.to_caller();
        for done in 1..=steps.min(1000) {
            std::thread::sleep(Duration::from_millis(10));
            if let Some(caller) = &caller {
                caller.progress(job, done, steps);
            }
        }
        job
    }
}

/// Emits `tick` every `period` on a thread of its own, forever.
pub fn start_ticking(events: TickerEventsEmitter, period: Duration) {
    std::thread::spawn(move || {
        for counter in 1u64.. {
            std::thread::sleep(period);
            let at_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            events.tick(counter, at_ns);
        }
    });
}
