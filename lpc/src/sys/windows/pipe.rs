//! Local endpoints: named pipes in message mode, `\\.\pipe\lpc-<user SID>-<dir hash>-<name>`.
//!
//! A message-mode pipe keeps message boundaries, as the Linux backend's `SOCK_SEQPACKET`
//! does, and is the liveness channel of a connection: when a process dies the kernel closes
//! its handles and the peer's pending read fails with `ERROR_BROKEN_PIPE`.
//!
//! Each end has a reader thread that keeps one overlapped read pending and queues what
//! arrives (at most [`INBOX_MESSAGES`] messages; past that it stops reading and the peer's
//! writes wait, as a full socket's would). It is what lets the reactor see messages and
//! hang-ups without reading them for the connection thread.
//!
//! The listener is a file at the path the layers above name (so that listing, stale-name
//! checks and removal work as on Linux) plus the pipe, whose name is derived from that path.
//!
//! A message is `[kind][handle?][section id, len?][payload]`. A handle is sent by number: the
//! sender duplicates it in its own table, the receiver duplicates that out of the sender's
//! process and says so (a release message), and the sender then closes its copy. Copies a
//! peer never takes are closed when the connection ends, and at most [`MAX_LENT`] wait at a
//! time: a peer that never takes what it is sent cannot make the sender's table grow.

use std::collections::VecDeque;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, OwnedHandle};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, ERROR_BROKEN_PIPE, ERROR_IO_PENDING, ERROR_MORE_DATA,
    ERROR_NO_DATA, ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, GENERIC_READ,
    GENERIC_WRITE, HANDLE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, ReadFile, WriteFile, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED,
    OPEN_EXISTING, PIPE_ACCESS_DUPLEX, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WRITE_DAC,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, GetNamedPipeClientProcessId,
    GetNamedPipeServerProcessId, SetNamedPipeHandleState, WaitNamedPipeW, PIPE_READMODE_MESSAGE,
    PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_MESSAGE, PIPE_UNLIMITED_INSTANCES, PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, OpenProcess, PROCESS_DUP_HANDLE,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

use super::memory::SharedMemory;
use super::watch::Watchers;
use super::{last_error, owned, wide};
use crate::sys::{PeerCredentials, ReactorEvent};

/// Messages an end queues before it stops reading.
const INBOX_MESSAGES: usize = 64;
/// The largest message accepted; a longer one ends the connection.
const MAX_MESSAGE: usize = 16 << 20;
/// The pipe's buffers.
const PIPE_BUFFER: u32 = 64 * 1024;

const KIND_PLAIN: u8 = 0;
const KIND_SECTION: u8 = 1;
const KIND_HANDLE: u8 = 2;
/// The sender shut its end down: the receiver takes it as a hang-up.
const KIND_BYE: u8 = 3;
/// The receiver took the handle this message names (a `u64`): the sender may close its copy.
const KIND_RELEASE: u8 = 4;

/// The most handles an end lends its peer (sent, not yet taken): past it, a send is an error
/// rather than a table that a peer which never takes them makes grow without end.
const MAX_LENT: usize = 1024;

/// The pipe name a path stands for: the user's SID keeps users apart, a hash of the directory
/// keeps runtime directories apart, and the file name is the service's name.
pub(super) fn pipe_name(path: &Path) -> String {
    let hash = path.parent().map_or(0, super::path_hash);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        r"\\.\pipe\lpc-{}-{hash:016x}-{file}",
        super::identity::current_user()
    )
}

fn hangup(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!("the peer closed the pipe ({what})"),
    )
}

fn map_pipe_error(e: io::Error) -> io::Error {
    match e.raw_os_error().map(|c| c as u32) {
        Some(ERROR_BROKEN_PIPE) | Some(ERROR_NO_DATA) => hangup("broken pipe"),
        Some(ERROR_PIPE_NOT_CONNECTED) => {
            io::Error::new(io::ErrorKind::NotConnected, "the pipe is not connected")
        }
        _ => e,
    }
}

/// An event for one overlapped operation at a time (manual reset, as overlapped I/O wants).
struct Event(OwnedHandle);

impl Event {
    fn new() -> io::Result<Event> {
        // SAFETY: an unnamed manual-reset event, default security; we own the handle.
        Ok(Event(unsafe {
            owned(CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()))?
        }))
    }

    fn overlapped(&self) -> OVERLAPPED {
        // SAFETY: an all-zero OVERLAPPED is the documented initial state.
        let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
        ov.hEvent = self.0.as_raw_handle();
        ov
    }
}

