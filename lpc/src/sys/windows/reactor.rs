//! The service's event loop. Each pipe end and listener already has a thread of its own that
//! waits in the kernel (see `pipe`); they report to the reactors that watch them, so the
//! reactor itself is a queue of events and a condition variable. Stop requests come from the
//! console (`SetConsoleCtrlHandler`: Ctrl-C, Ctrl-Break, the console closing).

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;

use super::pipe::{Listener, Stream};
use super::watch::Inner;
use crate::sys::ReactorEvent;

/// An event queue fed by the pipes' threads.
#[derive(Debug)]
pub(crate) struct Reactor {
    inner: Arc<Inner>,
}

static STOP_WATCHERS: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

unsafe extern "system" fn on_console_control(_kind: u32) -> windows_sys::core::BOOL {
    let mut watchers = STOP_WATCHERS.lock().unwrap_or_else(|p| p.into_inner());
    watchers.retain(|w| w.strong_count() > 0);
    if watchers.is_empty() {
        // Nobody serves: let the default handler end the process.
        return 0;
    }
    for w in watchers.iter() {
        if let Some(r) = w.upgrade() {
            r.push(ReactorEvent::StopSignal);
        }
    }
    1
}

impl Reactor {
    pub(crate) fn new() -> std::io::Result<Reactor> {
        Ok(Reactor {
            inner: Arc::new(Inner {
                events: Mutex::new(Vec::new()),
                ready: Condvar::new(),
            }),
        })
    }

    /// Reports [`ReactorEvent::StopSignal`] on Ctrl-C, Ctrl-Break or the console closing,
    /// until the reactor is dropped; meanwhile those no longer end the process.
    pub(crate) fn watch_stop_signals(&self) -> std::io::Result<()> {
        use std::sync::Once;
        static INSTALLED: Once = Once::new();
        let mut result = Ok(());
        INSTALLED.call_once(|| {
            // SAFETY: installs a handler that only locks a mutex and pushes to queues; it
            // runs on a thread the system starts, which Rust code may run on.
            if unsafe { SetConsoleCtrlHandler(Some(on_console_control), 1) } == 0 {
                result = Err(super::last_error());
            }
        });
        result?;
        let mut watchers = STOP_WATCHERS.lock().unwrap_or_else(|p| p.into_inner());
        if !watchers
            .iter()
            .any(|w| w.as_ptr() == Arc::as_ptr(&self.inner))
        {
            watchers.push(Arc::downgrade(&self.inner));
        }
        Ok(())
    }

    /// Reports [`ReactorEvent::Accept`] while `listener` has connections to take.
    pub(crate) fn watch_listener(&self, listener: &Listener) -> std::io::Result<()> {
        listener.watch(Arc::downgrade(&self.inner));
        Ok(())
    }

    /// Reports [`ReactorEvent::Hangup`]`(token)` when the peer of `stream` closes, and
    /// [`ReactorEvent::Message`]`(token)` once per message that arrives.
    pub(crate) fn watch_peer(&self, stream: &Stream, token: u64) -> std::io::Result<()> {
        stream.watch(Arc::downgrade(&self.inner), token);
        Ok(())
    }

    /// Wakes a thread blocked in [`Reactor::wait`].
    pub(crate) fn wake(&self) {
        self.inner.push(ReactorEvent::Wake);
    }

    /// Waits for events (up to `timeout`, forever if `None`) and appends them to `out`.
    pub(crate) fn wait(
        &self,
        out: &mut Vec<ReactorEvent>,
        timeout: Option<Duration>,
    ) -> std::io::Result<()> {
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.is_empty() {
            events = match timeout {
                None => self
                    .inner
                    .ready
                    .wait_while(events, |e| e.is_empty())
                    .unwrap_or_else(|p| p.into_inner()),
                Some(t) => {
                    self.inner
                        .ready
                        .wait_timeout_while(events, t, |e| e.is_empty())
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        out.append(&mut events);
        Ok(())
    }
}
