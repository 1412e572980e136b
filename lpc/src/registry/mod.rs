//! Naming: where a service's socket lives.
//!
//! A service named `calc` listens on `<runtime dir>/calc.sock`. The runtime directory is
//! `$LPC_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/lpc`, else `/tmp/lpc-<uid>`; it is created with
//! mode 0700, so only the user's own processes can reach the services in it. Since another
//! user could have created it first (in `/tmp`, say), a service refuses a directory that is
//! not its user's or that others can write to, and a client connects only to a service of the
//! user it expects (its own by default): the kernel tells who accepted the connection.
//!
//! A crashed service leaves its socket file behind; nothing answers on it, and the next
//! `Server::bind` of that name replaces it. Binding holds an exclusive lock on the directory
//! while it decides, so two services starting at once cannot both take a name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{CallPhase, Error, Result};
use crate::sys::{current_user, DirLock, PeerCredentials, SharedMemory, Stream, UserId};
use crate::wire::handshake::{Message, Refusal, RefusalKind, MAX_MESSAGE};
use crate::wire::info::ServiceInfo;

/// Longest service name.
pub const MAX_NAME_LEN: usize = 64;
const SOCKET_SUFFIX: &str = ".sock";

/// The default runtime directory (see the module docs). Not created by this call.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LPC_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("lpc");
    }
    #[cfg(windows)]
    if let Some(dir) = std::env::var_os("LOCALAPPDATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("lpc");
    }
    #[cfg(unix)]
    return PathBuf::from(format!("/tmp/lpc-{}", crate::sys::current_user()));
    #[cfg(not(unix))]
    std::env::temp_dir().join(format!("lpc-{}", crate::sys::current_user()))
}

/// Checks that `name` can name a service: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot. Fails with [`Error::InvalidName`], saying what is wrong.
pub fn validate_name(name: &str) -> Result<()> {
    let wrong = if name.is_empty() {
        "it is empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!("it is {} bytes long", name.len())
    } else if name.starts_with('.') {
        "it starts with a dot".to_owned()
    } else if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("it contains {c:?}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason: format!(
            "{wrong}; a service name is 1 to {MAX_NAME_LEN} of the characters A-Z a-z 0-9 . _ - \
             and does not start with a dot"
        ),
    })
}

/// The socket path of service `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{SOCKET_SUFFIX}"))
}

/// Creates the runtime directory `dir` private to this user (mode 0700), or checks an
/// existing one: a symlink, another user's directory, one that others can write to, or one
/// whose parent others could change is refused, with an error that says what to do. The mode
/// of a directory lpc did not create is never changed.
pub fn ensure_runtime_dir(dir: &Path) -> Result<()> {
    crate::sys::create_private_dir(dir).map_err(|e| {
        Error::io(
            "",
            format!("cannot use runtime directory {}", dir.display()),
            e,
        )
    })
}

/// Connects to service `name` at `path` within `timeout` and checks who serves it: the
/// process that accepted must run as `service_user` (the kernel says so, `SO_PEERCRED`), or
/// this is `Denied` naming both users, before a byte is sent — a socket or runtime directory
/// that another user planted never yields a connection to an impostor. Other errors are the
/// ones a user can act on: `NotFound` (nobody listens), `Denied` (no permission on the
/// socket), `Timeout` (the accept queue stayed full), else `Io`. Used by clients and by
/// queries alike; returns the service's credentials with the stream.
pub(crate) fn connect(
    name: &str,
    path: &Path,
    timeout: Duration,
    service_user: &UserId,
) -> Result<(Stream, PeerCredentials)> {
    let stream = connect_socket(name, path, timeout)?;
    let service = stream.peer_credentials().map_err(|e| {
        Error::io(
            name,
            format!("asking the kernel who serves {}", path.display()),
            e,
        )
    })?;
    if service.user() != service_user {
        let whose = if *service_user == current_user() {
            "this client's own user"
        } else {
            "the user this client expects"
        };
        return Err(Error::Denied {
            service: name.to_owned(),
            reason: format!(
                "{} is served by a process of user {}, not of user {service_user} ({whose}), so \
                 this client did not connect: another user may have taken the name (a planted \
                 runtime directory or socket). If the service runs as user {} by design, name \
                 that user: ClientOptions::service_user",
                path.display(),
                service.user(),
                service.user(),
            ),
        });
    }
    Ok((stream, service))
}

