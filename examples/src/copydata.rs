//! `WM_COPYDATA` of old: a one-way method that hands bytes to the service and returns at once.
//!
//! ```text
//! copydata-service               copydata-client
//!   ready: ...                     post copy_data(1, "hello ...")    returns once queued
//!   copy_data kind 1: 19 bytes     post copy_data(2, 20000 bytes)    returns once queued
//!   copy_data kind 2: 20000 bytes  call received()                   runs after both posts
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A service that receives data the way a window receives `WM_COPYDATA`.
#[lpc::service]
pub trait CopyData {
    /// Hands `bytes`, of application-defined `kind`, to the service. One-way: returns as soon
    /// as the message is in the connection's queue; the service handles it later, in order.
    #[lpc(oneway)]
    fn copy_data(&self, kind: u32, bytes: Vec<u8>);
    /// What the service has received so far, per kind: (kind, messages, bytes).
    fn received(&self) -> Vec<(u32, u64, u64)>;
}

/// The service's state: counts per kind.
#[derive(Default)]
pub struct Receiver {
    kinds: Mutex<BTreeMap<u32, (u64, u64)>>,
}

impl CopyData for Receiver {
    fn copy_data(&self, kind: u32, bytes: Vec<u8>) {
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) if bytes.len() <= 80 => format!(" {text:?}"),
            _ => String::new(),
        };
        println!("copy_data kind {kind}: {} bytes{text}", bytes.len());
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let entry = kinds.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += bytes.len() as u64;
    }

    fn received(&self) -> Vec<(u32, u64, u64)> {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds.iter().map(|(k, (n, b))| (*k, *n, *b)).collect()
    }
}
