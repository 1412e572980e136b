//! The service side: binding a name, accepting connections, serving calls.
//!
//! ```text
//! Server::bind ──> Listener on <runtime dir>/<name>.sock
//! serve/spawn ──> reactor thread: accepts; watches every connection for hang-up
//!                 └─> one thread per connection (connection.rs): handshake, then
//!                     take request ─> Dispatch::dispatch (catch_unwind) ─> reply ─> sleep on doorbell
//! ```

mod connection;
mod context;
pub(crate) mod dispatch;
pub mod events;
pub(crate) mod json;
mod oneway;
mod stats;

pub use crate::wire::DEFAULT_MAX_PAYLOAD;
pub use context::{caller, cancelled, deadline};
pub use dispatch::{Dispatch, DispatchError, EncodedArgs, EncodedReply};
pub use events::{current_connection, ConnectionId, EventHub, Target};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::channel::budget::Budget;
use crate::error::{Error, Result};
use crate::registry;
use crate::shm::layout::{Geometry, MAX_SLOTS};
use crate::sys::{
    current_user, file_identity, open_to_other_users, DirLock, FileIdentity, Listener,
    PeerCredentials, Reactor, ReactorEvent, Stream, UserId,
};
use crate::wire::handshake::{Message, Refusal, RefusalKind};
use crate::wire::info::{ClientInfo, ServiceInfo, MAX_LISTED_CLIENTS};
use crate::wire::interface::{InterfaceDescriptor, InterfaceInfo};

use self::connection::ConnectionShared;
/// Default largest number of open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default largest number of open connections of one admitted user other than the service's
/// own: a quarter of all, so that one other user never takes every connection.
pub const DEFAULT_MAX_CONNECTIONS_PER_UID: usize = DEFAULT_MAX_CONNECTIONS / 4;

/// Default largest number of connections of one user other than the service's own that may
/// be in their handshake at once (connected, not yet said hello).
pub const DEFAULT_MAX_HANDSHAKES_PER_UID: usize = 8;

/// Default bytes of shared memory all connections together may make the service map: their
/// regions, the spill buffers of both directions and the loans of both sides, counted by the
/// size mapped (a third of a 24 GiB machine).
pub const DEFAULT_MAX_SHARED_MEMORY: u64 = 8 << 30;

/// Default bytes of shared memory one connection may make the service map: room for a
/// largest request and a largest reply (1 GiB each by default) in flight, and more.
pub const DEFAULT_MAX_SHARED_MEMORY_PER_CONNECTION: u64 = 4 << 30;

/// Default number of shared-memory mappings all connections together may make the service
/// hold: a quarter of the kernel's default `vm.max_map_count` (65530), a limit for the whole
/// process that thread stacks, libraries and the program's own mappings count against too.
pub const DEFAULT_MAX_MAPPINGS: u64 = 16384;

/// Default number of threads the connections may use (one per call slot in use, at most):
/// 4096 threads hold 8192 mappings (stack and guard page) and, idle, little memory.
pub const DEFAULT_MAX_THREADS: u32 = 4096;

/// Default time a new client has to say hello.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a stop waits for calls in progress by default (see [`ServerOptions::grace_period`]).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// Default bytes of a connection's one-way queue ([`ServerOptions::oneway_queue`]).
pub const DEFAULT_ONEWAY_QUEUE: u32 = 64 * 1024;

/// A callback deciding from a client's credentials whether it may connect.
pub type AccessCheck = Arc<dyn Fn(&PeerCredentials) -> bool + Send + Sync>;

/// Options for [`Server::bind_with`].
#[derive(Clone)]
pub struct ServerOptions {
    runtime_dir: Option<PathBuf>,
    slots: u32,
    slot_size: u32,
    oneway_queue: u32,
    max_payload: u64,
    spin: bool,
    handshake_timeout: Duration,
    statistics: bool,
    allowed_users: Vec<UserId>,
    allowed_gids: Vec<u32>,
    access_check: Option<AccessCheck>,
    max_connections: usize,
    max_connections_per_uid: usize,
    max_handshakes_per_uid: usize,
    max_shared_memory: u64,
    max_shared_memory_per_connection: u64,
    max_mappings: u64,
    max_threads: u32,
    stop_on_signals: bool,
    grace_period: Duration,
    max_descriptors_per_call: u32,
    max_descriptors_per_connection: usize,
}

/// Default largest number of handles (files, descriptors, segments) one call may pass to the
/// service (see [`ServerOptions::max_descriptors_per_call`]).
pub const DEFAULT_MAX_DESCRIPTORS_PER_CALL: u32 = crate::channel::handles::DEFAULT_PER_CALL;

