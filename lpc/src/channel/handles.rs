//! Handles passed in calls: files, descriptors and segments, sent by the kernel over the
//! connection's socket (`SCM_RIGHTS`), never by name.
//!
//! The sender of a call (or a reply) that passes a handle sends, while it encodes the payload,
//! one `Handle {id}` notice per handle with the descriptor attached, and writes only the id in
//! the payload; the frame is published after the payload is encoded, so every notice precedes
//! the frame that names it (as spill and bulk buffers' notices do). The receiver, decoding the
//! payload, takes the descriptor of that id from the inbox, or reads the socket until it comes
//! (a notice that never comes is a protocol error after [`super::SPILL_NOTICE_TIMEOUT`]).
//!
//! **Bounds.** A receiver holds, per connection, at most `per_connection` descriptors received
//! but not named yet (a call abandoned after its notices went, or a hostile peer's notices):
//! past it the oldest is closed. A call or reply may carry at most `per_call` handles: the
//! receiver refuses the rest (`Busy`, naming the limit) and closes them, and the sender
//! refuses to send more than [`MAX_PER_CALL`]. Descriptors in flight on the socket are the
//! kernel's (charged to the sender) until read. Every received descriptor is owned by a value
//! that closes it when dropped — in the inbox, in a decoded argument, in a handler's result —
//! so a failing handler, a failed decode or a closed connection closes it.

#[cfg(not(loom))]
use crate::sys::BorrowedOsHandle as BorrowedFd;
use std::cell::Cell;
use std::sync::atomic::AtomicU32;
#[cfg(not(loom))]
use std::sync::atomic::Ordering;

use super::Channel;
#[cfg(not(loom))]
use super::{ChannelError, Inbox};
#[cfg(not(loom))]
use crate::sys::{Received, SharedMemory};
#[cfg(not(loom))]
use crate::wire::handshake::Message;

/// The most handles a sender puts in one call or reply (the service's own limit,
/// `ServerOptions::max_descriptors_per_call`, may be lower).
pub(crate) const MAX_PER_CALL: u32 = 64;

/// Default largest number of handles one call or reply may carry.
pub(crate) const DEFAULT_PER_CALL: u32 = 16;

/// Default largest number of received handles a connection holds before they are named.
pub(crate) const DEFAULT_PER_CONNECTION: usize = 64;

/// The handle limits and ids of one connection.
#[derive(Debug)]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct HandleState {
    next: AtomicU32,
    per_call: u32,
    per_connection: usize,
}

impl Default for HandleState {
    fn default() -> Self {
        HandleState {
            next: AtomicU32::new(0),
            per_call: DEFAULT_PER_CALL,
            per_connection: DEFAULT_PER_CONNECTION,
        }
    }
}

thread_local! {
    /// Handles sent and received by this thread's call (or reply) in progress: reset by
    /// [`begin_call`].
    static SENT: Cell<u32> = const { Cell::new(0) };
    static RECEIVED: Cell<u32> = const { Cell::new(0) };
}

/// Starts counting the handles of a call (or of the reply to one) on this thread.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn begin_call() {
    SENT.with(|c| c.set(0));
    RECEIVED.with(|c| c.set(0));
}

impl Channel {
    /// Sets the limits of what the peer may make this side hold (see the module docs).
    pub(crate) fn set_handle_limits(&mut self, per_call: u32, per_connection: usize) {
        self.handles.per_call = per_call;
        self.handles.per_connection = per_connection.max(1);
    }
}

// The model backend (loom) has no descriptors to pass.
#[cfg(not(loom))]
impl Channel {
    /// A new id, counted against the call's handles.
    fn next_handle(&self) -> Result<u32, ChannelError> {
        let sent = SENT.with(|c| c.get());
        if sent >= MAX_PER_CALL {
            return Err(ChannelError::Busy(format!(
                "a call or reply carries at most {MAX_PER_CALL} handles (files, descriptors, \
                 segments)"
            )));
        }
        SENT.with(|c| c.set(sent + 1));
        Ok(self.handles.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends descriptor `fd` to the peer (a duplicate travels; `fd` stays ours); returns the
    /// id the payload names it by.
    pub(crate) fn send_descriptor(&self, fd: BorrowedFd<'_>) -> Result<u32, ChannelError> {
        let id = self.next_handle()?;
        self.stream
            .send_handle(&Message::Handle { id }.encode(), fd)
            .map_err(ChannelError::from)?;
        Ok(id)
    }

    /// Sends the descriptor of `shm` (a segment) to the peer; returns its id.
    pub(crate) fn send_memory(&self, shm: &SharedMemory) -> Result<u32, ChannelError> {
        let id = self.next_handle()?;
        self.stream
            .send(&Message::Handle { id }.encode(), Some(shm))
            .map_err(ChannelError::from)?;
        Ok(id)
    }

    /// Takes the descriptor the peer sent as handle `id`, unchecked (the caller checks it as
    /// what the payload says it is), counting it against the call's limit.
    pub(crate) fn take_handle(&self, id: u32) -> Result<Received, ChannelError> {
        let received = RECEIVED.with(|c| c.get());
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let handle = loop {
            if let Some(handle) = inbox.handles.remove(&id) {
                break handle;
            }
            self.receive_one(&mut inbox, || {
                format!("a call names handle {id}, which never arrived")
            })?;
        };
        drop(inbox);
        if received >= self.handles.per_call {
            // Closed here, with the rest of the call's arguments.
            drop(handle);
            return Err(ChannelError::Busy(format!(
                "a call carries more than {} handles (files, descriptors, segments), the most \
                 this side accepts (ServerOptions::max_descriptors_per_call)",
                self.handles.per_call
            )));
        }
        RECEIVED.with(|c| c.set(received + 1));
        Ok(handle)
    }

    /// Keeps handle `id`, received ahead of the payload that names it, within the
    /// connection's limit: past it, the oldest unnamed one is closed.
    pub(super) fn keep_handle(&self, inbox: &mut Inbox, id: u32, handle: Received) {
        if inbox.handles.len() >= self.handles.per_connection && !inbox.handles.contains_key(&id) {
            if let Some((old, _closed)) = inbox.handles.pop_first() {
                tracing::warn!(
                    service = %self.service,
                    handle = old,
                    limit = self.handles.per_connection,
                    "closed a handle the peer sent and never named: more were waiting than \
                     ServerOptions::max_descriptors_per_connection allows"
                );
            }
        }
        inbox.handles.insert(id, handle);
    }

    /// How many received handles wait to be named (for tests and statistics).
    #[allow(dead_code)]
    pub(crate) fn handles_waiting(&self) -> usize {
        self.inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .handles
            .len()
    }
}
