//! The one error type of lpc.
//!
//! Every variant names the service and, where a call was involved, the method, so that a
//! message read in a log says what failed without more context.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Where a call stood when its connection was lost.
///
/// Read from the call slot's state in shared memory at the moment the client noticed the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// No call was in progress (the connection was already gone when the call started).
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

/// An lpc failure. Application errors (a handler returning `Err(e)` from a method declared
/// `-> Result<T, E>`) are not lpc errors: they arrive as the inner `Err` of
/// `Result<Result<T, E>, lpc::Error>`.
#[derive(Debug, thiserror::Error)]
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
    #[error("service `{service}` disconnected{}: {phase}", In(method))]
    Disconnected {
        /// The service name.
        service: String,
        /// The method being called, if any.
        method: Option<String>,
        /// Where the call stood.
        phase: CallPhase,
    },

    /// A deadline passed: connecting, or waiting for a call's reply.
    #[error(
        "service `{service}`{}: timed out after {after:?} ({phase})",
        In(method)
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

    /// A limit is reached: the service's connections (at connect), or this connection's call
    /// slots (at call). Nothing was sent; retry later.
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

    /// The arguments do not fit the method's parameters (wrong number or types): the handler
    /// did not run. Only dynamic callers (JSON, `lpc call`) can get this; compiled stubs of
    /// the same interface cannot.
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

    /// The peer broke the protocol (malformed frame, handshake or shared memory state).
    #[error("protocol error with service `{service}`{}: {detail}", In(method))]
    Protocol {
        /// The service name.
        service: String,
        /// The method being called, if any.
        method: Option<String>,
        /// What was wrong.
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
            | Error::Io { service, .. } => service,
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

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