fn connect_socket(name: &str, path: &Path, timeout: Duration) -> Result<Stream> {
    use std::io::ErrorKind;
    Stream::connect(path, Instant::now() + timeout).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => Error::NotFound {
            service: name.to_owned(),
            path: path.to_owned(),
        },
        ErrorKind::TimedOut => Error::Timeout {
            service: name.to_owned(),
            method: None,
            after: timeout,
            phase: CallPhase::Connecting,
        },
        ErrorKind::PermissionDenied => Error::Denied {
            service: name.to_owned(),
            reason: format!(
                "no permission to connect to {}: the service does not admit other users",
                path.display()
            ),
        },
        _ => Error::io(name, format!("connecting to {}", path.display()), e),
    })
}

/// The first exchange on a new connection: sends `message` (a hello or a query) and
/// receives the service's answer by `deadline` (`timeout` is what the caller allowed, for the
/// error), with the shared memory attached to it. A refusal, a lost connection, a malformed
/// answer or one of another protocol version each become the error a user can act on.
pub(crate) fn exchange(
    name: &str,
    stream: &Stream,
    message: &Message,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Message, Option<SharedMemory>)> {
    // The service dying during the handshake is a lost connection, like any other.
    let disconnected = || Error::Disconnected {
        service: name.to_owned(),
        method: None,
        phase: CallPhase::Connecting,
        reconnect: false,
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let sent = stream.send(&message.encode(), None);
    match sent {
        Err(e) if !crate::sys::is_hangup(&e) => {
            return Err(Error::io(name, "sending the handshake", e))
        }
        _ => {}
    }
    let mut received = stream.recv(&mut buf, Some(deadline));
    if matches!(&received, Err(e) if crate::sys::is_hangup(e)) {
        // A service that refuses a connection at accept (an unadmitted user, one over its
        // limits) sends its refusal and closes at once, maybe before our message arrived: the
        // kernel then reports the reset first and still holds the refusal for the next read.
        received = stream.recv(&mut buf, Some(deadline));
    }
    let (n, shm) = match received {
        Ok((0, _)) => return Err(disconnected()),
        Ok(received) => received,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(Error::Timeout {
                service: name.to_owned(),
                method: None,
                after: timeout,
                phase: CallPhase::Connecting,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::protocol(
                name,
                None,
                format!("bad handshake answer: {e}"),
            ))
        }
        Err(e) if crate::sys::is_hangup(&e) => return Err(disconnected()),
        Err(e) => return Err(Error::io(name, "receiving the handshake answer", e)),
    };
    match Message::decode(&buf[..n]) {
        Ok(Message::Refused(refusal)) => Err(refused(name, refusal)),
        // An answer to a message that never reached the service cannot be right.
        Ok(_) if sent.is_err() => Err(disconnected()),
        Ok(answer) => Ok((answer, shm)),
        Err(e) => Err(Error::protocol(
            name,
            None,
            format!("bad handshake answer: {e}"),
        )),
    }
}

/// The error for a service's refusal.
fn refused(service: &str, refusal: Refusal) -> Error {
    let service = service.to_owned();
    let reason = refusal.reason;
    match refusal.kind {
        RefusalKind::Denied => Error::Denied { service, reason },
        RefusalKind::Busy => Error::Busy {
            service,
            method: None,
            reason,
        },
        RefusalKind::Protocol => Error::Protocol {
            service,
            method: None,
            detail: reason,
        },
    }
}

/// Asks the service listening at `path` who it is and how it is doing, if it runs as
/// `service_user` (else `Denied`, see [`crate::ClientOptions::service_user`]). The service
/// answers from its connection thread without setting up shared memory, showing only what
/// this user may see (its owner sees every client; another user only its own connections).
/// The pid and user in the answer are the kernel's, not the service's own claim: its pid as
/// this process's PID namespace numbers it (`None` if the service runs in a namespace this
/// process cannot see).
pub fn query_at(
    name: &str,
    path: &Path,
    timeout: Duration,
    service_user: &UserId,
) -> Result<ServiceInfo> {
    let deadline = Instant::now() + timeout;
    let (stream, service) = connect(name, path, timeout, service_user)?;
    match exchange(name, &stream, &Message::Query, deadline, timeout)? {
        (Message::Info(mut info), None) => {
            info.pid = service.pid();
            info.user = service.user().to_string();
            Ok(*info)
        }
        (Message::Info(_), Some(_)) => Err(Error::protocol(
            name,
            None,
            "the answer to a query carried shared memory",
        )),
        (other, _) => Err(Error::protocol(
            name,
            None,
            format!("expected service information, got {other:?}"),
        )),
    }
}

/// A socket found in a runtime directory.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The service name (the socket's file name without `.sock`).
    pub name: String,
    /// The socket path.
    pub path: PathBuf,
    /// What answered there.
    pub state: ListingState,
}

