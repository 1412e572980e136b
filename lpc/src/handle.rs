//! Files and descriptors in calls: `std::fs::File`, `OwnedFd`, `&File`, `&OwnedFd` and
//! `BorrowedFd` parameters, and `File`, `OwnedFd` (also inside `Result<_, E>`) results, passed
//! by the kernel (`SCM_RIGHTS` on the connection's socket, see `channel::handles`), never by
//! name. What `#[lpc::service]` generates sends them as [`SendHandle`] and receives them as
//! [`RecvFile`] / [`RecvFd`]; user code never names these.
//!
//! A received file or descriptor is whatever the peer sent: a file of any kind, a socket, a
//! pipe, opened for reading or writing or neither. The receiver must treat it as untrusted
//! input — check it (`File::metadata`, `fstat`) before relying on what it is — just as it
//! checks a path a peer names. lpc checks only that a descriptor arrived for each one named.

use crate::sys::{
    borrow_os_handle, AsOsHandle, BorrowedOsHandle as BorrowedFd, OwnedOsHandle as OwnedFd,
};
use std::fmt;
use std::fs::File;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::budget::{note_refusal, Refusal};
use crate::channel::{scope, ChannelError};
use crate::sys::Received;
use crate::wire::codec::note_custom_reason;
use crate::wire::shape::{FD_NAME, FILE_NAME};
use crate::wire::trace::tracing;

fn refuse<E: serde::ser::Error>(why: String) -> E {
    note_custom_reason(why.clone());
    E::custom(why)
}

fn refuse_de<E: serde::de::Error>(why: String) -> E {
    let error = E::custom(&why);
    note_custom_reason(why);
    error
}

/// A file or descriptor to send in a call: a duplicate of its descriptor crosses, and the
/// sender's stays open (it closes when the sender drops its `File`).
pub struct SendHandle<'a> {
    fd: BorrowedFd<'a>,
    name: &'static str,
}

impl<'a> SendHandle<'a> {
    /// A file (`File`, `&File` parameters and results).
    pub fn file(file: &'a File) -> SendHandle<'a> {
        SendHandle {
            fd: borrow_os_handle(file),
            name: FILE_NAME,
        }
    }

    /// A descriptor (`OwnedFd`, `&OwnedFd`, `BorrowedFd`).
    pub fn fd(fd: &'a impl AsOsHandle) -> SendHandle<'a> {
        SendHandle {
            fd: borrow_os_handle(fd),
            name: FD_NAME,
        }
    }
}

impl Serialize for SendHandle<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return Err(refuse(format!(
                "a {} is passed by the kernel, which a JSON call cannot carry",
                self.name
            )));
        }
        let id = match scope::current(|channel| channel.send_descriptor(self.fd)) {
            Some(Ok(id)) => id,
            Some(Err(e)) => return Err(refuse(format!("cannot send a {}: {e}", self.name))),
            None => {
                return Err(refuse(format!(
                    "a {} can only be sent as an argument or result of an lpc call",
                    self.name
                )))
            }
        };
        serializer.serialize_newtype_struct(self.name, &id)
    }
}

/// Takes the descriptor the current call names `id`, unchecked.
pub(crate) fn receive<E: serde::de::Error>(id: u32, what: &str) -> Result<OwnedFd, E> {
    receive_raw(id, what).map(Received::into_handle)
}

/// Takes what the current call names handle `id`, unchecked (the caller checks it).
pub(crate) fn receive_raw<E: serde::de::Error>(id: u32, what: &str) -> Result<Received, E> {
    match scope::current(|channel| channel.take_handle(id)) {
        Some(Ok(received)) => Ok(received),
        Some(Err(ChannelError::Busy(reason))) => {
            note_refusal(Refusal::Busy);
            Err(refuse_de(reason))
        }
        Some(Err(e)) => Err(refuse_de(format!("cannot receive {what} {id}: {e}"))),
        None => Err(refuse_de(format!(
            "{what} can only be received as an argument or result of an lpc call"
        ))),
    }
}

/// Reads a handle's id, in a binary call.
struct IdVisitor(&'static str);

impl<'de> serde::de::Visitor<'de> for IdVisitor {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an lpc handle ({})", self.0)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<u32, D::Error> {
        u32::deserialize(deserializer)
    }
}

/// The id of a handle `name` being decoded (`None` while tracing shapes), refusing a JSON
/// call.
pub(crate) fn handle_id<'de, D: Deserializer<'de>>(
    deserializer: D,
    name: &'static str,
) -> Result<Option<u32>, D::Error> {
    if deserializer.is_human_readable() {
        return Err(refuse_de(format!(
            "a {name} is passed by the kernel, which a JSON call cannot carry"
        )));
    }
    let id = deserializer.deserialize_newtype_struct(name, IdVisitor(name))?;
    Ok((!tracing()).then_some(id))
}

/// A file received in a call (see the module docs: untrusted).
pub struct RecvFile(Option<File>);

impl RecvFile {
    /// The file.
    pub fn into_inner(self) -> File {
        self.0
            .expect("a traced placeholder never reaches a handler or caller")
    }
}

impl<'de> Deserialize<'de> for RecvFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RecvFile, D::Error> {
        match handle_id(deserializer, FILE_NAME)? {
            None => Ok(RecvFile(None)),
            Some(id) => Ok(RecvFile(Some(File::from(receive::<D::Error>(id, "file")?)))),
        }
    }
}

/// A descriptor received in a call (see the module docs: untrusted).
pub struct RecvFd(Option<OwnedFd>);

impl RecvFd {
    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
            .expect("a traced placeholder never reaches a handler or caller")
    }
}

impl<'de> Deserialize<'de> for RecvFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RecvFd, D::Error> {
        match handle_id(deserializer, FD_NAME)? {
            None => Ok(RecvFd(None)),
            Some(id) => Ok(RecvFd(Some(receive::<D::Error>(id, "descriptor")?))),
        }
    }
}

/// Starts counting the handles of a call (or its reply) on this thread, for the per-call
/// limit: what generated code calls before decoding the arguments of a method that passes
/// handles.
pub fn begin_call() {
    crate::channel::handles::begin_call();
}
