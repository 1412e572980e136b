//! The call protocol of one connection, used by both sides: payloads in and out of slots
//! (inline or through spill buffers), the doorbell, and waiting.
//!
//! The service side is driven by `server::connection`, the client side by `client`; both go
//! through this type so that the rules of the shared region live in one place.

pub(crate) mod budget;
pub(crate) mod bulk;
pub(crate) mod events;
pub(crate) mod handles;
#[cfg(all(test, loom))]
mod model;
pub(crate) mod payload;
pub(crate) mod protocol;
pub(crate) mod queue;
pub(crate) mod scope;
pub(crate) mod spin;
pub(crate) mod state;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{CallPhase, Error};
use crate::shm::layout::{ConnectionMemory, SlotView, FRAME_SIZE, HEAD_PAYLOAD, HEAD_SIZE};
use crate::shm::Region;
use crate::sys::{AtomicU32, SharedMemory, Stream, WaitOutcome};
use crate::wire::handshake::Message;
use crate::wire::FrameHeader;

pub(crate) use self::protocol::Cancel;
use self::protocol::{Doorbell, Slot, Step, SysFutex};
use self::spin::{SpinBudget, Spinner};
use self::state::REPLY;

/// How long a blocked client sleeps before checking that the service is still alive.
/// A call in flight learns of the service's death within about this long.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(20);
/// How long a sleeping connection thread goes without re-checking that it should stop.
const SERVICE_RECHECK: Duration = Duration::from_secs(5);
/// Smallest spill buffer: below this, growing again soon is likely.
const MIN_SPILL: usize = 64 * 1024;
/// How long to wait for a spill buffer that the peer announced in a frame (it sends the
/// buffer before it publishes the frame, so it is normally already queued).
const SPILL_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a channel operation failed.
#[derive(Debug)]
pub(crate) enum ChannelError {
    /// The peer closed the connection (it exited or crashed).
    PeerGone,
    /// A payload exceeds the receiver's limit.
    TooLarge { size: u64, limit: u64 },
    /// The peer broke the protocol.
    Protocol(String),
    /// A budget of the service would be exceeded (see `budget`): the call is refused.
    Busy(String),
    /// The OS failed us (e.g. out of memory for a spill buffer).
    Io(io::Error),
}

impl From<io::Error> for ChannelError {
    fn from(e: io::Error) -> Self {
        if crate::sys::is_hangup(&e) {
            return ChannelError::PeerGone;
        }
        match e.kind() {
            io::ErrorKind::InvalidData => ChannelError::Protocol(e.to_string()),
            _ => ChannelError::Io(e),
        }
    }
}

/// For logs: why the connection failed.
impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::PeerGone => f.write_str("the peer left during a transfer"),
            ChannelError::TooLarge { size, limit } => {
                write!(f, "payload of {size} bytes over the limit of {limit}")
            }
            ChannelError::Protocol(detail) => f.write_str(detail),
            ChannelError::Busy(reason) => write!(f, "busy: {reason}"),
            ChannelError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl ChannelError {
    /// The public error for this failure of a call (or, with `method` `None`, of something
    /// else on the connection) with service `service`; `phase` is where the call stood.
    pub(crate) fn into_error(self, service: &str, method: Option<&str>, phase: CallPhase) -> Error {
        let service = service.to_owned();
        let method = method.map(str::to_owned);
        match self {
            ChannelError::PeerGone => Error::Disconnected {
                service,
                method,
                phase,
                reconnect: false, // the client sets it from its options
            },
            ChannelError::TooLarge { size, limit } => Error::TooLarge {
                service,
                method,
                size,
                limit,
            },
            ChannelError::Protocol(detail) => Error::Protocol {
                service,
                method,
                detail,
            },
            ChannelError::Busy(reason) => Error::Busy {
                service,
                method,
                reason,
            },
            ChannelError::Io(source) => Error::Io {
                service,
                method,
                context: "moving data through shared memory".into(),
                source,
            },
        }
    }

    /// Whether nothing more on the connection can be trusted after it.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(self, ChannelError::PeerGone | ChannelError::Protocol(_))
    }
}

/// A request the service took (see [`Channel::take_request`]).
pub(crate) struct Taken {
    /// Its frame, read once the client could no longer change it.
    pub(crate) frame: Result<FrameHeader, String>,
    /// The slot's head, read with the frame: a small payload is there.
    pub(crate) head: [u8; HEAD_SIZE],
    /// Taken from REQUEST into SERVING (its client may still give up on it), or not.
    pub(crate) withdrawable: bool,
}

/// How a client's wait for a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    Reply,
    /// The deadline passed; the slot was last seen in this state.
    TimedOut(u32),
    /// The service is gone; the slot was last seen in this state.
    PeerGone(u32),
}

/// A slot's spill buffer in one direction, replaced (never resized) when a larger one is
/// needed. Each side writes only into buffers it created (`outgoing`) and reads only from
/// buffers its peer created (`incoming`), so the two sides never disagree about which buffer a
/// generation names, even when a call was abandoned halfway.
#[derive(Default)]
struct Spill {
    generation: u32,
    region: Option<Region>,
    /// What `region` costs the service's budget (nothing on a client).
    charge: Option<budget::Charge>,
    /// An incoming buffer received but not mapped: its charge was refused (the call got
    /// `Busy`); mapped when a later frame names it again.
    pending: Option<SharedMemory>,
}

