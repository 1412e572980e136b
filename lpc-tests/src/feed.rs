//! The events test service (`lpc-events`, tests/events.rs): a `Feed` of events and the calls
//! that make the service emit them.

/// The events.
#[lpc::events]
pub trait Feed {
    /// An item of a burst: its sequence number in the burst and a body.
    fn item(&self, seq: u64, body: Vec<u8>);
    /// Sent to the caller of `to_me` only.
    fn note(&self, n: u32);
}

/// The calls.
#[lpc::service]
pub trait FeedControl {
    /// Emits `count` items of `size` bytes to every subscriber; returns how many times an
    /// item was written into a ring (all subscribers together).
    fn burst(&self, count: u64, size: u32) -> u64;
    /// Emits `note(n)` to the caller; returns to how many subscriptions.
    fn to_me(&self, n: u32) -> u64;
    /// Subscribers now.
    fn subscribers(&self) -> u64;
}

/// The service.
pub struct FeedService {
    pub events: FeedEmitter,
}

impl FeedControl for FeedService {
    fn burst(&self, count: u64, size: u32) -> u64 {
        let body = vec![0xA5; size as usize];
        (0..count)
            .map(|seq| self.events.item(seq, body.clone()) as u64)
            .sum()
    }

    fn to_me(&self, n: u32) -> u64 {
        self.events.to_caller().map_or(0, |e| e.note(n) as u64)
    }

    fn subscribers(&self) -> u64 {
        self.events.hub().subscriber_count() as u64
    }
}
