//! One-way calls from the client: [`Client::post`] (what generated `#[lpc(oneway)]` methods
//! call) and [`Client::post_json`]. A post encodes the arguments, writes them into the
//! connection's one-way queue (`channel::queue`) and returns: it does not wait for the handler,
//! and learns nothing of how it went. It uses no call slot, so the small call pays nothing for
//! it.

use std::cell::RefCell;
use std::time::Duration;

use serde::Serialize;

use super::{Client, Connection};
use crate::channel::queue::PostError;
use crate::error::{CallPhase, Error, Result};
use crate::wire::codec;
use crate::wire::interface::MethodDescriptor;

/// Bytes of arguments a post encodes on its stack before it falls back to `POST_BUFFER`.
const SMALL_POST: usize = 128;

thread_local! {
    /// Per-thread buffer the arguments of a post are encoded into before they are copied into
    /// the queue (a message is at most half the queue, so it stays small).
    static POST_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Client {
    /// Posts `method` (a one-way method) with `args` (a tuple of the arguments): returns as
    /// soon as the message is in the connection's one-way queue in shared memory; the service
    /// runs the handler later, after the messages this client posted before it and before any
    /// call this client makes after it. This is what generated `#[lpc(oneway)]` methods call.
    ///
    /// When the queue is full the post waits for room, up to the call timeout (then
    /// [`Error::Timeout`]) or the bound of [`crate::ClientOptions::queue_for_post`] (then
    /// [`Error::Busy`]), or fails with `Busy` at once with
    /// [`crate::ClientOptions::busy_when_queue_full`]. Encoded arguments larger than half the
    /// queue ([`crate::ServerOptions::oneway_queue`]) are refused with [`Error::TooLarge`].
    /// A handler's failure or panic is never reported to the caller (the service counts and
    /// logs it).
    pub fn post<A>(&self, method: &'static MethodDescriptor, args: &A) -> Result<()>
    where
        A: Serialize + ?Sized,
    {
        let cannot_encode = |why: String| {
            Error::protocol(
                self.service_name(),
                Some(method.name),
                format!("cannot encode the arguments: {why}"),
            )
        };
        // Small arguments (most posts) are encoded on the stack: no thread-local, no `Vec`.
        let mut small = codec::ArrayBuffer::<SMALL_POST>::new();
        match codec::encode_into(args, &mut small) {
            Ok(()) => return self.post_bytes(method.id, method.name, false, small.as_slice()),
            Err(_) if small.overflowed() => {}
            Err(why) => return Err(cannot_encode(why)),
        }
        let encode = |buf: &mut Vec<u8>| {
            buf.clear();
            codec::encode_into(args, buf).map_err(cannot_encode)?;
            self.post_bytes(method.id, method.name, false, buf)
        };
        POST_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                let result = encode(&mut buf);
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                result
            }
            // A post made while encoding another (re-entrant serde code): a fresh buffer.
            Err(_) => encode(&mut Vec::new()),
        })
    }

    /// Posts one-way method `method` by name with JSON arguments (an array in parameter
    /// order, or an object by parameter name), decoded by the service: what `lpc call
    /// --oneway` uses. Fails with [`Error::BadArguments`] if the service's method of that name
    /// is not one-way (call it with [`Client::call_json`]).
    pub fn post_json(&self, method: &str, args: &serde_json::Value) -> Result<()> {
        let info = self
            .interface()
            .method(method)
            .ok_or_else(|| Error::NoSuchMethod {
                service: self.service_name().to_owned(),
                method: method.to_owned(),
            })?;
        if !info.oneway {
            return Err(Error::BadArguments {
                service: self.service_name().to_owned(),
                method: method.to_owned(),
                message: "it is a two-way method: call it, do not post it".into(),
            });
        }
        let id = info.id;
        let request = serde_json::to_vec(args).map_err(|e| {
            Error::protocol(
                self.service_name(),
                Some(method),
                format!("cannot encode the arguments: {e}"),
            )
        })?;
        self.post_bytes(id, method, true, &request)
    }

    fn post_bytes(&self, id: u32, method: &str, json: bool, payload: &[u8]) -> Result<()> {
        let conn = self.live(method)?;
        if !conn.unavailable.is_empty() {
            conn.check_available(id, method)?;
        }
        if conn.channel.max_post().is_none() {
            return Err(Error::protocol(
                &conn.service,
                Some(method),
                "the service gave this connection no one-way queue (its interface has no \
                 one-way method)",
            ));
        }
        // `None`: Busy at once; `Some(limit)`: wait up to `limit` (`None`: while the service
        // lives). The call timeout bounds it; the clock is read only if the post must wait.
        let wait = match self.post_wait {
            Some(wait) if wait.is_zero() => None,
            Some(wait) => Some(Some(self.call_timeout.map_or(wait, |t| t.min(wait)))),
            None => Some(self.call_timeout),
        };
        let by_timeout = match (self.call_timeout, self.post_wait) {
            (Some(t), Some(w)) => t <= w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match conn.channel.post(&conn.sender, id, json, payload, wait) {
            Ok(()) => Ok(()),
            Err(PostError::Full { size }) => Err(self.queue_full(&conn, method, size, None)),
            Err(PostError::TimedOut) if by_timeout => {
                Err(self.timeout(&conn, method, CallPhase::NotSent))
            }
            Err(PostError::TimedOut) => {
                let size = conn.channel.max_post().map_or(0, |m| (m + 8) * 2);
                Err(self.queue_full(&conn, method, size, self.post_wait))
            }
            Err(PostError::Channel(e)) => Err(conn.fail(e, method, CallPhase::NotSent)),
        }
    }

    fn queue_full(
        &self,
        conn: &Connection,
        method: &str,
        size: usize,
        waited: Option<Duration>,
    ) -> Error {
        let reason = match waited {
            None => format!(
                "the one-way queue of this connection ({size} bytes, ServerOptions::oneway_queue) \
                 is full: the service handles messages more slowly than they are posted; retry, \
                 or let posts wait for room (the default, or ClientOptions::queue_for_post)"
            ),
            Some(waited) => format!(
                "the one-way queue of this connection ({size} bytes, ServerOptions::oneway_queue) \
                 stayed full for {waited:?}, the wait ClientOptions::queue_for_post allows"
            ),
        };
        Error::Busy {
            service: conn.service.clone(),
            method: Some(method.to_owned()),
            reason,
        }
    }
}
