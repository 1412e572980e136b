//! The one-way queue of a connection: a ring of records in the connection's shared memory
//! (after the call slots, see `shm::layout`), written by the client and consumed by the
//! service, for the methods marked `#[lpc(oneway)]`.
//!
//! ```text
//! tail (client's line)   bytes ever written, wrapping; published with a release store
//! sender waiting         nonzero while a client thread sleeps for room (on this word)
//! head (service's line)  bytes ever consumed, wrapping; published with a release store
//! ring                   records: [len | JSON bit (u32)] [method id (u32)] [payload] [pad to 8]
//!                        or a skip marker (u32::MAX): the rest of the ring is unused
//! ```
//!
//! A record never wraps: one that does not fit before the ring's end is preceded by a skip
//! marker and written at offset 0. A message holds at most half the ring less its header, so
//! an empty ring always has room for one (see [`max_message`]).
//!
//! Each side keeps its own position (the client its tail, the service its head) and only
//! publishes it: neither ever reads back its own word from shared memory, and everything it
//! reads of the other's (the peer's position, a record's header) is checked before use — a
//! position more than the ring's size away, a length past the bound or past what was
//! written, a record crossing the ring's end is a protocol violation that ends the
//! connection. Payloads are copied out of the ring before they are decoded.
//!
//! Waking, as for calls, costs a system call only when the other side sleeps: the client
//! publishes the tail, fences, and rings the doorbell only if the service-sleeping flag is
//! set (the service sets that flag, fences, and looks at the tail before it sleeps, see
//! `protocol::sleep`); the service publishes its head, and after a batch of messages fences
//! and wakes a sender only if one waits for room (it sets the sender-waiting flag, fences and
//! re-reads the head before it sleeps on that flag) and half the ring is free. Whoever wakes
//! the other clears the other's flag (an atomic swap, so that exactly one wakes it): a
//! sleeper woken but not yet running costs no more system calls. The client reads the head's
//! line only when the room it last saw runs out. A tight loop of posts to a service that is
//! awake makes no system call at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::protocol::{self, SysFutex};
use super::{Channel, ChannelError, LIVENESS_SLICE};
use crate::shm::layout::QueueView;
use crate::sys::{self, fence, WaitOutcome};

/// Bytes of a record's header: the payload length (with [`JSON`]) and the method id.
pub(crate) const RECORD_HEADER: usize = 8;
/// A record header's first word that says: the rest of the ring is unused, go to offset 0.
const SKIP: u32 = u32::MAX;
/// Set in a record's length word: the payload is JSON arguments (`lpc call --oneway`).
const JSON: u32 = 1 << 31;

/// How many times a post rang the service's doorbell (a system call), in this process.
static WAKES: AtomicU64 = AtomicU64::new(0);
/// How many times a post slept for room (a system call), in this process.
static WAITS: AtomicU64 = AtomicU64::new(0);

/// How many times posts in this process woke a sleeping service (each a `futex_wake`), and
/// slept waiting for room in a full queue (each a `futex_wait`).
#[cfg(feature = "test-util")]
pub(crate) fn system_calls() -> (u64, u64) {
    (WAKES.load(Ordering::Relaxed), WAITS.load(Ordering::Relaxed))
}

/// The largest payload of one message in a ring of `size` bytes: half of it, less the
/// record's header. Then a record always fits in an empty ring, wherever its head stands.
pub(crate) fn max_message(size: usize) -> usize {
    size / 2 - RECORD_HEADER
}

fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// Why a post did not go in.
#[derive(Debug)]
pub(crate) enum PostError {
    /// The queue is full and the sender chose not to wait.
    Full { size: usize },
    /// The queue stayed full until the sender's deadline.
    TimedOut,
    /// The connection failed (service gone, protocol violated) or the message is too large.
    Channel(ChannelError),
}

impl From<ChannelError> for PostError {
    fn from(e: ChannelError) -> Self {
        PostError::Channel(e)
    }
}

