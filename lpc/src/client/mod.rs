//! The client side: connecting to a service and making calls.
//!
//! [`Client`] is what the generated `XxxClient` proxies wrap. It is cheap to clone and safe to
//! share between threads; each concurrent call takes its own call slot.

pub mod events;
#[cfg(not(loom))]
mod handles;
mod oneway;
mod slots;
mod spawn;

pub use spawn::Child;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::channel::payload::{Buffer, PayloadWriter, Written};
use crate::channel::spin::SpinBudget;
use crate::channel::{scope, state, Cancel, Channel, ChannelError, Payload, WaitEnd};
use crate::error::{CallPhase, Error, Result};
use crate::loan::{self, Loan};
use crate::registry;
use crate::shm::layout::{ConnectionMemory, Geometry, HEAD_SIZE};
use crate::sys::{current_user, Stream, UserId};
use crate::wire::budget::{self, Budget};
use crate::wire::frame::{Status, FLAG_JSON};
use crate::wire::handshake::{Hello, Message};
use crate::wire::info::ServiceInfo;
use crate::wire::interface::{
    compare_interfaces, Comparison, InterfaceDescriptor, InterfaceInfo, MethodDescriptor,
};
use crate::wire::{codec, FrameHeader, DEFAULT_MAX_PAYLOAD};

use self::slots::{NoSlot, SlotGuard, SlotPool};

/// How a client waits for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Spin briefly (adapting to how quickly the service answers), then sleep on a futex.
    /// Lowest latency when client and service run on different CPUs; never spins when this
    /// process may use only one CPU.
    #[default]
    Adaptive,
    /// Always sleep on the futex: no CPU burnt while waiting, a few microseconds more per call.
    Block,
}

/// Options for [`Client::connect`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    runtime_dir: Option<PathBuf>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
    wait: WaitStrategy,
    max_reply: u64,
    slot_wait: Option<Duration>,
    post_wait: Option<Duration>,
    reconnect: bool,
    allow_mismatched: bool,
    /// Who must serve the socket: this process's user when `None`.
    service_user: Option<UserId>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            runtime_dir: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: None,
            wait: WaitStrategy::Adaptive,
            max_reply: DEFAULT_MAX_PAYLOAD,
            slot_wait: None,
            post_wait: None,
            reconnect: false,
            allow_mismatched: false,
            service_user: None,
        }
    }
}

impl ClientOptions {
    /// The defaults: the default runtime directory, a service that runs as this process's own
    /// user, a 5 s connect timeout, no call timeout, adaptive waiting, replies up to 1 GiB,
    /// calls that wait for a free call slot (bounded only by their deadline), no reconnecting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Look for the service in `dir` instead of the default runtime directory.
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Give up connecting (handshake included) after `timeout`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Give up on each call after `timeout` (none by default); see also
    /// [`Client::with_timeout`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// How to wait for replies.
    pub fn wait(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// Refuse replies larger than `bytes` (the service answers `TooLarge` instead).
    pub fn max_reply(mut self, bytes: u64) -> Self {
        self.max_reply = bytes;
        self
    }

    /// When every call slot of the connection is taken by other threads' calls (the service's
    /// limit on calls in flight per connection, `ServerOptions::slots`), wait up to `wait`
    /// (and never past the call's deadline) for one to free up, then fail with
    /// [`Error::Busy`]. `Duration::ZERO` fails at once, like
    /// [`ClientOptions::busy_when_full`].
    ///
    /// By default a call waits for a slot as long as its deadline allows (forever without
    /// one). Waiting threads are served in order: none waits for more than the calls of the
    /// threads that queued before it.
    pub fn queue_for_slot(mut self, wait: Duration) -> Self {
        self.slot_wait = Some(wait);
        self
    }

    /// A call that finds every call slot of the connection taken fails at once with
    /// [`Error::Busy`] instead of waiting for one (the same as `queue_for_slot(Duration::ZERO)`).
    pub fn busy_when_full(self) -> Self {
        self.queue_for_slot(Duration::ZERO)
    }

    /// A one-way post ([`Client::post`]) that finds the connection's one-way queue full waits
    /// up to `wait` (and never past its call timeout) for the service to make room, then fails
    /// with [`Error::Busy`]. `Duration::ZERO` fails at once, like
    /// [`ClientOptions::busy_when_queue_full`]. By default a post waits as long as its call
    /// timeout allows (without one, as long as the service lives). A post is never dropped
    /// silently: it is in the queue when it returns `Ok`, or it returns an error.
    pub fn queue_for_post(mut self, wait: Duration) -> Self {
        self.post_wait = Some(wait);
        self
    }

    /// A one-way post that finds the queue full fails at once with [`Error::Busy`] (the same
    /// as `queue_for_post(Duration::ZERO)`).
    pub fn busy_when_queue_full(self) -> Self {
        self.queue_for_post(Duration::ZERO)
    }

    /// After the connection is lost, let the next call connect again (to the same name,
    /// checking the interface again). The call that found the connection lost still fails
    /// with [`Error::Disconnected`]: lpc never repeats a call that may have run.
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }

