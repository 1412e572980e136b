//! Local sockets: Unix `SOCK_SEQPACKET` sockets.
//!
//! SEQPACKET keeps message boundaries, so a handshake message or a "here is a new spill buffer"
//! notice arrives whole, with its descriptor (`SCM_RIGHTS`) attached to that very message. The
//! socket also serves as the liveness channel of a connection: when a process dies the kernel
//! closes its end and the peer sees `POLLRDHUP`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    accept_with, bind, connect, listen, recvmsg, sendmsg, socket_with, sockopt, AddressFamily,
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::memory::SharedMemory;
use crate::sys::{PeerCredentials, UserId};

fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path {} is too long for a Unix socket (at most 107 bytes); choose a shorter runtime directory",
                path.display()
            ),
        )
    })
}

/// A listening socket bound to a path.
#[derive(Debug)]
pub(crate) struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// `socket(AF_UNIX, SOCK_SEQPACKET)`, `bind(path)`, `listen`. The listener is non-blocking:
    /// [`Listener::accept`] is driven by the [`super::Reactor`].
    pub(crate) fn bind(path: &Path) -> io::Result<Listener> {
        let addr = unix_addr(path)?;
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        bind(&fd, &addr)?;
        listen(&fd, 256)?;
        Ok(Listener { fd })
    }

    /// Accepts one pending connection, if any. The new stream is blocking.
    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        match accept_with(&self.fd, SocketFlags::CLOEXEC) {
            Ok(fd) => Ok(Some(Stream { fd })),
            Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::CONNABORTED) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A descriptor received from the peer, not checked yet: it becomes shared memory only through
/// [`Received::into_shared_memory`]'s checks, or a handle the receiver must treat as untrusted
/// ([`Received::into_handle`]). Closed when dropped.
#[derive(Debug)]
pub(crate) struct Received {
    fd: OwnedFd,
}

impl Received {
    /// Checked to be lpc shared memory ([`SharedMemory::from_received`]).
    pub(crate) fn into_shared_memory(self) -> io::Result<SharedMemory> {
        SharedMemory::from_received(self.fd)
    }

    /// Whatever the peer sent, as an owned descriptor.
    pub(crate) fn into_handle(self) -> OwnedFd {
        self.fd
    }
}

/// One end of a connection.
#[derive(Debug)]
pub(crate) struct Stream {
    fd: OwnedFd,
}

/// Largest descriptor-carrying control message we accept: one descriptor.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(1));