/// Default largest number of handles a connection's client may have sent and not yet named
/// in a call (see [`ServerOptions::max_descriptors_per_connection`]).
pub const DEFAULT_MAX_DESCRIPTORS_PER_CONNECTION: usize =
    crate::channel::handles::DEFAULT_PER_CONNECTION;

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("runtime_dir", &self.runtime_dir)
            .field("slots", &self.slots)
            .field("slot_size", &self.slot_size)
            .field("oneway_queue", &self.oneway_queue)
            .field("max_payload", &self.max_payload)
            .field("spin", &self.spin)
            .field("statistics", &self.statistics)
            .field("allowed_users", &self.allowed_users)
            .field("allowed_gids", &self.allowed_gids)
            .field("access_check", &self.access_check.is_some())
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_uid", &self.max_connections_per_uid)
            .field("max_handshakes_per_uid", &self.max_handshakes_per_uid)
            .field("max_shared_memory", &self.max_shared_memory)
            .field(
                "max_shared_memory_per_connection",
                &self.max_shared_memory_per_connection,
            )
            .field("max_mappings", &self.max_mappings)
            .field("max_threads", &self.max_threads)
            .field("stop_on_signals", &self.stop_on_signals)
            .field("grace_period", &self.grace_period)
            .field("max_descriptors_per_call", &self.max_descriptors_per_call)
            .field(
                "max_descriptors_per_connection",
                &self.max_descriptors_per_connection,
            )
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            runtime_dir: None,
            slots: 16,
            slot_size: 4096,
            oneway_queue: DEFAULT_ONEWAY_QUEUE,
            max_payload: DEFAULT_MAX_PAYLOAD,
            spin: true,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            statistics: true,
            allowed_users: Vec::new(),
            allowed_gids: Vec::new(),
            access_check: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_uid: DEFAULT_MAX_CONNECTIONS_PER_UID,
            max_handshakes_per_uid: DEFAULT_MAX_HANDSHAKES_PER_UID,
            max_shared_memory: DEFAULT_MAX_SHARED_MEMORY,
            max_shared_memory_per_connection: DEFAULT_MAX_SHARED_MEMORY_PER_CONNECTION,
            max_mappings: DEFAULT_MAX_MAPPINGS,
            max_threads: DEFAULT_MAX_THREADS,
            stop_on_signals: true,
            grace_period: DEFAULT_GRACE_PERIOD,
            max_descriptors_per_call: DEFAULT_MAX_DESCRIPTORS_PER_CALL,
            max_descriptors_per_connection: DEFAULT_MAX_DESCRIPTORS_PER_CONNECTION,
        }
    }
}

impl ServerOptions {
    /// The defaults: 16 call slots of 4 KiB per connection (68 KiB of shared memory), payloads
    /// up to 1 GiB, adaptive spinning, a 2 s handshake timeout; [`Server::serve`] stops on
    /// SIGTERM and SIGINT, and a stop gives calls in progress 5 s to finish.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind in `dir` instead of the default runtime directory.
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Concurrent calls per connection (1 to 64).
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// Bytes per call slot (a multiple of 64, 128 to 1 MiB); payloads up to this size less 64
    /// bytes travel inline, larger ones through a spill buffer.
    pub fn slot_size(mut self, bytes: u32) -> Self {
        self.slot_size = bytes;
        self
    }

    /// Bytes of each connection's one-way queue (a power of two, 4 KiB to 16 MiB; default
    /// 64 KiB), in the connection's shared memory, for the methods marked `#[lpc(oneway)]`.
    /// A one-way message holds at most half of it, less 8 bytes (32,760 bytes of encoded
    /// arguments by default): a larger one is refused with [`Error::TooLarge`] before it is
    /// sent. A service whose interface has no one-way method gives its connections no queue.
    pub fn oneway_queue(mut self, bytes: u32) -> Self {
        self.oneway_queue = bytes;
        self
    }

