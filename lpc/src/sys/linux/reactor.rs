//! The service's event loop: `epoll(7)` over the listening socket, every connection's socket
//! (for hang-ups only), an `eventfd(2)` used to wake the loop for shutdown and, when asked, a
//! self-pipe that `signal-hook`'s handler writes on SIGTERM and SIGINT.
//!
//! Connection threads sleep on futexes, which cannot be waited on together with sockets; the
//! reactor is how a sleeping connection thread learns that its client died.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;

use super::socket::{Listener, Stream};
use crate::sys::ReactorEvent;

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
const STOP_SIGNALS: u64 = u64::MAX - 2;

/// An epoll instance plus its waker.
#[derive(Debug)]
pub(crate) struct Reactor {
    epoll: OwnedFd,
    waker: OwnedFd,
    stop_signals: Mutex<Option<StopSignals>>,
}

/// The read end of the self-pipe and the signal actions that write to it (each holding its
/// own write end); dropping it unregisters them, which closes the write ends.
#[derive(Debug)]
struct StopSignals {
    read: OwnedFd,
    actions: Vec<SigId>,
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for action in self.actions.drain(..) {
            signal_hook::low_level::unregister(action);
        }
    }
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let waker = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &waker,
            epoll::EventData::new_u64(WAKER),
            epoll::EventFlags::IN,
        )?;
        Ok(Reactor {
            epoll,
            waker,
            stop_signals: Mutex::new(None),
        })
    }

    /// Reports [`ReactorEvent::StopSignal`] when the process gets SIGTERM or SIGINT, until the
    /// reactor is dropped; meanwhile those signals no longer end the process. Other handlers
    /// of these signals (another library's, another reactor's) keep running: `signal-hook`
    /// chains them, and its handler only writes a byte to a non-blocking pipe, which is
    /// async-signal-safe. Calling it again does nothing.
    ///
    /// Once unregistered, `signal-hook` leaves its (now empty) handler installed: the signals
    /// are then ignored rather than ending the process (see `signal_hook::low_level::unregister`).
    pub(crate) fn watch_stop_signals(&self) -> io::Result<()> {
        let mut watched = self.stop_signals.lock().unwrap_or_else(|p| p.into_inner());
        if watched.is_some() {
            return Ok(());
        }
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        epoll::add(
            &self.epoll,
            &read,
            epoll::EventData::new_u64(STOP_SIGNALS),
            epoll::EventFlags::IN,
        )?;
        // Dropped on an error: unregisters what was registered and closes the pipe (which
        // removes it from the epoll set).
        let mut signals = StopSignals {
            read,
            actions: Vec::with_capacity(2),
        };
        for signal in [SIGTERM, SIGINT] {
            let end = rustix::io::fcntl_dupfd_cloexec(&write, 0)?;
            signals
                .actions
                .push(signal_hook::low_level::pipe::register(signal, end)?);
        }
        *watched = Some(signals);
        Ok(())
    }

    /// Reports [`ReactorEvent::Accept`] while `listener` has pending connections.
    pub(crate) fn watch_listener(&self, listener: &Listener) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            listener.fd(),
            epoll::EventData::new_u64(LISTENER),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    /// Reports [`ReactorEvent::Hangup`]`(token)` when the peer of `stream` closes, and
    /// [`ReactorEvent::Message`]`(token)` when a message arrives (edge-triggered: once per
    /// arrival, whether or not anyone reads it). Closing `stream` removes it from the reactor.
    pub(crate) fn watch_peer(&self, stream: &Stream, token: u64) -> io::Result<()> {
        debug_assert!(token < WAKER);
        epoll::add(
            &self.epoll,
            stream.fd(),
            epoll::EventData::new_u64(token),
            epoll::EventFlags::RDHUP | epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(())
    }

    /// Wakes a thread blocked in [`Reactor::wait`]. Safe to call from any thread.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.waker, &1u64.to_ne_bytes());
    }

    /// Waits for events (up to `timeout`, forever if `None`) and appends them to `out`.
    pub(crate) fn wait(
        &self,
        out: &mut Vec<ReactorEvent>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos().into(),
        });
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            match event.data.u64() {
                LISTENER => out.push(ReactorEvent::Accept),
                WAKER => {
                    let mut buf = [0u8; 8];
                    let _ = rustix::io::read(&self.waker, &mut buf);
                    out.push(ReactorEvent::Wake);
                }
                STOP_SIGNALS => {
                    // Drain first, then report: a signal arriving after the drain wakes the
                    // reactor again.
                    if let Some(signals) = self
                        .stop_signals
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                    {
                        let mut buf = [0u8; 64];
                        while matches!(rustix::io::read(&signals.read, &mut buf), Ok(n) if n > 0) {}
                    }
                    out.push(ReactorEvent::StopSignal);
                }
                token => {
                    let gone =
                        epoll::EventFlags::RDHUP | epoll::EventFlags::HUP | epoll::EventFlags::ERR;
                    let flags = event.flags;
                    if flags.intersects(gone) {
                        out.push(ReactorEvent::Hangup(token));
                    } else {
                        out.push(ReactorEvent::Message(token));
                    }
                }
            }
        }
        Ok(())
    }
}