    /// Connect only to a service that runs as `user` (by default: this process's own user).
    ///
    /// Before it sends anything, a client asks the kernel which user's process accepted its
    /// connection (`SO_PEERCRED` on Linux) and refuses any other with [`Error::Denied`],
    /// naming both users: a runtime directory or socket that another user planted (in `/tmp`,
    /// say) never yields a connection to an impostor. Name the service's user here when it
    /// runs as another user by design, such as a system service that admits this one
    /// ([`crate::ServerOptions::allow_uid`]). Queries ([`crate::query`]) check the same.
    ///
    /// ```no_run
    /// use lpc::{ClientOptions, UserId};
    /// // A system service, run by root, that admits this user.
    /// let options = ClientOptions::new()
    ///     .runtime_dir("/run/lpc")
    ///     .service_user(UserId::from_uid(0));
    /// let info = lpc::query("vault", &options)?;
    /// println!("vault: pid {:?}, user {}", info.pid, info.user);
    /// # Ok::<(), lpc::Error>(())
    /// ```
    pub fn service_user(mut self, user: UserId) -> Self {
        self.service_user = Some(user);
        self
    }

    /// Connect only to a service run by Unix user `uid` (see [`ClientOptions::service_user`]).
    pub fn service_uid(self, uid: u32) -> Self {
        self.service_user(UserId::from_uid(uid))
    }

    /// The user whose service this client accepts.
    fn expected_service_user(&self) -> UserId {
        self.service_user.clone().unwrap_or_else(current_user)
    }

    /// Connect even when some methods have other shapes in the service than in this client
    /// (by default such a service is refused at connect with [`Error::InterfaceMismatch`]).
    /// Calls of those methods then fail with `InterfaceMismatch` without being sent; the
    /// others work. See [`Client::mismatched_methods`].
    pub fn allow_mismatched_methods(mut self, allow: bool) -> Self {
        self.allow_mismatched = allow;
        self
    }
}

/// A connection to a service. Clone it freely: clones share the connection.
#[derive(Clone)]
pub struct Client {
    link: Link,
    call_timeout: Option<Duration>,
    /// How long a call waits for a free slot: `None` as long as its deadline allows.
    slot_wait: Option<Duration>,
    /// How long a post waits for room in the one-way queue: `None` as long as its deadline
    /// allows.
    post_wait: Option<Duration>,
}

/// How a client reaches its connection.
#[derive(Clone)]
enum Link {
    /// One connection for the client's life: no indirection on the call path.
    Fixed(Arc<Connection>),
    /// A connection replaced after it is lost (each call takes the reconnector's lock).
    Reconnecting(Arc<Reconnector>),
}

/// What a reconnecting client needs to connect again, and the connection it uses now.
struct Reconnector {
    name: String,
    interface: Option<&'static InterfaceDescriptor>,
    options: ClientOptions,
    /// The interface announced at the first connection.
    remote: InterfaceInfo,
    current: Mutex<Arc<Connection>>,
}

impl Reconnector {
    /// The live connection: the current one, or a new one if it is lost.
    fn connection(&self) -> Result<Arc<Connection>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.dead.load(Ordering::Relaxed) {
            *current = Arc::new(Client::open(&self.name, self.interface, &self.options)?);
        }
        Ok(current.clone())
    }
}

/// The connection a call uses: the client's own, or the one its reconnector made.
enum Live<'a> {
    Own(&'a Connection),
    Renewed(Arc<Connection>),
}

impl std::ops::Deref for Live<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Live::Own(c) => c,
            Live::Renewed(c) => c,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service_name())
            .field("interface", &self.interface().name)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

struct Connection {
    service: String,
    channel: Channel,
    /// The connection's socket (the channel's too), for slot waiters to check that the
    /// service still lives.
    stream: Arc<Stream>,
    /// The client connects again after this connection is lost (`ClientOptions::reconnect`).
    reconnects: bool,
    slots: SlotPool,
    remote: InterfaceInfo,
    max_request: u64,
    max_reply: u64,
    spin: SpinBudget,
    dead: AtomicBool,
    /// The id of the last call made on each slot. A slot belongs to one thread at a time, so
    /// a plain load and store suffice (no read-modify-write on a line shared by all threads).
    call_ids: Box<[AtomicU64]>,
    /// How this client's interface compares with the service's: the methods it must not
    /// send (empty when both agree, so a call pays one length check for it).
    comparison: Comparison,
    unavailable: Box<[u32]>,
    /// The client's end of the one-way queue (see `oneway`).
    sender: Mutex<crate::channel::queue::Sender>,
}

