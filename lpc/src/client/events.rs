//! Subscribing to a service's events: [`Subscription`], its own connection to the service
//! with a ring of events in shared memory (`channel::events`), read from a blocking iterator
//! or on a callback thread ([`Subscription::spawn`]).
//!
//! The service is hostile input here as everywhere: every word of the ring is checked, every
//! payload copied out and decoded within the bounds of its length; every wait is a slice of
//! at most 20 ms after which the subscriber checks the socket, so a service that dies (or
//! never writes) cannot hang a reader past its timeout, and its death ends the iterator with
//! [`Error::Disconnected`] once the events already in the ring are read.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Client, ClientOptions};
use crate::channel::events::{Consumer, Overflow, CLOSED_OVERFLOW, CLOSED_PROTOCOL};
use crate::channel::LIVENESS_SLICE;
use crate::error::{CallPhase, Error, Result};
use crate::registry;
use crate::sys::{Stream, WaitOutcome};
use crate::wire::codec;
use crate::wire::dynamic;
use crate::wire::handshake::{Message, Subscribe};
use crate::wire::interface::{InterfaceDescriptor, InterfaceInfo};
use crate::wire::shape::Shape;

/// The events of one `#[lpc::events]` trait as a Rust type (the generated `XxxEvent` enum),
/// or [`JsonEvent`] for any service's, decoded by shape.
pub trait EventSet: Sized {
    /// The events interface this type was compiled from (`None`: any, decoded by shape).
    fn interface() -> Option<&'static InterfaceDescriptor>;
    /// Decodes event `id`'s `payload`; `remote` is the interface the service announced.
    fn decode(id: u32, payload: &[u8], remote: &InterfaceInfo)
        -> std::result::Result<Self, String>;
}

/// Decodes an event's arguments (a tuple) as the generated `EventSet::decode` does.
#[doc(hidden)]
pub fn decode_args<T: serde::de::DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<T, String> {
    codec::decode_exact(payload, payload.len() as u64)
}

/// Any event, decoded by the shapes the service announced: what `lpc watch` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonEvent {
    /// The event's name.
    pub name: String,
    /// Its arguments, by parameter name.
    pub args: serde_json::Map<String, serde_json::Value>,
}

impl EventSet for JsonEvent {
    fn interface() -> Option<&'static InterfaceDescriptor> {
        None
    }

    fn decode(
        id: u32,
        payload: &[u8],
        remote: &InterfaceInfo,
    ) -> std::result::Result<Self, String> {
        let event = remote
            .methods
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| format!("an event of unknown id {id:#010x}"))?;
        let shape = Shape::Tuple(event.params.iter().map(|p| p.shape.clone()).collect());
        let value = dynamic::decode_json(payload, &shape, &remote.types)?;
        let serde_json::Value::Array(values) = value else {
            return Err("an event's arguments did not decode as a tuple".into());
        };
        let args = event
            .params
            .iter()
            .map(|p| p.name.clone())
            .zip(values)
            .collect();
        Ok(JsonEvent {
            name: event.name.clone(),
            args,
        })
    }
}

/// One event received, with how many this subscriber missed just before it (dropped by the
/// service because its ring was full, or too large for it): no loss is silent.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<E> {
    pub event: E,
    pub missed: u64,
}

/// How to subscribe: which events, how large a ring, and what the service does when it is
/// full.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    client: ClientOptions,
    events: Option<Vec<String>>,
    ring: u32,
    policy: Overflow,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            client: ClientOptions::default(),
            events: None,
            ring: crate::channel::events::DEFAULT_EVENT_RING,
            policy: Overflow::DropOldest,
        }
    }
}

