//! The connection this thread works for, for the code that needs it without being handed it:
//! a [`crate::loan::Loan`] being encoded or decoded must find its connection's bulk buffers, and
//! a handler asking [`crate::server::cancelled`] its call's slot.
//!
//! Two scopes, one lookup: a service's connection thread *serves* one connection for its whole
//! life; any thread is *calling* on a connection while it decodes a result that holds loans.
//! A handler that itself calls another service is calling inside serving, and the innermost
//! scope wins.

use std::cell::RefCell;
use std::sync::Arc;

use super::Channel;

thread_local! {
    static SERVED: RefCell<Option<Arc<Channel>>> = const { RefCell::new(None) };
}

scoped_tls::scoped_thread_local! {
    static CALLING: Channel
}

/// Marks this thread as serving a connection until dropped.
pub(crate) struct Serving(());

impl Serving {
    pub(crate) fn enter(channel: Arc<Channel>) -> Serving {
        SERVED.with(|s| *s.borrow_mut() = Some(channel));
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVED.with(|s| *s.borrow_mut() = None);
    }
}

/// Runs `f` as calling on `channel`.
pub(crate) fn calling<R>(channel: &Channel, f: impl FnOnce() -> R) -> R {
    CALLING.set(channel, f)
}

/// Runs `f` with the connection this thread serves, if it serves one.
pub(crate) fn served<R>(f: impl FnOnce(&Channel) -> R) -> Option<R> {
    SERVED.with(|s| s.borrow().as_deref().map(f))
}

/// Runs `f` with the connection this thread works for: the one it is calling on, else the
/// one it serves.
pub(crate) fn current<R>(f: impl FnOnce(&Channel) -> R) -> Option<R> {
    if CALLING.is_set() {
        return Some(CALLING.with(f));
    }
    served(f)
}
