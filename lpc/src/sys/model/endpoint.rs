//! Endpoints in the model: a [`Stream`] pair in memory; no listener, no reactor.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::sync::{Condvar, Mutex};

use super::{current_user, unsupported, SharedMemory};
use crate::sys::PeerCredentials;
use crate::sys::ReactorEvent;

/// One message: its bytes and the shared memory attached to it.
type Message = (Vec<u8>, Option<SharedMemory>);

/// The two ends of a pair.
struct Link {
    state: Mutex<LinkState>,
    changed: Condvar,
}

#[derive(Default)]
struct LinkState {
    /// Messages waiting at each end.
    inbox: [VecDeque<Message>; 2],
    /// Whether each end was shut down or dropped.
    closed: [bool; 2],
}

/// One end of a connected pair (the model has no other endpoints).
pub(crate) struct Stream {
    link: Arc<Link>,
    /// Which end: 0 or 1.
    end: usize,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("end", &self.end).finish()
    }
}

impl Stream {
    /// A connected pair (must be called inside a loom model).
    pub(crate) fn pair() -> io::Result<(Stream, Stream)> {
        super::futex::set_up();
        let link = Arc::new(Link {
            state: Mutex::new(LinkState::default()),
            changed: Condvar::new(),
        });
        Ok((
            Stream {
                link: link.clone(),
                end: 0,
            },
            Stream { link, end: 1 },
        ))
    }

    fn peer(&self) -> usize {
        1 - self.end
    }

    pub(crate) fn connect(_path: &Path, _deadline: Instant) -> io::Result<Stream> {
        Err(unsupported("connecting to a named endpoint"))
    }

    /// Queues `bytes` (and `shm`, as the peer will receive it) at the peer's end.
    pub(crate) fn send(&self, bytes: &[u8], shm: Option<&SharedMemory>) -> io::Result<()> {
        let mut state = self.link.state.lock().unwrap();
        if state.closed[self.end] || state.closed[self.peer()] {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the peer's end is closed",
            ));
        }
        state.inbox[self.peer()].push_back((bytes.to_vec(), shm.map(SharedMemory::duplicate)));
        self.link.changed.notify_all();
        Ok(())
    }

    /// The next message into `buf`; 0 bytes once the peer's end is closed and nothing is
    /// left. **The deadline is ignored**, as a futex wait's timeout is: a message that never
    /// comes shows as a deadlock.
    pub(crate) fn recv(
        &self,
        buf: &mut [u8],
        _deadline: Option<Instant>,
    ) -> io::Result<(usize, Option<SharedMemory>)> {
        let mut state = self.link.state.lock().unwrap();
        loop {
            if let Some((bytes, shm)) = state.inbox[self.end].pop_front() {
                if bytes.len() > buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "message or its descriptors truncated",
                    ));
                }
                buf[..bytes.len()].copy_from_slice(&bytes);
                return Ok((bytes.len(), shm));
            }
            if state.closed[self.end] || state.closed[self.peer()] {
                return Ok((0, None));
            }
            state = self.link.changed.wait(state).unwrap();
        }
    }

    /// [`Stream::recv`], the memory handed over as it came (the model sends nothing else).
    pub(crate) fn recv_any(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<(usize, Option<Received>)> {
        let (n, shm) = self.recv(buf, deadline)?;
        Ok((n, shm.map(Received)))
    }

    /// Both ends are in this process.
    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        Ok(PeerCredentials::new(
            Some(std::process::id()),
            current_user(),
            None,
        ))
    }

    /// Whether the peer's end was shut down or dropped.
    pub(crate) fn peer_closed(&self) -> bool {
        self.link.state.lock().unwrap().closed[self.peer()]
    }

    pub(crate) fn shutdown(&self) {
        self.close();
    }

    pub(crate) fn inherited() -> io::Result<Option<Stream>> {
        Ok(None)
    }

    fn close(&self) {
        let mut state = self.link.state.lock().unwrap();
        state.closed[self.end] = true;
        self.link.changed.notify_all();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Not while a failed model unwinds: loom's runtime may be what panicked.
        if !std::thread::panicking() {
            self.close();
        }
    }
}

/// Not modelled: [`Listener::bind`] fails.
#[derive(Debug)]
pub(crate) struct Listener;

impl Listener {
    pub(crate) fn bind(_path: &Path) -> io::Result<Listener> {
        Err(unsupported("a listener"))
    }

    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        Err(unsupported("a listener"))
    }
}

/// Not modelled: [`Reactor::new`] fails.
#[derive(Debug)]
pub(crate) struct Reactor;

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Err(unsupported("a reactor"))
    }

    pub(crate) fn watch_listener(&self, _listener: &Listener) -> io::Result<()> {
        Err(unsupported("a reactor"))
    }

    pub(crate) fn watch_peer(&self, _stream: &Stream, _token: u64) -> io::Result<()> {
        Err(unsupported("a reactor"))
    }

    pub(crate) fn watch_stop_signals(&self) -> io::Result<()> {
        Err(unsupported("a reactor"))
    }

    pub(crate) fn wake(&self) {}

    pub(crate) fn wait(
        &self,
        _out: &mut Vec<ReactorEvent>,
        _timeout: Option<Duration>,
    ) -> io::Result<()> {
        Err(unsupported("a reactor"))
    }
}

/// A received object: in the model, always shared memory.
#[derive(Debug)]
pub(crate) struct Received(SharedMemory);

impl Received {
    pub(crate) fn into_shared_memory(self) -> io::Result<SharedMemory> {
        Ok(self.0)
    }
}
