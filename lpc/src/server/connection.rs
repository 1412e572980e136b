//! One connection: the handshake, then the call loops. The connection's own thread serves
//! slot 0 (the only slot of a client that calls from one thread), and each further slot the
//! client uses gets a thread of its own, started when the client first uses it, so that a slow
//! handler never delays a call on another slot.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::context::{CallScope, ConnectionScope};
use super::dispatch::{DispatchError, EncodedArgs, EncodedReply, ReplyTarget};
use super::oneway::{self, Oneway};
use super::stats::ConnectionStats;
use super::Shared;
use crate::channel::budget::{self, Budget, ConnectionBudget};
use crate::channel::payload::{Buffer, Written};
use crate::channel::spin::{SpinBudget, Spinner};
use crate::channel::{Channel, ChannelError, Payload, Taken};
use crate::shm::layout::{ConnectionMemory, Geometry};
use crate::sys::{monotonic_ns, process_name, PeerCredentials, SharedMemory, Stream};
use crate::wire::codec::Sink;
use crate::wire::frame::{Status, FLAG_JSON};
use crate::wire::handshake::{Message, Refusal, RefusalKind, Welcome};
use crate::wire::hash::fnv1a64;
use crate::wire::interface::InterfaceDescriptor;
use crate::wire::FrameHeader;

/// What the reactor and the connection thread share.
pub(super) struct ConnectionShared {
    stream: Arc<Stream>,
    /// Who connected, as the kernel recorded it at `connect`.
    pub(super) peer: Option<PeerCredentials>,
    /// The peer's process name at connect.
    pub(super) process: String,
    pub(super) connected_at: Instant,
    /// The counters of each thread serving the connection (slot 0's first).
    stats: Mutex<Vec<Arc<ConnectionStats>>>,
    /// The threads of slots 1 and up, in slot order (started by `start_slot_threads`).
    slot_threads: Mutex<Vec<JoinHandle<()>>>,
    /// How many of those were started (read without the lock before sleeping).
    slot_threads_started: AtomicU32,
    /// The last attempt to start one failed (out of threads): the connection's thread does
    /// not retry on its own (it would never sleep); the reactor retries at the next notice.
    slot_threads_failed: AtomicBool,
    /// The reactor's token of the connection (names its threads).
    token: u64,
    /// Set once the handshake made this a calling connection (not a query).
    pub(super) calling: AtomicBool,
    /// Threads reserved for it (its slot count), given back when it ends.
    pub(super) threads: AtomicU32,
    /// Set when the connection must end; shared with the handlers' context (`cancelled()`).
    stop: Arc<AtomicBool>,
    channel: OnceLock<Arc<Channel>>,
    /// The consumer of the connection's one-way queue, if it has one (set with `channel`).
    oneway: OnceLock<Oneway>,
    /// The token of its welcome, set before the welcome is sent (a subscription of the same
    /// process may name it as soon as the client has it).
    welcome_token: OnceLock<u64>,
}

impl std::fmt::Debug for ConnectionShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionShared")
            .field("peer", &self.peer)
            .finish()
    }
}

impl ConnectionShared {
    pub(super) fn new(
        stream: Stream,
        peer: Option<PeerCredentials>,
        interface: &InterfaceDescriptor,
        token: u64,
    ) -> ConnectionShared {
        ConnectionShared {
            stream: Arc::new(stream),
            // Unknown for a client in a PID namespace we cannot see: no pid to look up.
            process: peer
                .as_ref()
                .and_then(PeerCredentials::pid)
                .map(process_name)
                .unwrap_or_default(),
            peer,
            connected_at: Instant::now(),
            stats: Mutex::new(vec![Arc::new(ConnectionStats::new(interface))]),
            slot_threads: Mutex::new(Vec::new()),
            slot_threads_started: AtomicU32::new(0),
            slot_threads_failed: AtomicBool::new(false),
            token,
            calling: AtomicBool::new(false),
            threads: AtomicU32::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            channel: OnceLock::new(),
            oneway: OnceLock::new(),
            welcome_token: OnceLock::new(),
        }
    }

