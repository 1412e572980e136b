//! The operating-system layer: the only place that talks to the kernel.
//!
//! # The contract
//!
//! An OS backend is one submodule (`linux` today; `windows` next) that provides the types and
//! functions below, with exactly these signatures: the `CONTRACT` block at the end of this
//! file names each one, so that a backend missing one, or giving it another signature, does not
//! compile. Everything above this layer uses only these names, never a descriptor, a uid or a
//! file mode; the conformance tests (`conformance.rs`) exercise a backend only through them.
//!
//! | piece | what it is | Linux | Windows (planned) |
//! |---|---|---|---|
//! | [`SharedMemory`] | a shared-memory object of fixed size: `create(name, len)` (both sides write), `create_one_writer(name, len)` (mapped here, then only read-only mappings elsewhere), `len()`, `map()`, `map_read_only()`; received from a peer only through [`Stream::recv`], which checks its kind, seals and size before handing it out | sealed `memfd_create(2)`, `F_SEAL_FUTURE_WRITE` | pagefile-backed section, `DuplicateHandle` (read-only duplicate) |
//! | [`Mapping`] | a live mapping of one, unmapped on drop: `as_ptr()`, `len()`, `writable()` | `mmap(2)` | `MapViewOfFile` |
//! | [`AtomicU32`], [`fence`] | the 32-bit word shared memory is made of, and the fence of its memory model: `std::sync::atomic`'s (the loom model's under `cfg(loom)`); everything that lives in shared memory uses these names | `std::sync::atomic` | `std::sync::atomic` |
//! | [`wait_in`] / [`wake_in`] | the doorbell: sleep while a 32-bit word of shared memory holds a value (with a timeout), wake its sleepers, in a [`Lane`] (`wait`/`wake`: the default one) | `futex(2)`, shared (lanes need nothing) | named semaphores per word and lane, waiters counted beside the section |
//! | [`Listener`] / [`Stream`] | a local endpoint: bind an address, accept, connect; send and receive one message with at most one attached [`SharedMemory`] or, for handles in calls, any descriptor (`send_handle`, `recv_any`: a [`Received`] stays unchecked until the message says what it must be); the peer's [`PeerCredentials`] (its pid unknown for a peer in a PID namespace we cannot see); whether the peer hung up; shut down | Unix `SOCK_SEQPACKET`, `SCM_RIGHTS`, `SO_PEERCRED` | named pipes in message mode, token SID |
//! | [`Reactor`] | waits for connections to accept, for peers to hang up or send a message (it does not read it), and can be woken; on request, also for the signals that ask the process to stop (SIGTERM, SIGINT), which then no longer end it | `epoll(7)`, `eventfd(2)`, a `signal-hook` self-pipe | I/O completion port, `SetConsoleCtrlHandler` |
//! | [`DirLock`], [`create_private_dir`], [`open_to_other_users`], [`file_identity`] | the place endpoints are named in: private to the user, locked while a name is bound; never a symlink, another user's directory, one others can write to or one in a parent others can change (any of which another user could have planted), and never a mode changed on a directory lpc did not create | directory mode 0700 and a marker file, `lstat`, `flock(2)` | per-user pipe prefix, DACL |
//! | [`NameFile`], [`SharedMemory::open_held`], [`holds`], [`thread_identity`], [`thread_alive`] | named shared objects without a daemon: a locked name file that lists the holders (pid, descriptor, object identity), the object reached through a live holder and checked like a received one; who a thread is (tid and start time) and whether it still runs, for writer locks | a 0600 file in the runtime directory, `flock(2)`, `/proc/<pid>/fd/<n>`, `/proc/<tid>/stat` | a named section (`CreateFileMapping` with a name in the session namespace), `OpenThread` |
//! | [`current_user`], [`monotonic_ns`], [`can_run_apart`], [`process_name`], [`process_alive`], [`raise_open_file_limit`], [`spawn_with_endpoint`] | the process: who we are, a clock both peers share, CPU placement, another process's name and liveness, the descriptor budget, children that inherit one endpoint | `getuid`, `CLOCK_MONOTONIC`, `sched_getaffinity`, `/proc`, `pidfd`/`kill(0)`, `RLIMIT_NOFILE`, `fork`+`exec` with one inherited descriptor | token SID, `QueryPerformanceCounter`, `OpenProcess`, `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` |
//!
//! The Linux backend is built on `rustix`; most of its calls are safe wrappers. The `unsafe`
//! that remains (mapping memory, the child side of a spawn) is confined here, each block with
//! its justification.
//!
//! Under `cfg(loom)` the backend is `model` instead: the same names over a machine the loom
//! model checker explores (shared memory of loom atomics and tracked bytes, a modelled futex,
//! in-memory endpoints, everything else unsupported), so that loom runs the real `channel`
//! code. It is not held to the `CONTRACT` signatures, whose words are `std`'s.