/// Runs one overlapped operation to completion: `start` issues it with the OVERLAPPED given;
/// returns the byte count, or the error (`ERROR_MORE_DATA` included, with the count in it).
fn overlapped_io(
    handle: HANDLE,
    event: &Event,
    start: impl FnOnce(*mut OVERLAPPED) -> i32,
    after_issue: impl FnOnce(),
) -> (u32, Option<io::Error>) {
    let mut ov = event.overlapped();
    let ok = start(&mut ov);
    if ok == 0 {
        let e = last_error();
        if e.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
            return (0, Some(e));
        }
    }
    after_issue();
    let mut n = 0u32;
    // SAFETY: `ov` lives until the operation is complete (we wait for it here).
    let ok = unsafe { GetOverlappedResult(handle, &ov, &mut n, 1) };
    if ok == 0 {
        return (n, Some(last_error()));
    }
    (n, None)
}

struct Inbox {
    messages: VecDeque<Vec<u8>>,
    /// The peer hung up (or the connection failed); nothing more will arrive.
    closed: bool,
    /// This end was dropped: the reader stops.
    stopping: bool,
    watchers: Watchers,
}

struct Peer {
    pid: u32,
    process: Option<OwnedHandle>,
}

struct Pipe {
    handle: OwnedHandle,
    server_end: bool,
    /// The peer's pid and process, opened at connection time (so its pid cannot be reused
    /// meanwhile), to pull the handles it sends. Set again when the other end of a
    /// [`Stream::pair`] goes to a child ([`Stream::handed_to`]).
    peer: std::sync::RwLock<Peer>,
    /// The other end, when both were made here ([`Stream::pair`]).
    partner: Mutex<Weak<Pipe>>,
    /// The duplicates sent and not yet taken (by their number in the message): closed when
    /// the peer says it took one, and all of them when the connection ends.
    lent: Mutex<std::collections::HashMap<u64, OwnedHandle>>,
    inbox: Mutex<Inbox>,
    arrived: Condvar,
    space: Condvar,
    write: Mutex<Event>,
}

/// One end of a connection.
pub(crate) struct Stream {
    pipe: Arc<Pipe>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("handle", &self.pipe.handle)
            .field(
                "peer_pid",
                &self.pipe.peer.read().map(|p| p.pid).unwrap_or(0),
            )
            .finish()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut inbox = self.pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
        inbox.stopping = true;
        drop(inbox);
        self.pipe.space.notify_all();
        // SAFETY: cancels this handle's pending I/O (the reader's read), if any.
        unsafe { CancelIoEx(self.pipe.handle.as_raw_handle(), std::ptr::null()) };
    }
}

fn open_peer(pid: u32) -> Option<OwnedHandle> {
    // SAFETY: OpenProcess returns a new handle (or null), which we own.
    unsafe {
        owned(OpenProcess(
            PROCESS_DUP_HANDLE | PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
            0,
            pid,
        ))
    }
    .ok()
}

impl Stream {
    fn start(handle: OwnedHandle, server_end: bool) -> io::Result<Stream> {
        let mut pid = 0u32;
        // SAFETY: `handle` is a connected pipe end; `pid` receives the peer's process id.
        let ok = unsafe {
            if server_end {
                GetNamedPipeClientProcessId(handle.as_raw_handle(), &mut pid)
            } else {
                GetNamedPipeServerProcessId(handle.as_raw_handle(), &mut pid)
            }
        };
        if ok == 0 {
            return Err(last_error());
        }
        let pipe = Arc::new(Pipe {
            handle,
            server_end,
            peer: std::sync::RwLock::new(Peer {
                pid,
                process: open_peer(pid),
            }),
            partner: Mutex::new(Weak::new()),
            lent: Mutex::new(std::collections::HashMap::new()),
            inbox: Mutex::new(Inbox {
                messages: VecDeque::new(),
                closed: false,
                stopping: false,
                watchers: Watchers::default(),
            }),
            arrived: Condvar::new(),
            space: Condvar::new(),
            write: Mutex::new(Event::new()?),
        });
        let reader = pipe.clone();
        std::thread::Builder::new()
            .name("lpc-pipe".into())
            .spawn(move || read_loop(&reader))?;
        Ok(Stream { pipe })
    }