    /// Refuse requests larger than `bytes` (clients get [`Error::TooLarge`] before sending).
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Whether connection threads spin briefly for the next call before sleeping (default
    /// true; never on a single usable CPU).
    pub fn spin(mut self, spin: bool) -> Self {
        self.spin = spin;
        self
    }

    /// Whether to keep per-method statistics for [`crate::query`] and `lpc monitor` (default
    /// true; they cost a few nanoseconds per call, see `docs/benchmarks.md`).
    pub fn statistics(mut self, on: bool) -> Self {
        self.statistics = on;
        self
    }

    /// Also admit processes of user `user` (by default only the service's own user may
    /// connect). Makes the socket reachable by other users (see [`ServerOptions::access`]).
    pub fn allow_user(mut self, user: UserId) -> Self {
        self.allowed_users.push(user);
        self
    }

    /// Also admit processes of Unix user `uid` (see [`ServerOptions::allow_user`]).
    pub fn allow_uid(self, uid: u32) -> Self {
        self.allow_user(UserId::from_uid(uid))
    }

    /// Also admit processes whose primary group is `gid` (Unix).
    pub fn allow_gid(mut self, gid: u32) -> Self {
        self.allowed_gids.push(gid);
        self
    }

    /// Also admit the processes for which `check` returns true; it sees the credentials the
    /// kernel recorded at connect (pid, user and, on Unix, group: `SO_PEERCRED`).
    ///
    /// When any other user may be admitted, the service makes its socket connectable by all
    /// (mode 0666) and the runtime directory traversable (mode 0711: others can reach a known
    /// name but not list the directory); every connection is then checked against the policy
    /// and refused with [`Error::Denied`] unless admitted.
    pub fn access(
        mut self,
        check: impl Fn(&PeerCredentials) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.access_check = Some(Arc::new(check));
        self
    }

    /// Refuse connections beyond `n` open ones with [`Error::Busy`] (default 1024).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Refuse the connections of an admitted user other than the service's own beyond `n`
    /// open ones with [`Error::Busy`] (default 256, a quarter of all). Checked when the
    /// connection is accepted, before it costs a thread. The service's own user is bounded
    /// only by [`ServerOptions::max_connections`].
    pub fn max_connections_per_uid(mut self, n: usize) -> Self {
        self.max_connections_per_uid = n;
        self
    }

    /// Refuse a new connection of a user other than the service's own with [`Error::Busy`]
    /// while `n` of that user's connections are still in their handshake (default 8), so
    /// that connections that never say hello cannot pile up until the handshake timeout.
    pub fn max_handshakes_per_uid(mut self, n: usize) -> Self {
        self.max_handshakes_per_uid = n;
        self
    }

    /// Refuse calls (with [`Error::Busy`]) that would make all connections together map more
    /// than `bytes` of shared memory in the service (default 8 GiB): their regions, spill
    /// buffers and loans, counted by the size mapped, not by the pages touched.
    pub fn max_shared_memory(mut self, bytes: u64) -> Self {
        self.max_shared_memory = bytes;
        self
    }

    /// Refuse calls (with [`Error::Busy`]) that would make one connection map more than
    /// `bytes` of shared memory in the service (default 4 GiB). Keep it above twice
    /// [`ServerOptions::max_payload`]: a largest request and its reply each take up to that.
    pub fn max_shared_memory_per_connection(mut self, bytes: u64) -> Self {
        self.max_shared_memory_per_connection = bytes;
        self
    }

    /// Refuse calls (with [`Error::Busy`]) that would make all connections together hold more
    /// than `n` shared-memory mappings in the service (default 16384): the kernel limits the
    /// mappings of the whole process (`vm.max_map_count`).
    pub fn max_mappings(mut self, n: u64) -> Self {
        self.max_mappings = n;
        self
    }

    /// Use at most `n` threads for the connections (default 4096): one per connection, and
    /// one more per call slot a client uses at once. A new connection gets as many slots as
    /// there are threads to spare (its calls then wait in line for fewer), and is refused
    /// with [`Error::Busy`] when none is left.
    pub fn max_threads(mut self, n: u32) -> Self {
        self.max_threads = n;
        self
    }

    /// Whether [`Server::serve`] stops gracefully on SIGTERM and SIGINT (default true) and then
    /// returns `Ok(())`, so that a `main` returning its result exits with status 0. Turn it
    /// off in a program that handles these signals itself (and stops the service with a
    /// [`ServerHandle`] instead). [`Server::spawn`] never watches signals, whatever this says:
    /// a library that embeds a service must not take the process's signals.
    pub fn stop_on_signals(mut self, on: bool) -> Self {
        self.stop_on_signals = on;
        self
    }

    /// How long a stop (a signal, [`ServerHandle::shutdown`], dropping the handle) waits for
    /// the calls in progress to finish (default 5 s). Calls still running then are cut off:
    /// their clients get [`Error::Disconnected`] with [`crate::CallPhase::Executing`]. During
    /// this time [`crate::cancelled`] is true, so a long handler that polls it can return
    /// early; what it returns still reaches the caller.
    pub fn grace_period(mut self, period: Duration) -> Self {
        self.grace_period = period;
        self
    }

    /// The most handles (files, descriptors, segments) one call may pass to the service
    /// (default 16): a call with more is refused with [`Error::Busy`] naming this limit, and
    /// every descriptor it passed is closed. At most 64 (what a sender sends in one call).
    pub fn max_descriptors_per_call(mut self, n: u32) -> Self {
        self.max_descriptors_per_call = n.min(crate::channel::handles::MAX_PER_CALL);
        self
    }

    /// The most handles a client may have sent on its connection and not yet named in a call
    /// (default 64): descriptors of calls that timed out before the service took them, or a
    /// hostile client's. Past it the oldest is closed (and a warning logged), so a client can
    /// make the service hold at most this many descriptors for it.
    pub fn max_descriptors_per_connection(mut self, n: usize) -> Self {
        self.max_descriptors_per_connection = n.max(1);
        self
    }

    fn admits_others(&self) -> bool {
        !self.allowed_users.is_empty()
            || !self.allowed_gids.is_empty()
            || self.access_check.is_some()
    }

    /// How long a new client has to complete its handshake (default 2 s; an lpc client says
    /// hello right after it connects).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The slot geometry, or [`Error::InvalidOption`] naming the option out of range.
    fn geometry(&self, service: &str) -> Result<Geometry> {
        let invalid = |option: &str, reason: String| Error::InvalidOption {
            service: service.to_owned(),
            option: option.to_owned(),
            reason,
        };
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(invalid(
                "ServerOptions::slots",
                format!(
                    "{} call slots; a connection has 1 to {MAX_SLOTS}",
                    self.slots
                ),
            ));
        }
        Geometry {
            slot_count: self.slots,
            slot_size: self.slot_size,
            queue_size: 0,
        }
        .validate()
        .map_err(|reason| invalid("ServerOptions::slot_size", reason))?;
        Geometry {
            slot_count: self.slots,
            slot_size: self.slot_size,
            queue_size: self.oneway_queue,
        }
        .validate()
        .map_err(|reason| invalid("ServerOptions::oneway_queue", reason))
    }
}

