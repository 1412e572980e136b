//! Events from the service: the [`EventHub`] a service emits through (what the generated
//! `XxxEmitter` of an `#[lpc::events]` trait wraps), and the service's side of a
//! subscription (a connection whose first message is `Subscribe`).
//!
//! * **One ring per subscriber** (`channel::events`), in a shared-memory object the service
//!   creates for it and charges to its budget, freed when the subscriber's socket hangs up
//!   (the subscription's connection thread sees the end of the stream and removes it) or the
//!   service ends the subscription (full ring with the `Disconnect` policy, a lying head).
//! * **Emitting never waits**: the event is encoded once, then copied into each matching
//!   subscriber's ring under that subscriber's own lock (a copy, never a wait for the
//!   subscriber); a full ring is handled by that subscriber's policy.
//! * **To one connection**: a subscription made through a client (`Subscription::for_client`)
//!   names that client's connection (the token of its welcome), and the service accepts the
//!   link only if the subscriber is the same process (pid and user, from the kernel) as the
//!   calling connection. [`current_connection`] inside a handler names the caller's.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Shared;
use crate::channel::budget::{Budget, Charge, ConnectionBudget};
use crate::channel::events::{self, Overflow, Producer, Pushed};
use crate::channel::scope;
use crate::sys::{PeerCredentials, Stream};
use crate::wire::codec;
use crate::wire::handshake::{Message, Refusal, RefusalKind, Subscribe, Subscribed};
use crate::wire::info::{SubscriberInfo, MAX_LISTED_CLIENTS};
use crate::wire::interface::{InterfaceDescriptor, MethodDescriptor};

pub use crate::channel::events::DEFAULT_EVENT_RING;

/// A calling connection, to send events to it alone: [`current_connection`] inside a
/// handler; kept, it names the same connection later (events to it reach the subscriptions
/// its process linked to it, none once it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

/// The connection of the call this handler runs (`None` outside a handler).
pub fn current_connection() -> Option<ConnectionId> {
    scope::served(|channel| ConnectionId(channel.token()))
}

/// Who an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every subscriber that asked for it.
    All,
    /// Only the subscriptions linked to this connection.
    Connection(ConnectionId),
}

/// What a service emits events through: give it to the server
/// ([`super::Server::with_events`]) and keep a clone (the generated `XxxEmitter` does both).
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct EventHub {
    inner: Arc<Hub>,
}

#[derive(Debug)]
struct Hub {
    interface: &'static InterfaceDescriptor,
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    link: Option<u64>,
    /// Event ids wanted (`None`: all).
    wants: Option<Vec<u32>>,
    wanted_names: Option<Vec<String>>,
    producer: Mutex<Producer>,
    policy: Overflow,
    ring: usize,
    stream: Arc<Stream>,
    peer: Option<PeerCredentials>,
    delivered: AtomicU64,
    dropped: AtomicU64,
    gone: AtomicBool,
    _charge: Charge,
}

thread_local! {
    static EVENT_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn policy_name(policy: Overflow) -> &'static str {
    match policy {
        Overflow::DropOldest => "drop-oldest",
        Overflow::DropNewest => "drop-newest",
        Overflow::Disconnect => "disconnect",
    }
}

impl AsRef<EventHub> for EventHub {
    fn as_ref(&self) -> &EventHub {
        self
    }
}