    pub(super) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The token its welcome gave it, once it is a calling connection.
    pub(super) fn welcome_token(&self) -> Option<u64> {
        self.welcome_token.get().copied()
    }

    /// The client hung up: end the connection.
    pub(super) fn peer_gone(&self) {
        self.stop();
    }

    /// Ends the connection once the call in progress (if any) is finished.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Pairs with the fence in `run` between publishing the channel and reading `stop`:
        // either we see the channel and ring it, or the thread sees `stop` before sleeping.
        fence(Ordering::SeqCst);
        match self.channel.get() {
            Some(channel) => channel.ring_all(),
            // Still in the handshake: make its receive return.
            None => self.stream.shutdown(),
        }
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs `f` on the counters of every thread of the connection.
    pub(super) fn each_stats(&self, mut f: impl FnMut(&ConnectionStats)) {
        for stats in self.stats.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            f(stats);
        }
    }

    fn new_stats(&self, interface: &InterfaceDescriptor) -> Arc<ConnectionStats> {
        let stats = Arc::new(ConnectionStats::new(interface));
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(stats.clone());
        stats
    }
}

/// Starts the threads of the slots the client has used and that have none yet (slots 1 and
/// up; at most the slot count). Called by the reactor when the client tells it used a new
/// slot, and by the connection's own thread when it finds the mark raised.
pub(super) fn start_slot_threads(shared: &Arc<Shared>, conn: &Arc<ConnectionShared>) {
    let Some(channel) = conn.channel.get() else {
        return;
    };
    let used = channel.slots_used();
    let mut threads = conn.slot_threads.lock().unwrap_or_else(|p| p.into_inner());
    while !conn.stopped() && (threads.len() as u32) + 1 < used {
        let slot = threads.len() as u32 + 1;
        let (shared_, conn_, channel_) = (shared.clone(), conn.clone(), channel.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("lpc-{}-{}-{slot}", shared.server.name, conn.token))
            .spawn(move || serve_slot(&shared_, &conn_, &channel_, slot));
        match spawned {
            Ok(thread) => {
                threads.push(thread);
                conn.slot_threads_started
                    .store(threads.len() as u32, Ordering::SeqCst);
                conn.slot_threads_failed.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                conn.slot_threads_failed.store(true, Ordering::Relaxed);
                // Calls on that slot wait until the client's next new slot, or the connection
                // ends; the rest go on.
                tracing::warn!(service = %shared.server.name, slot, error = %e, "cannot start a slot thread");
                return;
            }
        }
    }
}

/// The thread of slot `slot` (1 and up): serves that slot until the connection ends.
fn serve_slot(shared: &Shared, conn: &ConnectionShared, channel: &Arc<Channel>, slot: u32) {
    let _scope = ConnectionScope::enter(channel.clone(), conn.peer.clone(), conn.stop.clone());
    let mut worker = Worker::new(slot, conn.new_stats(shared.interface));
    if let Err(Close(reason)) = serve(shared, conn, channel, &mut worker, || {}) {
        let pid = pid_text(conn.peer.as_ref());
        tracing::warn!(service = %shared.server.name, %pid, slot, %reason, "dropped a client");
    }
    // Whatever ended this slot ends the connection.
    conn.stop();
}