/// A bound service name, ready to serve.
#[derive(Debug)]
pub struct Server {
    name: String,
    path: PathBuf,
    /// The socket file we bound (`None` for an inherited connection: no name).
    identity: Option<FileIdentity>,
    /// The listening socket (`None` for an inherited connection).
    listener: Option<Listener>,
    /// The one connection of a service started by `lpc::spawn`, until it is served.
    inherited: Mutex<Option<Stream>>,
    options: ServerOptions,
    geometry: Geometry,
    /// The events it emits, if any ([`Server::with_events`]).
    events: Option<events::EventHub>,
}

impl Server {
    /// Binds service `name` in the default runtime directory with default options.
    ///
    /// Fails with [`Error::NameTaken`] if a live service holds the name; silently replaces the
    /// socket left by a dead one.
    pub fn bind(name: &str) -> Result<Server> {
        Self::bind_with(name, ServerOptions::default())
    }

    /// Binds service `name` with `options`.
    ///
    /// Fails with [`Error::InvalidName`] for a name that cannot name a service and
    /// [`Error::InvalidOption`] for an option out of its range, before anything is created.
    pub fn bind_with(name: &str, options: ServerOptions) -> Result<Server> {
        registry::validate_name(name)?;
        let geometry = options.geometry(name)?;
        let dir = options
            .runtime_dir
            .clone()
            .unwrap_or_else(registry::default_runtime_dir);
        registry::ensure_runtime_dir(&dir).map_err(|e| rename(e, name))?;
        let path = registry::socket_path(&dir, name);
        let _lock = DirLock::acquire(&dir)
            .map_err(|e| Error::io(name, format!("locking {}", dir.display()), e))?;
        if std::fs::symlink_metadata(&path).is_ok() {
            match Stream::connect(&path, Instant::now() + Duration::from_millis(500)) {
                Ok(_) => {
                    return Err(Error::NameTaken {
                        service: name.to_owned(),
                        path,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Error::NameTaken {
                        service: name.to_owned(),
                        path,
                    })
                }
                // Nobody listens: the socket of a dead service. Replace it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(&path).map_err(|e| {
                        Error::io(name, format!("removing stale socket {}", path.display()), e)
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        name,
                        format!("checking existing socket {}", path.display()),
                        e,
                    ))
                }
            }
        }
        let listener = Listener::bind(&path)
            .map_err(|e| Error::io(name, format!("binding {}", path.display()), e))?;
        if options.admits_others() {
            open_to_other_users(&dir, &path).map_err(|e| {
                Error::io(
                    name,
                    format!("opening {} to other users", path.display()),
                    e,
                )
            })?;
        }
        let identity = file_identity(&path)
            .map_err(|e| Error::io(name, format!("reading {}", path.display()), e))?;
        Ok(Server {
            name: name.to_owned(),
            path,
            identity: Some(identity),
            listener: Some(listener),
            inherited: Mutex::new(None),
            options,
            geometry,
            events: None,
        })
    }

    /// The connection this process inherited from the parent that started it with
    /// [`crate::Client::spawn`] (or a generated `XxxClient::spawn`), ready to serve, with
    /// default options: a child service. It has no name in the runtime directory and accepts
    /// no other connection; serving it ([`Server::serve`]) returns once that connection ends
    /// — the parent dropped its client, or died — so a child's `main` that returns
    /// `Server::inherited()?.serve(..)` exits with its parent.
    ///
    /// The descriptor is found through the environment variable `LPC_ENDPOINT_FD` (its
    /// number), checked to be a Unix `SOCK_SEQPACKET` socket, made close-on-exec (a program
    /// this child starts does not inherit it), and the variable is removed: call this early in
    /// `main`, before other threads read the environment. Fails with
    /// [`Error::InvalidOption`] in a process that was not started so.
    pub fn inherited() -> Result<Server> {
        Self::inherited_with(ServerOptions::default())
    }

    /// [`Server::inherited`] with `options` (the runtime directory, the access policy and the
    /// connection limits do not apply: the one connection is the parent's).
    pub fn inherited_with(options: ServerOptions) -> Result<Server> {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .filter(|n| registry::validate_name(n).is_ok())
            .unwrap_or_else(|| "child".to_owned());
        let geometry = options.geometry(&name)?;
        let stream = match Stream::inherited() {
            Ok(Some(stream)) => stream,
            Ok(None) => {
                return Err(Error::InvalidOption {
                    service: name.clone(),
                    option: "Server::inherited".into(),
                    reason: format!(
                        "this process inherited no lpc connection ({} is not set, or was \
                         taken already): it must be started by lpc::Client::spawn",
                        crate::sys::ENDPOINT_ENV
                    ),
                })
            }
            Err(e) => {
                return Err(Error::InvalidOption {
                    service: name.clone(),
                    option: "Server::inherited".into(),
                    reason: e.to_string(),
                })
            }
        };
        Ok(Server {
            name,
            path: PathBuf::new(),
            identity: None,
            listener: None,
            inherited: Mutex::new(Some(stream)),
            options,
            geometry,
            events: None,
        })
    }

    /// Emits the events of `hub` (an `#[lpc::events]` trait's `XxxEmitter::hub()`, or the
    /// emitter itself): clients may subscribe to them, and `describe` lists them.
    pub fn with_events(mut self, hub: &impl AsRef<EventHub>) -> Server {
        self.events = Some(hub.as_ref().clone());
        self
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket path clients connect to (empty for an inherited connection).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `dispatcher` on this thread until the process gets SIGTERM or SIGINT, then stops
    /// gracefully and returns `Ok(())`: it removes its socket and stops accepting, lets the
    /// calls in progress finish for the grace period ([`ServerOptions::grace_period`], 5 s by
    /// default), cuts off those still running, and closes every connection. So a `main` that
    /// returns `server.serve(..)` exits with status 0 and leaves nothing behind.
    ///
    /// With [`ServerOptions::stop_on_signals`]`(false)` it installs no signal handler and
    /// serves until the process exits. While it watches them, SIGTERM and SIGINT no longer end
    /// the process; a second one during the grace period cuts it short. (After `serve`
    /// returns, the handler of `signal-hook`, which lpc uses, stays installed and ignores
    /// them: it cannot restore the previous action.)
    pub fn serve<D: Dispatch>(self, dispatcher: D) -> Result<()> {
        let on_signals = self.options.stop_on_signals;
        let shared = Arc::new(Shared::new(self, Arc::new(dispatcher))?);
        if on_signals {
            if let Err(e) = shared.reactor.watch_stop_signals() {
                shared.server.remove_socket();
                return Err(Error::io(
                    &shared.server.name,
                    "watching SIGTERM and SIGINT",
                    e,
                ));
            }
        }
        shared.run()
    }

    /// Serves `dispatcher` on a background thread; the returned handle stops the service
    /// gracefully, as a signal stops [`Server::serve`] (with [`ServerHandle::shutdown`], or
    /// when dropped). It watches no signal: stopping on one is up to the program.
    pub fn spawn<D: Dispatch>(self, dispatcher: D) -> Result<ServerHandle> {
        let name = self.name.clone();
        let shared = Arc::new(Shared::new(self, Arc::new(dispatcher))?);
        let runner = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("lpc-{name}"))
            .spawn(move || runner.run())
            .map_err(|e| Error::io(&name, "starting the service thread", e))?;
        Ok(ServerHandle {
            shared,
            thread: Some(thread),
        })
    }
}

