//! What a reactor is told: its queue of events, and the reactors each pipe end or listener
//! reports to (their threads push; `Reactor::wait` takes).

use std::sync::{Condvar, Mutex, Weak};

use crate::sys::ReactorEvent;

/// A reactor's queue.
pub(crate) struct Inner {
    pub(super) events: Mutex<Vec<ReactorEvent>>,
    pub(super) ready: Condvar,
}

impl Inner {
    pub(super) fn push(&self, event: ReactorEvent) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        // Wake and StopSignal are states, not counts: one pending is enough.
        if matches!(
            event,
            ReactorEvent::Wake | ReactorEvent::StopSignal | ReactorEvent::Accept
        ) && events.contains(&event)
        {
            return;
        }
        events.push(event);
        drop(events);
        self.ready.notify_all();
    }
}

/// The reactors interested in one pipe end or listener, with their tokens.
#[derive(Default)]
pub(super) struct Watchers(Vec<(Weak<Inner>, u64)>);

impl Watchers {
    pub(super) fn add(&mut self, watcher: Weak<Inner>, token: u64) {
        self.0.retain(|(w, _)| w.strong_count() > 0);
        self.0.push((watcher, token));
    }

    pub(super) fn notify(&mut self, event: impl Fn(u64) -> ReactorEvent) {
        self.0.retain(|(w, token)| match w.upgrade() {
            Some(r) => {
                r.push(event(*token));
                true
            }
            None => false,
        });
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}