use std::fmt;
use std::time::Duration;

#[cfg(all(target_os = "linux", not(loom)))]
mod linux;
#[cfg(all(target_os = "linux", not(loom)))]
use linux as os;

// Under the loom model checker (`RUSTFLAGS="--cfg loom"`), the whole crate runs on a modelled
// machine instead: see `model`. It provides the whole contract, some of which only the
// conformance tests use.
#[cfg(loom)]
#[allow(dead_code)]
mod model;
#[cfg(loom)]
use model as os;
#[cfg(all(loom, test))]
pub(crate) use model::explore as explore_model;

// loom is a dev-dependency: the model exists for lpc's own tests.
#[cfg(all(loom, not(test)))]
compile_error!(
    "cfg(loom) selects the loom model backend, for lpc's own model tests only: \
     RUSTFLAGS=\"--cfg loom\" cargo test -p lpc --lib --release --target-dir target/loom channel::model"
);

#[cfg(all(windows, not(loom)))]
mod windows;
#[cfg(all(windows, not(loom)))]
use windows as os;

#[cfg(not(any(target_os = "linux", windows, loom)))]
compile_error!("lpc supports Linux and Windows");

/// A kernel handle a call can carry, owned and borrowed: a descriptor on Unix, a `HANDLE` on
/// Windows.
#[cfg(unix)]
pub(crate) use std::os::fd::{
    AsFd as AsOsHandle, BorrowedFd as BorrowedOsHandle, OwnedFd as OwnedOsHandle,
};
#[cfg(windows)]
pub(crate) use std::os::windows::io::{
    AsHandle as AsOsHandle, BorrowedHandle as BorrowedOsHandle, OwnedHandle as OwnedOsHandle,
};

/// Borrows the kernel handle of `of` (`AsFd::as_fd`, `AsHandle::as_handle`).
pub(crate) fn borrow_os_handle<T: AsOsHandle + ?Sized>(of: &T) -> BorrowedOsHandle<'_> {
    #[cfg(unix)]
    return of.as_fd();
    #[cfg(windows)]
    return of.as_handle();
}

#[cfg(all(test, not(loom)))]
mod conformance;

pub(crate) use os::Received;
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use os::{
    can_run_apart, create_private_dir, current_user, file_identity, monotonic_ns,
    open_to_other_users, process_alive, process_name, raise_open_file_limit, spawn_with_endpoint,
    thread_alive, thread_identity, wait_in, wake_in, ChildProcess, DirLock, FileIdentity, Listener,
    Mapping, Reactor, SharedMemory, Stream, ENDPOINT_ENV,
};
#[cfg(not(loom))]
pub(crate) use os::{current_pid, holds, pid_namespace, NameFile, ObjectIdentity, MAX_NAME_FILE};
#[cfg(all(windows, feature = "test-util"))]
pub(crate) use os::{mapped_views, process_handle_names, process_resources};

// The 32-bit word that shared memory is made of, and the fence of its memory model: `std`'s
// for every real backend (the hot path uses the plain type), loom's under the model. (And
// the 64-bit word of shared values' seqlock, likewise.)
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

