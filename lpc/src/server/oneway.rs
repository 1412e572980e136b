//! The service's side of a connection's one-way queue (`channel::queue`): who runs the
//! handlers of `#[lpc(oneway)]` methods, and when.
//!
//! * **The connection's own thread** (slot 0's) handles them between calls, the way a window's
//!   thread handles its posted messages: when it finds no call in slot 0 it takes up to
//!   [`BATCH`] messages, then looks for a call again; it spins and sleeps watching the queue's
//!   tail beside slot 0 (the client rings the doorbell only if it sleeps).
//! * **In order.** Messages are handled one at a time, under one lock per connection, in the
//!   order the client wrote them.
//! * **Before a later call.** Every thread that takes a call first checks that the messages
//!   written before it are handled ([`Oneway::behind`]: one load of the tail, compared with
//!   the head after the last message handled); if not, it handles them itself (or waits for the
//!   thread that is), so a call a client thread makes after its posts sees them applied, on any
//!   slot. A service without one-way methods gives its connections no queue and its threads
//!   never look.
//! * **When the client leaves** the messages it wrote are still handled: the connection's
//!   thread drains the queue before the connection ends (not after a protocol violation).
//!
//! A handler's panic or a message that does not decode is counted as a failed call of its
//! method in the statistics and logged (`tracing::warn!`); the client is not told, since it
//! does not wait for an answer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Instant;

use super::context::CallScope;
use super::dispatch::{EncodedArgs, EncodedReply};
use super::stats::ConnectionStats;
use super::Shared;
use crate::channel::queue::{Posted, Receiver};
use crate::channel::{Channel, ChannelError, Payload};
use crate::sys::PeerCredentials;
use crate::wire::interface::MethodDescriptor;

/// Messages the connection's thread handles before it looks for a call again.
pub(super) const BATCH: usize = 256;

/// One connection's consumer of its one-way queue.
pub(super) struct Oneway {
    state: Mutex<Consumer>,
    /// The head after the last message handled (for [`Oneway::behind`], without the lock).
    handled: AtomicU32,
}

struct Consumer {
    receiver: Receiver,
    args: Vec<u8>,
    reply: Vec<u8>,
    /// The counters of the one-way messages (written under the lock only).
    stats: Arc<ConnectionStats>,
    /// The last message's method (looked up again only when the method changes).
    last_method: LastMethod,
}

/// A message's method as the consumer looked it up.
struct LastMethod {
    id: u32,
    /// Its index in the statistics.
    stats_index: Option<usize>,
    descriptor: Option<&'static MethodDescriptor>,
}

impl Oneway {
    pub(super) fn new(stats: Arc<ConnectionStats>) -> Oneway {
        Oneway {
            state: Mutex::new(Consumer {
                receiver: Receiver::default(),
                args: Vec::new(),
                reply: Vec::new(),
                stats,
                last_method: LastMethod {
                    id: u32::MAX,
                    stats_index: None,
                    descriptor: None,
                },
            }),
            handled: AtomicU32::new(0),
        }
    }

    /// Whether the client wrote messages that are not handled yet.
    #[inline]
    pub(super) fn behind(&self, channel: &Channel) -> bool {
        channel.queue_tail() != Some(self.handled.load(Ordering::Acquire))
    }

    /// Handles up to `max` of the messages written so far (the tail read once the lock is
    /// held). With `wait`, waits for the lock (a call must not overtake the messages written
    /// before it); without, returns at once if another thread is handling them.
    pub(super) fn handle(
        &self,
        shared: &Shared,
        channel: &Channel,
        peer: Option<&PeerCredentials>,
        max: usize,
        wait: bool,
    ) -> Result<(), ChannelError> {
        let mut consumer = match self.state.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) if !wait => return Ok(()),
            Err(TryLockError::WouldBlock) => self.state.lock().unwrap_or_else(|p| p.into_inner()),
            // A panic never unwinds through the lock (handlers run under catch_unwind).
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let Some(until) = channel.queue_tail() else {
            return Ok(());
        };
        let Consumer {
            receiver,
            args,
            reply,
            stats,
            last_method,
        } = &mut *consumer;
        for _ in 0..max {
            let Some(posted) = receiver.next(channel, until, args)? else {
                break;
            };
            if last_method.id != posted.method {
                *last_method = LastMethod {
                    id: posted.method,
                    stats_index: shared.method_index(posted.method),
                    descriptor: shared.interface.method(posted.method),
                };
            }
            let started = stats.sample_next().then(Instant::now);
            let failed = run(shared, peer, posted, last_method.descriptor, args, reply);
            stats.record(
                last_method.stats_index,
                failed,
                started.map(|s| s.elapsed()),
            );
            self.handled.store(receiver.position(), Ordering::Release);
            if args.capacity() > 1 << 20 {
                *args = Vec::new();
            }
            if reply.capacity() > 1 << 20 {
                *reply = Vec::new();
            }
        }
        receiver.wake_senders(channel);
        Ok(())
    }
}

/// Runs one message's handler; returns whether it failed (logged here).
fn run(
    shared: &Shared,
    peer: Option<&PeerCredentials>,
    posted: Posted,
    method: Option<&'static MethodDescriptor>,
    args: &[u8],
    reply: &mut Vec<u8>,
) -> bool {
    let service = shared.server.name.as_str();
    // Formatted only for a warning: not on every message's path (it allocated each time).
    let pid = || {
        peer.and_then(PeerCredentials::pid)
            .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
    };
    let name = method.map_or("(unknown)", |m| m.name);
    match method {
        Some(m) if m.oneway => {}
        Some(_) => {
            tracing::warn!(service, pid = %pid(), method = name, "a one-way message names a two-way method: not run");
            return true;
        }
        None => {
            tracing::warn!(service, pid = %pid(), id = posted.method, "a one-way message names no method of the interface");
            return true;
        }
    }
    reply.clear();
    let _call = CallScope::enter_oneway();
    let dispatcher = &shared.dispatcher;
    let result = catch_unwind(AssertUnwindSafe(|| {
        if posted.json {
            dispatcher.dispatch_json(posted.method, args, reply)
        } else {
            let args = EncodedArgs(Payload::local(args, shared.server.options.max_payload));
            dispatcher.dispatch(posted.method, args, &mut EncodedReply::to_vec(reply))
        }
    }));
    match result {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            tracing::warn!(service, pid = %pid(), method = name, error = ?e, "a one-way message failed (its sender is not told)");
            true
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".to_owned());
            tracing::warn!(service, pid = %pid(), method = name, %message, "a one-way handler panicked (its sender is not told)");
            true
        }
    }
}