    /// Two connected ends of a fresh pipe with a random name (for a child process, or tests).
    pub(crate) fn pair() -> io::Result<(Stream, Stream)> {
        let name = format!(r"\\.\pipe\lpc-pair-{:032x}", super::new_id());
        let server = create_instance(&name, true, false)?;
        let client = open_client(&name)?;
        let event = Event::new()?;
        let (_, error) = overlapped_io(
            server.as_raw_handle(),
            &event,
            // SAFETY: the instance is open; `ov` outlives the operation (overlapped_io waits).
            |ov| unsafe { ConnectNamedPipe(server.as_raw_handle(), ov) },
            || {},
        );
        if let Some(e) = error {
            if e.raw_os_error() != Some(ERROR_PIPE_CONNECTED as i32) {
                return Err(e);
            }
        }
        let (server, client) = (Stream::start(server, true)?, Stream::start(client, false)?);
        *server
            .pipe
            .partner
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&client.pipe);
        *client
            .pipe
            .partner
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&server.pipe);
        Ok((server, client))
    }

    /// This end (of a [`Stream::pair`]) now belongs to process `pid`: the other end's peer is
    /// that process, whose handles it pulls from then on.
    pub(super) fn handed_to(&self, pid: u32) {
        let partner = self
            .pipe
            .partner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        if let Some(partner) = partner {
            *partner.peer.write().unwrap_or_else(|p| p.into_inner()) = Peer {
                pid,
                process: open_peer(pid),
            };
        }
    }

    /// Connects to the service whose listener is the file at `path`. `NotFound` when there is
    /// none, `ConnectionRefused` when the file is there but nobody serves the pipe (a dead
    /// service's); waits while every pipe instance is busy, up to `deadline`.
    pub(crate) fn connect(path: &Path, deadline: Instant) -> io::Result<Stream> {
        let name = pipe_name(path);
        loop {
            match open_client(&name) {
                Ok(handle) => return Stream::start(handle, false),
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "every instance of the service's pipe stayed busy",
                        ));
                    }
                    let wname = wide(&name);
                    // SAFETY: a nul-terminated name that lives for the call.
                    unsafe {
                        WaitNamedPipeW(wname.as_ptr(), left.as_millis().clamp(1, 1000) as u32)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(if std::fs::symlink_metadata(path).is_ok() {
                        io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            "no service serves this name's pipe",
                        )
                    } else {
                        e
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_message(
        &self,
        kind: u8,
        handle: Option<(&OwnedHandle, Option<(u128, usize)>)>,
        bytes: &[u8],
    ) -> io::Result<()> {
        let mut message = Vec::with_capacity(bytes.len() + 33);
        message.push(kind);
        let mut lent = None;
        if let Some((handle, section)) = handle {
            // A duplicate for the receiver to pull; ours stays open until it says it took it.
            let copy = super::memory::duplicate(handle, None)?;
            let value = copy.as_raw_handle() as usize as u64;
            message.extend_from_slice(&value.to_le_bytes());
            if let Some((id, len)) = section {
                message.extend_from_slice(&id.to_le_bytes());
                message.extend_from_slice(&(len as u64).to_le_bytes());
            }
            let mut table = self.pipe.lent.lock().unwrap_or_else(|p| p.into_inner());
            if table.len() >= MAX_LENT {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("the peer holds {MAX_LENT} handles it was sent and never took"),
                ));
            }
            table.insert(value, copy);
            lent = Some(value);
        }
        message.extend_from_slice(bytes);
        let event = self.pipe.write.lock().unwrap_or_else(|p| p.into_inner());
        let handle_raw = self.pipe.handle.as_raw_handle();
        let (n, error) = overlapped_io(
            handle_raw,
            &event,
            // SAFETY: `message` and `ov` outlive the operation (overlapped_io waits for it).
            |ov| unsafe {
                WriteFile(
                    handle_raw,
                    message.as_ptr(),
                    message.len() as u32,
                    std::ptr::null_mut(),
                    ov,
                )
            },
            || {},
        );
        let failed = match error {
            Some(e) => Some(map_pipe_error(e)),
            None if n as usize != message.len() => {
                Some(io::Error::other("short write on a message pipe"))
            }
            None => None,
        };
        if let Some(e) = failed {
            // Never sent: nobody will take it.
            if let Some(value) = lent {
                self.pipe
                    .lent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&value);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Sends one message, with `shm`'s handle attached if given.
    pub(crate) fn send(&self, bytes: &[u8], shm: Option<&SharedMemory>) -> io::Result<()> {
        match shm {
            None => self.send_message(KIND_PLAIN, None, bytes),
            Some(shm) => self.send_message(
                KIND_SECTION,
                Some((shm.handle(), Some((shm.id(), shm.len())))),
                bytes,
            ),
        }
    }

    /// Sends one message with any handle attached (a file: a handle passed in a call).
    pub(crate) fn send_handle(&self, bytes: &[u8], handle: BorrowedHandle<'_>) -> io::Result<()> {
        let owned = handle.try_clone_to_owned()?;
        self.send_message(KIND_HANDLE, Some((&owned, None)), bytes)
    }

    /// Like [`Stream::recv`], with the attached handle (if any) not checked yet.
    pub(crate) fn recv_any(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<(usize, Option<Received>)> {
        let message = {
            let mut inbox = self.pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(m) = inbox.messages.pop_front() {
                    break m;
                }
                if inbox.closed {
                    return Ok((0, None));
                }
                inbox = match deadline {
                    None => self
                        .pipe
                        .arrived
                        .wait(inbox)
                        .unwrap_or_else(|p| p.into_inner()),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "no message before the deadline",
                            ));
                        }
                        self.pipe
                            .arrived
                            .wait_timeout(inbox, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                };
            }
        };
        self.pipe.space.notify_one();
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
        let (&kind, rest) = message
            .split_first()
            .ok_or_else(|| bad("an empty pipe message"))?;
        let take_u64 = |at: &[u8]| -> io::Result<u64> {
            at.get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                .ok_or_else(|| bad("a pipe message shorter than its header"))
        };
        let (received, payload) = match kind {
            KIND_PLAIN => (None, rest),
            KIND_HANDLE => {
                let value = take_u64(rest)?;
                (
                    Some(Received {
                        handle: self.pull(value)?,
                        section: None,
                    }),
                    &rest[8..],
                )
            }
            KIND_SECTION => {
                let value = take_u64(rest)?;
                let id = rest
                    .get(8..24)
                    .map(|b| u128::from_le_bytes(b.try_into().unwrap()))
                    .ok_or_else(|| bad("a pipe message shorter than its header"))?;
                let len = take_u64(&rest[24.min(rest.len())..])?;
                let handle = self.pull(value)?;
                let len = usize::try_from(len).map_err(|_| bad("a section larger than memory"))?;
                (
                    Some(Received {
                        handle,
                        section: Some((id, len)),
                    }),
                    &rest[32..],
                )
            }
            _ => return Err(bad("a pipe message of unknown kind")),
        };
        if payload.len() > buf.len() {
            return Err(bad("message or its descriptors truncated"));
        }
        buf[..payload.len()].copy_from_slice(payload);
        Ok((payload.len(), received))
    }

    /// Pulls handle `value` out of the peer's process (closing it there).
    fn pull(&self, value: u64) -> io::Result<OwnedHandle> {
        let peer = self.pipe.peer.read().unwrap_or_else(|p| p.into_inner());
        let process = peer.process.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the peer's process cannot be opened to take its handles",
            )
        })?;
        let mut out = std::ptr::null_mut();
        // SAFETY: `process` is open with PROCESS_DUP_HANDLE; the source is whatever number
        // the peer named in its own table (the kernel checks it); `out` receives a new
        // handle of ours.
        let ok = unsafe {
            DuplicateHandle(
                process.as_raw_handle(),
                value as usize as HANDLE,
                GetCurrentProcess(),
                &mut out,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            let e = last_error();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the handle the peer sent cannot be taken: {e}"),
            ));
        }
        drop(peer);
        // SAFETY: DuplicateHandle succeeded: `out` is ours.
        let taken = unsafe { owned(out) }?;
        // Taken: the sender may close its copy (a peer gone meanwhile has closed it anyway).
        let _ = self.send_message(KIND_RELEASE, None, &value.to_le_bytes());
        Ok(taken)
    }

    /// True once the peer has closed its end.
    pub(crate) fn peer_closed(&self) -> bool {
        self.pipe
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
    }

    /// The peer's pid and user (from its process token).
    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        let peer = self.pipe.peer.read().unwrap_or_else(|p| p.into_inner());
        let process = peer.process.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the peer's process cannot be opened",
            )
        })?;
        let user = super::identity::process_user(process)?;
        Ok(PeerCredentials::new(Some(peer.pid), user, None))
    }

    /// The endpoint this process inherited from [`super::spawn_with_endpoint`], if any: taken
    /// once, and the variable naming it removed from the environment.
    pub(crate) fn inherited() -> io::Result<Option<Stream>> {
        use std::os::windows::io::FromRawHandle;
        use std::sync::atomic::{AtomicBool, Ordering};
        use windows_sys::Win32::Storage::FileSystem::{GetFileType, FILE_TYPE_PIPE};
        static TAKEN: AtomicBool = AtomicBool::new(false);
        let Some(value) = std::env::var_os(super::ENDPOINT_ENV) else {
            return Ok(None);
        };
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {why}", super::ENDPOINT_ENV),
            )
        };
        let raw: usize = value
            .to_str()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v != 0)
            .ok_or_else(|| bad("not a handle number"))?;
        // SAFETY: GetFileType only inspects the handle; an invalid one gives FILE_TYPE_UNKNOWN.
        if unsafe { GetFileType(raw as HANDLE) } != FILE_TYPE_PIPE {
            return Err(bad("handle is not an lpc endpoint (a pipe)"));
        }
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        // SAFETY: environment changes race only with other threads reading it; documented
        // as "call it early".
        unsafe { std::env::remove_var(super::ENDPOINT_ENV) };
        // SAFETY: the handle is open (a pipe, checked) and nothing else in this process owns
        // it: it was inherited under the number the parent put in the environment, and
        // `TAKEN` lets only one caller adopt it.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw as HANDLE) };
        // Not inheritable any more: a child of ours must not get it.
        // SAFETY: clears a flag of our own open handle.
        unsafe {
            windows_sys::Win32::Foundation::SetHandleInformation(
                handle.as_raw_handle(),
                windows_sys::Win32::Foundation::HANDLE_FLAG_INHERIT,
                0,
            )
        };
        Stream::start(handle, false).map(Some)
    }

    /// Ends the connection so that the peer sees a hang-up: the server end disconnects its
    /// pipe instance; a client end stops reading (the peer sees the hang-up when it is dropped).
    pub(crate) fn shutdown(&self) {
        // Said first, so that the peer sees the hang-up even where the disconnect is late.
        let _ = self.send_message(KIND_BYE, None, &[]);
        if self.pipe.server_end {
            // SAFETY: disconnects our own pipe instance; the peer's operations then fail.
            unsafe { DisconnectNamedPipe(self.pipe.handle.as_raw_handle()) };
        }
        let mut inbox = self.pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
        inbox.closed = true;
        drop(inbox);
        self.pipe.arrived.notify_all();
    }

    /// Registers a reactor's interest (`Message`/`Hangup` with `token`).
    pub(super) fn watch(&self, watcher: Weak<super::watch::Inner>, token: u64) {
        let mut inbox = self.pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
        if inbox.closed {
            if let Some(r) = watcher.upgrade() {
                r.push(ReactorEvent::Hangup(token));
            }
        } else if !inbox.messages.is_empty() {
            if let Some(r) = watcher.upgrade() {
                r.push(ReactorEvent::Message(token));
            }
        }
        inbox.watchers.add(watcher, token);
    }

    /// The pipe handle, for a child to inherit.
    pub(super) fn handle(&self) -> &OwnedHandle {
        &self.pipe.handle
    }
}