impl Stream {
    /// Two connected streams (`socketpair(2)`): one end for a child process, or both for tests.
    pub(crate) fn pair() -> io::Result<(Stream, Stream)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Stream { fd: a }, Stream { fd: b }))
    }

    /// Connects to the socket at `path`. Fails with `NotFound`/`ConnectionRefused` when no
    /// service listens there; retries while the service's accept queue is full, up to `deadline`.
    pub(crate) fn connect(path: &Path, deadline: Instant) -> io::Result<Stream> {
        let addr = unix_addr(path)?;
        let mut pause = Duration::from_micros(50);
        loop {
            let fd = socket_with(
                AddressFamily::UNIX,
                SocketType::SEQPACKET,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )?;
            match connect(&fd, &addr) {
                Ok(()) => {
                    let stream = Stream { fd };
                    stream.set_nonblocking(false)?;
                    return Ok(stream);
                }
                // A full accept queue: the service is alive but busy.
                Err(Errno::AGAIN) => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the service's accept queue stayed full",
                        ));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let mut flags = rustix::fs::fcntl_getfl(&self.fd)?;
        flags.set(rustix::fs::OFlags::NONBLOCK, nonblocking);
        rustix::fs::fcntl_setfl(&self.fd, flags)?;
        Ok(())
    }

    /// Sends one message, with `shm`'s descriptor attached if given. Never raises `SIGPIPE`.
    pub(crate) fn send(&self, bytes: &[u8], shm: Option<&SharedMemory>) -> io::Result<()> {
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds;
        if let Some(shm) = shm {
            fds = [shm.as_fd()];
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(io::Error::other(
                    "control buffer too small for one descriptor",
                ));
            }
        }
        let iov = [io::IoSlice::new(bytes)];
        loop {
            match sendmsg(&self.fd, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(io::Error::other("short send on a SEQPACKET socket")),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one message with any descriptor attached (a file, a socket: a handle passed in
    /// a call). Never raises `SIGPIPE`.
    pub(crate) fn send_handle(&self, bytes: &[u8], handle: BorrowedFd<'_>) -> io::Result<()> {
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [handle];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other(
                "control buffer too small for one descriptor",
            ));
        }
        let iov = [io::IoSlice::new(bytes)];
        loop {
            match sendmsg(&self.fd, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(io::Error::other("short send on a SEQPACKET socket")),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Like [`Stream::recv`], with the attached descriptor (if any) not checked yet: the
    /// message says what it must be ([`Received`]). At most one descriptor per message; more
    /// (all closed) or a truncated message are `InvalidData`.
    pub(crate) fn recv_any(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<(usize, Option<Received>)> {
        loop {
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if !self.poll(PollFlags::IN, Some(left))? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no message before the deadline",
                    ));
                }
            }
            let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [io::IoSliceMut::new(buf)];
            let msg = match recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(msg) => msg,
                Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut received: Vec<OwnedFd> = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = message {
                    received.extend(fds);
                }
            }
            if msg.flags.contains(ReturnFlags::TRUNC) || msg.flags.contains(ReturnFlags::CTRUNC) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message or its descriptors truncated",
                ));
            }
            if received.len() > 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more than one descriptor in a message",
                ));
            }
            return Ok((msg.bytes, received.pop().map(|fd| Received { fd })));
        }
    }

    /// Waits up to `timeout` for `events`; true if one (or a hang-up or error) is pending.
    fn poll(&self, events: PollFlags, timeout: Option<Duration>) -> io::Result<bool> {
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos().into(),
        });
        let mut fds = [PollFd::new(&self.fd, events)];
        loop {
            match poll(&mut fds, ts.as_ref()) {
                Ok(n) => return Ok(n > 0),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True once the peer has closed its end (it exited, crashed, or dropped the connection).
    pub(crate) fn peer_closed(&self) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::RDHUP)];
        match poll(
            &mut fds,
            Some(&Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        ) {
            Ok(0) => false,
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
            Err(_) => true,
        }
    }

    /// The peer's pid, uid and gid, as the kernel recorded them at `connect` (`SO_PEERCRED`).
    /// The kernel reports pid 0 for a peer in a PID namespace this process cannot see (it runs
    /// outside ours, while we run in a child namespace): its pid is then unknown.
    ///
    /// Not rustix's `socket_peercred`: its `UCred` holds the pid as a `Pid`, which cannot be 0,
    /// so that a pid of 0 from the kernel would be an invalid value.
    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `getsockopt(SO_PEERCRED)` writes at most `len` bytes (the size of a
        // `ucred`, every bit pattern of whose three integers is valid) into `cred`, which
        // lives for the call, and stores the length written in `len`; the descriptor is
        // open, owned by `self`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<libc::ucred>() {
            return Err(io::Error::other("SO_PEERCRED returned a short answer"));
        }
        Ok(PeerCredentials::new(
            u32::try_from(cred.pid).ok(),
            UserId::from_uid(cred.uid),
            Some(cred.gid),
        ))
    }

    /// The endpoint this process inherited from the parent that started it with
    /// [`super::spawn_with_endpoint`], if it was started so: taken once (a second call returns
    /// `None`), checked to be a `SOCK_SEQPACKET` Unix socket, made close-on-exec again, and
    /// the variable naming it removed from the environment (so: call it early, before the
    /// process starts threads that read the environment).
    pub(crate) fn inherited() -> io::Result<Option<Stream>> {
        use std::os::fd::FromRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
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
        let fd: i32 = value
            .to_str()
            .and_then(|v| v.parse().ok())
            .filter(|&fd| fd > 2)
            .ok_or_else(|| bad("not a descriptor number above 2"))?;
        // SAFETY: borrowed for the checks only, while no owner exists yet; `fcntl_getfd`
        // fails with EBADF (and we stop) if the number is not open in this process.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_getfd(borrowed).map_err(|_| bad("descriptor is not open"))?;
        if sockopt::socket_domain(borrowed).ok() != Some(AddressFamily::UNIX)
            || sockopt::socket_type(borrowed).ok() != Some(SocketType::SEQPACKET)
        {
            return Err(bad(
                "descriptor is not an lpc endpoint (a Unix SEQPACKET socket)",
            ));
        }
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)?;
        // Taken: the variable names nothing any more, and a child this process starts must
        // not believe it inherited the number.
        std::env::remove_var(super::ENDPOINT_ENV);
        // SAFETY: the descriptor is open (checked) and nothing in this process owns it: it
        // was inherited under the number the parent put in the environment, and the `TAKEN`
        // flag lets only one caller ever adopt it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Some(Stream { fd }))
    }

    /// Shuts both directions down, so that the peer sees a hang-up even while descriptors of
    /// this socket still exist.
    pub(crate) fn shutdown(&self) {
        let _ = rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Both);
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