/// Serves one connection until the client leaves, breaks the protocol, or the service stops.
pub(super) fn run(shared: &Arc<Shared>, conn: &Arc<ConnectionShared>) {
    let service = shared.server.name.as_str();
    let pid = pid_text(conn.peer.as_ref());
    let channel = match handshake(shared, conn) {
        Ok(channel) => Arc::new(channel),
        Err(reason) => {
            if !reason.is_empty() {
                tracing::warn!(service, %pid, %reason, "refused a client at the handshake");
            }
            return;
        }
    };
    tracing::debug!(service, %pid, "client connected");
    conn.calling.store(true, Ordering::Relaxed);
    if channel.max_post().is_some() {
        let _ = conn
            .oneway
            .set(Oneway::new(conn.new_stats(shared.interface)));
    }
    let _ = conn.channel.set(channel.clone());
    fence(Ordering::SeqCst);
    let _scope = ConnectionScope::enter(channel.clone(), conn.peer.clone(), conn.stop.clone());
    let stats = conn.stats.lock().unwrap_or_else(|p| p.into_inner())[0].clone();
    let mut worker = Worker::new(0, stats);
    // Slot threads a raw client asked for without telling the reactor (it raised the mark
    // and rang): started when this thread next looks.
    let started = || {
        if channel.slots_used() > 1 {
            start_slot_threads(shared, conn);
        }
    };
    let served = serve(shared, conn, &channel, &mut worker, started);
    // The slot threads end with the connection.
    conn.stop();
    let threads = std::mem::take(&mut *conn.slot_threads.lock().unwrap_or_else(|p| p.into_inner()));
    for thread in threads {
        let _ = thread.join();
    }
    let served = match (served, conn.oneway.get()) {
        // The messages the client wrote before it left (or before the stop) are still handled:
        // they are in shared memory this side holds. At most a ring's worth.
        (Ok(()), Some(oneway)) => oneway
            .handle(shared, &channel, conn.peer.as_ref(), usize::MAX, true)
            .map_err(Close::from),
        (served, _) => served,
    };
    match served {
        Ok(()) => tracing::debug!(service, %pid, "client disconnected"),
        Err(Close(reason)) => tracing::warn!(service, %pid, %reason, "dropped a client"),
    }

    // Dropping the channel unmaps the region and closes the socket (the reactor forgets it).
}

/// A client's pid for the logs: `unknown` for one in a PID namespace we cannot see.
fn pid_text(peer: Option<&PeerCredentials>) -> String {
    peer.and_then(PeerCredentials::pid)
        .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
}

/// What one thread serving a connection keeps between calls: its slot, buffers, counters.
struct Worker {
    slot: u32,
    stats: Arc<ConnectionStats>,
    args: Buffer,
    reply: Buffer,
    /// The last method called and its position in the interface: a client calling in a loop
    /// calls the same method, so the statistics' lookup is one comparison.
    last_method: (u32, Option<usize>),
}

impl Worker {
    fn new(slot: u32, stats: Arc<ConnectionStats>) -> Worker {
        Worker {
            slot,
            stats,
            args: Buffer::for_reading(),
            reply: Buffer::for_writing(),
            last_method: (u32::MAX, None),
        }
    }
}