/// The reader thread: one overlapped read pending at a time, each whole message queued.
fn read_loop(pipe: &Pipe) {
    let Ok(event) = Event::new() else {
        return close_inbox(pipe);
    };
    let raw = pipe.handle.as_raw_handle();
    let mut chunk = vec![0u8; PIPE_BUFFER as usize];
    let mut message: Vec<u8> = Vec::new();
    loop {
        {
            let mut inbox = pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
            while inbox.messages.len() >= INBOX_MESSAGES && !inbox.stopping {
                inbox = pipe.space.wait(inbox).unwrap_or_else(|p| p.into_inner());
            }
            if inbox.stopping {
                return;
            }
        }
        let (n, error) = overlapped_io(
            raw,
            &event,
            // SAFETY: `chunk` and `ov` outlive the read (overlapped_io waits for it).
            |ov| unsafe {
                ReadFile(
                    raw,
                    chunk.as_mut_ptr(),
                    chunk.len() as u32,
                    std::ptr::null_mut(),
                    ov,
                )
            },
            || {
                // Dropped while we issued the read: cancel it ourselves (see Stream's drop).
                if pipe
                    .inbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stopping
                {
                    // SAFETY: cancels our own pending read.
                    unsafe { CancelIoEx(raw, std::ptr::null()) };
                }
            },
        );
        message.extend_from_slice(&chunk[..n as usize]);
        match error {
            None => {
                let whole = std::mem::take(&mut message);
                let mut inbox = pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
                if whole.is_empty() {
                    // A zero-length message is never sent by lpc (every message has a kind).
                    continue;
                }
                if whole == [KIND_BYE] {
                    drop(inbox);
                    return close_inbox(pipe);
                }
                if whole.len() == 9 && whole[0] == KIND_RELEASE {
                    drop(inbox);
                    let value = u64::from_le_bytes(whole[1..].try_into().unwrap());
                    // Only a handle we lent: any other number is ignored.
                    pipe.lent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&value);
                    continue;
                }
                inbox.messages.push_back(whole);
                inbox.watchers.notify(ReactorEvent::Message);
                drop(inbox);
                pipe.arrived.notify_all();
            }
            Some(e) if e.raw_os_error() == Some(ERROR_MORE_DATA as i32) => {
                if message.len() > MAX_MESSAGE {
                    return close_inbox(pipe);
                }
            }
            Some(_) => return close_inbox(pipe),
        }
    }
}

