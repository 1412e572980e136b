//! The event queue of one subscriber: a ring of records in a shared-memory object of its own
//! (created by the service, mapped by both), written by the service and consumed by the
//! subscriber, for the events of an `#[lpc::events]` trait.
//!
//! ```text
//! 0    tail      (service's line)  bytes ever written, wrapping; release store
//! 4    dropped   (service's line)  events not delivered to this subscriber (wrapping count)
//! 8    closed    (service's line)  nonzero: the service ended the subscription (why: CLOSED_*)
//! 12   oldest    (service's line)  of those, events taken back from the head (drop oldest)
//! 64   head      (client's line)   bytes ever consumed, wrapping; the client advances it by
//!                                  compare-and-swap, and so does the service when it drops
//!                                  the oldest record of a full ring
//! 68   sleeping  (client's line)   nonzero while the subscriber sleeps (on this word)
//! 128  ring      records: [len (u32)] [event id (u32)] [missed (u32)] [0 (u32)] [payload]
//!                [pad to 8], or a skip marker (u32::MAX) followed by the record at offset 0
//! ```
//!
//! The record format and its checks are the one-way queue's (`channel::queue`), with the
//! roles swapped; a skip marker and the record after it are one *unit*: the head only ever
//! stands at the start of a unit.
//!
//! **Neither side trusts the other.** The service keeps the start and length of every unit it
//! wrote and not yet saw consumed in private memory (`units`), so dropping the oldest never
//! reads the ring; a head that is not the start of a unit it wrote, or more than the ring
//! behind the tail, is a lying subscriber and ends its subscription. The subscriber checks
//! every header it reads (a length over the bound or past the tail, a record crossing the
//! ring's end, a skip past the tail is a protocol error) and copies a payload out before it
//! is decoded; it advances the head by compare-and-swap from the value it read, so a record
//! the service took back meanwhile (drop oldest) is discarded, however torn the copy.
//!
//! **Drops are counted, never silent,** and reported where the gap is. An event refused at
//! the tail (ring full under drop newest, or too large for the ring) is counted in the next
//! record the service writes (`missed`); an event taken back at the head (drop oldest) is
//! counted in `oldest`, which the subscriber reads before the record at the head and reports
//! the growth of with it. `dropped` counts every drop: what a subscription ends without
//! having been told is reported at its end.
//!
//! **Waking** is the one-way queue's Dekker pair: the service publishes the tail, fences, and
//! wakes the subscriber only if its sleeping flag is set (clearing it with a swap, so one
//! wake-up is made per sleep); the subscriber raises the flag, fences and re-reads the tail
//! before it sleeps. No system call per event while the subscriber is awake.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::ChannelError;
use crate::shm::Region;
use crate::sys::{self, fence, AtomicU32, SharedMemory, WaitOutcome};
pub use crate::wire::handshake::Overflow;

/// Bytes before the ring.
pub(crate) const HEADER: usize = 128;
const TAIL: usize = 0;
const DROPPED: usize = 4;
const CLOSED: usize = 8;
const OLDEST: usize = 12;
const HEAD: usize = 64;
const SLEEPING: usize = 68;
const RECORD_HEADER: usize = 16;
const SKIP: u32 = u32::MAX;

/// The ring a subscriber gets when it asks for none in particular.
pub const DEFAULT_EVENT_RING: u32 = 64 * 1024;

/// The smallest and largest ring a subscriber may ask for.
pub(crate) const MIN_RING: usize = 4096;
pub(crate) const MAX_RING: usize = 16 << 20;

/// `closed`: the subscriber's ring was full and its policy is to be disconnected.
pub(crate) const CLOSED_OVERFLOW: u32 = 1;
/// `closed`: the subscriber broke the protocol (a lying head).
pub(crate) const CLOSED_PROTOCOL: u32 = 2;

/// The ring size for a requested one: a power of two within the bounds.
pub(crate) fn ring_size(requested: usize) -> usize {
    requested
        .clamp(MIN_RING, MAX_RING)
        .checked_next_power_of_two()
        .unwrap_or(MAX_RING)
        .min(MAX_RING)
}

/// The largest payload one event may have in a ring of `size` bytes.
pub(crate) fn max_event(size: usize) -> usize {
    size / 2 - RECORD_HEADER
}

fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// How an event went to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// In the ring (perhaps after taking back `dropped` older events).
    Delivered { dropped: u32 },
    /// Not delivered (full, drop newest; or larger than the ring can hold): counted.
    Dropped,
    /// The ring was full and the policy is to disconnect: the subscription must end.
    Overflowed,
}