impl Client {
    /// Connects to service `name`, checking that it implements `interface`.
    ///
    /// Errors: [`Error::InvalidName`] if `name` cannot name a service, [`Error::NotFound`] if
    /// no service has the name, [`Error::InterfaceMismatch`] if it serves another version of
    /// the interface, [`Error::Timeout`] (phase [`CallPhase::Connecting`]) if the connection
    /// and its handshake do not finish within the connect timeout.
    pub fn connect(
        name: &str,
        interface: &'static InterfaceDescriptor,
        options: &ClientOptions,
    ) -> Result<Client> {
        Self::connect_any(name, Some(interface), options)
    }

    /// Connects to service `name` whatever its interface (for tools that discover it; see
    /// [`Client::interface`]).
    pub fn connect_dynamic(name: &str, options: &ClientOptions) -> Result<Client> {
        Self::connect_any(name, None, options)
    }

    fn connect_any(
        name: &str,
        interface: Option<&'static InterfaceDescriptor>,
        options: &ClientOptions,
    ) -> Result<Client> {
        let conn = Arc::new(Self::open(name, interface, options)?);
        let link = if options.reconnect {
            Link::Reconnecting(Arc::new(Reconnector {
                name: name.to_owned(),
                interface,
                options: options.clone(),
                remote: conn.remote.clone(),
                current: Mutex::new(conn),
            }))
        } else {
            Link::Fixed(conn)
        };
        Ok(Client {
            link,
            call_timeout: options.call_timeout,
            slot_wait: options.slot_wait,
            post_wait: options.post_wait,
        })
    }

    /// Connects and runs the handshake (checking `interface` if given).
    fn open(
        name: &str,
        interface: Option<&'static InterfaceDescriptor>,
        options: &ClientOptions,
    ) -> Result<Connection> {
        registry::validate_name(name)?;
        let dir = options
            .runtime_dir
            .clone()
            .unwrap_or_else(registry::default_runtime_dir);
        let path = registry::socket_path(&dir, name);
        let deadline = Instant::now() + options.connect_timeout;
        let (stream, service) = registry::connect(
            name,
            &path,
            options.connect_timeout,
            &options.expected_service_user(),
        )?;
        Self::handshake(name, stream, service.pid(), deadline, interface, options)
    }

    /// The handshake on a connected `stream` to the service `name` (whose pid is
    /// `service_pid`, if known), by `deadline`.
    fn handshake(
        name: &str,
        stream: Stream,
        service_pid: Option<u32>,
        deadline: Instant,
        interface: Option<&'static InterfaceDescriptor>,
        options: &ClientOptions,
    ) -> Result<Connection> {
        let hello = Message::Hello(Hello {
            service: name.to_owned(),
            interface: interface.map(|i| (i.name.to_owned(), i.fingerprint)),
            max_reply: options.max_reply,
        });
        let welcome =
            match registry::exchange(name, &stream, &hello, deadline, options.connect_timeout)? {
                (Message::Welcome(welcome), shm) => (welcome, shm),
                (other, _) => {
                    return Err(Error::protocol(
                        name,
                        None,
                        format!("expected a welcome, got {other:?}"),
                    ))
                }
            };
        let (welcome, shm) = welcome;
        let shm =
            shm.ok_or_else(|| Error::protocol(name, None, "handshake carried no shared memory"))?;
        let geometry = Geometry {
            slot_count: welcome.slot_count,
            slot_size: welcome.slot_size,
            queue_size: welcome.queue_size,
        };
        let memory =
            ConnectionMemory::open(&shm, geometry).map_err(|e| Error::protocol(name, None, e))?;
        // Unknown (None) when the service runs in a PID namespace we cannot see.
        let stream = Arc::new(stream);
        let mut channel = Channel::new(name, memory, stream.clone());
        channel.set_peer_limit(welcome.max_request);
        channel.set_receive_limit(options.max_reply);
        channel.set_token(welcome.token);
        let mut conn = Connection {
            service: name.to_owned(),
            channel,
            stream,
            reconnects: options.reconnect,
            slots: SlotPool::new(geometry.slot_count),
            remote: std::sync::Arc::unwrap_or_clone(welcome.interface),
            max_request: welcome.max_request,
            max_reply: options.max_reply,
            spin: SpinBudget::new(options.wait == WaitStrategy::Adaptive, service_pid),
            dead: AtomicBool::new(false),
            call_ids: (0..geometry.slot_count)
                .map(|_| AtomicU64::new(0))
                .collect(),
            comparison: Comparison::default(),
            unavailable: Box::new([]),
            sender: Mutex::default(),
        };
        if let Some(interface) = interface {
            let local = interface.info().map_err(|e| Error::Shape {
                service: name.to_owned(),
                detail: e.to_string(),
            })?;
            conn.comparison = check_interface(name, local, &conn.remote, options)?;
            conn.unavailable = conn
                .comparison
                .missing
                .iter()
                .chain(conn.comparison.mismatched.iter().map(|(m, _)| m))
                .filter_map(|m| local.method(m).map(|m| m.id))
                .collect();
        }
        Ok(conn)
    }