fn close_inbox(pipe: &Pipe) {
    let mut inbox = pipe.inbox.lock().unwrap_or_else(|p| p.into_inner());
    inbox.closed = true;
    inbox.watchers.notify(ReactorEvent::Hangup);
    drop(inbox);
    pipe.arrived.notify_all();
}

fn create_instance(name: &str, first: bool, open: bool) -> io::Result<OwnedHandle> {
    let wname = wide(name);
    // WRITE_DAC: `open_to_other_users` may change who can connect to the waiting instance.
    let mut mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | WRITE_DAC;
    if first {
        mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    }
    let security = super::identity::pipe_security(open)?;
    // SAFETY: a nul-terminated name and a security descriptor that live for the call; we
    // own the returned instance.
    unsafe {
        owned(CreateNamedPipeW(
            wname.as_ptr(),
            mode,
            PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            security.attributes(),
        ))
    }
}

fn open_client(name: &str) -> io::Result<OwnedHandle> {
    let wname = wide(name);
    // SAFETY: a nul-terminated name that lives for the call; we own the returned handle.
    // SECURITY_IDENTIFICATION: the service may learn who we are, never act as us.
    let handle = unsafe {
        owned(CreateFileW(
            wname.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            0,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
            std::ptr::null_mut(),
        ))
    }?;
    let mode = PIPE_READMODE_MESSAGE;
    // SAFETY: sets the read mode of our own pipe handle.
    if unsafe {
        SetNamedPipeHandleState(
            handle.as_raw_handle(),
            &mode,
            std::ptr::null(),
            std::ptr::null(),
        )
    } == 0
    {
        return Err(last_error());
    }
    Ok(handle)
}