impl EventHub {
    /// A hub for the events of `interface` (the `XXX_INTERFACE` static of an
    /// `#[lpc::events]` trait), with no subscriber yet.
    pub fn new(interface: &'static InterfaceDescriptor) -> EventHub {
        EventHub {
            inner: Arc::new(Hub {
                interface,
                subscribers: RwLock::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The events interface.
    pub fn interface(&self) -> &'static InterfaceDescriptor {
        self.inner.interface
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Subscriber>>> {
        self.inner
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Subscriber>>> {
        self.inner
            .subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Emits `event` (an event of this hub's interface) with `args` (a tuple of its
    /// parameters) to `target`; returns to how many subscribers it was written (those whose
    /// full ring dropped it do not count). Never waits for a subscriber. An event that cannot
    /// be encoded goes to nobody (logged).
    pub fn emit<A: Serialize + ?Sized>(
        &self,
        target: Target,
        event: &'static MethodDescriptor,
        args: &A,
    ) -> usize {
        if self.read().is_empty() {
            return 0;
        }
        let emit = |buf: &mut Vec<u8>| {
            buf.clear();
            if let Err(why) = codec::encode_into(args, buf) {
                tracing::warn!(event = event.name, %why, "cannot encode an event: not sent");
                return 0;
            }
            self.emit_bytes(target, event.id, buf)
        };
        EVENT_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                let n = emit(&mut buf);
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                n
            }
            Err(_) => emit(&mut Vec::new()),
        })
    }

    /// Emits event `event_id` with `payload`, already encoded (the postcard encoding of the
    /// tuple of its parameters): for services in other languages (the C ABI).
    #[doc(hidden)]
    pub fn emit_encoded(&self, target: Target, event_id: u32, payload: &[u8]) -> usize {
        if self.read().is_empty() {
            return 0;
        }
        self.emit_bytes(target, event_id, payload)
    }

    fn emit_bytes(&self, target: Target, id: u32, payload: &[u8]) -> usize {
        let mut delivered = 0;
        let mut ended = Vec::new();
        for sub in self.read().iter() {
            if let Target::Connection(ConnectionId(token)) = target {
                if sub.link != Some(token) {
                    continue;
                }
            }
            if sub.wants.as_ref().is_some_and(|w| !w.contains(&id)) {
                continue;
            }
            if sub.gone.load(Ordering::Relaxed) {
                continue;
            }
            let mut producer = sub.producer.lock().unwrap_or_else(|p| p.into_inner());
            match producer.push(id, payload) {
                Ok(Pushed::Delivered { dropped }) => {
                    delivered += 1;
                    sub.delivered.fetch_add(1, Ordering::Relaxed);
                    if dropped > 0 {
                        sub.dropped.fetch_add(u64::from(dropped), Ordering::Relaxed);
                    }
                }
                Ok(Pushed::Dropped) => {
                    sub.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Pushed::Overflowed) => {
                    sub.dropped.fetch_add(1, Ordering::Relaxed);
                    ended.push((sub.clone(), "its event ring was full (policy: disconnect)"));
                }
                Err(e) => {
                    producer.close(events::CLOSED_PROTOCOL);
                    tracing::warn!(error = %e, "a subscriber broke the event protocol");
                    ended.push((sub.clone(), "it broke the event protocol"));
                }
            }
        }
        for (sub, why) in ended {
            tracing::info!(pid = ?sub.peer.as_ref().and_then(PeerCredentials::pid), why, "ended a subscription");
            sub.gone.store(true, Ordering::Relaxed);
            // Its connection thread sees the end of the stream and removes it.
            sub.stream.shutdown();
        }
        delivered
    }

    fn remove(&self, id: u64) {
        self.write().retain(|s| s.id != id);
    }

    /// What a query shows about the subscribers `visible` admits.
    pub(super) fn subscribers_info(
        &self,
        visible: impl Fn(Option<&PeerCredentials>) -> bool,
    ) -> Vec<SubscriberInfo> {
        self.read()
            .iter()
            .filter(|s| visible(s.peer.as_ref()))
            .take(MAX_LISTED_CLIENTS)
            .map(|s| SubscriberInfo {
                pid: s.peer.as_ref().and_then(PeerCredentials::pid),
                user: s
                    .peer
                    .as_ref()
                    .map(|p| p.user().to_string())
                    .unwrap_or_default(),
                events: s.wanted_names.clone(),
                ring: s.ring as u64,
                policy: policy_name(s.policy).to_owned(),
                delivered: s.delivered.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// How often a subscription's thread looks whether the service stops.
const RECHECK: Duration = Duration::from_secs(5);

/// What a subscription needs of its connection (`server::connection` gives it).
pub(super) struct SubscriberConnection<'a> {
    pub(super) stream: Arc<Stream>,
    pub(super) peer: Option<PeerCredentials>,
    /// Set once subscribed (a query then counts it as a connection).
    pub(super) calling: &'a AtomicBool,
    /// Whether the connection must end (the service stops).
    pub(super) stopped: &'a dyn Fn() -> bool,
}

/// Serves a subscription on its connection's thread, from its `Subscribe` to its end.
pub(super) fn serve(shared: &Shared, conn: SubscriberConnection<'_>, request: Subscribe) {
    let stream = conn.stream.clone();
    let refuse = |kind: RefusalKind, reason: String| {
        let refusal = Refusal { kind, reason };
        let _ = stream.send(&Message::Refused(refusal).encode(), None);
    };
    let Some(hub) = shared.server.events.clone() else {
        return refuse(
            RefusalKind::Protocol,
            format!("service `{}` emits no events", shared.server.name),
        );
    };
    let interface = hub.interface();
    let info = match interface.info() {
        Ok(info) => info.clone(),
        Err(e) => return refuse(RefusalKind::Protocol, e.to_string()),
    };
    if let Some((name, fingerprint)) = &request.interface {
        // The shapes' fingerprint (`InterfaceInfo::fingerprint`), what the subscriber sends.
        if *name != info.name || *fingerprint != info.fingerprint {
            return refuse(
                RefusalKind::Protocol,
                format!(
                    "the subscriber expects events `{name}` ({fingerprint:#018x}); the service \
                     emits `{}` ({:#018x})",
                    info.name, info.fingerprint
                ),
            );
        }
    }
    let wants = match &request.events {
        None => None,
        Some(names) => {
            let mut ids = Vec::new();
            for name in names.iter().take(interface.methods.len() + 1) {
                match interface.methods.iter().find(|m| m.name == name.as_str()) {
                    Some(m) => ids.push(m.id),
                    None => {
                        return refuse(
                            RefusalKind::Protocol,
                            format!("`{}` emits no event named `{name}`", interface.name),
                        )
                    }
                }
            }
            Some(ids)
        }
    };
    if let Err(reason) = shared.within_limits() {
        return refuse(RefusalKind::Busy, reason);
    }
    // A link to a calling connection only of the same process.
    let link = match request.link {
        None => None,
        Some(token) => {
            let same = shared.connections().values().any(|(other, _)| {
                other.welcome_token() == Some(token)
                    && other.peer.as_ref().map(|p| (p.pid(), p.user().clone()))
                        == conn.peer.as_ref().map(|p| (p.pid(), p.user().clone()))
                    && conn.peer.as_ref().is_some_and(|p| p.pid().is_some())
            });
            if !same {
                return refuse(
                    RefusalKind::Denied,
                    "the subscription names a connection that is not this process's".into(),
                );
            }
            Some(token)
        }
    };
    let size = events::ring_size(request.ring as usize);
    let options = &shared.server.options;
    let budget = ConnectionBudget::new(
        Budget::new(
            "this connection's budget (ServerOptions::max_shared_memory_per_connection)",
            options.max_shared_memory_per_connection,
            u64::MAX,
        ),
        shared.budget.clone(),
    );
    let charge = match budget.charge((events::HEADER + size) as u64, 1) {
        Ok(charge) => charge,
        Err(e) => return refuse(RefusalKind::Busy, e.to_string()),
    };
    let (producer, shm) = match Producer::create(
        &format!("lpc-events:{}", shared.server.name),
        size,
        request.policy,
    ) {
        Ok(created) => created,
        Err(e) => {
            return refuse(
                RefusalKind::Busy,
                format!("the service cannot allocate the event ring: {e}"),
            )
        }
    };
    let id = hub.inner.next_id.fetch_add(1, Ordering::Relaxed);
    let subscriber = Arc::new(Subscriber {
        id,
        link,
        wants,
        wanted_names: request.events.clone(),
        producer: Mutex::new(producer),
        policy: request.policy,
        ring: size,
        stream: stream.clone(),
        peer: conn.peer.clone(),
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        gone: AtomicBool::new(false),
        _charge: charge,
    });
    // In the hub before the answer: an event emitted once the subscriber has its answer
    // reaches it.
    hub.write().push(subscriber.clone());
    let answer = Message::Subscribed(Subscribed {
        events: info,
        ring: size as u32,
    });
    if stream.send(&answer.encode(), Some(&shm)).is_ok() {
        drop(shm);
        conn.calling.store(true, Ordering::Relaxed);
        // The subscriber sends nothing more: the stream ends when it leaves (or when the hub
        // shut it down).
        let mut buf = [0u8; 64];
        loop {
            if (conn.stopped)() || subscriber.gone.load(Ordering::Relaxed) {
                break;
            }
            match stream.recv(&mut buf, Some(Instant::now() + RECHECK)) {
                Ok((0, _)) => break,
                Ok(_) => {
                    tracing::warn!(service = %shared.server.name, "a subscriber sent a message: ending its subscription");
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => break,
            }
        }
    }
    hub.remove(id);
    // Dropping the last reference unmaps its ring (an emit in progress may hold one a moment).
}