impl Server {
    /// Removes our socket, unless another service has replaced it since.
    fn remove_socket(&self) {
        let Some(ours) = self.identity else { return };
        if let Ok(identity) = file_identity(&self.path) {
            if identity == ours {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn rename(e: Error, name: &str) -> Error {
    match e {
        Error::Io {
            method,
            context,
            source,
            ..
        } => Error::Io {
            service: name.to_owned(),
            method,
            context,
            source,
        },
        other => other,
    }
}

/// A running service; dropping it stops the service as [`ServerHandle::shutdown`] does.
#[derive(Debug)]
#[must_use = "dropping the handle stops the service: keep it for as long as the service should run"]
pub struct ServerHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The service name.
    pub fn name(&self) -> &str {
        &self.shared.server.name
    }

    /// The socket path clients connect to.
    pub fn path(&self) -> &Path {
        &self.shared.server.path
    }

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The processes connected now, with the credentials the kernel recorded when they
    /// connected.
    pub fn clients(&self) -> Vec<PeerCredentials> {
        self.shared
            .connections()
            .values()
            .filter_map(|(c, _)| c.peer.clone())
            .collect()
    }

    /// Stops gracefully and waits for it: removes the socket and stops accepting, lets the calls
    /// in progress finish for the grace period ([`ServerOptions::grace_period`]), cuts off those
    /// still running (their clients get [`Error::Disconnected`] with
    /// [`crate::CallPhase::Executing`]; the threads running their handlers are left to finish
    /// on their own), and closes every connection.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.reactor.wake();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    &self.shared.server.name,
                    "service thread",
                    std::io::Error::other("panicked"),
                ))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Refuses a connection just accepted: the refusal is sent at once (a fresh socket's buffer
/// has room for it, so this never blocks the reactor) and the socket closed. The client reads
/// the refusal even if its hello crossed the close (see `registry::exchange`). Logged as a
/// warning at most once a second, with how many more were refused since the last one: a
/// flood of connections must not fill the service's log either.
fn refuse_at_accept(service: &str, stream: &Stream, kind: RefusalKind, reason: String) {
    static LAST_LOGGED_S: AtomicU64 = AtomicU64::new(0);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    // Seconds of the monotonic clock, plus one, so that the first refusal is always logged.
    let now = crate::sys::monotonic_ns() / 1_000_000_000 + 1;
    let last = LAST_LOGGED_S.load(Ordering::Relaxed);
    if now > last
        && LAST_LOGGED_S
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let more = UNLOGGED.swap(0, Ordering::Relaxed);
        tracing::warn!(service, ?kind, %reason, more, "refused a client at accept");
    } else {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
    }
    let refusal = Message::Refused(Refusal { kind, reason });
    let _ = stream.send(&refusal.encode(), None);
}

/// The connections a service can hold: `configured`, or fewer when the descriptor limit
/// (raised to its hard maximum first) would run out — each connection holds one descriptor,
/// and receiving a buffer needs one more for a moment, so a reserve stays free. Past this,
/// clients are refused with `Busy` instead of established clients losing buffers.
/// Returns (admitted connections, accepted connections).
fn descriptor_budget(configured: usize) -> (usize, usize) {
    let limit = crate::sys::raise_open_file_limit();
    let reserve = 16 + limit / 8;
    let fit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let admitted = configured.min(fit(limit.saturating_sub(reserve)));
    let accepted = admitted.saturating_add(configured.min(fit(reserve / 2)).max(1));
    (
        admitted,
        accepted.min(fit(limit.saturating_sub(reserve / 2))),
    )
}

/// Open connections by reactor token, with their threads (`None` until started).
type ConnectionTable = HashMap<u64, (Arc<ConnectionShared>, Option<JoinHandle<()>>)>;

/// State shared by the reactor and the connection threads.
#[derive(Debug)]
struct Shared {
    server: Server,
    dispatcher: Arc<dyn Dispatch>,
    reactor: Reactor,
    stopping: AtomicBool,
    next_token: AtomicU64,
    connections: Mutex<ConnectionTable>,
    started: Instant,
    closed: stats::ClosedTotals,
    /// The dispatcher's interface, kept here to avoid a virtual call per call.
    interface: &'static InterfaceDescriptor,
    /// The interface with its shapes, as the handshake and queries send it.
    interface_info: Arc<InterfaceInfo>,
    /// Connections admitted at most: the configured limit, or fewer if the process's
    /// descriptor limit would run out first.
    max_connections: usize,
    /// Connections accepted at most (admitted ones plus those still in their handshake, to
    /// be refused as busy): beyond it, a new connection is closed at once, so that silent
    /// clients cannot use up the descriptors established clients need.
    accept_cap: usize,
    /// The shared memory all connections map (see `channel::budget`).
    budget: Arc<Budget>,
    /// Threads reserved by the open connections (see [`ServerOptions::max_threads`]).
    threads: AtomicU32,
}

impl std::fmt::Debug for dyn Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({})", self.interface().name)
    }
}

