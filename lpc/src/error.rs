//! The one error type of lpc.
//!
//! Every variant names the service and, where a call was involved, the method, so that a
//! message read in a log says what failed without more context.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Where a call stood when its connection was lost or its deadline passed.
///
/// Read from the call slot's state in shared memory at the moment the client noticed the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// The client was connecting (the connection or its handshake did not complete): no call
    /// was made. `Timeout` and `Disconnected` of `Client::connect` and `lpc::query` have it.
    Connecting,
    /// No call was in progress (the connection was already gone when the call started, or
    /// the call gave up waiting for a free call slot).
    NotSent,
    /// The request was written but the service never took it: it did not run.
    NotTaken,
    /// The service had taken the request: the handler may have run, fully or in part.
    Executing,
    /// The service had written the reply, but it could not be read.
    ReplyLost,
}

impl fmt::Display for CallPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallPhase::Connecting => {
                "while connecting (the connection or its handshake did not complete; no call was \
                 made)"
            }
            CallPhase::NotSent => "the call was not sent",
            CallPhase::NotTaken => "the request was never taken by the service (it did not run)",
            CallPhase::Executing => "the service was executing the call (it may have run)",
            CallPhase::ReplyLost => "the call had completed but its reply was lost",
        })
    }
}

/// Formats an optional method name as ` method `x`` for messages.
struct In<'a>(&'a Option<String>);

impl fmt::Display for In<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, " in method `{m}`"),
            None => Ok(()),
        }
    }
}

/// Where a phase goes in a `Timeout` message: "timed out after 1s while connecting (…)",
/// but "timed out after 1s (the request was never taken …)".
struct TimeoutPhase<'a>(&'a CallPhase);

impl fmt::Display for TimeoutPhase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            CallPhase::Connecting => write!(f, " {}", self.0),
            phase => write!(f, " ({phase})"),
        }
    }
}

/// The end of a `Disconnected` message: where the call stood, and what the next call does.
struct Lost<'a> {
    phase: &'a CallPhase,
    reconnect: bool,
}

impl fmt::Display for Lost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            // No client exists yet: nothing to say about its next call.
            CallPhase::Connecting => write!(f, " {}", self.phase),
            phase if self.reconnect => write!(f, ": {phase}; the next call connects again"),
            phase => write!(
                f,
                ": {phase}; later calls on this client fail too (create the client with \
                 `ClientOptions::reconnect(true)` to connect again on the next call)"
            ),
        }
    }
}