fn word(region: &Region, offset: usize) -> &AtomicU32 {
    region.atomic_u32(offset)
}

/// The service's end of one subscriber's ring.
#[derive(Debug)]
pub(crate) struct Producer {
    region: Region,
    size: usize,
    tail: u32,
    /// The head as last read (its room is known without reading the client's line).
    head: u32,
    dropped: u32,
    /// Drops at the tail since the last record written (told in the next).
    pending: u32,
    oldest: u32,
    policy: Overflow,
    /// (start, length) of each unit written and not yet seen consumed, oldest first.
    units: VecDeque<(u32, u32)>,
}

impl Producer {
    /// A new ring of `size` bytes (a power of two, see [`ring_size`]) in a fresh
    /// shared-memory object, to send to the subscriber.
    pub(crate) fn create(
        name: &str,
        size: usize,
        policy: Overflow,
    ) -> Result<(Producer, SharedMemory), ChannelError> {
        assert!(size.is_power_of_two() && (MIN_RING..=MAX_RING).contains(&size));
        let shm = SharedMemory::create(name, HEADER + size)?;
        let region = Region::new(shm.map()?);
        Ok((
            Producer {
                region,
                size,
                tail: 0,
                head: 0,
                dropped: 0,
                pending: 0,
                oldest: 0,
                policy,
                units: VecDeque::new(),
            },
            shm,
        ))
    }

    fn count_drop(&mut self) {
        self.dropped = self.dropped.wrapping_add(1);
        word(&self.region, DROPPED).store(self.dropped, Ordering::Release);
    }

    /// An event refused at the tail: told with the next record.
    fn drop_newest(&mut self) {
        self.pending = self.pending.wrapping_add(1);
        self.count_drop();
    }

    /// Marks the ring closed, with why (the subscriber reads it once the service is gone).
    pub(crate) fn close(&self, why: u32) {
        word(&self.region, CLOSED).store(why, Ordering::Release);
    }

    /// Reads the subscriber's head and forgets the units it consumed; a head that is not the
    /// start of a unit written, or outside the ring, is a protocol violation.
    fn refresh_head(&mut self) -> Result<(), ChannelError> {
        let head = word(&self.region, HEAD).load(Ordering::Acquire);
        if self.tail.wrapping_sub(head) as usize > self.size {
            return Err(ChannelError::Protocol(format!(
                "the subscriber's head {head} is more than the ring behind the tail {}",
                self.tail
            )));
        }
        while let Some(&(start, _)) = self.units.front() {
            if start == head {
                break;
            }
            self.units.pop_front();
        }
        if self.units.is_empty() && head != self.tail {
            return Err(ChannelError::Protocol(format!(
                "the subscriber's head {head} is not the start of an event the service wrote"
            )));
        }
        self.head = head;
        Ok(())
    }

    /// Writes one event (`id`, `payload`) into the ring, applying the policy if it is full,
    /// and wakes the subscriber if it sleeps. Never waits.
    pub(crate) fn push(&mut self, id: u32, payload: &[u8]) -> Result<Pushed, ChannelError> {
        if payload.len() > max_event(self.size) {
            self.drop_newest();
            return Ok(Pushed::Dropped);
        }
        let record = RECORD_HEADER + padded(payload.len());
        let pos = self.tail as usize & (self.size - 1);
        let skip = if pos + record > self.size {
            self.size - pos
        } else {
            0
        };
        let needed = skip + record;
        let mut taken = 0u32;
        loop {
            let room = self.size - self.tail.wrapping_sub(self.head) as usize;
            if room >= needed {
                break;
            }
            self.refresh_head()?;
            let room = self.size - self.tail.wrapping_sub(self.head) as usize;
            if room >= needed {
                break;
            }
            match self.policy {
                Overflow::DropNewest => {
                    self.drop_newest();
                    return Ok(Pushed::Dropped);
                }
                Overflow::Disconnect => {
                    self.count_drop();
                    self.close(CLOSED_OVERFLOW);
                    return Ok(Pushed::Overflowed);
                }
                Overflow::DropOldest => {
                    let Some(&(start, len)) = self.units.front() else {
                        // Room < needed with nothing written cannot be: a record fits an
                        // empty ring. Defensive: treat as a drop.
                        self.drop_newest();
                        return Ok(Pushed::Dropped);
                    };
                    let took = word(&self.region, HEAD).compare_exchange(
                        start,
                        start.wrapping_add(len),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    if took.is_ok() {
                        self.units.pop_front();
                        self.head = start.wrapping_add(len);
                        self.oldest = self.oldest.wrapping_add(1);
                        word(&self.region, OLDEST).store(self.oldest, Ordering::Release);
                        self.count_drop();
                        taken += 1;
                    }
                    // Else the subscriber consumed it meanwhile: look again.
                }
            }
        }
        if skip > 0 {
            self.region
                .copy_in(HEADER + pos, &SKIP.to_le_bytes())
                .expect("skip marker inside the ring");
        }
        let at = (pos + skip) & (self.size - 1);
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&id.to_le_bytes());
        header[8..12].copy_from_slice(&self.pending.to_le_bytes());
        self.pending = 0;
        self.region
            .copy_in(HEADER + at, &header)
            .expect("record header inside the ring");
        self.region
            .copy_in(HEADER + at + RECORD_HEADER, payload)
            .expect("record inside the ring");
        self.units.push_back((self.tail, needed as u32));
        self.tail = self.tail.wrapping_add(needed as u32);
        word(&self.region, TAIL).store(self.tail, Ordering::Release);
        // The Dekker pair with the subscriber's sleep (it raises the flag, fences, re-reads
        // the tail).
        fence(Ordering::SeqCst);
        let sleeping = word(&self.region, SLEEPING);
        if sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::Relaxed) != 0 {
            sys::wake(sleeping, u32::MAX);
        }
        Ok(Pushed::Delivered { dropped: taken })
    }
}