    /// The connection to use for a call: ours while it lives; after it is lost, a new one if
    /// this client reconnects.
    #[inline]
    fn live(&self, method: &str) -> Result<Live<'_>> {
        match &self.link {
            Link::Fixed(conn) if !conn.dead.load(Ordering::Relaxed) => Ok(Live::Own(conn)),
            Link::Fixed(conn) => Err(conn.disconnected(method, CallPhase::NotSent)),
            Link::Reconnecting(reconnector) => reconnector.connection().map(Live::Renewed),
        }
    }

    /// A handle to the same connection whose calls give up after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            call_timeout: Some(timeout),
            ..self.clone()
        }
    }

    /// The service name this client connected to.
    pub fn service_name(&self) -> &str {
        match &self.link {
            Link::Fixed(conn) => &conn.service,
            Link::Reconnecting(r) => &r.name,
        }
    }

    /// The interface the service announced at the handshake.
    pub fn interface(&self) -> &InterfaceInfo {
        match &self.link {
            Link::Fixed(conn) => &conn.remote,
            Link::Reconnecting(r) => &r.remote,
        }
    }

    /// The methods this client knows that the service does not have: calling one fails with
    /// [`Error::NoSuchMethod`] (an older service). Empty for a dynamic client.
    pub fn missing_methods(&self) -> Vec<String> {
        self.with_comparison(|c| c.missing.clone())
    }

    /// The methods the service has with other shapes than this client (connected with
    /// [`ClientOptions::allow_mismatched_methods`]), each with the first difference: calling one
    /// fails with [`Error::InterfaceMismatch`].
    pub fn mismatched_methods(&self) -> Vec<(String, String)> {
        self.with_comparison(|c| c.mismatched.clone())
    }

    fn with_comparison<R>(&self, f: impl FnOnce(&Comparison) -> R) -> R {
        match &self.link {
            Link::Fixed(conn) => f(&conn.comparison),
            Link::Reconnecting(r) => f(&r
                .current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .comparison),
        }
    }

    /// True once the connection is known to be lost; every later call fails with
    /// [`Error::Disconnected`] (or, with [`ClientOptions::reconnect`], connects again).
    pub fn is_disconnected(&self) -> bool {
        match &self.link {
            Link::Fixed(conn) => conn.dead.load(Ordering::Relaxed),
            Link::Reconnecting(r) => r
                .current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .dead
                .load(Ordering::Relaxed),
        }
    }

    /// A buffer of `len` bytes in this connection's shared memory, to fill in place and pass
    /// as a `&Loan` argument: the service reads it where it is (see [`crate::Loan`]).
    pub fn loan(&self, len: usize) -> Result<Loan> {
        let conn = self.live("(loan)")?;
        loan::claim(&conn.channel, len, conn.max_request)
    }

    /// Calls `method` with `args` (a tuple of the arguments) and decodes the result as `R`.
    /// This is what generated client methods call.
    pub fn call<A, R>(&self, method: &'static MethodDescriptor, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_inner(method, args, false)
    }

    /// Like [`Client::call`], for methods whose result holds a [`crate::Loan`]: decodes the
    /// result where the loan's buffer can be mapped. Generated clients use it for methods whose
    /// return type holds an `lpc::Loan` (decided from the type's path, see `lpc-macros`).
    pub fn call_loaned<A, R>(&self, method: &'static MethodDescriptor, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_inner(method, args, true)
    }

    fn call_inner<A, R>(
        &self,
        method: &'static MethodDescriptor,
        args: &A,
        loans: bool,
    ) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(
            method.id,
            method.name,
            args,
            (&mut Buffer::for_writing(), &mut Buffer::for_reading()),
            loans,
        )
    }

    fn call_with<A, R>(
        &self,
        method_id: u32,
        method: &str,
        args: &A,
        (request, reply): (&mut Buffer, &mut Buffer),
        loans: bool,
    ) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let conn = self.live(method)?;
        if !conn.unavailable.is_empty() {
            conn.check_available(method_id, method)?;
        }
        self.exchange(
            &conn,
            (method_id, method, 0),
            (request, reply),
            |writer| {
                codec::encode_into(args, writer).map_err(|why| {
                    Error::protocol(
                        &conn.service,
                        Some(method),
                        format!("cannot encode the arguments: {why}"),
                    )
                })
            },
            |payload| {
                let decode = || payload.decode::<R>();
                let decoded = if loans {
                    scope::calling(&conn.channel, decode)
                } else {
                    decode()
                };
                decoded.map_err(|why| {
                    Error::protocol(
                        &conn.service,
                        Some(method),
                        format!("cannot decode the result: {why}"),
                    )
                })
            },
        )
    }

    /// Calls method `method_id` with arguments already encoded (the postcard encoding of the
    /// tuple of the arguments, as generated clients send them) and returns the encoded result
    /// (the postcard encoding of the return value). For bindings to other languages, which
    /// encode themselves: this is what the C ABI's `lpc_call` uses.
    ///
    /// Errors: as [`Client::call`]; [`Error::NoSuchMethod`] if the service has no method with
    /// that id.
    pub fn call_encoded(&self, method_id: u32, args: &[u8]) -> Result<Vec<u8>> {
        self.call_encoded_with(method_id, args, <[u8]>::to_vec)
    }

    /// Like [`Client::call_encoded`], handing the encoded result to `read` where it lies
    /// instead of copying it into a new `Vec`: the C ABI's `lpc_call_into` writes it straight
    /// into the caller's buffer, so a small call allocates nothing.
    pub fn call_encoded_with<T>(
        &self,
        method_id: u32,
        args: &[u8],
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let conn = self.live("(by id)")?;
        let Some(method) = conn.remote.methods.iter().find(|m| m.id == method_id) else {
            return Err(Error::NoSuchMethod {
                service: conn.service.clone(),
                method: format!("#{method_id:#010x}"),
            });
        };
        let name = method.name.as_str();
        self.exchange(
            &conn,
            (method_id, name, 0),
            (&mut Buffer::for_writing(), &mut Buffer::for_reading()),
            |writer| {
                // A failure to write is kept by the writer, which reports it when finished.
                let _ = codec::Sink::put_all(writer, args);
                Ok(())
            },
            |payload| {
                payload.into_local().map(read).map_err(|e| {
                    Error::protocol(&conn.service, Some(name), format!("the result: {e}"))
                })
            },
        )
    }

    /// Calls `method` by name with JSON arguments — an array in parameter order, or an object
    /// by parameter name — decoded by the service itself. Returns the service's JSON reply:
    /// `{"result": R}` (or `{"error": E}` when a method returning `Result<T, E>` fails), with
    /// `"out": {name: new value}` for `&mut` parameters. No compiled stubs needed: this is
    /// what `lpc call` uses.
    pub fn call_json(&self, method: &str, args: &serde_json::Value) -> Result<serde_json::Value> {
        let conn = self.live(method)?;
        let id = conn
            .remote
            .method(method)
            .map(|m| m.id)
            .ok_or_else(|| Error::NoSuchMethod {
                service: conn.service.clone(),
                method: method.to_owned(),
            })?;
        let request = serde_json::to_vec(args).map_err(|e| {
            Error::protocol(
                &conn.service,
                Some(method),
                format!("cannot encode the arguments: {e}"),
            )
        })?;
        self.exchange(
            &conn,
            (id, method, FLAG_JSON),
            (&mut Buffer::for_writing(), &mut Buffer::for_reading()),
            |writer| {
                // A failure to write is kept by the writer, which reports it when finished.
                let _ = codec::Sink::put_all(writer, &request);
                Ok(())
            },
            |payload| {
                let not_json = |e: String| {
                    Error::protocol(
                        &conn.service,
                        Some(method),
                        format!("the reply is not JSON: {e}"),
                    )
                };
                let bytes = payload.into_local().map_err(|e| not_json(e.to_string()))?;
                let budget = Budget::for_payload(bytes.len(), conn.max_reply);
                budget::json_value(bytes, &budget).map_err(|e| match budget.refusal() {
                    Some(why) => Error::protocol(
                        &conn.service,
                        Some(method),
                        format!("the reply is too large to decode: {why}"),
                    ),
                    None => not_json(e.to_string()),
                })
            },
        )
    }

    /// Takes a call slot of `conn` for one call: a free one at once, else (as the options say)
    /// waits in line for one or fails with `Busy`.
    #[inline]
    fn acquire<'c>(
        &self,
        conn: &'c Connection,
        method: &str,
        deadline: Option<Instant>,
    ) -> Result<SlotGuard<'c>> {
        if conn.dead.load(Ordering::Relaxed) {
            return Err(conn.disconnected(method, CallPhase::NotSent));
        }
        if let Some(slot) = conn.slots.try_acquire(&conn.channel) {
            conn.channel.use_slot(slot.index());
            return Ok(slot);
        }
        self.wait_for_slot(conn, method, deadline)
    }

    /// Every slot is taken (or other threads wait for one): waits in line, up to the call's
    /// deadline and the options' bound, or fails with `Busy` at once if the options say so.
    #[cold]
    #[inline(never)]
    fn wait_for_slot<'c>(
        &self,
        conn: &'c Connection,
        method: &str,
        deadline: Option<Instant>,
    ) -> Result<SlotGuard<'c>> {
        let slots = conn.channel.memory().geometry().slot_count;
        let busy = |reason: String| Error::Busy {
            service: conn.service.clone(),
            method: Some(method.to_owned()),
            reason,
        };
        // Past `bound` (from `queue_for_slot`) the call is `Busy`; past its deadline, a timeout.
        let bound = match self.slot_wait {
            Some(wait) if wait.is_zero() => {
                return Err(busy(format!(
                    "all {slots} call slots of this connection are in use by other calls (the \
                     service's limit on calls in flight per connection, ServerOptions::slots); \
                     retry, or let calls wait for a slot (the default, or \
                     ClientOptions::queue_for_slot)"
                )))
            }
            // A bound too far to represent is no bound.
            Some(wait) => Instant::now().checked_add(wait),
            None => None,
        };
        let until = match (deadline, bound) {
            (Some(d), Some(b)) => Some(d.min(b)),
            (d, b) => d.or(b),
        };
        match conn
            .slots
            .acquire(&conn.channel, until, &|| conn.stream.peer_closed())
        {
            Ok(slot) => {
                conn.channel.use_slot(slot.index());
                Ok(slot)
            }
            Err(NoSlot::Closed) => Err(conn.disconnected(method, CallPhase::NotSent)),
            Err(NoSlot::TimedOut) if deadline.is_some() && deadline == until => {
                Err(self.timeout(conn, method, CallPhase::NotSent))
            }
            Err(NoSlot::TimedOut) => Err(busy(format!(
                "all {slots} call slots of this connection (the service's limit on calls in \
                 flight per connection, ServerOptions::slots) stayed in use for {:?}, the wait \
                 ClientOptions::queue_for_slot allows",
                self.slot_wait.unwrap_or_default()
            ))),
        }
    }

    fn timeout(&self, conn: &Connection, method: &str, phase: CallPhase) -> Error {
        Error::Timeout {
            service: conn.service.clone(),
            method: Some(method.to_owned()),
            after: self.call_timeout.unwrap_or_default(),
            phase,
        }
    }

    /// Publishes the request already `written` into the call's slot and waits for the reply.
    /// Returns the reply's validated header, the slot still held by `call` (the caller reads
    /// the payload); on an error the slot is released, quarantined or, with the connection
    /// lost, left taken, by `call`'s guard.
    fn submit(
        &self,
        call: &mut Call<'_>,
        written: Written,
        stage: &[u8],
    ) -> Result<(FrameHeader, [u8; HEAD_SIZE])> {
        let conn = call.conn;
        let slot = call.slot.index();
        let call_id = conn.call_ids[slot as usize]
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        conn.call_ids[slot as usize].store(call_id, Ordering::Relaxed);
        let header = FrameHeader {
            method: call.method_id,
            flags: call.flags,
            call_id,
            len: 0,
            spill_generation: 0,
            status: Status::Ok,
            // The service sees the caller's deadline (`lpc::deadline()`): the monotonic clock
            // is shared by all processes of the machine.
            deadline_ns: self.call_timeout.map_or(0, |t| {
                crate::sys::monotonic_ns().saturating_add(t.as_nanos() as u64)
            }),
        };
        conn.channel.publish(slot, header, written, stage);
        conn.channel.submit(slot, call.deadline.is_none());

        let method = call.method;
        match conn.channel.wait_for_reply(slot, &conn.spin, call.deadline) {
            WaitEnd::Reply => {}
            WaitEnd::TimedOut(_) => match conn.channel.cancel(slot) {
                // The service had not taken it: withdrawn, it never runs; the slot is free.
                Cancel::Withdrawn => return Err(self.timeout(conn, method, CallPhase::NotTaken)),
                // The service runs it: the slot is the service's until the handler returns.
                Cancel::Abandoned => {
                    call.slot.quarantine();
                    return Err(self.timeout(conn, method, CallPhase::Executing));
                }
                // The reply arrived just now: take it.
                Cancel::Replied => {}
                Cancel::Broken(state) => {
                    return Err(conn.fail(
                        ChannelError::Protocol(format!("slot {slot} left in state {state}")),
                        method,
                        CallPhase::Executing,
                    ))
                }
            },
            WaitEnd::PeerGone(seen) => {
                // The slot stays taken: the connection is dead. A call without a deadline is
                // taken without a state change: its taken word tells whether it may have run.
                call.slot.keep_taken();
                let phase = if seen == state::REQUEST_FIXED && conn.channel.was_taken(slot, call_id)
                {
                    CallPhase::Executing
                } else {
                    state::phase_of(seen)
                };
                return Err(conn.disconnected(method, phase));
            }
        }
        conn.reply_header(slot, call_id, method)
    }

    /// One call on `conn`: takes a slot, lets `encode` write the request into it (straight
    /// into shared memory), publishes it, waits, and lets `decode` read a successful reply where
    /// it lies. `id` is the method's id, name and the frame flags to add; `buffers` are the
    /// staging buffer for small writes and the scratch buffer for an inline reply, kept by the
    /// caller across calls.
    fn exchange<T>(
        &self,
        conn: &Connection,
        (method_id, method, flags): (u32, &str, u32),
        (stage, scratch): (&mut Buffer, &mut Buffer),
        encode: impl FnOnce(&mut PayloadWriter<'_>) -> Result<()>,
        decode: impl FnOnce(Payload<'_>) -> Result<T>,
    ) -> Result<T> {
        let deadline = self.call_timeout.map(|t| Instant::now() + t);
        let mut call = Call {
            conn,
            slot: self.acquire(conn, method, deadline)?,
            method_id,
            method,
            flags,
            deadline,
        };
        let slot = call.slot.index();
        let written = {
            let mut writer = conn.channel.writer(slot, conn.max_request, stage);
            match encode(&mut writer) {
                Ok(()) => writer.finish(),
                // The writer's own failure (no memory for a spill buffer) is why, if it had one.
                Err(e) => Err(writer.take_failure().ok_or(e)?),
            }
        };
        let written = match written {
            Ok(written) => written,
            Err(e) => return Err(conn.fail(e, method, CallPhase::NotSent)),
        };
        let (header, head) = self.submit(&mut call, written, stage.as_slice())?;
        if header.status == Status::Ok {
            let decoded = conn
                .channel
                .with_payload_in(slot, &header, &head, conn.max_reply, scratch, decode)
                .map_err(|e| conn.fail(e, method, CallPhase::ReplyLost))?;
            if decoded.is_err() && conn.channel.broken().is_some() {
                // The result named a loan whose buffer is not lpc shared memory.
                conn.lost();
            }
            decoded
        } else {
            conn.failure(slot, &header, method, scratch.get())
        }
        // Dropping the guard frees the slot, which stays in REPLY: the next request on it
        // overwrites that state (see `channel::state` for why not FREE).
    }
}

/// One call in progress: its connection, its slot (freed when the call is dropped, unless
/// it was quarantined or the connection lost), what it calls and until when.
struct Call<'c> {
    conn: &'c Connection,
    slot: SlotGuard<'c>,
    method_id: u32,
    method: &'c str,
    /// Frame flags beyond the payload's own (`FLAG_JSON`).
    flags: u32,
    deadline: Option<Instant>,
}