/// An lpc failure. Application errors (a handler returning `Err(e)` from a method declared
/// `-> Result<T, E>`) are not lpc errors: they arrive as the inner `Err` of
/// `Result<Result<T, E>, lpc::Error>`.
///
/// Its `Debug` form is its message followed by the variant's name (see the `Debug` impl), so
/// that `fn main() -> Result<(), lpc::Error>` prints something a user can act on.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live service has this name.
    #[error("service `{service}` not found: no live service is listening at {}", path.display())]
    NotFound {
        /// The service name.
        service: String,
        /// The socket path that was tried.
        path: PathBuf,
    },

    /// The connection to the service is gone (the service exited, crashed or shut down).
    #[error(
        "service `{service}` disconnected{}{}",
        In(method),
        Lost { phase, reconnect: *reconnect }
    )]
    Disconnected {
        /// The service name.
        service: String,
        /// The method being called, if any; `None` while connecting.
        method: Option<String>,
        /// Where the call stood ([`CallPhase::Connecting`] while connecting).
        phase: CallPhase,
        /// Whether the client connects again on its next call (it was created with
        /// `ClientOptions::reconnect(true)`); without it, every later call fails too, and the
        /// message says how to get it.
        reconnect: bool,
    },

    /// A deadline passed: connecting (phase [`CallPhase::Connecting`]), waiting for a free
    /// call slot (`NotSent`), or waiting for a call's reply.
    #[error(
        "service `{service}`{}: timed out after {after:?}{}",
        In(method),
        TimeoutPhase(phase)
    )]
    Timeout {
        /// The service name.
        service: String,
        /// The method being called; `None` while connecting.
        method: Option<String>,
        /// The deadline that passed.
        after: Duration,
        /// Where the call stood.
        phase: CallPhase,
    },

    /// Client and service were built from different versions of the interface.
    #[error("service `{service}` has a different interface than this client expects: {detail}")]
    InterfaceMismatch {
        /// The service name.
        service: String,
        /// What differs, method by method.
        detail: String,
    },

    /// The service does not know the method.
    #[error("service `{service}` has no method `{method}`")]
    NoSuchMethod {
        /// The service name.
        service: String,
        /// The method name (or id, if unknown).
        method: String,
    },

    /// A limit is reached: the service's connections or a user's connections (at connect), or
    /// this connection's call slots (at call, when the client does not wait for one: see
    /// `ClientOptions::queue_for_slot`). The reason names the limit. Nothing was sent; retry
    /// later.
    #[error("service `{service}`{} is busy: {reason}", In(method))]
    Busy {
        /// The service name.
        service: String,
        /// The method being called, if any.
        method: Option<String>,
        /// Which limit.
        reason: String,
    },

    /// The service refused this client.
    #[error("service `{service}` denied access: {reason}")]
    Denied {
        /// The service name.
        service: String,
        /// Why.
        reason: String,
    },

    /// The arguments do not fit the method's parameters (wrong number or types), or a loan
    /// among them cannot be read: the handler did not run. Only the arguments' decoding gives
    /// this (a request the service cannot read at all is [`Error::Protocol`]); only dynamic
    /// callers (JSON, `lpc call`) can get it for types, compiled stubs of the same interface
    /// cannot.
    #[error("service `{service}` cannot run method `{method}`: {message}")]
    BadArguments {
        /// The service name.
        service: String,
        /// The method name.
        method: String,
        /// Which argument is wrong, and how.
        message: String,
    },

    /// The handler failed inside the service: it panicked, or its result could not be encoded.
    #[error("service `{service}` failed in method `{method}`: {message}")]
    Remote {
        /// The service name.
        service: String,
        /// The method name.
        method: String,
        /// The panic message or failure reason.
        message: String,
    },

    /// A payload is larger than the limit of the side that would receive it.
    #[error(
        "service `{service}`{}: payload of {size} bytes exceeds the limit of {limit} bytes",
        In(method)
    )]
    TooLarge {
        /// The service name.
        service: String,
        /// The method being called.
        method: Option<String>,
        /// The payload size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// The interface's types cannot be described, so they cannot be checked across processes:
    /// a type's `Deserialize` refused lpc's tracer, or two types share a name. The message
    /// names the type and what to do.
    #[error("service `{service}`: the interface's types cannot be described: {detail}")]
    Shape {
        /// The service name.
        service: String,
        /// Which type, and why.
        detail: String,
    },

    /// The service name is already held by a live service.
    #[error("service name `{service}` is already taken by a live service at {}", path.display())]
    NameTaken {
        /// The service name.
        service: String,
        /// The socket path.
        path: PathBuf,
    },

    /// The protocol was broken: the service sent a malformed frame, handshake or shared
    /// memory state, or could not read this client's request frame.
    #[error("protocol error with service `{service}`{}: {detail}", In(method))]
    Protocol {
        /// The service name.
        service: String,
        /// The method being called, if any.
        method: Option<String>,
        /// What was wrong.
        detail: String,
    },

    /// The service name cannot be used: it is empty, too long, starts with a dot or has a
    /// character outside `A-Z a-z 0-9 . _ -`. Nothing was attempted.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it, and the rule.
        reason: String,
    },

    /// An option is out of its range (e.g. `ServerOptions::slots(0)`). Nothing was attempted.
    #[error("service `{service}`: invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The service name.
        service: String,
        /// The option, as its builder method (`ServerOptions::slots`).
        option: String,
        /// The value given and the range allowed.
        reason: String,
    },

    /// No process holds a shared value or segment of this name (`Shared::open_existing`,
    /// `Segment::open`, `lpc get`): it was never created, or every holder has exited.
    #[error("{what} `{name}` not found: no live process holds it ({})", path.display())]
    SharedNotFound {
        /// "shared value" or "segment".
        what: &'static str,
        /// Its name.
        name: String,
        /// Its name file in the runtime directory.
        path: PathBuf,
    },

    /// A shared value or segment cannot be opened or used as asked: its type differs (both
    /// shapes named), its size differs, a value does not fit, the memory is not what lpc
    /// made, a writer lock stayed held past its timeout, or an operating-system call failed.
    #[error("{what} `{name}`: {detail}")]
    Shared {
        /// "shared value" or "segment".
        what: &'static str,
        /// Its name.
        name: String,
        /// What is wrong, and what to do.
        detail: String,
    },

    /// An operating-system call failed.
    #[error("service `{service}`{}: {context}: {source}", In(method))]
    Io {
        /// The service name.
        service: String,
        /// The method being called, if any.
        method: Option<String>,
        /// What lpc was doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The service this error concerns.
    pub fn service(&self) -> &str {
        match self {
            Error::NotFound { service, .. }
            | Error::Disconnected { service, .. }
            | Error::Timeout { service, .. }
            | Error::InterfaceMismatch { service, .. }
            | Error::NoSuchMethod { service, .. }
            | Error::Denied { service, .. }
            | Error::Busy { service, .. }
            | Error::Remote { service, .. }
            | Error::BadArguments { service, .. }
            | Error::TooLarge { service, .. }
            | Error::NameTaken { service, .. }
            | Error::Shape { service, .. }
            | Error::Protocol { service, .. }
            | Error::InvalidOption { service, .. }
            | Error::Io { service, .. } => service,
            Error::InvalidName { name, .. }
            | Error::SharedNotFound { name, .. }
            | Error::Shared { name, .. } => name,
        }
    }

    /// The variant's name, for `Debug`.
    fn variant(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NotFound",
            Error::Disconnected { .. } => "Disconnected",
            Error::Timeout { .. } => "Timeout",
            Error::InterfaceMismatch { .. } => "InterfaceMismatch",
            Error::NoSuchMethod { .. } => "NoSuchMethod",
            Error::Busy { .. } => "Busy",
            Error::Denied { .. } => "Denied",
            Error::BadArguments { .. } => "BadArguments",
            Error::Remote { .. } => "Remote",
            Error::TooLarge { .. } => "TooLarge",
            Error::Shape { .. } => "Shape",
            Error::NameTaken { .. } => "NameTaken",
            Error::Protocol { .. } => "Protocol",
            Error::InvalidName { .. } => "InvalidName",
            Error::InvalidOption { .. } => "InvalidOption",
            Error::Io { .. } => "Io",
            Error::SharedNotFound { .. } => "SharedNotFound",
            Error::Shared { .. } => "Shared",
        }
    }

    /// The method this error concerns, if a call was involved.
    pub fn method(&self) -> Option<&str> {
        match self {
            Error::Disconnected { method, .. }
            | Error::Busy { method, .. }
            | Error::Timeout { method, .. }
            | Error::TooLarge { method, .. }
            | Error::Protocol { method, .. }
            | Error::Io { method, .. } => method.as_deref(),
            Error::NoSuchMethod { method, .. }
            | Error::Remote { method, .. }
            | Error::BadArguments { method, .. } => Some(method),
            _ => None,
        }
    }

    pub(crate) fn io(service: &str, context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            service: service.to_owned(),
            method: None,
            context: context.into(),
            source,
        }
    }

    pub(crate) fn protocol(
        service: &str,
        method: Option<&str>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Protocol {
            service: service.to_owned(),
            method: method.map(str::to_owned),
            detail: detail.into(),
        }
    }
}