/// The client's end of the queue: its tail (the shared word is only published) and how many
/// of its threads wait for room. One per connection, behind a mutex: posts from several
/// threads go in one at a time, so the queue's order is the order their posts returned.
#[derive(Debug, Default)]
pub(crate) struct Sender {
    tail: u32,
    /// The service's head as last read: the room it leaves is known without reading the
    /// head's line (which the service writes) on every post.
    head: u32,
    waiters: u32,
}

/// A message taken out of the queue (its payload copied into the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Posted {
    pub(crate) method: u32,
    pub(crate) json: bool,
}

/// The service's end of the queue: its head.
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    head: u32,
}

impl Channel {
    /// The connection's one-way queue, if it has one.
    fn queue(&self) -> Result<QueueView<'_>, ChannelError> {
        self.memory
            .queue()
            .ok_or_else(|| ChannelError::Protocol("this connection has no one-way queue".into()))
    }

    /// The largest one-way payload this connection carries (`None`: it has no queue).
    pub(crate) fn max_post(&self) -> Option<usize> {
        self.memory.queue().map(|q| max_message(q.size()))
    }

    /// Client side: writes one message (`method`, `payload`) into the one-way queue and wakes
    /// the service if it sleeps. When the queue has no room: `Full` at once if `wait` is
    /// `None`, else waits for room for up to that long (`Some(None)`: as long as the service
    /// lives), releasing `sender` meanwhile so that other threads' posts that fit go on.
    pub(crate) fn post(
        &self,
        sender: &Mutex<Sender>,
        method: u32,
        json: bool,
        payload: &[u8],
        wait: Option<Option<Duration>>,
    ) -> Result<(), PostError> {
        let queue = self.queue()?;
        let size = queue.size();
        let limit = max_message(size);
        if payload.len() > limit {
            return Err(ChannelError::TooLarge {
                size: payload.len() as u64,
                limit: limit as u64,
            }
            .into());
        }
        let record = RECORD_HEADER + padded(payload.len());
        let mut guard = sender.lock().unwrap_or_else(|p| p.into_inner());
        // Computed when the post first has to wait (no clock read otherwise).
        let mut deadline = None;
        loop {
            let pos = guard.tail as usize & (size - 1);
            let skip = if pos + record > size { size - pos } else { 0 };
            let needed = skip + record;
            let mut room = Self::room(&guard, guard.head, size)?;
            if room < needed {
                let head = queue.head().load(Ordering::Acquire);
                room = Self::room(&guard, head, size)?;
                guard.head = head;
            }
            if room >= needed {
                if skip > 0 {
                    queue
                        .write(pos, &SKIP.to_le_bytes())
                        .expect("skip marker inside the ring");
                }
                let at = (pos + skip) & (size - 1);
                let length = payload.len() as u32 | if json { JSON } else { 0 };
                let mut header = [0u8; RECORD_HEADER];
                header[..4].copy_from_slice(&length.to_le_bytes());
                header[4..].copy_from_slice(&method.to_le_bytes());
                queue
                    .write(at, &header)
                    .expect("record header inside the ring");
                queue
                    .write(at + RECORD_HEADER, payload)
                    .expect("record inside the ring");
                guard.tail = guard.tail.wrapping_add(needed as u32);
                queue.tail().store(guard.tail, Ordering::Release);
                // The Dekker pair with the service's sleep: publish, fence, then look at its
                // sleeping flag (it sets the flag, fences, then looks at the tail). The flag is
                // cleared by whoever rings: one ring wakes the service, and until it runs
                // (long, on a loaded machine) later posts must not ring again.
                fence(Ordering::SeqCst);
                let sleeping = self.memory.service_sleeping();
                if sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::Relaxed) != 0
                {
                    WAKES.fetch_add(1, Ordering::Relaxed);
                    protocol::ring(&SysFutex, &self.doorbell());
                }
                return Ok(());
            }
            let Some(limit) = wait else {
                return Err(PostError::Full { size });
            };
            // A limit too far to represent is no limit.
            let until =
                *deadline.get_or_insert_with(|| limit.and_then(|l| Instant::now().checked_add(l)));
            guard = self.wait_for_room(sender, guard, needed, until)?;
        }
    }

    /// Free bytes of the ring, from our tail and the service's `head` (checked: a head more
    /// than the ring's size behind our tail, or ahead of it, is not one an honest service
    /// publishes).
    fn room(sender: &Sender, head: u32, size: usize) -> Result<usize, ChannelError> {
        let used = sender.tail.wrapping_sub(head) as usize;
        if used > size {
            return Err(ChannelError::Protocol(format!(
                "the service's one-way queue head {head} is {used} bytes behind the tail {}, \
                 more than the {size} byte ring",
                sender.tail
            )));
        }
        Ok(size - used)
    }

    /// Sleeps (without holding `sender`) until the service frees room, the deadline passes,
    /// or the service dies; returns the lock again.
    fn wait_for_room<'s>(
        &self,
        sender: &'s Mutex<Sender>,
        mut guard: MutexGuard<'s, Sender>,
        needed: usize,
        deadline: Option<Instant>,
    ) -> Result<MutexGuard<'s, Sender>, PostError> {
        let queue = self.queue()?;
        let mut slice = LIVENESS_SLICE;
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                return Err(PostError::TimedOut);
            }
            slice = slice.min(deadline - now);
        }
        // The other Dekker pair: raise the flag, fence, re-read the head (the service
        // publishes its head, fences, then looks at the flag).
        guard.waiters += 1;
        queue.sender_waiting().store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let head = queue.head().load(Ordering::Acquire);
        let room = Self::room(&guard, head, queue.size());
        if room.is_ok() {
            guard.head = head;
        }
        let outcome = match room {
            Ok(room) if room < needed => {
                drop(guard);
                WAITS.fetch_add(1, Ordering::Relaxed);
                // On the flag, not the head: the head moves with every message taken, which would
                // end each wait at once; the flag changes only when the service wakes us.
                let outcome = sys::wait(queue.sender_waiting(), 1, Some(slice));
                guard = sender.lock().unwrap_or_else(|p| p.into_inner());
                Some(outcome)
            }
            _ => None,
        };
        guard.waiters -= 1;
        if guard.waiters == 0 {
            queue.sender_waiting().store(0, Ordering::Relaxed);
        }
        room?;
        if outcome == Some(WaitOutcome::TimedOut) && self.stream.peer_closed() {
            return Err(ChannelError::PeerGone.into());
        }
        Ok(guard)
    }

    /// Service side: the client's published tail (what it has written so far).
    pub(crate) fn queue_tail(&self) -> Option<u32> {
        self.memory
            .queue()
            .map(|q| q.tail().load(Ordering::Acquire))
    }
}

