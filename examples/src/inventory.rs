//! Errors: an application error type that crosses to the caller as the inner `Err` of a
//! `Result`, and lpc's own errors, which stay outside it.
//!
//! A method declared `-> Result<u32, StockError>` is called as
//! `-> Result<Result<u32, StockError>, lpc::Error>`: the outer `Err` says the call failed
//! (the service is gone, timed out, panicked, …), the inner one is the handler's answer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Why the inventory refused: an application error, sent to the caller unchanged. Any type
/// that is `Serialize + Deserialize` can be one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockError {
    /// No such item.
    UnknownItem(String),
    /// Fewer left than asked for.
    NotEnough {
        /// The item.
        item: String,
        /// How many are left.
        available: u32,
    },
}

impl fmt::Display for StockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StockError::UnknownItem(item) => write!(f, "no item `{item}`"),
            StockError::NotEnough { item, available } => {
                write!(f, "not enough {item}: {available} left")
            }
        }
    }
}

impl std::error::Error for StockError {}

/// The inventory's interface.
#[lpc::service]
pub trait Inventory {
    /// Takes `count` of `item`; returns how many are left.
    fn take(&self, item: &str, count: u32) -> Result<u32, StockError>;
    /// Adds `count` of `item` (a new item starts at 0); returns how many there are now.
    fn restock(&self, item: &str, count: u32) -> u32;
    /// How many of `item` are left. It assumes the item exists and panics otherwise — a bug,
    /// kept to show what a panic in a handler becomes: `lpc::Error::Remote` for the caller,
    /// while the service goes on serving.
    fn stock(&self, item: &str) -> u32;
}

/// The inventory the service runs.
pub struct Store {
    items: Mutex<BTreeMap<String, u32>>,
}

impl Default for Store {
    /// A store with 10 apples.
    fn default() -> Self {
        Store {
            items: Mutex::new(BTreeMap::from([("apples".to_owned(), 10)])),
        }
    }
}

impl Inventory for Store {
    fn take(&self, item: &str, count: u32) -> Result<u32, StockError> {
        let mut items = self.items.lock().unwrap();
        let left = items
            .get_mut(item)
            .ok_or_else(|| StockError::UnknownItem(item.to_owned()))?;
        if *left < count {
            return Err(StockError::NotEnough {
                item: item.to_owned(),
                available: *left,
            });
        }
        *left -= count;
        Ok(*left)
    }

    fn restock(&self, item: &str, count: u32) -> u32 {
        let mut items = self.items.lock().unwrap();
        let now = items.entry(item.to_owned()).or_default();
        *now = now.saturating_add(count);
        *now
    }

    fn stock(&self, item: &str) -> u32 {
        // The bug: `expect` panics for an unknown item. The panic does not take the mutex
        // (it is released before), so later calls work.
        let count = self.items.lock().unwrap().get(item).copied();
        count.expect("stock() called for an unknown item")
    }
}
