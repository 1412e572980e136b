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
//! and, before the frame of a call or reply that passes a handle (a file, a descriptor, a
//! segment), one notice per handle:
//!   Handle {id}                        <-> + the descriptor
//!
//! and when the client first uses a call slot beyond slot 0 (the service starts its thread):
//!   Slots                              ->
//!
//! or, for a subscriber to events (`lpc::Subscription`, its own connection):
//!   Subscribe {interface, events?, ring, policy, link?} ->
//!                                      <-  Subscribed {events interface, ring} + ring memfd
//!
//! or, for tools that only look (`lpc list`, `lpc monitor`):
//!   Query                              ->
//!                                      <-  Info {pid, uid, uptime, interface, clients, stats}
//! ```
//! Every message starts with a fixed prefix — a one-byte tag, then the sender's protocol
//! version (u32, little-endian) — and its postcard-encoded body follows. The version is read
//! before the body, so that a peer of another version, whose messages may have other fields,
//! is told "protocol version N, this side speaks M" rather than "malformed". Each message fits
//! in [`MAX_MESSAGE`] bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::info::ServiceInfo;
use super::interface::InterfaceInfo;

/// Version of the wire protocol; a message of any other is refused before its body is read.
/// (2: the version moved from the hello's and welcome's bodies into every message's prefix;
/// 3: `Subscribe` and `Subscribed`, and the events and subscribers in `Info`.)
pub(crate) const PROTOCOL_VERSION: u32 = 3;
/// Bytes before a message's body: the tag and the version.
pub(crate) const PREFIX_LEN: usize = 5;
/// Default largest payload, in either direction: 1 GiB. Each side announces its own limit in
/// the handshake (the client's `max_reply`, the service's `max_request`).
pub const DEFAULT_MAX_PAYLOAD: u64 = 1 << 30;
/// Largest socket message either side sends or accepts.
pub(crate) const MAX_MESSAGE: usize = 192 * 1024;

const TAG_HELLO: u8 = 1;
const TAG_WELCOME: u8 = 2;
const TAG_REFUSED: u8 = 3;
const TAG_SPILL: u8 = 4;
const TAG_QUERY: u8 = 5;
const TAG_INFO: u8 = 6;
const TAG_BULK: u8 = 7;
const TAG_SLOTS: u8 = 8;
const TAG_SUBSCRIBE: u8 = 9;
const TAG_SUBSCRIBED: u8 = 10;

/// What the service does with an event when a subscriber's ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Overflow {
    /// Take back the oldest events not read yet to make room (counted as missed).
    DropOldest,
    /// Drop the new event (counted as missed).
    DropNewest,
    /// End the subscription.
    Disconnect,
}

/// A subscriber's first message (instead of a hello): which events it wants and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscribe {
    pub(crate) service: String,
    /// The events interface (name, fingerprint) the subscriber was compiled against; `None`
    /// for a tool that decodes by shape (`lpc watch`).
    pub(crate) interface: Option<(String, u64)>,
    /// The names of the events wanted; `None`: all of them.
    pub(crate) events: Option<Vec<String>>,
    /// The ring size asked for (bytes; the service rounds it into its bounds).
    pub(crate) ring: u32,
    pub(crate) policy: Overflow,
    /// The token of a calling connection of the same process (its welcome's): events sent
    /// to that connection (`to_caller`) go to this subscription.
    pub(crate) link: Option<u64>,
}

/// The service's answer to a subscription, with the ring attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscribed {
    /// The events interface the service emits, with the shapes.
    pub(crate) events: InterfaceInfo,
    /// Bytes of the ring (the object is `channel::events::HEADER` more).
    pub(crate) ring: u32,
}
const TAG_HANDLE: u8 = 16;

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
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
    pub(crate) service: String,
    /// Shared, not copied, by every welcome a service sends (`serde`'s `rc` support).
    pub(crate) interface: std::sync::Arc<InterfaceInfo>,
    pub(crate) slot_count: u32,
    pub(crate) slot_size: u32,
    /// Bytes of the connection's one-way queue (0: none; see `shm::layout`).
    pub(crate) queue_size: u32,
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
    /// The client raised its "slots used" mark: the service's reactor starts the threads of
    /// the new slots (it only needs to notice the message; nobody waits for it).
    Slots,
    /// A subscription (instead of a hello).
    Subscribe(Subscribe),
    /// The answer to it; the ring is attached.
    Subscribed(Subscribed),
    /// A handle passed in a call: the sender's number `id` for it (named by the payload that
    /// follows), the descriptor attached.
    Handle {
        id: u32,
    },
}