/// Buffers received from the peer but not yet claimed.
#[derive(Default)]
struct Inbox {
    /// Spill buffers by slot: (generation, memory).
    spills: HashMap<u32, (u32, SharedMemory)>,
    /// Bulk buffers by id.
    bulks: HashMap<u32, SharedMemory>,
    /// Handles passed in calls, by the sender's id, unchecked (see `handles`).
    #[cfg(not(loom))]
    handles: std::collections::BTreeMap<u32, crate::sys::Received>,
}

pub(crate) use crate::shm::layout::MAX_BULK_BUFFERS;

/// A payload to decode: in private memory, or in a spill buffer; with the largest payload the
/// receiving side accepts, which bounds what decoding it may allocate.
pub(crate) struct Payload<'a> {
    bytes: PayloadBytes<'a>,
    limit: u64,
}

enum PayloadBytes<'a> {
    Local(&'a [u8]),
    Spilled(payload::SpillSource<'a>),
}

impl<'a> Payload<'a> {
    /// A payload in private memory, received under `limit`.
    pub(crate) fn local(bytes: &'a [u8], limit: u64) -> Payload<'a> {
        Payload {
            bytes: PayloadBytes::Local(bytes),
            limit,
        }
    }

    /// Decodes the payload as exactly one `T` (within the budget of its length and limit).
    #[inline]
    pub(crate) fn decode<T: serde::Deserialize<'a>>(self) -> Result<T, String> {
        match self.bytes {
            PayloadBytes::Local(bytes) => crate::wire::codec::decode_exact(bytes, self.limit),
            PayloadBytes::Spilled(source) => {
                crate::wire::codec::decode_exact_from(source, self.limit)
            }
        }
    }

    /// The whole payload in private memory (copied out if it is spilled).
    pub(crate) fn into_local(self) -> io::Result<&'a [u8]> {
        match self.bytes {
            PayloadBytes::Local(bytes) => Ok(bytes),
            PayloadBytes::Spilled(mut source) => source.localize(),
        }
    }
}

/// One connection's shared region, socket and spill buffers.
pub(crate) struct Channel {
    /// The service's name, for errors.
    service: Arc<str>,
    memory: ConnectionMemory,
    stream: Arc<Stream>,
    outgoing: Box<[Mutex<Spill>]>,
    incoming: Box<[Mutex<Spill>]>,
    /// Spill buffers received from the peer but not yet claimed by their slot.
    inbox: Mutex<Inbox>,
    /// Bulk buffers for loans, both directions.
    pub(crate) bulk: bulk::BulkTable,
    /// Handles passed in calls: the limits, and the next id this side gives one.
    pub(crate) handles: handles::HandleState,
    /// The largest payload the peer accepts from us.
    peer_limit: u64,
    /// The largest payload we accept from the peer.
    receive_limit: u64,
    /// Shared by both ends (chosen by the service): names the connection in loan handles.
    token: u64,
    /// Why the peer can no longer be trusted, once it sent something that is not what the
    /// protocol expects on the socket (a descriptor that is not lpc shared memory, ...):
    /// seen where a failure is reported, so that the connection is closed even when the
    /// failure surfaced as one call's bad arguments or result (a loan's buffer).
    broken: std::sync::OnceLock<String>,
    /// What this connection may make the service map (`None` on a client), and the charge of
    /// the region itself.
    budget: Option<(Arc<budget::ConnectionBudget>, budget::Charge)>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("service", &self.service)
            .field("geometry", &self.memory.geometry())
            .finish()
    }
}

impl Channel {
    /// The channel of a connection with service `service`.
    pub(crate) fn new(service: &str, memory: ConnectionMemory, stream: Arc<Stream>) -> Channel {
        let slots = memory.geometry().slot_count;
        Channel {
            service: service.into(),
            outgoing: (0..slots).map(|_| Mutex::default()).collect(),
            incoming: (0..slots).map(|_| Mutex::default()).collect(),
            memory,
            stream,
            inbox: Mutex::new(Inbox::default()),
            bulk: bulk::BulkTable::default(),
            handles: handles::HandleState::default(),
            peer_limit: u64::MAX,
            receive_limit: u64::MAX,
            token: 0,
            broken: std::sync::OnceLock::new(),
            budget: None,
        }
    }

    /// Charges every mapping made for this connection from now on to `budget` (a service's
    /// channel), with `region`, the charge of the connection's region.
    pub(crate) fn set_budget(
        &mut self,
        budget: Arc<budget::ConnectionBudget>,
        region: budget::Charge,
    ) {
        self.budget = Some((budget, region));
    }

    /// Charges one mapping of `bytes` to the connection's budget, if it has one.
    pub(crate) fn charge(&self, bytes: usize) -> Result<Option<budget::Charge>, ChannelError> {
        match &self.budget {
            Some((budget, _)) => budget.charge(bytes as u64, 1).map(Some),
            None => Ok(None),
        }
    }

    /// Why the peer broke the protocol on the socket, if it did (see the field).
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    /// The service's name.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Sets the connection's token (see `Welcome::token`).
    pub(crate) fn set_token(&mut self, token: u64) {
        self.token = token;
    }

    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Sets the largest payload we accept from the peer (for spill and bulk buffers).
    pub(crate) fn set_receive_limit(&mut self, limit: u64) {
        self.receive_limit = limit;
    }

    pub(crate) fn receive_limit(&self) -> u64 {
        self.receive_limit
    }