/// One event taken from the ring (its payload copied into the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) id: u32,
    /// Events not delivered since the last one taken (as the service counts them).
    pub(crate) missed: u32,
}

/// The subscriber's end of its ring.
#[derive(Debug)]
pub(crate) struct Consumer {
    region: Region,
    size: usize,
    /// `oldest` as last reported.
    oldest: u32,
    /// Drops reported in all (to tell what is left at the end).
    reported: u32,
}

impl Consumer {
    /// Maps a ring received from the service, checking its size (`size`, which the service
    /// announced, must be a power of two within the bounds and match the object).
    pub(crate) fn open(shm: &SharedMemory, size: usize) -> Result<Consumer, ChannelError> {
        if !size.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&size) {
            return Err(ChannelError::Protocol(format!(
                "the service announced an event ring of {size} bytes"
            )));
        }
        if shm.len() != HEADER + size {
            return Err(ChannelError::Protocol(format!(
                "the event ring is {} bytes, not the {} announced",
                shm.len(),
                HEADER + size
            )));
        }
        let region = Region::new(shm.map()?);
        Ok(Consumer {
            region,
            size,
            oldest: 0,
            reported: 0,
        })
    }

    /// Bytes of the ring.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Why the service closed the subscription (0: it did not say).
    pub(crate) fn closed(&self) -> u32 {
        word(&self.region, CLOSED).load(Ordering::Acquire)
    }

    /// Events the service says it dropped since the last event taken (reported by the next
    /// [`Consumer::next`], or at the end).
    #[cfg(test)]
    pub(crate) fn unreported(&self) -> u32 {
        word(&self.region, DROPPED)
            .load(Ordering::Acquire)
            .wrapping_sub(self.reported)
    }

    /// Takes the next event, if any, copying its payload into `out`. Every word read from
    /// the ring is checked first.
    pub(crate) fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<Taken>, ChannelError> {
        let size = self.size;
        let bad = |what: String| Err(ChannelError::Protocol(what));
        loop {
            let head = word(&self.region, HEAD).load(Ordering::Acquire);
            let tail = word(&self.region, TAIL).load(Ordering::Acquire);
            let oldest = word(&self.region, OLDEST).load(Ordering::Acquire);
            if tail == head {
                return Ok(None);
            }
            let used = tail.wrapping_sub(head) as usize;
            if used > size || !head.is_multiple_of(8) {
                // Between our loads of the head and of the tail the service may have taken
                // records back (drop oldest, moving the head) and written more: the tail can
                // then stand more than the ring ahead of the head we read. Only a stable head
                // makes it an error.
                if word(&self.region, HEAD).load(Ordering::Acquire) != head {
                    continue;
                }
                return bad(format!(
                    "the event ring's tail {tail} and head {head} are not {size} bytes apart \
                     at most"
                ));
            }
            let mut pos = head as usize & (size - 1);
            let mut unit = 0;
            let header: [u8; RECORD_HEADER] = self
                .region
                .read_array(HEADER + pos)
                .expect("header inside the ring");
            let mut header = header;
            if u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) == SKIP {
                unit = size - pos;
                if unit + RECORD_HEADER > used {
                    return bad(format!("a skip marker at {pos} skips past the tail"));
                }
                pos = 0;
                header = self
                    .region
                    .read_array(HEADER)
                    .expect("header inside the ring");
            }
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let id = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let at_tail = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
            let record = RECORD_HEADER + padded(len.min(size));
            if len > max_event(size) || pos + record > size || unit + record > used {
                // A record the service took back while we read its header can look like
                // this: only a stable head makes it an error.
                if word(&self.region, HEAD).load(Ordering::Acquire) != head {
                    continue;
                }
                return bad(format!(
                    "an event of {len} bytes at {pos} does not fit in the ring ({size} bytes, \
                     {used} written)"
                ));
            }
            out.clear();
            self.region
                .copy_out(HEADER + pos + RECORD_HEADER, len, out)
                .expect("record inside the ring (checked)");
            let next = head.wrapping_add((unit + record) as u32);
            if word(&self.region, HEAD)
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Taken back by the service (drop oldest): whatever was copied is discarded.
                continue;
            }
            let missed = at_tail.saturating_add(oldest.wrapping_sub(self.oldest));
            self.oldest = oldest;
            self.reported = self.reported.wrapping_add(missed);
            return Ok(Some(Taken { id, missed }));
        }
    }

    /// Marks the drops reported so far as reported (at the end of a subscription).
    pub(crate) fn take_unreported(&mut self) -> u32 {
        let dropped = word(&self.region, DROPPED).load(Ordering::Acquire);
        let missed = dropped.wrapping_sub(self.reported);
        self.reported = dropped;
        missed
    }

    /// Sleeps until the service writes an event, `timeout` passes, or [`Consumer::wake`];
    /// returns at once if an event is there.
    pub(crate) fn sleep(&self, timeout: Duration) -> WaitOutcome {
        let sleeping = word(&self.region, SLEEPING);
        sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let head = word(&self.region, HEAD).load(Ordering::Acquire);
        let tail = word(&self.region, TAIL).load(Ordering::Acquire);
        if head != tail {
            sleeping.store(0, Ordering::Relaxed);
            return WaitOutcome::Woken;
        }
        let outcome = sys::wait(sleeping, 1, Some(timeout));
        sleeping.store(0, Ordering::Relaxed);
        outcome
    }

    /// The raw words, for tests that play a hostile service.
    #[cfg(test)]
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pair(size: usize, policy: Overflow) -> (Producer, Consumer) {
        let (producer, shm) = Producer::create("events-test", size, policy).unwrap();
        let consumer = Consumer::open(&shm, size).unwrap();
        (producer, consumer)
    }

    #[test]
    fn events_come_out_in_order_across_the_ring_end() {
        let (mut p, mut c) = pair(4096, Overflow::DropNewest);
        let mut out = Vec::new();
        for round in 0u32..40 {
            for i in 0..5u32 {
                let payload = vec![(round * 5 + i) as u8; 300 + i as usize];
                assert_eq!(
                    p.push(round * 5 + i, &payload).unwrap(),
                    Pushed::Delivered { dropped: 0 }
                );
            }
            for i in 0..5u32 {
                let t = c.next(&mut out).unwrap().unwrap();
                assert_eq!((t.id, t.missed), (round * 5 + i, 0));
                assert_eq!(out, vec![(round * 5 + i) as u8; 300 + i as usize]);
            }
            assert!(c.next(&mut out).unwrap().is_none());
        }
    }

    #[test]
    fn a_full_ring_drops_the_newest_and_says_how_many() {
        let (mut p, mut c) = pair(4096, Overflow::DropNewest);
        let mut out = Vec::new();
        let mut delivered = 0;
        for i in 0..100u32 {
            if matches!(p.push(i, &[0; 100]).unwrap(), Pushed::Delivered { .. }) {
                delivered += 1;
            }
        }
        assert!(delivered < 100 && delivered > 10);
        let mut seen = 0;
        while let Some(t) = c.next(&mut out).unwrap() {
            assert_eq!((t.id, t.missed), (seen, 0));
            seen += 1;
        }
        assert_eq!(seen, delivered);
        // The drops happened after the events read: reported with the next one.
        assert_eq!(c.unreported(), 100 - delivered);
        p.push(1000, b"x").unwrap();
        let t = c.next(&mut out).unwrap().unwrap();
        assert_eq!((t.id, t.missed), (1000, 100 - delivered));
    }

    #[test]
    fn a_full_ring_drops_the_oldest_keeping_the_latest() {
        let (mut p, mut c) = pair(4096, Overflow::DropOldest);
        let mut out = Vec::new();
        for i in 0..1000u32 {
            assert!(matches!(
                p.push(i, &i.to_le_bytes()).unwrap(),
                Pushed::Delivered { .. }
            ));
        }
        let first = c.next(&mut out).unwrap().unwrap();
        assert!(first.missed > 0 && first.id == first.missed, "{first:?}");
        let mut last = first.id;
        while let Some(t) = c.next(&mut out).unwrap() {
            assert_eq!(t.id, last + 1);
            assert_eq!(out, t.id.to_le_bytes());
            last = t.id;
        }
        assert_eq!(last, 999);
    }

    #[test]
    fn a_full_ring_with_disconnect_overflows_and_says_so() {
        let (mut p, c) = pair(4096, Overflow::Disconnect);
        let mut outcome = Pushed::Delivered { dropped: 0 };
        for i in 0..1000u32 {
            outcome = p.push(i, &[0; 64]).unwrap();
            if outcome == Pushed::Overflowed {
                break;
            }
        }
        assert_eq!(outcome, Pushed::Overflowed);
        assert_eq!(c.closed(), CLOSED_OVERFLOW);
        assert_eq!(c.unreported(), 1);
    }

    #[test]
    fn a_lying_service_or_subscriber_is_a_protocol_error() {
        let (mut p, mut c) = pair(4096, Overflow::DropOldest);
        let mut out = Vec::new();
        // A tail far past the head.
        word(c.region(), TAIL).store(1 << 20, Ordering::Release);
        assert!(matches!(c.next(&mut out), Err(ChannelError::Protocol(_))));
        // A record longer than the bound.
        word(c.region(), TAIL).store(16, Ordering::Release);
        c.region().copy_in(HEADER, &4000u32.to_le_bytes()).unwrap();
        assert!(matches!(c.next(&mut out), Err(ChannelError::Protocol(_))));
        // A skip marker past the tail.
        c.region().copy_in(HEADER, &SKIP.to_le_bytes()).unwrap();
        assert!(matches!(c.next(&mut out), Err(ChannelError::Protocol(_))));
        // A subscriber head that is not an event start.
        word(c.region(), TAIL).store(0, Ordering::Release);
        for i in 0..200u32 {
            p.push(i, &[0; 40]).unwrap();
        }
        word(c.region(), HEAD).store(p.tail.wrapping_sub(4), Ordering::Release);
        let mut failed = false;
        for i in 0..200u32 {
            if p.push(i, &[0; 40]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    #[test]
    fn a_sleeping_subscriber_is_woken_and_a_timeout_ends_a_sleep() {
        let (mut p, c) = pair(4096, Overflow::DropNewest);
        assert_eq!(c.sleep(Duration::from_millis(10)), WaitOutcome::TimedOut);
        let c = std::sync::Arc::new(std::sync::Mutex::new(c));
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                let mut guard = c2.lock().unwrap();
                if let Some(t) = guard.next(&mut out).unwrap() {
                    return t.id;
                }
                let outcome = guard.sleep(Duration::from_secs(10));
                assert_eq!(outcome, WaitOutcome::Woken);
            }
        });
        // Whether it sleeps yet or not, the event reaches it.
        std::thread::yield_now();
        let _ = p.push(7, b"hi").unwrap();
        assert_eq!(t.join().unwrap(), 7);
    }
}