/// Why a received message was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MessageError {
    /// The peer speaks another protocol version (read from the prefix; the body is not
    /// looked at, since its layout may differ).
    Version(u32),
    /// The message is not a well-formed message of this version.
    Malformed(String),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Version(theirs) => write!(
                f,
                "the peer speaks protocol version {theirs}, this side speaks version \
                 {PROTOCOL_VERSION}"
            ),
            MessageError::Malformed(why) => f.write_str(why),
        }
    }
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
            Message::Slots => (TAG_SLOTS, Ok(Vec::new())),
            Message::Handle { id } => (TAG_HANDLE, postcard::to_stdvec(id)),
            Message::Info(info) => (TAG_INFO, postcard::to_stdvec(info)),
            Message::Subscribe(s) => (TAG_SUBSCRIBE, postcard::to_stdvec(s)),
            Message::Subscribed(s) => (TAG_SUBSCRIBED, postcard::to_stdvec(s)),
        };
        let body = body.expect("handshake messages always encode");
        let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
        out.push(tag);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        out.extend(body);
        out
    }

    /// Decodes one received message: its prefix first (a peer of another version gets
    /// [`MessageError::Version`]), then its body. Trailing bytes are an error.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let malformed = |why: String| MessageError::Malformed(why);
        let (&tag, rest) = bytes
            .split_first()
            .ok_or_else(|| malformed("empty message".into()))?;
        let (version, body) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed(format!("message of {} bytes has no version", bytes.len())))?;
        let version = u32::from_le_bytes(*version);
        if version != PROTOCOL_VERSION {
            return Err(MessageError::Version(version));
        }
        fn whole<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MessageError> {
            // A message is at most MAX_MESSAGE bytes, so it may decode into at most 1 MiB + 64
            // × 192 KiB = 13 MiB (no other limit: a large interface is honest).
            super::codec::decode_exact(body, u64::MAX)
                .map_err(|e| MessageError::Malformed(format!("malformed message: {e}")))
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
            TAG_QUERY => return Err(malformed("a query carries no body".into())),
            TAG_INFO => Message::Info(Box::new(whole(body)?)),
            TAG_BULK => Message::Bulk { id: whole(body)? },
            TAG_SLOTS if body.is_empty() => Message::Slots,
            TAG_HANDLE => Message::Handle { id: whole(body)? },
            TAG_SLOTS => return Err(malformed("a slots notice carries no body".into())),
            TAG_SUBSCRIBE => Message::Subscribe(whole(body)?),
            TAG_SUBSCRIBED => Message::Subscribed(whole(body)?),
            other => return Err(malformed(format!("unknown message tag {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::info::ClientInfo;
    use crate::wire::interface::MethodInfo;
    use crate::wire::shape::{Shape, TypeDef};

    #[test]
    fn round_trips() {
        let msgs = [
            Message::Hello(Hello {
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

    fn text(e: MessageError) -> String {
        e.to_string()
    }

    #[test]
    fn the_version_is_read_before_the_body() {
        // A future hello with fields this side does not know: told apart by its prefix.
        let mut future = vec![TAG_HELLO];
        future.extend_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
        future.extend_from_slice(&[0xff; 40]);
        let err = Message::decode(&future).unwrap_err();
        assert_eq!(err, MessageError::Version(PROTOCOL_VERSION + 1));
        assert_eq!(
            text(err),
            format!(
                "the peer speaks protocol version {}, this side speaks version {PROTOCOL_VERSION}",
                PROTOCOL_VERSION + 1
            )
        );
        // Too short to hold the version at all: malformed, not another version.
        assert!(matches!(
            Message::decode(&[TAG_HELLO, 2, 0]),
            Err(MessageError::Malformed(m)) if m.contains("no version")
        ));
    }

    #[test]
    fn rejects_garbage() {
        let v = PROTOCOL_VERSION.to_le_bytes();
        assert!(Message::decode(&[]).is_err());
        let unknown = [&[99u8][..], &v, &[1, 2]].concat();
        assert!(text(Message::decode(&unknown).unwrap_err()).contains("tag"));
        let mut m = Message::Spill {
            slot: 1,
            generation: 2,
        }
        .encode();
        m.push(0);
        assert!(text(Message::decode(&m).unwrap_err()).contains("trailing"));
        let bad_length = [&[TAG_HELLO][..], &v, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]].concat();
        assert!(Message::decode(&bad_length).is_err());
    }

    /// A message of `tag` whose body is `body` encoded, prefixed as this version sends it.
    fn message(tag: u8, body: &impl Serialize) -> Vec<u8> {
        let body = postcard::to_stdvec(body).unwrap();
        [&[tag][..], &PROTOCOL_VERSION.to_le_bytes(), &body].concat()
    }

    /// Encodes as a sequence or string claiming `0` elements or bytes, none of which follow.
    struct Lie(usize);

    impl Serialize for Lie {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            serializer.serialize_seq(Some(self.0))?.end()
        }
    }

    const HUGE: usize = 1 << 60;

    #[test]
    fn lengths_beyond_the_message_end_it_before_anything_is_allocated_for_them() {
        let end = Err(MessageError::Malformed(
            "malformed message: Hit the end of buffer, expected more data".into(),
        ));
        // Whatever follows a lie, the message ends long before the claimed elements.
        let pad = [0u8; 16];
        // A hello whose service name claims 2^60 bytes (the struct's fields as a tuple).
        let hello = message(TAG_HELLO, &(Lie(HUGE), pad));
        assert_eq!(Message::decode(&hello), end);
        // A refusal whose reason does.
        let refused = message(TAG_REFUSED, &(RefusalKind::Busy, Lie(HUGE), pad));
        assert_eq!(Message::decode(&refused), end);
        // A welcome whose interface claims 2^60 methods, or 2^60 user types.
        let welcome = message(TAG_WELCOME, &("s", ("I", 1u64, Lie(HUGE), pad)));
        assert_eq!(Message::decode(&welcome), end);
        let no_methods: Vec<MethodInfo> = Vec::new();
        let welcome = message(
            TAG_WELCOME,
            &("s", ("I", 1u64, &no_methods, Lie(HUGE), pad)),
        );
        assert_eq!(Message::decode(&welcome), end);
        // An answer to a query claiming 2^60 clients, or a method whose latency histogram
        // claims 2^60 buckets.
        let interface = InterfaceInfo {
            name: "I".into(),
            fingerprint: 1,
            methods: Vec::new(),
            types: Default::default(),
        };
        let head = ("s", 1u32, "u", Duration::ZERO, &interface, 1u64);
        let info = message(TAG_INFO, &(head, Lie(HUGE), pad));
        assert_eq!(Message::decode(&info), end);
        let no_clients: Vec<ClientInfo> = Vec::new();
        let method = ("m", 1u64, 0u64, Lie(HUGE));
        let info = message(TAG_INFO, &(head, &no_clients, (1u8, method), pad));
        assert_eq!(Message::decode(&info), end);
        // The honest forms of the same prefixes decode, so the lies above are what failed.
        let info = message(
            TAG_INFO,
            &(
                head,
                &no_clients,
                (1u8, ("m", 1u64, 0u64, vec![0u64; 2])),
                0u64,
                // No events, no subscribers.
                (0u8, 0u8),
            ),
        );
        assert!(
            matches!(Message::decode(&info), Ok(Message::Info(i)) if i.methods[0].latency.buckets.len() == 2)
        );
    }

    #[test]
    fn the_largest_message_decodes_within_its_budget() {
        // A type of as many unit shapes as a message holds: 32 bytes of memory for each byte
        // of the message, within the budget of 1 MiB + 64 per byte.
        let welcome = |units: usize| {
            let interface = InterfaceInfo {
                name: "I".into(),
                fingerprint: 1,
                methods: Vec::new(),
                types: [("T".to_owned(), TypeDef::Tuple(vec![Shape::Unit; units]))].into(),
            };
            Message::Welcome(Welcome {
                service: "s".into(),
                interface: std::sync::Arc::new(interface),
                slot_count: 1,
                slot_size: 4096,
                queue_size: 0,
                max_request: 1,
                token: 1,
            })
        };
        let base = welcome(0).encode().len();
        let units = MAX_MESSAGE - base - 8;
        let bytes = welcome(units).encode();
        assert!(bytes.len() <= MAX_MESSAGE);
        match Message::decode(&bytes) {
            Ok(Message::Welcome(w)) => assert!(matches!(
                w.interface.types.get("T"),
                Some(TypeDef::Tuple(t)) if t.len() == units
            )),
            other => panic!("{:?}", other.map(drop)),
        }
    }

    #[test]
    fn values_nested_too_deeply_are_malformed() {
        // A welcome whose type table holds one type, `T`, a newtype (variant 1) of a shape
        // nested 100,000 deep: `Shape::Tuple` (variant 20) of one element, and so on.
        let mut bytes = message(TAG_WELCOME, &("s", ("I", 1u64, Vec::<MethodInfo>::new())));
        bytes.extend([1, 1, b'T', 1]);
        for _ in 0..100_000 {
            bytes.extend([20, 1]);
        }
        bytes.push(0);
        let err = Message::decode(&bytes).unwrap_err();
        assert!(text(err).contains("nested deeper than"));
    }
}