impl Connection {
    /// Fails a call of a method the service lacks, or has with other shapes, before it is
    /// sent.
    #[cold]
    fn check_available(&self, method_id: u32, method: &str) -> Result<()> {
        if !self.unavailable.contains(&method_id) {
            return Ok(());
        }
        if let Some((_, why)) = self.comparison.mismatched.iter().find(|(m, _)| m == method) {
            return Err(Error::InterfaceMismatch {
                service: self.service.clone(),
                detail: format!("method `{method}`: {why}; the call was not sent"),
            });
        }
        Err(Error::NoSuchMethod {
            service: self.service.clone(),
            method: method.to_owned(),
        })
    }

    fn disconnected(&self, method: &str, phase: CallPhase) -> Error {
        self.lost();
        Error::Disconnected {
            service: self.service.clone(),
            method: Some(method.to_owned()),
            phase,
            reconnect: self.reconnects,
        }
    }

    /// Marks the connection lost: later calls fail at once, and threads waiting for a slot
    /// stop waiting.
    fn lost(&self) {
        if !self.dead.swap(true, Ordering::Relaxed) {
            self.slots.close();
        }
    }

    /// The error for a failure of the channel during a call of `method`; after a lost
    /// connection or a protocol violation nothing on this connection can be trusted, and
    /// later calls fail at once.
    fn fail(&self, e: ChannelError, method: &str, phase: CallPhase) -> Error {
        if e.breaks_connection() {
            self.lost();
        }
        let mut error = e.into_error(&self.service, Some(method), phase);
        if let Error::Disconnected { reconnect, .. } = &mut error {
            *reconnect = self.reconnects;
        }
        error
    }

