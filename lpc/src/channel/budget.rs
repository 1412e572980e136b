//! What peers can make a service hold: bytes of shared memory mapped, and mappings — for one
//! connection and for all of them.
//!
//! Every mapping the service makes for a connection (its region, the spill buffers of both
//! directions, the loans' bulk buffers of both sides) is charged before it is made, by the
//! size mapped: not by the pages touched, since a sparse buffer that the service reads makes
//! the *service* commit its pages. A charge is given back when the mapping is dropped (a bulk
//! buffer's when its connection ends). A charge over a budget fails with a reason that names
//! the option to raise; the call gets `Busy`, never an abort of the service. Clients charge
//! nothing (their channels have no budget).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::ChannelError;

/// One budget: bytes and mappings, with their limits.
#[derive(Debug)]
pub(crate) struct Budget {
    what: &'static str,
    max_bytes: u64,
    max_mappings: u64,
    bytes: AtomicU64,
    mappings: AtomicU64,
}

impl Budget {
    /// `what` names it in refusals, with the option that sets it (e.g. "the service's
    /// shared memory (ServerOptions::max_shared_memory)").
    pub(crate) fn new(what: &'static str, max_bytes: u64, max_mappings: u64) -> Budget {
        Budget {
            what,
            max_bytes,
            max_mappings,
            bytes: AtomicU64::new(0),
            mappings: AtomicU64::new(0),
        }
    }

    /// Bytes and mappings charged now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.mappings.load(Ordering::Relaxed),
        )
    }

    fn take(&self, bytes: u64, mappings: u64) -> Result<(), String> {
        let fits = |counter: &AtomicU64, n: u64, max: u64| {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(n).filter(|&total| total <= max)
                })
                .is_ok()
        };
        if !fits(&self.bytes, bytes, self.max_bytes) {
            return Err(format!(
                "{bytes} more bytes of shared memory would exceed {} of {} bytes ({} in use)",
                self.what,
                self.max_bytes,
                self.bytes.load(Ordering::Relaxed)
            ));
        }
        if !fits(&self.mappings, mappings, self.max_mappings) {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(format!(
                "{mappings} more mappings would exceed {} of {} mappings",
                self.what, self.max_mappings
            ));
        }
        Ok(())
    }

    fn give(&self, bytes: u64, mappings: u64) {
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.mappings.fetch_sub(mappings, Ordering::AcqRel);
    }
}

/// A connection's budget, within the service's.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    own: Budget,
    all: Arc<Budget>,
}

impl ConnectionBudget {
    pub(crate) fn new(own: Budget, all: Arc<Budget>) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget { own, all })
    }

    /// Charges `bytes` in `mappings` mappings to this connection and the service.
    pub(crate) fn charge(
        self: &Arc<Self>,
        bytes: u64,
        mappings: u64,
    ) -> Result<Charge, ChannelError> {
        self.own.take(bytes, mappings).map_err(ChannelError::Busy)?;
        if let Err(reason) = self.all.take(bytes, mappings) {
            self.own.give(bytes, mappings);
            return Err(ChannelError::Busy(reason));
        }
        Ok(Charge {
            budget: self.clone(),
            bytes,
            mappings,
        })
    }
}

/// Bytes and mappings charged, given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<ConnectionBudget>,
    bytes: u64,
    mappings: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.own.give(self.bytes, self.mappings);
        self.budget.all.give(self.bytes, self.mappings);
    }
}

/// Why the decoding of a call's arguments was refused deep inside (a loan's buffer), which
/// surfaces as bad arguments: the service reports it as what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A budget had no room: `Busy`.
    Busy,
    /// A loan of this many bytes, over the receiver's limit: `TooLarge`.
    TooLarge(u64),
}

thread_local! {
    static REFUSED: Cell<Option<Refusal>> = const { Cell::new(None) };
}

/// Marks that `refusal` is about to fail the decoding of this thread's call.
pub(crate) fn note_refusal(refusal: Refusal) {
    REFUSED.with(|r| r.set(Some(refusal)));
}

/// The refusal noted since the last take, if any (and clears it).
pub(crate) fn take_refusal() -> Option<Refusal> {
    REFUSED.with(|r| r.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stay_within_both_budgets_and_come_back_on_drop() {
        let all = Arc::new(Budget::new("the service's", 100, 3));
        let a = ConnectionBudget::new(Budget::new("a's", 60, 10), all.clone());
        let b = ConnectionBudget::new(Budget::new("b's", 60, 10), all.clone());
        let a1 = a.charge(50, 1).unwrap();
        // Over a's own budget, not the service's.
        let err = a.charge(20, 1).unwrap_err().to_string();
        assert!(err.contains("a's of 60 bytes"), "{err}");
        note_refusal(Refusal::Busy);
        assert_eq!(take_refusal(), Some(Refusal::Busy));
        assert_eq!(take_refusal(), None, "the mark is taken once");
        let b1 = b.charge(50, 1).unwrap();
        // Within b's, over the service's: nothing stays charged to b.
        let err = b.charge(10, 1).unwrap_err().to_string();
        assert!(err.contains("the service's of 100 bytes"), "{err}");
        assert_eq!(all.used(), (100, 2));
        // The mappings count too.
        let _b2 = b.charge(0, 1).unwrap();
        let err = b.charge(0, 1).unwrap_err().to_string();
        assert!(err.contains("mappings"), "{err}");
        drop((a1, b1));
        assert_eq!(all.used(), (0, 1));
    }
}