    pub(crate) fn set_peer_limit(&mut self, limit: u64) {
        self.peer_limit = limit;
    }

    pub(crate) fn peer_limit(&self) -> u64 {
        self.peer_limit
    }

    pub(crate) fn memory(&self) -> &ConnectionMemory {
        &self.memory
    }

    pub(crate) fn slot(&self, index: u32) -> SlotView<'_> {
        self.memory.slot(index)
    }

    fn spill(spills: &[Mutex<Spill>], slot: u32) -> MutexGuard<'_, Spill> {
        // A panic while holding this lock leaves the Spill consistent (fields are replaced
        // whole), so a poisoned lock is safe to keep using.
        spills[slot as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `header`'s length against `limit` (the largest payload this side accepts) and
    /// against memory.
    fn payload_len(header: &FrameHeader, limit: u64) -> Result<usize, ChannelError> {
        if header.len > limit {
            return Err(ChannelError::TooLarge {
                size: header.len,
                limit,
            });
        }
        usize::try_from(header.len)
            .map_err(|_| ChannelError::Protocol("payload length does not fit in memory".into()))
    }

    /// The slot's incoming spill buffer that `header` names (mapped if new), holding `len`.
    fn incoming_spill(
        &self,
        slot: u32,
        header: &FrameHeader,
        limit: u64,
        len: usize,
    ) -> Result<MutexGuard<'_, Spill>, ChannelError> {
        let mut spill = Self::spill(&self.incoming, slot);
        if spill.generation != header.spill_generation || spill.region.is_none() {
            let shm = match spill.pending.take() {
                Some(shm) if spill.generation == header.spill_generation => shm,
                _ => self.receive_spill(slot, header.spill_generation)?,
            };
            // A spill buffer is at most twice the largest payload (power-of-two rounding).
            let max = limit.saturating_mul(2).max(MIN_SPILL as u64);
            if shm.len() as u64 > max {
                return Err(ChannelError::Protocol(format!(
                    "peer sent a {} byte spill buffer, more than the {max} allowed",
                    shm.len()
                )));
            }
            // The buffer it replaces is named no more: its memory goes back first.
            spill.region = None;
            spill.charge = None;
            spill.generation = header.spill_generation;
            let charge = match self.charge(shm.len()) {
                Ok(charge) => charge,
                Err(e) => {
                    spill.pending = Some(shm);
                    return Err(e);
                }
            };
            // The peer writes it, we only read: mapped read-only.
            spill.region = Some(Region::new(shm.map_read_only()?));
            spill.charge = charge;
        }
        let size = spill.region.as_ref().map_or(0, Region::len);
        if len > size {
            return Err(ChannelError::Protocol(format!(
                "payload length {len} exceeds the {size} byte spill buffer"
            )));
        }
        Ok(spill)
    }

    /// Runs `f` on the payload that `header` (already validated) describes for `slot`: an
    /// inline payload copied into `scratch`, a spilled one where it lies (see
    /// [`payload::SpillSource`]). `limit` is the largest payload this side accepts.
    #[cfg(test)]
    pub(crate) fn with_payload<R>(
        &self,
        slot: u32,
        header: &FrameHeader,
        limit: u64,
        scratch: &mut payload::Buffer,
        f: impl FnOnce(Payload<'_>) -> R,
    ) -> Result<R, ChannelError> {
        let head = self.slot(slot).read_head();
        self.with_payload_in(slot, header, &head, limit, scratch, f)
    }

    /// [`Channel::with_payload`] with the slot's head already copied out (with the frame):
    /// a payload small enough to be all in the head is read from there.
    #[inline]
    pub(crate) fn with_payload_in<R>(
        &self,
        slot: u32,
        header: &FrameHeader,
        head: &[u8; HEAD_SIZE],
        limit: u64,
        scratch: &mut payload::Buffer,
        f: impl FnOnce(Payload<'_>) -> R,
    ) -> Result<R, ChannelError> {
        if !header.spilled() && header.len <= HEAD_PAYLOAD as u64 && header.len <= limit {
            let payload = &head[FRAME_SIZE..FRAME_SIZE + header.len as usize];
            return Ok(f(Payload::local(payload, limit)));
        }
        self.with_payload_slow(slot, header, limit, scratch, f)
    }

    fn with_payload_slow<R>(
        &self,
        slot: u32,
        header: &FrameHeader,
        limit: u64,
        scratch: &mut payload::Buffer,
        f: impl FnOnce(Payload<'_>) -> R,
    ) -> Result<R, ChannelError> {
        let len = Self::payload_len(header, limit)?;
        let scratch = scratch.get();
        if !header.spilled() {
            scratch.clear();
            self.slot(slot).copy_inline_out(len, scratch).map_err(|_| {
                ChannelError::Protocol(format!("inline payload length {len} exceeds the slot"))
            })?;
            return Ok(f(Payload::local(scratch, limit)));
        }
        let spill = self.incoming_spill(slot, header, limit, len)?;
        let region = spill.region.as_ref().expect("checked by incoming_spill");
        Ok(f(Payload {
            bytes: PayloadBytes::Spilled(payload::SpillSource::new(region, len, scratch)),
            limit,
        }))
    }

    /// Copies the payload that `header` (already validated) describes for `slot` into `out`.
    /// `limit` is the largest payload this side accepts.
    pub(crate) fn read_payload(
        &self,
        slot: u32,
        header: &FrameHeader,
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        let len = Self::payload_len(header, limit)?;
        // An allocation failure must fail this call, not abort the process.
        out.try_reserve(len).map_err(|_| {
            ChannelError::Io(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("no memory for a {len} byte payload"),
            ))
        })?;
        if !header.spilled() {
            return self.slot(slot).copy_inline_out(len, out).map_err(|_| {
                ChannelError::Protocol(format!("inline payload length {len} exceeds the slot"))
            });
        }
        let spill = self.incoming_spill(slot, header, limit, len)?;
        let region = spill.region.as_ref().expect("checked by incoming_spill");
        region
            .copy_out(0, len, out)
            .map_err(|_| ChannelError::Protocol("payload outside its spill buffer".into()))
    }

    /// Takes the spill buffer of `generation` for `slot` from the socket (or from the inbox,
    /// if another thread already received it).
    fn receive_spill(&self, slot: u32, generation: u32) -> Result<SharedMemory, ChannelError> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some((g, shm)) = inbox.spills.remove(&slot) {
                if g == generation {
                    return Ok(shm);
                }
                // An older buffer superseded before it was used: drop it.
            }
            self.receive_one(&mut inbox, || {
                format!("frame on slot {slot} names spill buffer {generation}, which never arrived")
            })?;
        }
    }

    /// Takes bulk buffer `id` from the socket (or the inbox).
    pub(crate) fn receive_bulk(&self, id: u32) -> Result<SharedMemory, ChannelError> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(shm) = inbox.bulks.remove(&id) {
                return Ok(shm);
            }
            self.receive_one(&mut inbox, || {
                format!("a loan names bulk buffer {id}, which never arrived")
            })?;
        }
    }

    /// Puts bulk buffer `id` back in the inbox, unmapped (see `bulk_theirs`).
    pub(crate) fn keep_bulk(&self, id: u32, shm: SharedMemory) {
        self.inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bulks
            .insert(id, shm);
    }

    /// Receives one buffer notice from the socket into the inbox. The peer sends a notice
    /// before the frame that uses it, so it is normally queued already.
    fn receive_one(
        &self,
        inbox: &mut Inbox,
        missing: impl Fn() -> String,
    ) -> Result<(), ChannelError> {
        let deadline = Instant::now() + SPILL_NOTICE_TIMEOUT;
        let mut buf = [0u8; 64];
        let (n, received) = match self.stream.recv_any(&mut buf, Some(deadline)) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(ChannelError::Protocol(missing()))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // A descriptor that is not lpc shared memory, a truncated message.
                let reason = e.to_string();
                let _ = self.broken.set(reason.clone());
                return Err(ChannelError::Protocol(reason));
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ChannelError::PeerGone);
        }
        let message = Message::decode(&buf[..n]);
        #[cfg(not(loom))]
        if let Ok(Message::Handle { id }) = message {
            return match received {
                Some(handle) => {
                    self.keep_handle(inbox, id, handle);
                    Ok(())
                }
                None => Err(ChannelError::Protocol(format!(
                    "handle notice {id} carries no descriptor"
                ))),
            };
        }
        // Anything else attached must be lpc shared memory.
        let shm = match received.map(crate::sys::Received::into_shared_memory) {
            None => None,
            Some(Ok(shm)) => Some(shm),
            Some(Err(e)) => {
                let reason = e.to_string();
                let _ = self.broken.set(reason.clone());
                return Err(ChannelError::Protocol(reason));
            }
        };
        match (message, shm) {
            (Ok(Message::Spill { slot, generation }), Some(shm))
                if slot < self.memory.geometry().slot_count =>
            {
                inbox.spills.insert(slot, (generation, shm));
            }
            (Ok(Message::Bulk { id }), Some(shm)) if (id as usize) < MAX_BULK_BUFFERS => {
                inbox.bulks.insert(id, shm);
            }
            // Meant for the reactor (which only notices it arrived): nothing to keep.
            (Ok(Message::Slots), None) => {}
            (Ok(other), _) => {
                return Err(ChannelError::Protocol(format!(
                    "unexpected message on the socket: {other:?}"
                )))
            }
            (Err(e), _) => return Err(ChannelError::Protocol(e.to_string())),
        }
        Ok(())
    }

    #[inline]
    fn words(&self, slot: u32) -> Slot<'_, AtomicU32> {
        let view = self.slot(slot);
        Slot {
            state: view.state(),
            client_waiting: view.client_waiting(),
        }
    }

    fn doorbell(&self) -> Doorbell<'_, AtomicU32> {
        Doorbell {
            bell: self.memory.doorbell(),
            service_sleeping: self.memory.service_sleeping(),
        }
    }

    /// Client side: publishes a written request on `slot` and wakes the service thread that
    /// serves it if that thread sleeps: the connection's own thread, on the doorbell, for slot
    /// 0; the slot's own thread, on the slot's state word, for the others. `fixed`: the call
    /// has no deadline and will not be withdrawn (the service takes it without a
    /// compare-and-swap, see `state`).
    #[inline]
    pub(crate) fn submit(&self, slot: u32, fixed: bool) {
        let request = if fixed {
            state::REQUEST_FIXED
        } else {
            state::REQUEST
        };
        if slot == 0 {
            protocol::submit(&SysFutex, &self.words(slot), &self.doorbell(), request);
        } else {
            let waiting = self.slot(slot).service_waiting();
            protocol::submit_to_slot(&SysFutex, &self.words(slot), waiting, request);
        }
    }

    /// Wakes the service's connection thread.
    pub(crate) fn ring(&self) {
        protocol::ring(&SysFutex, &self.doorbell());
    }

    /// Wakes every service thread of the connection (to stop): the connection's own on the
    /// doorbell, each slot's on its state word. All slots, not only those the "slots used" mark
    /// names: the client can lower the mark, and a stop is rare enough for a few more calls.
    pub(crate) fn ring_all(&self) {
        self.ring();
        for slot in 1..self.memory.geometry().slot_count {
            crate::sys::wake_in(self.slot(slot).state(), 1, crate::sys::Lane::Service);
        }
    }

    /// Client side: gives up on the call in `slot`.
    pub(crate) fn cancel(&self, slot: u32) -> Cancel {
        protocol::cancel(&self.words(slot))
    }

    /// Client side: waits until `slot` holds a reply, the deadline passes, or the service dies.
    pub(crate) fn wait_for_reply(
        &self,
        slot: u32,
        spin: &SpinBudget,
        deadline: Option<Instant>,
    ) -> WaitEnd {
        let words = self.words(slot);
        let budget = spin.current_ns();
        if budget > 0 {
            let mut spinner = Spinner::new(spin);
            loop {
                if words.state.load(Ordering::Acquire) == REPLY {
                    spin.spin_succeeded(&spinner);
                    return WaitEnd::Reply;
                }
                if !spinner.round() {
                    break;
                }
            }
            spin.spin_failed();
        }
        let blocked_at = spin.is_enabled().then(Instant::now);
        let end = loop {
            let mut slice = LIVENESS_SLICE;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    break WaitEnd::TimedOut(words.state.load(Ordering::SeqCst));
                }
                slice = slice.min(deadline - now);
            }
            match protocol::block_once(&SysFutex, &words, Some(slice)) {
                Step::Reply => break WaitEnd::Reply,
                Step::Waited(WaitOutcome::TimedOut, _) if self.stream.peer_closed() => {
                    break WaitEnd::PeerGone(words.state.load(Ordering::SeqCst))
                }
                Step::Waited(..) => {}
            }
        };
        protocol::stop_waiting(&words);
        // A reply can also land just as the deadline or the liveness check fires: prefer it.
        if end != WaitEnd::Reply && words.state.load(Ordering::SeqCst) == REPLY {
            return WaitEnd::Reply;
        }
        if let (WaitEnd::Reply, Some(blocked_at)) = (end, blocked_at) {
            spin.reply_took(u64::from(budget) + blocked_at.elapsed().as_nanos() as u64);
        }
        end
    }

    /// Service side: takes the request in `slot`, if it holds one the client has not
    /// withdrawn: a withdrawable one (REQUEST) with the compare-and-swap to SERVING, one
    /// without deadline (REQUEST_FIXED) by marking the slot's taken word. The frame is read only
    /// after that, when the client can no longer change it.
    #[inline]
    pub(crate) fn take_request(&self, slot: u32) -> Option<Taken> {
        let view = self.slot(slot);
        match view.state().load(Ordering::Acquire) {
            state::REQUEST_FIXED => {
                let head = view.read_head();
                let frame = FrameHeader::decode_head(&head);
                if let Ok(header) = &frame {
                    protocol::take_unwithdrawable(view.taken(), header.call_id as u32);
                }
                Some(Taken {
                    frame,
                    head,
                    withdrawable: false,
                })
            }
            state::REQUEST if protocol::take(&self.words(slot)) => {
                let head = view.read_head();
                Some(Taken {
                    frame: FrameHeader::decode_head(&head),
                    head,
                    withdrawable: true,
                })
            }
            _ => None,
        }
    }

    /// Client side: whether the service took call `call_id` in `slot` without changing its
    /// state (asked when the service died with the state at REQUEST).
    pub(crate) fn was_taken(&self, slot: u32, call_id: u64) -> bool {
        self.slot(slot).taken().load(Ordering::Acquire) == call_id as u32
    }

    /// Service side: publishes the reply on `slot` (which it took as a withdrawable call, in
    /// SERVING, or not) and wakes the client if it sleeps. Returns false if the client broke
    /// the state machine.
    pub(crate) fn complete(&self, slot: u32, withdrawable: bool) -> bool {
        let from = if withdrawable {
            state::SERVING
        } else {
            state::REQUEST_FIXED
        };
        protocol::complete(&SysFutex, &self.words(slot), from)
    }

    /// Service side: whether `slot` holds a request.
    pub(crate) fn has_request(&self, slot: u32) -> bool {
        state::is_request(self.slot(slot).state().load(Ordering::Acquire))
    }

    /// Client side: about to use `slot`; makes sure the service serves it. The first use of a
    /// slot raises the "slots used" mark and tells the service on the socket, whose reactor
    /// (never busy with a call) then starts the slot's own thread. (The mark is stored before
    /// the request, so a service thread that reads it after its fence never misses one.)
    #[inline]
    pub(crate) fn use_slot(&self, slot: u32) {
        let used = self.memory.slots_used();
        if slot >= used.load(Ordering::Relaxed) {
            self.raise_slots_used(slot);
        }
    }

    #[cold]
    fn raise_slots_used(&self, slot: u32) {
        if self
            .memory
            .slots_used()
            .fetch_max(slot + 1, Ordering::Release)
            <= slot
            && slot > 0
        {
            // A lost connection shows at the call itself.
            let _ = self.stream.send(&Message::Slots.encode(), None);
        }
    }

    /// Service side: how many slots, from 0, the client says it has used (at most the count).
    pub(crate) fn slots_used(&self) -> u32 {
        self.memory
            .slots_used()
            .load(Ordering::Acquire)
            .min(self.memory.geometry().slot_count)
    }

    /// Service side, the connection's own thread: sleeps on the doorbell unless slot 0 holds a
    /// request, `more()` or `stop()` holds. Returns at once, when rung, or after a few seconds.
    /// `more` says whether there is other work for the thread (slots to start threads for).
    pub(crate) fn service_sleep(&self, stop: impl Fn() -> bool, more: impl Fn() -> bool) {
        // The doorbell is shared memory the client can write: a client rewriting it at the
        // wrong moment could swallow the reactor's wake-up. Waking every few seconds to
        // re-check `stop` bounds that, at a negligible cost for idle connections.
        protocol::sleep(
            &SysFutex,
            &self.doorbell(),
            || self.has_request(0) || more(),
            stop,
            Some(SERVICE_RECHECK),
        );
    }

    /// Service side, the thread of slot `slot` (1 and up): sleeps on the slot's state word
    /// unless it holds a request or `stop()` holds; returns when woken or after a few seconds.
    pub(crate) fn slot_sleep(&self, slot: u32, stop: impl Fn() -> bool) {
        protocol::sleep_on_slot(
            &SysFutex,
            &self.words(slot),
            self.slot(slot).service_waiting(),
            state::is_request,
            stop,
            Some(SERVICE_RECHECK),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::layout::Geometry;
    use crate::wire::frame::{Status, FLAG_SPILL};

    const GEOMETRY: Geometry = Geometry {
        slot_count: 4,
        slot_size: 256,
        queue_size: 0,
    };

    /// Two channels over one region: the service's and the client's view of a connection.
    fn connected() -> (Channel, Channel) {
        let shm = SharedMemory::create("test", GEOMETRY.region_len()).unwrap();
        let service = ConnectionMemory::initialize(&shm, GEOMETRY).unwrap();
        let client = ConnectionMemory::open(&shm, GEOMETRY).unwrap();
        let (a, b) = Stream::pair().unwrap();
        (
            Channel::new("test", service, Arc::new(a)),
            Channel::new("test", client, Arc::new(b)),
        )
    }

    fn header(len: usize, (flags, spill_generation): (u32, u32)) -> FrameHeader {
        FrameHeader {
            method: 1,
            flags,
            call_id: 1,
            len: len as u64,
            spill_generation,
            status: Status::Ok,
            deadline_ns: 0,
        }
    }

    #[test]
    fn payloads_cross_inline_and_through_spill_buffers() {
        let (service, client) = connected();
        for len in [0, 1, 144, 145, 5000, 70_000, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let written = write(&client, 2, &data).unwrap();
            assert_eq!(written.flags == FLAG_SPILL, len > 144, "len {len}");
            let mut out = Vec::new();
            service
                .read_payload(
                    2,
                    &header(len, (written.flags, written.spill_generation)),
                    1 << 30,
                    &mut out,
                )
                .unwrap();
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn a_length_beyond_the_slot_is_a_protocol_error() {
        let (service, _client) = connected();
        let err = service.read_payload(0, &header(145, (0, 0)), 1 << 30, &mut Vec::new());
        assert!(matches!(err, Err(ChannelError::Protocol(m)) if m.contains("exceeds the slot")));
    }

    #[test]
    fn a_length_beyond_the_limit_is_too_large() {
        let (service, _client) = connected();
        let err = service.read_payload(0, &header(100, (0, 0)), 99, &mut Vec::new());
        assert!(matches!(
            err,
            Err(ChannelError::TooLarge {
                size: 100,
                limit: 99
            })
        ));
    }

    #[test]
    fn a_length_beyond_the_spill_buffer_is_a_protocol_error() {
        let (service, client) = connected();
        let written = write(&client, 1, &[7u8; 1000]).unwrap();
        let err = service.read_payload(
            1,
            &header(MIN_SPILL + 1, (written.flags, written.spill_generation)),
            1 << 30,
            &mut Vec::new(),
        );
        assert!(matches!(err, Err(ChannelError::Protocol(m)) if m.contains("spill buffer")));
    }

    #[test]
    fn a_spill_buffer_far_beyond_the_limit_is_refused_before_mapping() {
        let (service, client) = connected();
        let big = SharedMemory::create("big", 8 << 20).unwrap();
        client
            .stream
            .send(
                &Message::Spill {
                    slot: 0,
                    generation: 1,
                }
                .encode(),
                Some(&big),
            )
            .unwrap();
        let err = service.read_payload(0, &header(1000, (FLAG_SPILL, 1)), 1 << 20, &mut Vec::new());
        assert!(matches!(err, Err(ChannelError::Protocol(m)) if m.contains("more than")));
    }

    #[test]
    fn a_notice_for_a_slot_that_does_not_exist_is_a_protocol_error() {
        let (service, client) = connected();
        let shm = SharedMemory::create("x", MIN_SPILL).unwrap();
        client
            .stream
            .send(
                &Message::Spill {
                    slot: 99,
                    generation: 1,
                }
                .encode(),
                Some(&shm),
            )
            .unwrap();
        let err = service.read_payload(0, &header(1000, (FLAG_SPILL, 1)), 1 << 20, &mut Vec::new());
        assert!(matches!(err, Err(ChannelError::Protocol(m)) if m.contains("unexpected message")));
    }

    #[test]
    fn a_spill_buffer_that_never_comes_because_the_peer_left_is_peer_gone() {
        let (service, client) = connected();
        drop(client);
        let err = service.read_payload(0, &header(1000, (FLAG_SPILL, 1)), 1 << 20, &mut Vec::new());
        assert!(matches!(err, Err(ChannelError::PeerGone)));
    }

    #[test]
    fn request_and_reply_states_follow_the_machine() {
        let (service, client) = connected();
        let spin = SpinBudget::new(false, None);
        assert!(!service.has_request(3));
        client.use_slot(3);
        client.submit(3, false);
        assert!(service.has_request(3));
        assert_eq!(service.slots_used(), 4);
        client.use_slot(1);
        assert_eq!(client.memory.slots_used().load(Ordering::SeqCst), 4);
        let slot = service.slot(3);
        slot.state().store(state::SERVING, Ordering::SeqCst);
        assert!(service.complete(3, true));
        assert_eq!(client.wait_for_reply(3, &spin, None), WaitEnd::Reply);
        // An abandoned call is freed, not answered.
        slot.state().store(state::ABANDONED, Ordering::SeqCst);
        assert!(service.complete(3, true));
        assert_eq!(slot.state().load(Ordering::SeqCst), state::FREE);
        // A client that scribbles over a slot being served breaks the connection.
        slot.state().store(state::REQUEST, Ordering::SeqCst);
        assert!(!service.complete(3, true));
    }

    #[test]
    fn a_wait_ends_at_its_deadline_with_the_state_it_saw() {
        let (_service, client) = connected();
        let spin = SpinBudget::new(true, None);
        client.submit(0, false);
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            client.wait_for_reply(0, &spin, Some(deadline)),
            WaitEnd::TimedOut(state::REQUEST)
        );
    }

    /// Encodes `value` for `slot` with a writer, as a call does.
    fn encode<T: serde::Serialize>(
        channel: &Channel,
        slot: u32,
        limit: u64,
        value: &T,
    ) -> Result<payload::Written, ChannelError> {
        let mut stage = payload::Buffer::for_writing();
        let mut writer = channel.writer(slot, limit, &mut stage);
        crate::wire::codec::encode_into(value, &mut writer).expect("encodes");
        let written = writer.finish()?;
        channel.publish(slot, header(0, (0, 0)), written, stage.as_slice());
        Ok(written)
    }

    /// Writes `bytes` for `slot` whole, as `Channel::write_payload` does, and says where.
    fn write(channel: &Channel, slot: u32, bytes: &[u8]) -> Result<payload::Written, ChannelError> {
        let mut stage = payload::Buffer::for_writing();
        let mut writer = channel.writer(slot, u64::MAX, &mut stage);
        let _ = crate::wire::codec::Sink::put_all(&mut writer, bytes);
        let written = writer.finish()?;
        channel.publish(slot, header(0, (0, 0)), written, stage.as_slice());
        Ok(written)
    }

    type Mixed = (String, crate::wire::codec::WireBytes, Vec<u32>, u8);

    fn mixed(n: usize) -> (String, serde_bytes::ByteBuf, Vec<u32>, u8) {
        (
            "name".repeat(25),
            serde_bytes::ByteBuf::from((0..n).map(|i| (i % 253) as u8).collect::<Vec<u8>>()),
            (0..1000).map(|i| i * 7919).collect(),
            9,
        )
    }

    #[test]
    fn an_encoder_writes_into_the_spill_buffer_growing_it_midway_and_the_decoder_reads_there() {
        let (service, client) = connected();
        for n in [10, 100_000, 300_000, 5_000] {
            let value = mixed(n);
            let written = encode(&client, 1, 1 << 30, &value).unwrap();
            assert_eq!(written.flags, FLAG_SPILL, "n {n}");
            let header = header(
                written.len as usize,
                (written.flags, written.spill_generation),
            );
            let mut scratch = payload::Buffer::for_reading();
            let back: Mixed = service
                .with_payload(1, &header, 1 << 30, &mut scratch, |p| p.decode())
                .unwrap()
                .unwrap();
            assert_eq!(back.0, value.0);
            assert_eq!(back.1 .0, value.1.into_vec(), "n {n}");
            assert_eq!((back.2, back.3), (value.2, value.3));
            // Nothing borrowed, so nothing was copied whole into the scratch buffer.
            assert!(scratch.vec.is_empty(), "n {n}");
        }
        // Buffers only grow: 300,000 bytes needed the third one, and the last call reused it.
        let generation = Channel::spill(&client.outgoing, 1).generation;
        assert_eq!(generation, 3);
    }

    #[test]
    fn a_small_payload_stays_inline() {
        let (service, client) = connected();
        let written = encode(&client, 0, 1 << 30, &(7u32, "x")).unwrap();
        assert_eq!((written.flags, written.len), (0, 3));
        let header = header(3, (0, 0));
        let back: (u32, String) = service
            .with_payload(
                0,
                &header,
                1 << 30,
                &mut payload::Buffer::for_reading(),
                |p| p.decode(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(back, (7, "x".to_owned()));
    }

    #[test]
    fn a_spilled_payload_decodes_types_that_borrow_from_it() {
        let (service, client) = connected();
        let text = "é".repeat(3000);
        let written = encode(&client, 2, 1 << 30, &(5u8, text.as_str(), 6u8)).unwrap();
        assert_eq!(written.flags, FLAG_SPILL);
        let header = header(
            written.len as usize,
            (written.flags, written.spill_generation),
        );
        let mut scratch = payload::Buffer::for_reading();
        service
            .with_payload(2, &header, 1 << 30, &mut scratch, |p| {
                let back: (u8, &str, u8) = p.decode().unwrap();
                assert_eq!(back, (5, text.as_str(), 6));
            })
            .unwrap();
    }

    #[test]
    fn past_its_limit_the_writer_counts_and_refuses() {
        let (_service, client) = connected();
        let bytes = serde_bytes::ByteBuf::from(vec![1u8; 5000]);
        let err = encode(&client, 0, 1000, &bytes).unwrap_err();
        // The full size (a two-byte length, then the bytes), not where writing stopped.
        assert!(
            matches!(
                err,
                ChannelError::TooLarge {
                    size: 5002,
                    limit: 1000
                }
            ),
            "{err:?}"
        );
        // Nothing was spilled for it.
        assert!(Channel::spill(&client.outgoing, 0).region.is_none());
    }

    #[test]
    fn a_byte_buffer_claiming_more_than_the_payload_is_refused_without_allocating_it() {
        let (service, client) = connected();
        // A length of 2^40 bytes, followed by a few thousand.
        let mut forged = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        forged.extend(std::iter::repeat_n(0u8, 5000));
        let written = write(&client, 3, &forged).unwrap();
        let header = header(
            written.len as usize,
            (written.flags, written.spill_generation),
        );
        let result: Result<crate::wire::codec::WireBytes, String> = service
            .with_payload(
                3,
                &header,
                1 << 30,
                &mut payload::Buffer::for_reading(),
                |p| p.decode(),
            )
            .unwrap();
        assert!(result.is_err());
    }

    /// A payload forged by a peer, written to `slot` as it is (spilled when large).
    fn forge(client: &Channel, slot: u32, bytes: &[u8]) -> FrameHeader {
        let written = write(client, slot, bytes).unwrap();
        header(
            written.len as usize,
            (written.flags, written.spill_generation),
        )
    }

    /// 1,032 bytes in memory, one on the wire for `Small`.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    // Large in memory, small on the wire: what the test is about.
    #[allow(clippy::large_enum_variant)]
    enum Wide {
        Small,
        Large([u64; 32], [u64; 32], [u64; 32], [u64; 32]),
    }

    #[test]
    fn a_payload_decodes_within_the_budget_of_its_length_and_the_limit_inline_or_spilled() {
        let (service, client) = connected();
        // 70,000 unit variants (a three-byte length, then zeros): 72 MB of values claimed by a
        // 70,003-byte payload, spilled; and 100 inline.
        let mut forged = vec![0xf0, 0xa2, 0x04];
        forged.resize(3 + 70_000, 0);
        let spilled = forge(&client, 1, &forged);
        assert!(spilled.spilled());
        // Under a limit of 100,000 bytes (a larger payload would be TooLarge): at most 1 MiB +
        // 100,000 bytes of values.
        let limit = 100_000;
        let result = service
            .with_payload(
                1,
                &spilled,
                limit,
                &mut payload::Buffer::for_reading(),
                |p| p.decode::<Vec<Wide>>().map(|v| v.len()),
            )
            .unwrap();
        let allowed = (1 << 20) + limit as usize;
        assert_eq!(
            result,
            Err(format!(
                "a 70003 byte payload may decode into at most {allowed} bytes of values (1 MiB \
                 more than the payload limit); refused at element {} of a sequence claiming \
                 70000 elements of 1032-byte elements",
                allowed / 1032
            ))
        );
        // Without a limit, the payload's own budget (1 MiB + 64 per byte) refuses it too.
        let result = service
            .with_payload(
                1,
                &spilled,
                u64::MAX,
                &mut payload::Buffer::for_reading(),
                |p| p.decode::<Vec<Wide>>().map(|v| v.len()),
            )
            .unwrap();
        assert!(result
            .unwrap_err()
            .contains("(1 MiB + 64 bytes per payload byte)"));
        // Inline: 100 of them are fine.
        let mut honest = vec![100];
        honest.resize(101, 0);
        let inline = forge(&client, 2, &honest);
        assert!(!inline.spilled());
        let result = service
            .with_payload(
                2,
                &inline,
                limit,
                &mut payload::Buffer::for_reading(),
                |p| p.decode::<Vec<Wide>>().map(|v| v.len()),
            )
            .unwrap();
        assert_eq!(result, Ok(100));
    }

    #[test]
    fn a_spilled_string_claiming_more_than_the_payload_is_refused_without_allocating_it() {
        let (service, client) = connected();
        // A string of 2^40 bytes claimed, a few thousand present; then one of 2^60.
        for claim in [&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20][..], &[0x80; 8][..]] {
            let mut forged = claim.to_vec();
            if forged.len() == 8 {
                forged.push(0x10);
            }
            forged.resize(forged.len() + 5000, b'a');
            let spilled = forge(&client, 3, &forged);
            let result = service
                .with_payload(
                    3,
                    &spilled,
                    1 << 30,
                    &mut payload::Buffer::for_reading(),
                    |p| p.decode::<String>().map(drop),
                )
                .unwrap();
            assert_eq!(
                result,
                Err("Hit the end of buffer, expected more data".to_owned())
            );
        }
    }
}
