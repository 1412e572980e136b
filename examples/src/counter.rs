//! A stateful service: one counter shared by every client, and each client process's share.
//!
//! A service serves every connection with the one value given to `CounterServer::new`, from
//! several threads at once, so its methods take `&self` and its state is behind `Sync` types:
//! an atomic for the total, a mutex for the shares. `lpc::caller()` tells a handler which
//! process is calling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The counter's interface.
#[lpc::service]
pub trait Counter {
    /// Adds `by` to the total shared by all clients; returns the new total.
    fn increment(&self, by: u64) -> u64;
    /// The total shared by all clients.
    fn total(&self) -> u64;
    /// How much the calling process has added.
    fn mine(&self) -> u64;
}

/// The counter the service runs.
#[derive(Default)]
pub struct SharedCounter {
    total: AtomicU64,
    /// What each client process (by pid) has added. Kept for the service's life: a real
    /// service would forget a client when it no longer needs it. Clients whose pid the
    /// service cannot see (they run in another PID namespace, a container) share `None`.
    shares: Mutex<HashMap<Option<u32>, u64>>,
}

impl SharedCounter {
    fn caller_pid() -> Option<u32> {
        // Inside a handler, `caller()` is always `Some`: the credentials the kernel recorded
        // when the client connected. Its pid is `None` for a client in a PID namespace that
        // the service cannot see.
        lpc::caller().and_then(|c| c.pid())
    }
}

impl Counter for SharedCounter {
    fn increment(&self, by: u64) -> u64 {
        *self
            .shares
            .lock()
            .unwrap()
            .entry(Self::caller_pid())
            .or_default() += by;
        self.total.fetch_add(by, Ordering::SeqCst) + by
    }

    fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    fn mine(&self) -> u64 {
        let pid = Self::caller_pid();
        self.shares.lock().unwrap().get(&pid).copied().unwrap_or(0)
    }
}