/// A handle received from the peer, not checked yet.
#[derive(Debug)]
pub(crate) struct Received {
    handle: OwnedHandle,
    section: Option<(u128, usize)>,
}

impl Received {
    /// Checked to be lpc shared memory ([`SharedMemory::from_received`]).
    pub(crate) fn into_shared_memory(self) -> io::Result<SharedMemory> {
        let Some((id, len)) = self.section else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "received handle is not lpc shared memory: it was sent as a file",
            ));
        };
        SharedMemory::from_received(self.handle, id, len)
    }

    /// Whatever the peer sent, as an owned handle.
    pub(crate) fn into_handle(self) -> OwnedHandle {
        self.handle
    }
}

struct ListenerInner {
    name: String,
    queue: Mutex<ListenerState>,
}

struct ListenerState {
    ready: VecDeque<Stream>,
    stopping: bool,
    /// The instance waiting for a client (to cancel on drop).
    waiting: Option<usize>,
    /// Admits other users (`open_to_other_users`).
    open: bool,
    watchers: Watchers,
}

/// A listening pipe (and the file at its path).
pub(crate) struct Listener {
    inner: Arc<ListenerInner>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("pipe", &self.inner.name)
            .finish()
    }
}

impl Listener {
    /// Creates the file at `path` (it must not exist) and the pipe it stands for, whose first
    /// instance must be ours (`FILE_FLAG_FIRST_PIPE_INSTANCE`): another process serving it is
    /// `AddrInUse`. A thread accepts connections; [`Listener::accept`] takes them.
    pub(crate) fn bind(path: &Path) -> io::Result<Listener> {
        let name = pipe_name(path);
        let first = match create_instance(&name, true, false) {
            Ok(h) => h,
            Err(e) if e.raw_os_error() == Some(5) || e.raw_os_error() == Some(231) => {
                // ACCESS_DENIED (first instance exists), PIPE_BUSY
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("the pipe {name} is already served"),
                ));
            }
            Err(e) => return Err(e),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, name.as_bytes()))?;
        let inner = Arc::new(ListenerInner {
            name,
            queue: Mutex::new(ListenerState {
                ready: VecDeque::new(),
                stopping: false,
                waiting: None,
                open: false,
                watchers: Watchers::default(),
            }),
        });
        let mut listeners = LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|(_, l)| l.strong_count() > 0);
        listeners.push((path.to_path_buf(), Arc::downgrade(&inner)));
        drop(listeners);
        let accepting = inner.clone();
        std::thread::Builder::new()
            .name("lpc-accept".into())
            .spawn(move || accept_loop(&accepting, first))?;
        Ok(Listener { inner })
    }

    /// Takes one accepted connection, if any.
    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        Ok(self
            .inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ready
            .pop_front())
    }

    pub(super) fn watch(&self, watcher: Weak<super::watch::Inner>) {
        let mut state = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        if !state.ready.is_empty() {
            if let Some(r) = watcher.upgrade() {
                r.push(ReactorEvent::Accept);
            }
        }
        state.watchers.add(watcher, 0);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut state = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        state.stopping = true;
        if let Some(raw) = state.waiting {
            // SAFETY: cancels the accept thread's pending connect on its instance, which
            // stays open until that thread sees `stopping` (it holds the handle).
            unsafe { CancelIoEx(raw as HANDLE, std::ptr::null()) };
        }
    }
}