impl Receiver {
    /// Bytes consumed so far (the head this side published).
    pub(crate) fn position(&self) -> u32 {
        self.head
    }

    /// Service side: copies the next message, if `until` (a tail read earlier) is not reached
    /// yet, into `out` and frees its room (call [`Receiver::wake_senders`] after a batch of
    /// them). Every word read
    /// from the ring is checked first; a malformed queue is a protocol error.
    pub(crate) fn next(
        &mut self,
        channel: &Channel,
        until: u32,
        out: &mut Vec<u8>,
    ) -> Result<Option<Posted>, ChannelError> {
        let queue = channel.queue()?;
        let size = queue.size();
        loop {
            if until == self.head {
                return Ok(None);
            }
            let used = until.wrapping_sub(self.head) as usize;
            if used > size {
                return Err(ChannelError::Protocol(format!(
                    "the client's one-way queue tail {until} is {used} bytes past the head {}, \
                     more than the {size} byte ring",
                    self.head
                )));
            }
            // The head is always a multiple of 8 (records are padded), so is the size: the
            // header lies inside the ring.
            let pos = self.head as usize & (size - 1);
            let header: [u8; RECORD_HEADER] = queue
                .read_array(pos)
                .expect("record header inside the ring");
            let word = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            if word == SKIP {
                let skip = size - pos;
                if skip > used {
                    return Err(ChannelError::Protocol(format!(
                        "a skip marker in the one-way queue at {pos} skips past what the client \
                         wrote ({used} bytes)"
                    )));
                }
                self.advance(queue, skip);
                continue;
            }
            let len = (word & !JSON) as usize;
            let method = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let record = RECORD_HEADER + padded(len);
            if len > max_message(size) || pos + record > size || record > used {
                return Err(ChannelError::Protocol(format!(
                    "a one-way message of {len} bytes at {pos} does not fit in the queue (ring \
                     of {size} bytes, {used} written, at most {} per message)",
                    max_message(size)
                )));
            }
            out.clear();
            queue
                .copy_out(pos + RECORD_HEADER, len, out)
                .expect("record inside the ring (checked)");
            self.advance(queue, record);
            return Ok(Some(Posted {
                method,
                json: word & JSON != 0,
            }));
        }
    }

