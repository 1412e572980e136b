//! The call-slot state machine.
//!
//! ```text
//!            client writes request         service takes it
//!   FREE ─────────────────────────> REQUEST ───────────────> SERVING
//!    ^  <──────── client cancels ──────┘ ^                     │  │
//!    │            (timeout, never taken) │      service replies │  │ client gives up
//!    │                                   │                     v  v
//!    │        client writes its next request on the slot ─ REPLY  ABANDONED
//!    └──────────── service finishes an abandoned call ─────────────┘
//!
//!   FREE or REPLY ── client writes a request without deadline ──> REQUEST_FIXED
//!   REQUEST_FIXED ── service replies (marks the slot's taken word first) ──> REPLY
//! ```
//!
//! A slot whose reply the client has read stays in REPLY (the client owns it, as in FREE):
//! going back to FREE would cost a cache-line transfer per call (see `protocol`).
//!
//! A call without a deadline is published as REQUEST_FIXED and skips SERVING: its client never
//! cancels, so the service takes it without a compare-and-swap (REQUEST_FIXED ──> REPLY when
//! the reply is out) and records it on the slot's taken word instead, which tells the client,
//! if the service dies, that the call may have run. The state line then changes hands once each
//! way per call, as in the raw ping-pong floor. The kind of request is in the state word itself,
//! not in the frame, so that the service decides how to take a call from the one word it loads
//! with acquire ordering, and reads the frame only once the client can no longer change it.
//! (Deciding from the frame, read first, raced a client that withdrew a call at its deadline
//! and at once reused the slot for a call without one: the loom model of `channel/model.rs`
//! found it.)
//!
//! Each side only makes the transitions it owns, with compare-and-swap where the other side
//! may race it. The service never trusts the state it reads: anything but REQUEST or REQUEST_FIXED
//! when it looks for work is ignored, and a failed SERVING → REPLY swap that does not find ABANDONED is a
//! protocol violation that closes the connection.

use crate::error::CallPhase;

/// The client owns the slot (fresh, or its last call withdrawn or abandoned).
pub(crate) const FREE: u32 = 0;
/// A request is written; the service may take it.
pub(crate) const REQUEST: u32 = 1;
/// The service has taken the request and is running it.
pub(crate) const SERVING: u32 = 2;
/// The reply is written; the client may read it.
pub(crate) const REPLY: u32 = 3;
/// The client gave up while the service was running the call; the service frees the slot
/// when it finishes instead of replying.
pub(crate) const ABANDONED: u32 = 4;

/// A request without deadline is written; the client will not withdraw it, and the service
/// takes it without changing the state.
pub(crate) const REQUEST_FIXED: u32 = 5;

/// Whether `state` holds a request for the service to take.
#[inline]
pub(crate) fn is_request(state: u32) -> bool {
    state == REQUEST || state == REQUEST_FIXED
}

/// Where a call stood, from the state word the client last saw.
pub(crate) fn phase_of(state: u32) -> CallPhase {
    match state {
        REQUEST | REQUEST_FIXED => CallPhase::NotTaken,
        SERVING | ABANDONED => CallPhase::Executing,
        REPLY => CallPhase::ReplyLost,
        _ => CallPhase::NotSent,
    }
}