// What every OS backend does alike, on top of its own pieces.
#[cfg(not(loom))]
impl Stream {
    /// Receives one message into `buf`, waiting until `deadline` (forever if `None`).
    /// Returns its length (0 when the peer has closed) and the shared memory attached to it,
    /// checked ([`Received::into_shared_memory`]). A message longer than `buf`, or a handle
    /// that is not lpc shared memory, is an `InvalidData` error.
    pub(crate) fn recv(
        &self,
        buf: &mut [u8],
        deadline: Option<std::time::Instant>,
    ) -> std::io::Result<(usize, Option<SharedMemory>)> {
        let (n, received) = self.recv_any(buf, deadline)?;
        let shm = match received {
            Some(received) => Some(received.into_shared_memory()?),
            None => None,
        };
        Ok((n, shm))
    }
}

#[cfg(not(loom))]
impl NameFile {
    /// Its contents (at most [`MAX_NAME_FILE`] bytes; a longer file is an error).
    pub(crate) fn read(&mut self) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let len = self.file.metadata()?.len();
        if len > MAX_NAME_FILE as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("name file of {len} bytes, more than the {MAX_NAME_FILE} lpc writes"),
            ));
        }
        let mut out = Vec::with_capacity(len as usize);
        self.file.rewind()?;
        (&mut self.file)
            .take(MAX_NAME_FILE as u64 + 1)
            .read_to_end(&mut out)?;
        out.truncate(MAX_NAME_FILE);
        Ok(out)
    }

    /// Replaces its contents.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(bytes)
    }
}

/// What a [`Reactor`] saw: the same events whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReactorEvent {
    /// The listener has connections to accept.
    Accept,
    /// The connection registered with this token hung up (or failed).
    Hangup(u64),
    /// A message arrived on the connection registered with this token (reported once per
    /// arrival; the reactor does not read it).
    Message(u64),
    /// [`Reactor::wake`] was called.
    Wake,
    /// The process got SIGTERM or SIGINT (after [`Reactor::watch_stop_signals`]); several
    /// signals may be reported as one.
    StopSignal,
}

/// Which sleepers of a word a [`wait_in`] joins and a [`wake_in`] is for.
///
/// A futex compares the word and sleeps in one step, so a wake can only ever reach a sleeper
/// whose value is gone, and lanes change nothing on Linux. The Windows doorbell has no such
/// step: a semaphore remembers a wake for a sleeper that has checked the word but not yet
/// slept, and any sleeper of the word may take it. When two sides sleep on one word for
/// different values — a call slot's state, on which the client waits for the reply and the
/// slot's service thread for the next request — the client, waiting again on the value the
/// wake made, could take the wake meant for the service thread, which then slept through its
/// request. Each side sleeps and is woken in its own lane, and a lane's wakes go only to its
/// own sleepers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// Every word with one kind of sleeper.
    Default = 0,
    /// A client waiting for its reply on a slot's state word.
    Client = 1,
    /// A slot's service thread waiting for a request on the slot's state word.
    Service = 2,
}

impl Lane {
    /// How many there are (for a backend that keys per lane).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) const COUNT: usize = 3;
}

/// Sleeps while `*word == expected`, until woken or `timeout`; may return spuriously (the
/// [`Lane::Default`] of [`wait_in`]).
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    wait_in(word, expected, timeout, Lane::Default)
}

/// Wakes up to `n` sleepers of `word` (those of [`Lane::Default`]).
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    wake_in(word, n, Lane::Default)
}

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken, or the word no longer held the expected value, or a signal: re-check the word.
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// Whether an I/O error means the peer is gone (it closed its end, exited or crashed), as
/// opposed to a failure of our own. Every backend reports a hang-up as one of these kinds.
pub(crate) fn is_hangup(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::UnexpectedEof
    )
}

/// A user, as the operating system identifies users: a numeric uid on Unix, a security
/// identifier (SID) on Windows. Displays as the number or the `S-1-…` string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(UserRepr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UserRepr {
    Uid(u32),
    Sid(String),
}

impl UserId {
    /// The Unix user `uid`.
    pub fn from_uid(uid: u32) -> UserId {
        UserId(UserRepr::Uid(uid))
    }

    /// The user this process runs as.
    pub fn current() -> UserId {
        current_user()
    }

    /// The Windows user with security identifier `sid` (`S-1-5-21-…`).
    pub fn from_sid(sid: impl Into<String>) -> UserId {
        UserId(UserRepr::Sid(sid.into()))
    }