    /// Service side, after taking messages: wakes the senders that wait for room, once at
    /// least half the ring is free (the Dekker pair with `wait_for_room`: the head published,
    /// fence, then the flag). Once per batch of messages, not per message: a sender that fills
    /// the queue faster than the service empties it then sleeps once per half a ring, not
    /// once per message. (The wake-up comes at the latest when the queue is empty, which has
    /// room for any message; a sender also re-checks every `LIVENESS_SLICE`.)
    pub(crate) fn wake_senders(&self, channel: &Channel) {
        let Ok(queue) = channel.queue() else {
            return;
        };
        fence(Ordering::SeqCst);
        // Cleared by the wake, as the client clears the service's sleeping flag: the senders
        // raise it again if they must sleep again.
        let waiting = queue.sender_waiting();
        // (The tail read now, not `until`: the sender may have filled the ring since. What a
        // lying client writes there only decides when it is woken.)
        if waiting.load(Ordering::Relaxed) != 0
            && queue.tail().load(Ordering::Relaxed).wrapping_sub(self.head) as usize
                <= queue.size() / 2
            && waiting.swap(0, Ordering::Relaxed) != 0
        {
            sys::wake(queue.sender_waiting(), u32::MAX);
        }
    }

    /// Frees `n` bytes: publishes the new head (see [`Receiver::wake_senders`]).
    fn advance(&mut self, queue: QueueView<'_>, n: usize) {
        self.head = self.head.wrapping_add(n as u32);
        queue.head().store(self.head, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::shm::layout::{ConnectionMemory, Geometry};
    use crate::sys::{SharedMemory, Stream};
    use std::sync::Arc;

    const GEOMETRY: Geometry = Geometry {
        slot_count: 1,
        slot_size: 256,
        queue_size: 4096,
    };

    /// A service's and a client's channel over one region (and a socket pair).
    fn pair() -> (Channel, Channel, (Stream, Stream)) {
        let shm = SharedMemory::create("queue-test", GEOMETRY.region_len()).unwrap();
        let service = ConnectionMemory::initialize(&shm, GEOMETRY).unwrap();
        let client = ConnectionMemory::open(&shm, GEOMETRY).unwrap();
        let (a, b) = Stream::pair().unwrap();
        let (c, d) = Stream::pair().unwrap();
        (
            Channel::new("t", service, Arc::new(a)),
            Channel::new("t", client, Arc::new(c)),
            (b, d),
        )
    }

    #[test]
    fn messages_come_out_in_order_across_the_ring_end() {
        let (service, client, _peer) = pair();
        let sender = Mutex::new(Sender::default());
        let mut receiver = Receiver::default();
        let mut out = Vec::new();
        // 300-byte payloads (312-byte records) wrap the 4 KiB ring several times.
        for round in 0u32..40 {
            for i in 0..5u32 {
                let payload = vec![(round * 5 + i) as u8; 300 + i as usize];
                client
                    .post(&sender, round * 5 + i, i == 3, &payload, None)
                    .unwrap();
            }
            let until = service.queue_tail().unwrap();
            for i in 0..5u32 {
                let m = receiver.next(&service, until, &mut out).unwrap().unwrap();
                assert_eq!(m.method, round * 5 + i);
                assert_eq!(m.json, i == 3);
                assert_eq!(out, vec![(round * 5 + i) as u8; 300 + i as usize]);
            }
            assert!(receiver.next(&service, until, &mut out).unwrap().is_none());
        }
    }

    #[test]
    fn a_full_queue_refuses_or_times_out_and_a_large_message_is_too_large() {
        let (_service, client, _peer) = pair();
        let sender = Mutex::new(Sender::default());
        let max = max_message(4096);
        assert!(matches!(
            client.post(&sender, 1, false, &vec![0; max + 1], None),
            Err(PostError::Channel(ChannelError::TooLarge { size, limit }))
                if size == max as u64 + 1 && limit == max as u64
        ));
        // Two of the largest fill the ring exactly.
        client.post(&sender, 1, false, &vec![0; max], None).unwrap();
        client.post(&sender, 1, false, &vec![0; max], None).unwrap();
        assert!(matches!(
            client.post(&sender, 1, false, b"", None),
            Err(PostError::Full { size: 4096 })
        ));
        let started = Instant::now();
        let limit = Some(Some(Duration::from_millis(30)));
        assert!(matches!(
            client.post(&sender, 1, false, &vec![0; max], limit),
            Err(PostError::TimedOut)
        ));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_waiting_sender_goes_on_when_the_service_frees_room() {
        let (service, client, _peer) = pair();
        let client = Arc::new(client);
        let sender = Arc::new(Mutex::new(Sender::default()));
        let max = max_message(4096);
        client.post(&sender, 1, false, &vec![1; max], None).unwrap();
        client.post(&sender, 1, false, &vec![1; max], None).unwrap();
        let (c, s) = (client.clone(), sender.clone());
        let waiter = std::thread::spawn(move || {
            c.post(
                &s,
                2,
                false,
                &vec![2; max],
                Some(Some(Duration::from_secs(10))),
            )
        });
        let mut receiver = Receiver::default();
        let mut out = Vec::new();
        let until = service.queue_tail().unwrap();
        assert_eq!(
            receiver
                .next(&service, until, &mut out)
                .unwrap()
                .unwrap()
                .method,
            1
        );
        receiver.wake_senders(&service);
        waiter.join().unwrap().unwrap();
        let until = service.queue_tail().unwrap();
        for method in [1, 2] {
            assert_eq!(
                receiver
                    .next(&service, until, &mut out)
                    .unwrap()
                    .unwrap()
                    .method,
                method
            );
        }
    }

    #[test]
    fn a_lying_client_breaks_only_its_connection() {
        let (service, client, _peer) = pair();
        let queue = client.memory.queue().unwrap();
        let mut receiver = Receiver::default();
        let mut out = Vec::new();
        // A tail far past the head.
        assert!(matches!(
            receiver.next(&service, 1 << 20, &mut out),
            Err(ChannelError::Protocol(_))
        ));
        // A record longer than the bound, and one longer than what was written.
        for len in [4000u32, 64] {
            let mut header = [0u8; 8];
            header[..4].copy_from_slice(&len.to_le_bytes());
            queue.write(0, &header).unwrap();
            let err = Receiver::default()
                .next(&service, 16, &mut out)
                .unwrap_err();
            assert!(matches!(err, ChannelError::Protocol(_)), "{err}");
        }
        // A skip marker in the middle of what was written, past the tail.
        queue.write(0, &SKIP.to_le_bytes()).unwrap();
        let err = Receiver::default()
            .next(&service, 16, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("skip"), "{err}");
        // A lying service: a head ahead of the client's tail, read once the client needs room
        // (it reads the head only then).
        let sender = Mutex::new(Sender::default());
        let max = max_message(4096);
        client.post(&sender, 1, false, &vec![0; max], None).unwrap();
        client.post(&sender, 1, false, &vec![0; max], None).unwrap();
        queue.head().store(8192, Ordering::Release);
        assert!(matches!(
            client.post(&sender, 1, false, b"x", None),
            Err(PostError::Channel(ChannelError::Protocol(_)))
        ));
    }
}