    /// Reads and validates the header of the reply in `slot`.
    fn reply_header(
        &self,
        slot: u32,
        call_id: u64,
        method: &str,
    ) -> Result<(FrameHeader, [u8; HEAD_SIZE])> {
        let head = self.channel.slot(slot).read_head();
        let header = FrameHeader::decode_head(&head)
            .map_err(|e| self.fail(ChannelError::Protocol(e), method, CallPhase::ReplyLost))?;
        if header.call_id != call_id {
            return Err(self.fail(
                ChannelError::Protocol(format!(
                    "reply is for call {}, expected {call_id}",
                    header.call_id
                )),
                method,
                CallPhase::ReplyLost,
            ));
        }
        Ok((header, head))
    }

    /// The error that a reply with a failure status in `slot` reports (its payload, read into
    /// `scratch`, is a message or a size).
    fn failure<T>(
        &self,
        slot: u32,
        header: &FrameHeader,
        method: &str,
        scratch: &mut Vec<u8>,
    ) -> Result<T> {
        scratch.clear();
        // Failure payloads are short: a message, or the size of a result that was too large.
        self.channel
            .read_payload(slot, header, self.max_reply.max(64), scratch)
            .map_err(|e| self.fail(e, method, CallPhase::ReplyLost))?;
        Err(status_error(
            &self.service,
            method,
            header.status,
            scratch,
            self.max_reply,
        ))
    }
}