    /// The Unix uid, if this is a Unix user.
    pub fn uid(&self) -> Option<u32> {
        match self.0 {
            UserRepr::Uid(uid) => Some(uid),
            UserRepr::Sid(_) => None,
        }
    }

    /// The Windows SID, if this is a Windows user.
    pub fn sid(&self) -> Option<&str> {
        match &self.0 {
            UserRepr::Sid(sid) => Some(sid),
            UserRepr::Uid(_) => None,
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            UserRepr::Uid(uid) => write!(f, "{uid}"),
            UserRepr::Sid(sid) => f.write_str(sid),
        }
    }
}

/// The credentials of the process at the other end of a connection, as the kernel recorded
/// them when it connected (not anything the peer wrote): `SO_PEERCRED` on Linux, the client's
/// token on Windows.
///
/// The pid may be unknown: a peer in a PID namespace that this process cannot see (a container
/// started with its own namespace, or a service running inside one while its client runs
/// outside) has no pid here, and the kernel reports 0 for it. The user and group are always
/// known. Nothing in lpc relies on the pid: access is decided by user and group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    pid: Option<u32>,
    user: UserId,
    gid: Option<u32>,
}

impl PeerCredentials {
    /// Credentials of process `pid` (`None` if unknown; `Some(0)` is taken as unknown too, as
    /// the kernel reports it) running as `user`, with primary group `gid` (Unix).
    pub fn new(pid: Option<u32>, user: UserId, gid: Option<u32>) -> PeerCredentials {
        PeerCredentials {
            pid: pid.filter(|&pid| pid != 0),
            user,
            gid,
        }
    }

    /// Process id, as this process's PID namespace numbers it: `None` when the peer runs in a
    /// PID namespace this process cannot see.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The user it runs as.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The Unix user id, if this is a Unix process.
    pub fn uid(&self) -> Option<u32> {
        self.user.uid()
    }

    /// The Unix primary group id, if this is a Unix process.
    pub fn gid(&self) -> Option<u32> {
        self.gid
    }
}

impl fmt::Display for PeerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}, user {}", self.user)?,
            None => write!(f, "pid unknown, user {}", self.user)?,
        }
        if let Some(gid) = self.gid {
            write!(f, ", group {gid}")?;
        }
        Ok(())
    }
}