/// The listeners of this process, by path, for [`open_listener`].
static LISTENERS: Mutex<Vec<(std::path::PathBuf, Weak<ListenerInner>)>> = Mutex::new(Vec::new());

/// Makes the listener bound at `path` admit other users, from its waiting instance on.
pub(super) fn open_listener(path: &Path) -> io::Result<()> {
    let inner = LISTENERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, l)| l.upgrade())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no listener of this process is bound there",
            )
        })?;
    let mut state = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
    state.open = true;
    if let Some(raw) = state.waiting {
        super::identity::pipe_security(true)?.apply(raw as HANDLE)?;
    }
    Ok(())
}

fn accept_loop(inner: &ListenerInner, first: OwnedHandle) {
    let Ok(event) = Event::new() else { return };
    let mut instance = first;
    loop {
        let raw = instance.as_raw_handle();
        {
            let mut state = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            if state.stopping {
                return;
            }
            state.waiting = Some(raw as usize);
        }
        let (_, error) = overlapped_io(
            raw,
            &event,
            // SAFETY: the instance is open; `ov` outlives the operation.
            |ov| unsafe { ConnectNamedPipe(raw, ov) },
            || {
                if inner
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stopping
                {
                    // SAFETY: cancels our own pending connect.
                    unsafe { CancelIoEx(raw, std::ptr::null()) };
                }
            },
        );
        let connected = match error {
            None => true,
            Some(e) => e.raw_os_error() == Some(ERROR_PIPE_CONNECTED as i32),
        };
        let mut state = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting = None;
        if state.stopping {
            return;
        }
        drop(state);
        let open = inner.queue.lock().unwrap_or_else(|p| p.into_inner()).open;
        let next = match create_instance(&inner.name, false, open) {
            Ok(next) => next,
            Err(_) => return,
        };
        let accepted = std::mem::replace(&mut instance, next);
        if !connected {
            // A client that came and went before we saw it: nothing to serve.
            continue;
        }
        if let Ok(stream) = Stream::start(accepted, true) {
            let mut state = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            state.ready.push_back(stream);
            state.watchers.notify(|_| ReactorEvent::Accept);
        }
    }
}