/// The error a reply with failure status `status` and payload `payload` (a message, or the
/// size of a result too large for `max_reply`) reports for a call of `method`.
fn status_error(
    service: &str,
    method: &str,
    status: Status,
    payload: &[u8],
    max_reply: u64,
) -> Error {
    let service = service.to_owned();
    let text = || String::from_utf8_lossy(payload).into_owned();
    match status {
        Status::Ok => unreachable!("failure() is for failed calls"),
        Status::NoSuchMethod => Error::NoSuchMethod {
            service,
            method: method.to_owned(),
        },
        Status::BadArguments => Error::BadArguments {
            service,
            method: method.to_owned(),
            message: text(),
        },
        Status::Panicked | Status::EncodeFailed => Error::Remote {
            service,
            method: method.to_owned(),
            message: text(),
        },
        Status::TooLarge => Error::TooLarge {
            service,
            method: Some(method.to_owned()),
            size: payload
                .get(..8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            limit: max_reply,
        },
        Status::Busy => Error::Busy {
            service,
            method: Some(method.to_owned()),
            reason: text(),
        },
        // This client wrote a frame the service could not read: not the arguments' fault.
        Status::MalformedFrame => Error::Protocol {
            service,
            method: Some(method.to_owned()),
            detail: format!(
                "the service could not read this client's request frame: {}",
                text()
            ),
        },
    }
}

/// Asks service `name` who it is and how it is doing: pid, uid, uptime, interface, connected
/// clients and per-method statistics. Uses no call slot and leaves no connection behind.
///
/// Like a connection, it asks only a service of the user the options name (this process's
/// own by default, see [`ClientOptions::service_user`]). The service's owner sees every
/// client; another user it admits sees only its own connections. The pid and user are the
/// kernel's (`pid` is `None` when the service runs in a PID namespace this process cannot
/// see).
pub fn query(name: &str, options: &ClientOptions) -> Result<ServiceInfo> {
    registry::validate_name(name)?;
    let dir = options
        .runtime_dir
        .clone()
        .unwrap_or_else(registry::default_runtime_dir);
    registry::query_at(
        name,
        &registry::socket_path(&dir, name),
        options.connect_timeout,
        &options.expected_service_user(),
    )
}

/// Compares the interface this client was built against with the one the service announced,
/// method by method: another interface, or (unless the options allow it) a method with other
/// shapes, refuses the connection; methods only one side has are fine.
fn check_interface(
    service: &str,
    local: &InterfaceInfo,
    remote: &InterfaceInfo,
    options: &ClientOptions,
) -> Result<Comparison> {
    if local.name != remote.name {
        return Err(Error::InterfaceMismatch {
            service: service.to_owned(),
            detail: format!(
                "the service implements interface `{}`, this client expects `{}`",
                remote.name, local.name
            ),
        });
    }
    let comparison = compare_interfaces(local, remote);
    if !comparison.mismatched.is_empty() && !options.allow_mismatched {
        let list: Vec<String> = comparison
            .mismatched
            .iter()
            .map(|(m, why)| format!("`{m}`: {why}"))
            .collect();
        return Err(Error::InterfaceMismatch {
            service: service.to_owned(),
            detail: format!(
                "{}; (ClientOptions::allow_mismatched_methods connects anyway, refusing only \
                 these methods' calls)",
                list.join("; ")
            ),
        });
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_the_service_cannot_read_is_a_protocol_error_not_bad_arguments() {
        let err = status_error(
            "calc",
            "add",
            Status::MalformedFrame,
            b"malformed request frame: frame has unknown flags 0x80",
            1 << 20,
        );
        assert!(
            matches!(&err, Error::Protocol { method: Some(m), detail, .. }
                if m == "add" && detail.contains("unknown flags 0x80")),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("the service could not read this client's request frame"),
            "{err}"
        );
        let err = status_error(
            "calc",
            "add",
            Status::BadArguments,
            b"arguments do not decode",
            1 << 20,
        );
        assert!(matches!(&err, Error::BadArguments { .. }), "{err:?}");
    }
}