/// Runs the handshake; on failure, the reason (empty if the client just left).
fn handshake(shared: &Shared, conn: &ConnectionShared) -> Result<Channel, String> {
    let options = &shared.server.options;
    let deadline = Instant::now() + options.handshake_timeout;
    // A hello or query is small; a larger first message is refused (truncated), and a small
    // buffer keeps each connection thread's memory small (the benchmarks saw 192 KiB buffers
    // stay resident in glibc's per-thread arenas).
    let mut buf = [0u8; MAX_FIRST_MESSAGE];
    let refuse_as = |kind: RefusalKind, reason: String| {
        let refusal = Refusal {
            kind,
            reason: reason.clone(),
        };
        let _ = conn.stream.send(&Message::Refused(refusal).encode(), None);
        reason
    };
    let refuse = |reason: String| refuse_as(RefusalKind::Protocol, reason);
    let (n, shm) = match conn.stream.recv(&mut buf, Some(deadline)) {
        Ok((0, _)) => return Err(String::new()),
        Ok(r) => r,
        Err(e) => return Err(refuse(format!("bad handshake: {e}"))),
    };
    if shm.is_some() {
        return Err(refuse("bad handshake: unexpected shared memory".into()));
    }
    let hello = match Message::decode(&buf[..n]) {
        Ok(Message::Hello(hello)) => hello,
        Ok(Message::Query) => {
            let info = Message::Info(Box::new(shared.info(conn.peer.as_ref())));
            let _ = conn.stream.send(&info.encode(), None);
            return Err(String::new());
        }
        Ok(Message::Subscribe(request)) => {
            // A subscription lives on this thread until it ends (`server::events`).
            let subscriber = super::events::SubscriberConnection {
                stream: conn.stream.clone(),
                peer: conn.peer.clone(),
                calling: &conn.calling,
                stopped: &|| conn.stopped(),
            };
            super::events::serve(shared, subscriber, request);
            return Err(String::new());
        }
        Ok(_) => return Err(refuse("bad handshake: expected a hello".into())),
        Err(e) => return Err(refuse(format!("bad handshake: {e}"))),
    };
    if let Err(reason) = shared.within_limits() {
        return Err(refuse_as(RefusalKind::Busy, reason));
    }
    // A thread per slot at most: the connection gets as many slots as the service has
    // threads to spare (its calls wait in line for fewer slots), at least one.
    let slots = shared.reserve_threads(shared.server.geometry.slot_count);
    if slots == 0 {
        return Err(refuse_as(
            RefusalKind::Busy,
            format!(
                "all {} of its threads are taken (ServerOptions::max_threads)",
                options.max_threads
            ),
        ));
    }
    conn.threads.store(slots, Ordering::Relaxed);
    // A queue for one-way messages only if the interface has one-way methods.
    let geometry = Geometry {
        slot_count: slots,
        queue_size: if shared.interface.methods.iter().any(|m| m.oneway) {
            shared.server.geometry.queue_size
        } else {
            0
        },
        ..shared.server.geometry
    };
    let connection_budget = ConnectionBudget::new(
        Budget::new(
            "this connection's budget (ServerOptions::max_shared_memory_per_connection)",
            options.max_shared_memory_per_connection,
            u64::MAX,
        ),
        shared.budget.clone(),
    );
    // The region is mapped twice (see `shm::layout`): one object, two mappings.
    let region_charge = connection_budget
        .charge(geometry.region_len() as u64, 2)
        .map_err(|e| refuse_as(RefusalKind::Busy, e.to_string()))?;
    let no_memory =
        |e: std::io::Error| refuse(format!("the service cannot allocate shared memory: {e}"));
    let shm = SharedMemory::create(
        &format!("lpc:{}", shared.server.name),
        geometry.region_len(),
    )
    .map_err(no_memory)?;
    let memory = ConnectionMemory::initialize(&shm, geometry).map_err(refuse)?;
    let welcome = Welcome {
        service: shared.server.name.clone(),
        interface: shared.interface_info.clone(),
        slot_count: geometry.slot_count,
        slot_size: geometry.slot_size,
        queue_size: geometry.queue_size,
        max_request: options.max_payload,
        token: connection_token(),
    };
    let welcome_token = welcome.token;
    let _ = conn.welcome_token.set(welcome_token);
    conn.stream
        .send(&Message::Welcome(welcome).encode(), Some(&shm))
        .map_err(|e| format!("sending the welcome: {e}"))?;
    let mut channel = Channel::new(&shared.server.name, memory, conn.stream.clone());
    channel.set_budget(connection_budget, region_charge);
    channel.set_peer_limit(hello.max_reply);
    channel.set_receive_limit(options.max_payload);
    channel.set_token(welcome_token);
    channel.set_handle_limits(
        options.max_descriptors_per_call,
        options.max_descriptors_per_connection,
    );
    Ok(channel)
}