/// The contract, checked by the compiler: every item an OS backend provides, with its
/// signature. (Never called; it only has to type-check.) The loom model backend is exempt:
/// its words are loom's, not `std`'s.
#[cfg(not(loom))]
#[allow(dead_code, clippy::type_complexity)]
const CONTRACT: () = {
    use std::io::Result;
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    fn contract() {
        // The word of shared memory is `std`'s own type (no wrapper on the hot path), with its
        // fence.
        let _: fn(&AtomicU32) -> &std::sync::atomic::AtomicU32 = |word| word;
        let _: fn(Ordering) = fence;
        // Shared memory.
        let _: fn(&str, usize) -> Result<SharedMemory> = SharedMemory::create;
        let _: fn(&SharedMemory) -> usize = SharedMemory::len;
        let _: fn(&str, usize) -> Result<(SharedMemory, Mapping)> = SharedMemory::create_one_writer;
        let _: fn(&SharedMemory) -> Result<Mapping> = SharedMemory::map;
        let _: fn(&SharedMemory) -> Result<Mapping> = SharedMemory::map_read_only;
        // Named objects: a name file listing the holders, an object reached through a holder.
        let _: fn(&SharedMemory) -> Result<ObjectIdentity> = SharedMemory::identity;
        let _: fn(&SharedMemory) -> i32 = SharedMemory::raw_fd;
        let _: fn(u32, i32, ObjectIdentity, bool) -> Result<Option<SharedMemory>> =
            SharedMemory::open_held;
        let _: fn(u32, i32, ObjectIdentity) -> bool = holds;
        let _: fn(&Path, bool) -> Result<Option<NameFile>> = NameFile::lock;
        let _: fn(&mut NameFile) -> Result<Vec<u8>> = NameFile::read;
        let _: fn(&mut NameFile, &[u8]) -> Result<()> = NameFile::write;
        let _: usize = MAX_NAME_FILE;
        let _: fn() -> u32 = current_pid;
        let _: fn() -> u64 = pid_namespace;
        let _: fn() -> u64 = thread_identity;
        let _: fn(u64) -> bool = thread_alive;
        let _: fn(&Mapping) -> *mut u8 = Mapping::as_ptr;
        let _: fn(&Mapping) -> usize = Mapping::len;
        let _: fn(&Mapping) -> bool = Mapping::writable;
        // The doorbell.
        let _: fn(&AtomicU32, u32, Option<Duration>, Lane) -> WaitOutcome = wait_in;
        let _: fn(&AtomicU32, u32, Lane) = wake_in;
        // The local endpoint.
        let _: fn(&Path) -> Result<Listener> = Listener::bind;
        let _: fn(&Listener) -> Result<Option<Stream>> = Listener::accept;
        let _: fn(&Path, Instant) -> Result<Stream> = Stream::connect;
        let _: fn() -> Result<(Stream, Stream)> = Stream::pair;
        let _: fn(&Stream, &[u8], Option<&SharedMemory>) -> Result<()> = Stream::send;
        // Handles in calls: any descriptor sent, received unchecked until the message says
        // what it must be (shared memory is checked as in `recv`; a file is the peer's word).
        let _: fn(&Stream, &[u8], BorrowedOsHandle<'_>) -> Result<()> = Stream::send_handle;
        let _: for<'a> fn(
            &Stream,
            &'a mut [u8],
            Option<Instant>,
        ) -> Result<(usize, Option<Received>)> = Stream::recv_any;
        let _: fn(Received) -> Result<SharedMemory> = Received::into_shared_memory;
        let _: fn(Received) -> OwnedOsHandle = Received::into_handle;
        let _: fn(&SharedMemory) -> bool = SharedMemory::writable_descriptor;
        let _: for<'a> fn(
            &Stream,
            &'a mut [u8],
            Option<Instant>,
        ) -> Result<(usize, Option<SharedMemory>)> = Stream::recv;
        let _: fn(&Stream) -> Result<PeerCredentials> = Stream::peer_credentials;
        let _: fn(&Stream) -> bool = Stream::peer_closed;
        let _: fn(&Stream) = Stream::shutdown;
        let _: fn() -> Result<Option<Stream>> = Stream::inherited;
        // Hang-up notices.
        let _: fn() -> Result<Reactor> = Reactor::new;
        let _: fn(&Reactor, &Listener) -> Result<()> = Reactor::watch_listener;
        let _: fn(&Reactor, &Stream, u64) -> Result<()> = Reactor::watch_peer;
        let _: fn(&Reactor) -> Result<()> = Reactor::watch_stop_signals;
        let _: fn(&Reactor) = Reactor::wake;
        let _: fn(&Reactor, &mut Vec<ReactorEvent>, Option<Duration>) -> Result<()> = Reactor::wait;
        // Where endpoints are named.
        let _: fn(&Path) -> Result<DirLock> = DirLock::acquire;
        let _: fn(&Path) -> Result<()> = create_private_dir;
        let _: fn(&Path, &Path) -> Result<()> = open_to_other_users;
        let _: fn(&Path) -> Result<FileIdentity> = file_identity;
        // The process.
        let _: fn() -> UserId = current_user;
        let _: fn() -> u64 = monotonic_ns;
        let _: fn(Option<u32>) -> bool = can_run_apart;
        let _: fn(u32) -> String = process_name;
        let _: fn(u32) -> bool = process_alive;
        let _: fn() -> u64 = raise_open_file_limit;
        let _: fn(&mut std::process::Command, &Stream) -> Result<ChildProcess> =
            spawn_with_endpoint;
        // A child: what std's `Child` offers, as far as lpc uses it.
        let _: fn(&ChildProcess) -> u32 = ChildProcess::id;
        let _: fn(&mut ChildProcess) -> Result<()> = ChildProcess::kill;
        let _: fn(&mut ChildProcess) -> Result<std::process::ExitStatus> = ChildProcess::wait;
        let _: fn(&mut ChildProcess) -> Result<Option<std::process::ExitStatus>> =
            ChildProcess::try_wait;
        let _: &str = ENDPOINT_ENV;
    }
};
