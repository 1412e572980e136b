//! What a handler may ask about the call it is running: who called ([`caller`]), by when the
//! caller wants the answer ([`deadline`]), and whether the caller still waits for it
//! ([`cancelled`]).
//!
//! The connection thread sets these in thread-locals around each call; the per-call part is
//! two plain writes, so it costs nothing measurable on the call path.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::connection::ConnectionShared;
use crate::channel::{state, Channel};
use crate::sys::PeerCredentials;

struct ConnectionContext {
    channel: Arc<Channel>,
    conn: Arc<ConnectionShared>,
    service: Arc<str>,
}

#[derive(Clone, Copy)]
struct CallContext {
    slot: u32,
    deadline: Option<Instant>,
}

thread_local! {
    static CONNECTION: RefCell<Option<ConnectionContext>> = const { RefCell::new(None) };
    static CALL: Cell<Option<CallContext>> = const { Cell::new(None) };
}

/// Marks this thread as serving `conn` until dropped.
pub(super) struct ConnectionScope(());

impl ConnectionScope {
    pub(super) fn enter(
        channel: Arc<Channel>,
        conn: Arc<ConnectionShared>,
        service: Arc<str>,
    ) -> ConnectionScope {
        CONNECTION.with(|c| {
            *c.borrow_mut() = Some(ConnectionContext {
                channel,
                conn,
                service,
            })
        });
        ConnectionScope(())
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
}

impl Drop for CallScope {
    fn drop(&mut self) {
        CALL.with(|c| c.set(None));
    }
}

/// The process that made the call this handler is running: its pid, uid and gid as the
/// kernel recorded them when it connected (`SO_PEERCRED`), not anything the client wrote.
/// `None` outside a handler.
///
/// ```no_run
/// # #[lpc::service] pub trait Vault { fn open(&self) -> bool; }
/// # struct MyVault;
/// impl Vault for MyVault {
///     fn open(&self) -> bool {
///         // Only root may open the vault, whatever the access policy admits.
///         lpc::caller().is_some_and(|c| c.uid == 0)
///     }
/// }
/// ```
pub fn caller() -> Option<PeerCredentials> {
    CALL.with(Cell::get)?;
    CONNECTION.with(|c| c.borrow().as_ref().and_then(|c| c.conn.peer))
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
    CONNECTION.with(|c| {
        c.borrow().as_ref().is_some_and(|c| {
            c.conn.stopped()
                || c.channel.slot(call.slot).state().load(Ordering::Acquire) == state::ABANDONED
        })
    })
}

/// Runs `f` with the connection this thread serves (and the service name), if it serves one.
pub(crate) fn with_current_channel<R>(f: impl FnOnce(&Channel, &str) -> R) -> Option<R> {
    CONNECTION.with(|c| c.borrow().as_ref().map(|c| f(&c.channel, &c.service)))
}