/// The call loop of one slot: returns when the connection ends, with the reason if the client
/// broke it. `idle` runs each time the slot is found empty, before waiting.
fn serve(
    shared: &Shared,
    conn: &ConnectionShared,
    channel: &Channel,
    worker: &mut Worker,
    idle: impl Fn(),
) -> Result<(), Close> {
    let spin = SpinBudget::new(
        shared.server.options.spin,
        conn.peer.as_ref().and_then(PeerCredentials::pid),
    );
    let slot = worker.slot;
    let oneway = conn.oneway.get();
    let peer = conn.peer.as_ref();
    // Slot 0's thread handles the one-way messages between calls (see `oneway`).
    let posted = |oneway: Option<&Oneway>| slot == 0 && oneway.is_some_and(|o| o.behind(channel));
    loop {
        if conn.stopped() {
            return Ok(());
        }
        if channel.has_request(slot) {
            // The messages written before this call are handled first.
            if let Some(oneway) = oneway.filter(|o| o.behind(channel)) {
                oneway.handle(shared, channel, peer, usize::MAX, true)?;
            }
            serve_one(shared, channel, worker)?;
            // Slot 0's are kept up to 32 MiB, like the client's buffers (see
            // `channel::payload::KEEP_BUFFER`): repeated large calls then fault in no fresh pages. The
            // other slots' threads keep 1 MiB, so that a connection's threads together hold
            // about what one did.
            let keep = if slot == 0 { 32 << 20 } else { 1 << 20 };
            if worker.args.vec.capacity() > keep {
                worker.args.vec = Vec::new();
            }
            if worker.reply.vec.capacity() > keep {
                worker.reply.vec = Vec::new();
            }
            continue;
        }
        idle();
        if posted(oneway) {
            if let Some(oneway) = oneway {
                oneway.handle(shared, channel, peer, oneway::BATCH, false)?;
            }
            continue;
        }
        // Idle: spin a little in case the client calls again at once (it usually does when
        // it is busy). The budget adapts as the client's does: it grows while the next call
        // comes during the spin, and shrinks when the service has to sleep anyway, unless the
        // call came soon after (see `SpinBudget`).
        let budget = spin.current_ns();
        if budget > 0 {
            let mut spinner = Spinner::new(&spin);
            let found = loop {
                if channel.has_request(slot) || posted(oneway) {
                    break true;
                }
                if !spinner.round() {
                    break false;
                }
                if spinner.rounds().is_multiple_of(64) && conn.stopped() {
                    break false;
                }
            };
            if found {
                spin.spin_succeeded(&spinner);
                continue;
            }
            spin.spin_failed();
        }
        let slept_at = Instant::now();
        if slot == 0 {
            // A raised "slots used" mark is work too: the slots' threads are started here when
            // no notice told the reactor (`idle`, at the top of the loop).
            let more_slots = || {
                !conn.slot_threads_failed.load(Ordering::Relaxed)
                    && channel.slots_used() > conn.slot_threads_started.load(Ordering::SeqCst) + 1
            };
            channel.service_sleep(|| conn.stopped(), || more_slots() || posted(oneway));
        } else {
            channel.slot_sleep(slot, || conn.stopped());
        }
        spin.reply_took(u64::from(budget) + slept_at.elapsed().as_nanos() as u64);
    }
}

/// Why a connection must end: the client broke the protocol (or vanished mid-transfer).
struct Close(String);

impl From<ChannelError> for Close {
    fn from(e: ChannelError) -> Close {
        Close(e.to_string())
    }
}

/// Largest first message (hello or query) a service accepts.
const MAX_FIRST_MESSAGE: usize = 4096;

const BROKEN_STATE: &str = "the client changed the state of a slot the service was serving";