impl SubscribeOptions {
    /// All events, a 64 KiB ring, drop the oldest when full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to find the service, whose user to expect, how long to connect (the
    /// connection options of a client).
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client = options;
        self
    }

    /// Look for the service in `dir`.
    pub fn runtime_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.client = self.client.runtime_dir(dir);
        self
    }

    /// Only these events (by name; an unknown name refuses the subscription).
    pub fn events<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.events = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The ring's size in bytes (rounded up to a power of two, 4 KiB to 16 MiB). An event
    /// larger than half of it is never delivered (counted as missed).
    pub fn ring(mut self, bytes: u32) -> Self {
        self.ring = bytes;
        self
    }

    /// What the service does when the ring is full.
    pub fn on_full(mut self, policy: Overflow) -> Self {
        self.policy = policy;
        self
    }
}

/// A subscription to a service's events. Iterate it (blocking) or give it a callback thread.
pub struct Subscription<E> {
    service: String,
    stream: Stream,
    consumer: Consumer,
    remote: InterfaceInfo,
    buf: Vec<u8>,
    /// The service's socket hung up: what is left in the ring is read, then the end.
    gone: bool,
    ended: bool,
    missed: u64,
    _events: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("service", &self.service)
            .field("ring", &self.consumer.size())
            .finish()
    }
}

impl Client {
    /// The token of this client's connection (for a linked subscription).
    fn link_token(&self) -> Result<u64> {
        let conn = self.live("subscribe")?;
        Ok(conn.channel.token())
    }
}

impl<E: EventSet> Subscription<E> {
    /// Subscribes to the events of service `name`.
    pub fn open(name: &str, options: SubscribeOptions) -> Result<Self> {
        Self::connect(name, options, None)
    }

    /// Subscribes to the events of `client`'s service, linked to `client`'s connection: the
    /// events the service sends to that connection alone (the caller of a handler) come here
    /// too.
    pub fn for_client(client: &Client, options: SubscribeOptions) -> Result<Self> {
        let token = client.link_token()?;
        Self::connect(client.service_name(), options, Some(token))
    }

    fn connect(name: &str, options: SubscribeOptions, link: Option<u64>) -> Result<Self> {
        registry::validate_name(name)?;
        let client = &options.client;
        let dir = client
            .runtime_dir
            .clone()
            .unwrap_or_else(registry::default_runtime_dir);
        let path = registry::socket_path(&dir, name);
        let deadline = Instant::now() + client.connect_timeout;
        let (stream, _service) = registry::connect(
            name,
            &path,
            client.connect_timeout,
            &client.expected_service_user(),
        )?;
        let request = Message::Subscribe(Subscribe {
            service: name.to_owned(),
            // The shapes' fingerprint, as the call handshake compares shapes (not how the
            // trait is written).
            interface: E::interface()
                .map(|i| i.info().map(|info| (i.name.to_owned(), info.fingerprint)))
                .transpose()
                .map_err(|e| Error::Shape {
                    service: name.to_owned(),
                    detail: e.to_string(),
                })?,
            events: options.events.clone(),
            ring: options.ring,
            policy: options.policy,
            link,
        });
        let (answer, shm) =
            registry::exchange(name, &stream, &request, deadline, client.connect_timeout)?;
        let protocol = |detail: String| Error::protocol(name, None, detail);
        let (Message::Subscribed(subscribed), Some(shm)) = (answer, shm) else {
            return Err(protocol(
                "the service answered a subscription with something else".into(),
            ));
        };
        let consumer = Consumer::open(&shm, subscribed.ring as usize)
            .map_err(|e| e.into_error(name, None, CallPhase::Connecting))?;
        if let Some(local) = E::interface() {
            let local_info = local.info().map_err(|e| Error::Shape {
                service: name.to_owned(),
                detail: e.to_string(),
            })?;
            for event in &local_info.methods {
                if let Some(theirs) = subscribed.events.method(&event.name) {
                    if theirs.fingerprint != event.fingerprint || theirs.id != event.id {
                        return Err(Error::InterfaceMismatch {
                            service: name.to_owned(),
                            detail: format!(
                                "event `{}` has other shapes in the service than in this \
                                 subscriber",
                                event.name
                            ),
                        });
                    }
                }
            }
        }
        Ok(Subscription {
            service: name.to_owned(),
            stream,
            consumer,
            remote: subscribed.events,
            buf: Vec::new(),
            gone: false,
            ended: false,
            missed: 0,
            _events: PhantomData,
        })
    }