/// What answered on a listed socket.
#[derive(Debug, Clone)]
pub enum ListingState {
    /// A live service.
    Live(Box<ServiceInfo>),
    /// Nobody: the socket of a service that died. `prune` removes it; the next `bind` of the
    /// name replaces it.
    Stale,
    /// Something is there but did not answer properly (busy, another program, another
    /// version): the error says what happened.
    Unresponsive(String),
}

/// The services of runtime directory `dir`, sorted by name, each asked who it is (waiting at
/// most `timeout` per service). A missing directory lists nothing. A socket served by another
/// user than this process's is listed as unresponsive, with the `Denied` error that names
/// both users (see [`list_served_by`]).
pub fn list(dir: &Path, timeout: Duration) -> Result<Vec<Listing>> {
    list_served_by(dir, timeout, &current_user())
}

/// [`list`] for the services of user `service_user` (a system service's user, say): a socket
/// served by any other user is listed as unresponsive, with the `Denied` error that names
/// both.
pub fn list_served_by(
    dir: &Path,
    timeout: Duration,
    service_user: &UserId,
) -> Result<Vec<Listing>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                "",
                format!("reading runtime directory {}", dir.display()),
                e,
            ))
        }
    };
    let mut listings: Vec<Listing> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(SOCKET_SUFFIX)?
                .to_owned();
            validate_name(&name).ok()?;
            Some((name, path))
        })
        .map(|(name, path)| {
            let state = match query_at(&name, &path, timeout, service_user) {
                Ok(info) => ListingState::Live(Box::new(info)),
                Err(Error::NotFound { .. }) => ListingState::Stale,
                Err(e) => ListingState::Unresponsive(e.to_string()),
            };
            Listing { name, path, state }
        })
        .collect();
    listings.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listings)
}

/// Removes the sockets of dead services from `dir`; returns their names. Holds the
/// directory's bind lock, so a service binding at the same moment is never removed.
pub fn prune(dir: &Path) -> Result<Vec<String>> {
    let _lock = match DirLock::acquire(dir) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("", format!("locking {}", dir.display()), e)),
    };
    let mut removed = Vec::new();
    for listing in list(dir, Duration::from_millis(500))? {
        if let ListingState::Stale = listing.state {
            std::fs::remove_file(&listing.path).map_err(|e| {
                Error::io(
                    &listing.name,
                    format!("removing {}", listing.path.display()),
                    e,
                )
            })?;
            removed.push(listing.name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("calc").is_ok());
        assert!(validate_name("my-svc_2.v1").is_ok());
        for (bad, why) in [
            ("", "it is empty"),
            (".hidden", "it starts with a dot"),
            ("a/b", "it contains '/'"),
            ("a b", "it contains ' '"),
            ("ü", "it contains 'ü'"),
            (&"x".repeat(65), "it is 65 bytes long"),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidName { name, reason } if name == bad && reason.starts_with(why)),
                "{err:?}"
            );
            assert_eq!(err.service(), bad);
            let text = err.to_string();
            assert!(text.starts_with("invalid service name"), "{text}");
            assert!(text.contains("A-Z a-z 0-9 . _ -"), "{text}");
        }
    }
}