#[cfg(all(test, not(loom)))]
mod race_tests {
    use super::*;
    use std::time::Instant;

    /// A subscriber reading while the service writes flat out into its full ring under drop
    /// oldest: between the subscriber's loads of the head and of the tail the service may take
    /// records back (moving the head) and write more, so the tail may stand more than the
    /// ring ahead of the head it read. That is no protocol violation (it ended such
    /// subscriptions in lpc-bench's fan-out, issue 14).
    #[test]
    fn a_head_taken_back_between_the_reads_is_no_violation() {
        let (mut p, shm) = Producer::create("events-race", 4096, Overflow::DropOldest).unwrap();
        let mut c = Consumer::open(&shm, 4096).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let producer = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                p.push(1, &n.to_le_bytes()).unwrap();
                n += 1;
            }
            n
        });
        let mut out = Vec::new();
        let mut taken = 0u64;
        let started = Instant::now();
        // Until enough events were taken for the race to have come up many times (it did within
        // 60,000 before the fix), or 5 s.
        while taken < 300_000 && started.elapsed() < Duration::from_secs(5) {
            match c.next(&mut out) {
                Ok(Some(_)) => taken += 1,
                Ok(None) => std::hint::spin_loop(),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = producer.join();
                    panic!("after {taken} events: {e}");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let pushed = producer.join().unwrap();
        assert!(taken > 0 && pushed >= taken, "{taken} taken of {pushed}");
    }
}