    /// The events interface the service announced (names, parameters, shapes).
    pub fn interface(&self) -> &InterfaceInfo {
        &self.remote
    }

    /// The ring's size in bytes.
    pub fn ring_size(&self) -> usize {
        self.consumer.size()
    }

    /// Events missed so far, in all (each also reported with the event after it).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    fn end(&mut self, error: Error) -> Error {
        self.ended = true;
        error
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            service: self.service.clone(),
            method: None,
            phase: CallPhase::Executing,
            reconnect: false,
        }
    }

    /// The next event, waiting for it at most `timeout` (`Ok(None)` then). After the service
    /// is gone and the ring read: `Err(Disconnected)` (also when the service ended the
    /// subscription because its ring was full under [`Overflow::Disconnect`]: then
    /// [`Subscription::overflowed`] is true).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Received<E>>> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// The next event, waiting as long as the service lives.
    pub fn recv(&mut self) -> Result<Received<E>> {
        loop {
            if let Some(received) = self.recv_until(None)? {
                return Ok(received);
            }
        }
    }

    /// Whether the service ended this subscription because its ring was full.
    pub fn overflowed(&self) -> bool {
        self.consumer.closed() == CLOSED_OVERFLOW
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Received<E>>> {
        if self.ended {
            return Err(self.disconnected());
        }
        loop {
            match self.consumer.next(&mut self.buf) {
                Ok(Some(taken)) => {
                    let missed = u64::from(taken.missed);
                    self.missed += missed;
                    return match E::decode(taken.id, &self.buf, &self.remote) {
                        Ok(event) => Ok(Some(Received { event, missed })),
                        Err(why) => {
                            let e = Error::protocol(
                                &self.service,
                                None,
                                format!("an event did not decode: {why}"),
                            );
                            Err(self.end(e))
                        }
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    let e = e.into_error(&self.service, None, CallPhase::Executing);
                    return Err(self.end(e));
                }
            }
            if self.gone || self.consumer.closed() == CLOSED_PROTOCOL {
                self.missed += u64::from(self.consumer.take_unreported());
                let e = self.disconnected();
                return Err(self.end(e));
            }
            let mut slice = LIVENESS_SLICE;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                slice = slice.min(deadline - now);
            }
            if self.consumer.sleep(slice) == WaitOutcome::TimedOut && self.stream.peer_closed() {
                // Read what is left, then end.
                self.gone = true;
            }
        }
    }

    /// Receives the events on a thread of their own, calling `f` with each (and, at the
    /// end, with the `Disconnected` error) until the returned handle is stopped or dropped.
    pub fn spawn<F>(mut self, mut f: F) -> Result<EventThread>
    where
        E: Send + 'static,
        F: FnMut(Result<Received<E>>) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_ = stop.clone();
        let name = self.service.clone();
        let thread = std::thread::Builder::new()
            .name(format!("lpc-events-{}", self.service))
            .spawn(move || {
                while !stop_.load(Ordering::Relaxed) {
                    match self.recv_timeout(LIVENESS_SLICE) {
                        Ok(Some(received)) => f(Ok(received)),
                        Ok(None) => {}
                        Err(e) => {
                            f(Err(e));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::io(&name, "starting the event thread", e))?;
        Ok(EventThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl<E: EventSet> Iterator for Subscription<E> {
    type Item = Result<Received<E>>;

    /// The next event (blocking); `Err(Disconnected)` once when the service is gone, then
    /// `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        Some(self.recv())
    }
}

/// The thread of [`Subscription::spawn`]: stopping or dropping it ends the subscription
/// (within 20 ms) and joins the thread.
#[derive(Debug)]
pub struct EventThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EventThread {
    /// Ends the subscription and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Whether the thread has ended (the service is gone).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EventThread {
    fn drop(&mut self) {
        self.halt();
    }
}
