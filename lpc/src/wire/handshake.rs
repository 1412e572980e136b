//! The messages of the socket: the handshake at connect, then notices.
//!
//! ```text
//! client                                   service
//!   Hello {version, name, interface?}  ->
//!                                      <-  Welcome {interface, geometry, limits} + region memfd
//!                                          (or Refused {reason})
//! then, in either direction, whenever a slot's spill buffer is replaced:
//!   SpillNotice {slot, generation}     <-> + spill memfd
//!
//! and whenever a side creates a bulk buffer for loans (`lpc::Loan`):
//!   Bulk {id}                          <-> + bulk memfd
//!
//! or, for tools that only look (`lpc list`, `lpc monitor`):
//!   Query                              ->
//!                                      <-  Info {pid, uid, uptime, interface, clients, stats}
//! ```
//! Messages are postcard-encoded behind a one-byte tag; each fits in [`MAX_MESSAGE`] bytes.

use serde::{Deserialize, Serialize};

use crate::info::ServiceInfo;
use crate::interface::InterfaceInfo;

/// Version of the wire protocol; the handshake refuses any other.
pub(crate) const PROTOCOL_VERSION: u32 = 1;
/// Largest socket message either side sends or accepts.
pub(crate) const MAX_MESSAGE: usize = 192 * 1024;

const TAG_HELLO: u8 = 1;
const TAG_WELCOME: u8 = 2;
const TAG_REFUSED: u8 = 3;
const TAG_SPILL: u8 = 4;
const TAG_QUERY: u8 = 5;
const TAG_INFO: u8 = 6;
const TAG_BULK: u8 = 7;

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    /// The service name the client asked for.
    pub(crate) service: String,
    /// The interface name and fingerprint the client was compiled against, if any.
    pub(crate) interface: Option<(String, u64)>,
    /// The largest reply payload the client accepts.
    pub(crate) max_reply: u64,
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Welcome {
    pub(crate) version: u32,
    pub(crate) service: String,
    pub(crate) interface: InterfaceInfo,
    pub(crate) slot_count: u32,
    pub(crate) slot_size: u32,
    /// The largest request payload the service accepts.
    pub(crate) max_request: u64,
    /// Names this connection in loan handles, so that a loan made on another connection is
    /// recognised as such.
    pub(crate) token: u64,
}

/// Why a service refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RefusalKind {
    /// The handshake was malformed or of another protocol version.
    Protocol,
    /// The service's access policy does not admit this client.
    Denied,
    /// A connection limit is reached; try again later.
    Busy,
}

/// A refusal and its reason, for the client to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refusal {
    pub(crate) kind: RefusalKind,
    pub(crate) reason: String,
}

/// A message on the socket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Refused(Refusal),
    /// The sender replaced `slot`'s spill buffer; the new one is attached.
    Spill {
        slot: u32,
        generation: u32,
    },
    /// A tool asks who the service is and how it is doing (instead of a hello).
    Query,
    /// The answer to a query.
    Info(Box<ServiceInfo>),
    /// The sender created bulk buffer `id` (for loans); it is attached.
    Bulk {
        id: u32,
    },
}

impl Message {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Message::Hello(h) => (TAG_HELLO, postcard::to_stdvec(h)),
            Message::Welcome(w) => (TAG_WELCOME, postcard::to_stdvec(w)),
            Message::Refused(r) => (TAG_REFUSED, postcard::to_stdvec(r)),
            Message::Spill { slot, generation } => {
                (TAG_SPILL, postcard::to_stdvec(&(slot, generation)))
            }
            Message::Query => (TAG_QUERY, Ok(Vec::new())),
            Message::Bulk { id } => (TAG_BULK, postcard::to_stdvec(id)),
            Message::Info(info) => (TAG_INFO, postcard::to_stdvec(info)),
        };
        let mut out = vec![tag];
        out.extend(body.expect("handshake messages always encode"));
        out
    }

    /// Decodes one received message. Trailing bytes are an error.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Message, String> {
        let (&tag, body) = bytes.split_first().ok_or("empty message")?;
        fn whole<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
            let (value, rest) =
                postcard::take_from_bytes(body).map_err(|e| format!("malformed message: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{} trailing bytes after message", rest.len()));
            }
            Ok(value)
        }
        Ok(match tag {
            TAG_HELLO => Message::Hello(whole(body)?),
            TAG_WELCOME => Message::Welcome(whole(body)?),
            TAG_REFUSED => Message::Refused(whole(body)?),
            TAG_SPILL => {
                let (slot, generation) = whole(body)?;
                Message::Spill { slot, generation }
            }
            TAG_QUERY if body.is_empty() => Message::Query,
            TAG_QUERY => return Err("a query carries no body".into()),
            TAG_INFO => Message::Info(Box::new(whole(body)?)),
            TAG_BULK => Message::Bulk { id: whole(body)? },
            other => return Err(format!("unknown message tag {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let msgs = [
            Message::Hello(Hello {
                version: 1,
                service: "calc".into(),
                interface: Some(("Calc".into(), 42)),
                max_reply: 10,
            }),
            Message::Refused(Refusal {
                kind: RefusalKind::Busy,
                reason: "no".into(),
            }),
            Message::Spill {
                slot: 3,
                generation: 9,
            },
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[99, 1, 2]).unwrap_err().contains("tag"));
        let mut m = Message::Spill {
            slot: 1,
            generation: 2,
        }
        .encode();
        m.push(0);
        assert!(Message::decode(&m).unwrap_err().contains("trailing"));
        assert!(Message::decode(&[TAG_HELLO, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