/// The message, then the variant: `service `calc` not found: no live service is listening at
/// /run/user/1000/lpc/calc.sock (lpc::Error::NotFound)`.
///
/// Why not the derived form (`NotFound { service: "calc", path: "…" }`): a `main` that returns
/// `Result<(), lpc::Error>` — the README's pattern — prints its error with `Debug`, and so
/// does `unwrap`/`expect`; the message is what a user can act on, and it already carries every
/// field of the variant (service, method, phase, sizes, paths, the OS error). The variant's
/// name is kept for whoever matches on it. (anyhow's `Debug` makes the same choice.)
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} (lpc::Error::{})", self.variant())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn disconnected(phase: CallPhase, reconnect: bool) -> Error {
        Error::Disconnected {
            service: "calc".into(),
            method: (phase != CallPhase::Connecting).then(|| "add".into()),
            phase,
            reconnect,
        }
    }

    #[test]
    fn a_connect_timeout_says_it_was_connecting() {
        let err = Error::Timeout {
            service: "calc".into(),
            method: None,
            after: Duration::from_millis(200),
            phase: CallPhase::Connecting,
        };
        assert_eq!(
            err.to_string(),
            "service `calc`: timed out after 200ms while connecting (the connection or its \
             handshake did not complete; no call was made)"
        );
        let err = Error::Timeout {
            service: "calc".into(),
            method: Some("add".into()),
            after: Duration::from_millis(200),
            phase: CallPhase::NotTaken,
        };
        assert_eq!(
            err.to_string(),
            "service `calc` in method `add`: timed out after 200ms (the request was never \
             taken by the service (it did not run))"
        );
    }

    #[test]
    fn disconnected_says_what_the_next_call_does() {
        let fixed = disconnected(CallPhase::Executing, false).to_string();
        assert!(
            fixed.starts_with(
                "service `calc` disconnected in method `add`: the service was executing the \
                 call (it may have run); later calls on this client fail too"
            ),
            "{fixed}"
        );
        assert!(
            fixed.contains("`ClientOptions::reconnect(true)`"),
            "{fixed}"
        );
        let reconnecting = disconnected(CallPhase::NotTaken, true).to_string();
        assert!(
            reconnecting.ends_with("(it did not run); the next call connects again"),
            "{reconnecting}"
        );
        let connecting = disconnected(CallPhase::Connecting, false).to_string();
        assert_eq!(
            connecting,
            "service `calc` disconnected while connecting (the connection or its handshake \
             did not complete; no call was made)"
        );
    }

    #[test]
    fn debug_is_the_message_and_the_variant() {
        let err = Error::InvalidOption {
            service: "calc".into(),
            option: "ServerOptions::slots".into(),
            reason: "0 call slots; a connection has 1 to 64".into(),
        };
        assert_eq!(err.service(), "calc");
        assert_eq!(
            format!("{err:?}"),
            "service `calc`: invalid option `ServerOptions::slots`: 0 call slots; a connection \
             has 1 to 64 (lpc::Error::InvalidOption)"
        );
        // What `fn main() -> Result<(), lpc::Error>` prints after "Error: ".
        let err = Error::NotFound {
            service: "calc".into(),
            path: "/run/lpc/calc.sock".into(),
        };
        assert_eq!(
            format!("{err:?}"),
            "service `calc` not found: no live service is listening at /run/lpc/calc.sock \
             (lpc::Error::NotFound)"
        );
    }
}
