//! `Journal`, the interface of the one-way tests (`lpc-journal`, `tests/oneway.rs`): one-way
//! messages whose order the service records, and two-way calls that read it back.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The one-way test service's interface.
#[lpc::service]
pub trait Journal {
    /// Records that thread `thread` of caller `pid` posted its `seq`-th note.
    #[lpc(oneway)]
    fn note(&self, pid: u32, thread: u32, seq: u64);
    /// Blocks the connection's one-way handling until `release` (from another connection) or
    /// `max_ms` pass: the queue then fills.
    #[lpc(oneway)]
    fn stall(&self, max_ms: u64);
    /// Panics with `message`.
    #[lpc(oneway)]
    fn explode(&self, message: String);
    /// Counts the bytes.
    #[lpc(oneway)]
    fn blob(&self, bytes: Vec<u8>);
    /// The last `seq` noted for (`pid`, `thread`), if any.
    fn last(&self, pid: u32, thread: u32) -> Option<u64>;
    /// The notes recorded in all, if every (pid, thread) noted 0, 1, 2, ... in order; else
    /// the first note out of order.
    fn check(&self) -> Result<u64, String>;
    /// Blob bytes received in all.
    fn blob_bytes(&self) -> u64;
    /// Whether a `stall` is in progress.
    fn stalled(&self) -> bool;
    /// Ends the `stall` in progress (and the next one at once).
    fn release(&self);
}

/// What `lpc-journal serve` runs.
#[derive(Default)]
pub struct JournalService {
    notes: Mutex<Notes>,
    stall: Mutex<(bool, bool)>,
    stall_changed: Condvar,
}

#[derive(Default)]
struct Notes {
    last: HashMap<(u32, u32), u64>,
    total: u64,
    out_of_order: Option<String>,
    blob_bytes: u64,
}

impl Journal for JournalService {
    fn note(&self, pid: u32, thread: u32, seq: u64) {
        let mut notes = self.notes.lock().unwrap();
        let expected = notes.last.get(&(pid, thread)).map_or(0, |s| s + 1);
        if seq != expected && notes.out_of_order.is_none() {
            notes.out_of_order = Some(format!(
                "pid {pid} thread {thread}: note {seq} after {}",
                expected as i64 - 1
            ));
        }
        notes.last.insert((pid, thread), seq);
        notes.total += 1;
    }

    fn stall(&self, max_ms: u64) {
        let until = Instant::now() + Duration::from_millis(max_ms);
        let mut stall = self.stall.lock().unwrap();
        if std::mem::take(&mut stall.1) {
            return; // released before it began
        }
        stall.0 = true;
        self.stall_changed.notify_all();
        while stall.0 && Instant::now() < until {
            stall = self
                .stall_changed
                .wait_timeout(stall, until.saturating_duration_since(Instant::now()))
                .unwrap()
                .0;
        }
        stall.0 = false;
    }

    fn explode(&self, message: String) {
        panic!("{message}");
    }

    fn blob(&self, bytes: Vec<u8>) {
        self.notes.lock().unwrap().blob_bytes += bytes.len() as u64;
    }

    fn last(&self, pid: u32, thread: u32) -> Option<u64> {
        self.notes.lock().unwrap().last.get(&(pid, thread)).copied()
    }

    fn check(&self) -> Result<u64, String> {
        let notes = self.notes.lock().unwrap();
        match &notes.out_of_order {
            Some(why) => Err(why.clone()),
            None => Ok(notes.total),
        }
    }

    fn blob_bytes(&self) -> u64 {
        self.notes.lock().unwrap().blob_bytes
    }

    fn stalled(&self) -> bool {
        self.stall.lock().unwrap().0
    }

    fn release(&self) {
        let mut stall = self.stall.lock().unwrap();
        if stall.0 {
            stall.0 = false;
        } else {
            stall.1 = true;
        }
        self.stall_changed.notify_all();
    }
}