#[inline(never)] // a stable symbol for the instruction-count guard (scripts/icount.sh)
fn serve_one(shared: &Shared, channel: &Channel, worker: &mut Worker) -> Result<(), Close> {
    let slot = worker.slot;
    let Worker {
        stats,
        args,
        reply,
        last_method,
        ..
    } = worker;
    let view = channel.slot(slot);
    // A call without a deadline cannot be withdrawn (its client cancels only at a deadline):
    // it is taken without touching the state word the client is watching; any other call with
    // a compare-and-swap. Either way the frame is read once the client can no longer change it.
    let Some(Taken {
        frame,
        head,
        withdrawable,
    }) = channel.take_request(slot)
    else {
        // Withdrawn by the client in the meantime.
        return Ok(());
    };
    let options = &shared.server.options;
    let mut record = None;
    let (outcome, method, call_id) = match frame {
        Err(e) => (
            Outcome::Failed(
                Status::MalformedFrame,
                format!("malformed request frame: {e}").into_bytes(),
            ),
            0,
            0,
        ),
        Ok(header) => {
            let ran = channel.with_payload_in(
                slot,
                &header,
                &head,
                options.max_payload,
                args,
                |payload| {
                    let started = stats.sample_next().then(Instant::now);
                    let deadline = (header.deadline_ns != 0).then(|| {
                        let left = header.deadline_ns.saturating_sub(monotonic_ns());
                        Instant::now() + Duration::from_nanos(left)
                    });
                    let _call = CallScope::enter(slot, deadline);
                    let outcome = if header.flags & FLAG_JSON != 0 {
                        dispatch_json(shared, channel, slot, &header, payload, reply)
                    } else {
                        dispatch(shared, channel, slot, &header, payload, reply)
                    };
                    (outcome, started.map(|s| s.elapsed()))
                },
            );
            if last_method.0 != header.method {
                *last_method = (header.method, shared.method_index(header.method));
            }
            let outcome = match ran {
                Ok((outcome, elapsed)) => {
                    let outcome = outcome?;
                    if let (Outcome::Failed(..), Some(reason)) = (&outcome, channel.broken()) {
                        // Refused as bad arguments, but the peer broke the protocol (a
                        // loan's buffer that is not lpc shared memory): the connection ends.
                        return Err(Close(reason.to_owned()));
                    }
                    // Counted once the reply is out: the caller does not wait for it.
                    record = Some((matches!(outcome, Outcome::Failed(..)), elapsed));
                    outcome
                }
                Err(ChannelError::TooLarge { size, .. }) => {
                    Outcome::Failed(Status::TooLarge, size.to_le_bytes().to_vec())
                }
                // No room in the budget to map the arguments' spill buffer.
                Err(ChannelError::Busy(reason)) => Outcome::Failed(Status::Busy, reason.into()),
                Err(e) => return Err(e.into()),
            };
            (outcome, header.method, header.call_id)
        }
    };
    match outcome {
        Outcome::Published => {}
        Outcome::Failed(status, mut message) => {
            let header = FrameHeader {
                method,
                flags: 0,
                call_id,
                len: 0,
                spill_generation: 0,
                status,
                deadline_ns: 0,
            };
            match channel.write_payload(slot, &message, header) {
                Ok(()) => {}
                Err(ChannelError::Io(_)) => {
                    // No memory for a spill buffer: the start of the message, inline.
                    message.truncate(view.inline_capacity());
                    channel.write_payload(slot, &message, header)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let completed = channel.complete(slot, withdrawable);
    if let Some((failed, elapsed)) = record {
        stats.record(last_method.1, failed, elapsed);
    }
    if completed {
        Ok(())
    } else {
        Err(Close(BROKEN_STATE.into()))
    }
}

/// What a call produced: a result already in the slot with its frame, or a failure to report.
enum Outcome {
    Published,
    Failed(Status, Vec<u8>),
}

/// Runs the handler of a postcard call, which encodes its result straight into the slot
/// (`stage` gathers its small writes); a panic becomes a `Panicked` status with its message.
#[inline]
fn dispatch(
    shared: &Shared,
    channel: &Channel,
    slot: u32,
    request: &FrameHeader,
    args: Payload<'_>,
    stage: &mut Buffer,
) -> Result<Outcome, Close> {
    let written = {
        let mut reply = EncodedReply(ReplyTarget::Slot(channel.writer(
            slot,
            channel.peer_limit(),
            stage,
        )));
        let result = catch_unwind(AssertUnwindSafe(|| {
            shared
                .dispatcher
                .dispatch(request.method, EncodedArgs(args), &mut reply)
        }));
        let ReplyTarget::Slot(mut writer) = reply.0 else {
            unreachable!("built as a slot writer above")
        };
        match result {
            Ok(Ok(())) => writer.finish(),
            // A writer that failed (no memory for a spill buffer) is why encoding failed.
            Ok(Err(e)) => match writer.take_failure() {
                None => return Ok(refused(e)),
                Some(failure) => Err(failure),
            },
            Err(panic) => return Ok(panicked(panic)),
        }
    };
    finish(channel, slot, request, written, stage)
}

/// Runs the handler of a JSON call (its arguments copied out whole, its reply built in a
/// `Vec`, then written to the slot).
fn dispatch_json(
    shared: &Shared,
    channel: &Channel,
    slot: u32,
    request: &FrameHeader,
    args: Payload<'_>,
    stage: &mut Buffer,
) -> Result<Outcome, Close> {
    let args = match args.into_local() {
        Ok(args) => args,
        Err(e) => return finish(channel, slot, request, Err(ChannelError::Io(e)), stage),
    };
    let mut json = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        shared
            .dispatcher
            .dispatch_json(request.method, args, &mut json)
    }));
    match result {
        Ok(Ok(())) => {
            let mut writer = channel.writer(slot, channel.peer_limit(), stage);
            let _ = Sink::put_all(&mut writer, &json);
            let written = writer.finish();
            finish(channel, slot, request, written, stage)
        }
        Ok(Err(e)) => Ok(refused(e)),
        Err(panic) => Ok(panicked(panic)),
    }
}

/// Publishes the frame of a result written for `request` into `slot` (staged in `stage`);
/// a result too large for the client, or no memory for it, becomes a failure to report; a
/// client that vanished ends the connection.
#[inline]
fn finish(
    channel: &Channel,
    slot: u32,
    request: &FrameHeader,
    written: Result<Written, ChannelError>,
    stage: &Buffer,
) -> Result<Outcome, Close> {
    match written {
        Ok(written) => {
            let reply = FrameHeader {
                method: request.method,
                flags: 0,
                call_id: request.call_id,
                len: 0,
                spill_generation: 0,
                status: Status::Ok,
                deadline_ns: 0,
            };
            channel.publish(slot, reply, written, stage.as_slice());
            Ok(Outcome::Published)
        }
        Err(ChannelError::TooLarge { size, .. }) => Ok(Outcome::Failed(
            Status::TooLarge,
            size.to_le_bytes().to_vec(),
        )),
        Err(ChannelError::Io(e)) => Ok(Outcome::Failed(
            Status::EncodeFailed,
            format!("the service could not allocate memory for the result: {e}").into_bytes(),
        )),
        Err(ChannelError::Busy(reason)) => Ok(Outcome::Failed(Status::Busy, reason.into())),
        Err(e) => Err(e.into()),
    }
}

/// The failure report of a dispatcher error.
#[cold]
fn refused(e: DispatchError) -> Outcome {
    match e {
        DispatchError::NoSuchMethod => Outcome::Failed(Status::NoSuchMethod, Vec::new()),
        DispatchError::BadArguments(m) => match budget::take_refusal() {
            // A loan's buffer the budget had no room for.
            Some(budget::Refusal::Busy) => Outcome::Failed(Status::Busy, m.into()),
            // A loan over the limit.
            Some(budget::Refusal::TooLarge(size)) => {
                Outcome::Failed(Status::TooLarge, size.to_le_bytes().to_vec())
            }
            None => Outcome::Failed(Status::BadArguments, m.into()),
        },
        DispatchError::Encode(m) => Outcome::Failed(
            Status::EncodeFailed,
            format!("the result could not be encoded: {m}").into_bytes(),
        ),
    }
}

/// The failure report of a handler's panic.
#[cold]
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Outcome {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned());
    Outcome::Failed(
        Status::Panicked,
        format!("the handler panicked: {message}").into_bytes(),
    )
}

/// A token naming a new connection in loan handles: unique among this process's connections,
/// and unlikely to collide with another service's (it mixes in the pid and the time).
fn connection_token() -> u64 {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    fnv1a64(
        &[
            n.to_le_bytes(),
            u64::from(std::process::id()).to_le_bytes(),
            monotonic_ns().to_le_bytes(),
        ]
        .concat(),
    )
}
