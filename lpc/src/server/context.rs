//! What a handler may ask about the call it is running: who called ([`caller`]), by when the
//! caller wants the answer ([`deadline`]), and whether the caller still waits for it
//! ([`cancelled`]).
//!
//! The connection thread sets these in thread-locals around each call; the per-call part is
//! two plain writes, so it costs nothing measurable on the call path.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::channel::scope::{self, Serving};
use crate::channel::{state, Channel};
use crate::sys::PeerCredentials;

struct ConnectionContext {
    peer: Option<PeerCredentials>,
    /// Set when the connection must end (the client hung up, or the service stops).
    stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy)]
struct CallContext {
    slot: u32,
    deadline: Option<Instant>,
}

/// The slot of a one-way message's scope (it has none).
const ONEWAY: u32 = u32::MAX;

thread_local! {
    static CONNECTION: RefCell<Option<ConnectionContext>> = const { RefCell::new(None) };
    static CALL: Cell<Option<CallContext>> = const { Cell::new(None) };
}

/// Marks this thread as serving the connection of `channel`, with client `peer`, until
/// dropped; `stop` is the connection's flag that it must end.
pub(super) struct ConnectionScope {
    _serving: Serving,
}

impl ConnectionScope {
    pub(super) fn enter(
        channel: Arc<Channel>,
        peer: Option<PeerCredentials>,
        stop: Arc<AtomicBool>,
    ) -> ConnectionScope {
        CONNECTION.with(|c| *c.borrow_mut() = Some(ConnectionContext { peer, stop }));
        ConnectionScope {
            _serving: Serving::enter(channel),
        }
    }
}

impl Drop for ConnectionScope {
    fn drop(&mut self) {
        CONNECTION.with(|c| *c.borrow_mut() = None);
    }
}

/// Marks this thread as running the call in `slot` until dropped (also when the handler
/// panics).
pub(super) struct CallScope(());

impl CallScope {
    pub(super) fn enter(slot: u32, deadline: Option<Instant>) -> CallScope {
        CALL.with(|c| c.set(Some(CallContext { slot, deadline })));
        CallScope(())
    }

    /// The scope of a one-way message's handler: the caller is known, there is no deadline,
    /// and only the connection's end cancels it.
    pub(super) fn enter_oneway() -> CallScope {
        Self::enter(ONEWAY, None)
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        CALL.with(|c| c.set(None));
    }
}

/// The process that made the call this handler is running: its pid, uid and gid as the
/// kernel recorded them when it connected (`SO_PEERCRED`), not anything the client wrote.
/// `None` outside a handler. The pid itself is `None` for a client in a PID namespace the
/// service cannot see (a container): decide by user and group, never by pid.
///
/// ```no_run
/// # #[lpc::service] pub trait Vault { fn open(&self) -> bool; }
/// # struct MyVault;
/// impl Vault for MyVault {
///     fn open(&self) -> bool {
///         // Only root may open the vault, whatever the access policy admits.
///         lpc::caller().is_some_and(|c| c.uid() == Some(0))
///     }
/// }
/// ```
pub fn caller() -> Option<PeerCredentials> {
    CALL.with(Cell::get)?;
    CONNECTION.with(|c| c.borrow().as_ref().and_then(|c| c.peer.clone()))
}

/// When the caller stops waiting for this call (its `with_timeout` deadline), if it set one.
/// `None` outside a handler or without a deadline.
pub fn deadline() -> Option<Instant> {
    CALL.with(Cell::get)?.deadline
}

/// True when nobody waits for this call's result any more: the caller gave up (its deadline
/// passed), the caller's process died, or the service is shutting down. A long handler can
/// poll this and return early; whatever it returns then is discarded. False outside a handler.
pub fn cancelled() -> bool {
    let Some(call) = CALL.with(Cell::get) else {
        return false;
    };
    let stopped = CONNECTION.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|c| c.stop.load(Ordering::SeqCst))
    });
    stopped
        || call.slot != ONEWAY
            && scope::served(|channel| {
                channel.slot(call.slot).state().load(Ordering::Acquire) == state::ABANDONED
            })
            .unwrap_or(false)
}