impl Shared {
    fn new(server: Server, dispatcher: Arc<dyn Dispatch>) -> Result<Shared> {
        let interface_info = match dispatcher.interface().info() {
            Ok(info) => Arc::new(info.clone()),
            Err(e) => {
                // Nothing will ever answer on the socket: take it away again.
                server.remove_socket();
                return Err(Error::Shape {
                    service: server.name.clone(),
                    detail: e.to_string(),
                });
            }
        };
        let (max_connections, accept_cap) = descriptor_budget(server.options.max_connections);
        let budget = Arc::new(Budget::new(
            "the service's budget (ServerOptions::max_shared_memory, max_mappings)",
            server.options.max_shared_memory,
            server.options.max_mappings,
        ));
        let reactor =
            Reactor::new().map_err(|e| Error::io(&server.name, "creating the event loop", e))?;
        if let Some(listener) = &server.listener {
            reactor
                .watch_listener(listener)
                .map_err(|e| Error::io(&server.name, "watching the socket", e))?;
        }
        Ok(Shared {
            server,
            reactor,
            stopping: AtomicBool::new(false),
            next_token: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            started: Instant::now(),
            closed: stats::ClosedTotals::new(dispatcher.interface()),
            interface: dispatcher.interface(),
            interface_info,
            max_connections,
            accept_cap,
            budget,
            threads: AtomicU32::new(0),
            dispatcher,
        })
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the access policy admits a client with these credentials.
    fn admit(&self, peer: Option<&PeerCredentials>) -> std::result::Result<(), String> {
        let options = &self.server.options;
        let Some(peer) = peer else {
            return Err("the client's credentials are unknown".into());
        };
        let admitted = *peer.user() == current_user()
            || options.allowed_users.contains(peer.user())
            || peer
                .gid()
                .is_some_and(|gid| options.allowed_gids.contains(&gid))
            || options
                .access_check
                .as_ref()
                .is_some_and(|check| check(peer));
        if admitted {
            Ok(())
        } else {
            Err(format!(
                "{peer} is not admitted by service `{}`",
                self.server.name
            ))
        }
    }

    /// What a new connection must pass before it gets a thread: the access policy, and — for
    /// users other than the service's own — the per-user limits on open connections and on
    /// connections still in their handshake.
    fn admit_at_accept(
        &self,
        peer: Option<&PeerCredentials>,
    ) -> std::result::Result<(), (RefusalKind, String)> {
        self.admit(peer).map_err(|r| (RefusalKind::Denied, r))?;
        let Some(peer) = peer else { return Ok(()) };
        if *peer.user() == current_user() {
            // The service's own user: trusted (it could stop the service), bounded only by
            // the limits on all connections.
            return Ok(());
        }
        let options = &self.server.options;
        let table = self.connections();
        let (mut open, mut handshaking) = (0, 0);
        for (conn, _) in table.values() {
            if conn.peer.as_ref().map(PeerCredentials::user) == Some(peer.user()) {
                open += 1;
                if !conn.calling.load(Ordering::Relaxed) {
                    handshaking += 1;
                }
            }
        }
        drop(table);
        if open >= options.max_connections_per_uid {
            return Err((
                RefusalKind::Busy,
                format!(
                    "user {} has reached the limit of {} connections per user \
                     (ServerOptions::max_connections_per_uid)",
                    peer.user(),
                    options.max_connections_per_uid
                ),
            ));
        }
        if handshaking >= options.max_handshakes_per_uid {
            return Err((
                RefusalKind::Busy,
                format!(
                    "user {} has {handshaking} connections still in their handshake, the most \
                     allowed (ServerOptions::max_handshakes_per_uid)",
                    peer.user()
                ),
            ));
        }
        Ok(())
    }

    /// Whether one more connection (this one, already in the table) stays within the limit on
    /// all connections. (The per-user limits are checked at accept, `admit_at_accept`, on the
    /// one thread that adds connections to the table.)
    fn within_limits(&self) -> std::result::Result<(), String> {
        let options = &self.server.options;
        let table = self.connections();
        if table.len() > self.max_connections {
            let lowered = if self.max_connections < options.max_connections {
                ", lowered to fit the service's open-file limit"
            } else {
                ""
            };
            return Err(format!(
                "it has reached its limit of {} connections (ServerOptions::max_connections{lowered})",
                self.max_connections
            ));
        }
        Ok(())
    }

    /// Reserves threads for a new connection: up to `want` (its slots), but never so many
    /// that a connection still to come within [`ServerOptions::max_connections`] would find
    /// none (each keeps one); at least one while any is left. Returns how many.
    fn reserve_threads(&self, want: u32) -> u32 {
        let max = self.server.options.max_threads;
        let open = self.connections().len();
        let to_come = u32::try_from(self.max_connections.saturating_sub(open)).unwrap_or(u32::MAX);
        let mut got = 0;
        let _ = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let left = max.saturating_sub(used);
                let spare = left.saturating_sub(to_come);
                got = want.min(spare.max(1)).min(left);
                (got > 0).then_some(used + got)
            });
        got
    }

    fn release_threads(&self, n: u32) {
        self.threads.fetch_sub(n, Ordering::AcqRel);
    }

    /// The position of method `id` in the interface.
    fn method_index(&self, id: u32) -> Option<usize> {
        self.interface.methods.iter().position(|m| m.id == id)
    }

    /// Who we are and how we are doing, for a query from `asker`: the service's own user sees
    /// every client; another user (one the policy admits) only the connections of its own
    /// user, never other users' processes. The method statistics count every call.
    fn info(&self, asker: Option<&PeerCredentials>) -> ServiceInfo {
        let owner = current_user();
        let sees_all = asker.is_some_and(|a| *a.user() == owner);
        let visible = |peer: Option<&PeerCredentials>| {
            sees_all || matches!((asker, peer), (Some(a), Some(p)) if a.user() == p.user())
        };
        let table = self.connections();
        let (mut methods, mut unknown_calls) = self.closed.snapshot();
        let mut clients = Vec::new();
        let mut connections = 0;
        for (conn, _) in table.values() {
            if !conn.calling.load(Ordering::Relaxed) {
                continue;
            }
            let mut calls = 0;
            conn.each_stats(|stats| {
                unknown_calls += stats.add_to(&mut methods);
                calls += stats.total();
            });
            if !visible(conn.peer.as_ref()) {
                continue;
            }
            connections += 1;
            if clients.len() < MAX_LISTED_CLIENTS {
                let peer = conn.peer.as_ref();
                clients.push(ClientInfo {
                    pid: peer.and_then(PeerCredentials::pid),
                    user: peer.map(|p| p.user().to_string()).unwrap_or_default(),
                    gid: peer.and_then(PeerCredentials::gid),
                    process: conn.process.clone(),
                    connected_for: conn.connected_at.elapsed(),
                    calls,
                });
            }
        }
        drop(table);
        clients.sort_by_key(|c| (c.pid, c.connected_for));
        ServiceInfo {
            service: self.server.name.clone(),
            // As this process sees itself; the asker replaces both with what its kernel says.
            pid: Some(std::process::id()),
            user: owner.to_string(),
            uptime: self.started.elapsed(),
            interface: InterfaceInfo::clone(&self.interface_info),
            connections,
            clients,
            methods,
            unknown_calls,
            events: self
                .server
                .events
                .as_ref()
                .and_then(|hub| hub.interface().info().ok().cloned()),
            subscribers: self
                .server
                .events
                .as_ref()
                .map(|hub| hub.subscribers_info(visible))
                .unwrap_or_default(),
        }
    }

    /// The reactor loop: accept, watch for hang-ups, until stopped (by the handle or a signal);
    /// then the graceful stop.
    fn run(self: &Arc<Self>) -> Result<()> {
        let mut events = Vec::new();
        let inherited = self
            .server
            .inherited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(stream) = inherited {
            // The parent's connection: admitted by construction (it handed us the socket).
            let peer = stream.peer_credentials().ok();
            if !self.add_connection(stream, peer) {
                return Err(Error::io(
                    &self.server.name,
                    "serving the inherited connection",
                    std::io::Error::other("cannot watch it or start its thread"),
                ));
            }
        }
        let result = loop {
            if self.stopping.load(Ordering::SeqCst) {
                break Ok(());
            }
            events.clear();
            if let Err(e) = self.reactor.wait(&mut events, None) {
                break Err(Error::io(&self.server.name, "waiting for events", e));
            }
            for event in &events {
                match *event {
                    ReactorEvent::Accept => self.accept_all(),
                    ReactorEvent::Hangup(token) => self.hung_up(token),
                    ReactorEvent::Message(token) => {
                        // The client used a new call slot: start its thread.
                        let conn = self.connections().get(&token).map(|(c, _)| c.clone());
                        if let Some(conn) = conn {
                            connection::start_slot_threads(self, &conn);
                        }
                    }
                    ReactorEvent::Wake => {}
                    ReactorEvent::StopSignal => {
                        tracing::info!(service = %self.server.name, "stopping on a signal");
                        self.stopping.store(true, Ordering::SeqCst);
                    }
                }
            }
        };
        self.close_all(&mut events);
        result
    }

    fn hung_up(&self, token: u64) {
        let conn = self.connections().get(&token).map(|(c, _)| c.clone());
        if let Some(conn) = conn {
            conn.peer_gone();
        }
    }

    fn accept_all(self: &Arc<Self>) {
        let Some(listener) = &self.server.listener else {
            return;
        };
        loop {
            let stream = match listener.accept() {
                Ok(Some(stream)) => stream,
                Ok(None) => return,
                Err(_) => {
                    // Out of descriptors or memory: leave the connection queued, try later.
                    // (EMFILE would otherwise spin the loop: pause briefly.)
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            };
            if self.connections().len() >= self.accept_cap {
                // Far past the limit: no descriptor to spare for even a refusal.
                drop(stream);
                continue;
            }
            // Who it is, before anything is spent on it: a peer that is not admitted, or is
            // over its user's limits, is refused here, on the reactor's thread, and costs no
            // thread, no shared memory and no place in the connection table.
            let peer = stream.peer_credentials().ok();
            if let Err((kind, reason)) = self.admit_at_accept(peer.as_ref()) {
                refuse_at_accept(&self.server.name, &stream, kind, reason);
                continue;
            }
            self.add_connection(stream, peer);
        }
    }

    /// Gives an admitted connection its place in the table and its thread.
    fn add_connection(self: &Arc<Self>, stream: Stream, peer: Option<PeerCredentials>) -> bool {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(ConnectionShared::new(
            stream,
            peer,
            self.dispatcher.interface(),
            token,
        ));
        if self.reactor.watch_peer(conn.stream(), token).is_err() {
            return false;
        }
        self.connections().insert(token, (conn.clone(), None));
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("lpc-{}-{token}", self.server.name))
            .spawn(move || {
                connection::run(&shared, &conn);
                shared.release_threads(conn.threads.swap(0, Ordering::Relaxed));
                // Under the table's lock, so that a query counts this connection's calls
                // exactly once: either live or among the closed.
                let mut table = shared.connections();
                table.remove(&token);
                conn.each_stats(|stats| shared.closed.absorb(stats));
                drop(table);
                if shared.server.listener.is_none() {
                    // An inherited connection was the service's only one.
                    shared.stopping.store(true, Ordering::SeqCst);
                    shared.reactor.wake();
                }
                if shared.stopping.load(Ordering::SeqCst) {
                    // The graceful stop waits for the connections to end.
                    shared.reactor.wake();
                }
            });
        match spawned {
            Ok(handle) => {
                if let Some(entry) = self.connections().get_mut(&token) {
                    entry.1 = Some(handle);
                }
                true
            }
            Err(_) => {
                self.connections().remove(&token);
                false
            }
        }
    }

    /// Accepts the connections queued on the listener and closes them at once: their clients
    /// see the service gone instead of waiting for a welcome.
    fn refuse_queued(&self) {
        let Some(listener) = &self.server.listener else {
            return;
        };
        while let Ok(Some(stream)) = listener.accept() {
            drop(stream);
        }
    }

    /// The graceful stop. First no new client: the socket is removed (so no client finds the
    /// name) and the connections already queued are closed. Then every connection is asked to
    /// end once its call in progress is done (the thread of an idle one exits at once), and
    /// the reactor waits for them for the grace period, or until a second stop signal. The
    /// calls still running then are cut off: their sockets are shut down, so their clients
    /// see the service gone while the call executes (`Disconnected`, `Executing`). Their
    /// threads finish the handler on their own, detached: a handler cannot be interrupted.
    fn close_all(&self, events: &mut Vec<ReactorEvent>) {
        self.server.remove_socket();
        self.refuse_queued();
        let open: Vec<_> = self
            .connections()
            .values()
            .map(|(c, _)| c.clone())
            .collect();
        for conn in &open {
            conn.stop();
        }
        drop(open);
        let deadline = Instant::now() + self.server.options.grace_period;
        'grace: while !self.connections().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            events.clear();
            if self.reactor.wait(events, Some(left)).is_err() {
                break;
            }
            for event in events.iter() {
                match *event {
                    // Connects that raced with the removal of the socket.
                    ReactorEvent::Accept => self.refuse_queued(),
                    ReactorEvent::Hangup(token) => self.hung_up(token),
                    // No new slot threads while stopping.
                    ReactorEvent::Message(_) => {}
                    // A connection ended (or the handle asked again).
                    ReactorEvent::Wake => {}
                    ReactorEvent::StopSignal => {
                        tracing::info!(
                            service = %self.server.name,
                            "a second stop signal: cutting off the calls in progress"
                        );
                        break 'grace;
                    }
                }
            }
        }
        let running: Vec<_> = self.connections().drain().collect();
        if !running.is_empty() {
            tracing::warn!(
                service = %self.server.name,
                connections = running.len(),
                "calls still running at the end of the grace period are cut off"
            );
        }
        for (_, (conn, thread)) in running {
            conn.stream().shutdown();
            if let Some(thread) = thread.filter(JoinHandle::is_finished) {
                let _ = thread.join();
            }
        }
    }
}
