//! Loaned buffers (see [`Loan`]): large byte payloads read and written in place in shared
//! memory.

use std::fmt;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::{scope, Channel, ChannelError};
use crate::error::{CallPhase, Error};
use crate::shm::bulk::{BulkClaim, PeerBulk};
use crate::wire::codec::note_custom_reason;
use crate::wire::shape::LOAN_NAME;
use crate::wire::trace::tracing;

/// Loaned buffers: large byte payloads written once, in place, in shared memory, and read in
/// place by the other side — no copy, whatever the size.
///
/// A [`Loan`] is a byte buffer inside a connection's shared memory. Pass `&Loan` as an
/// argument, or return a `Loan` as a result, and only a handle (buffer id and length) crosses;
/// the bytes stay where the sender wrote them:
///
/// ```no_run
/// use lpc::Loan;
///
/// #[lpc::service]
/// pub trait Images {
///     /// Reads the image in place.
///     fn checksum(&self, image: &Loan) -> u64;
///     /// Renders into a buffer the caller then reads in place.
///     fn render(&self, width: u32, height: u32) -> Loan;
/// }
///
/// struct Renderer;
/// impl Images for Renderer {
///     fn checksum(&self, image: &Loan) -> u64 {
///         // A received loan is read by copying, a chunk at a time (see below).
///         let mut sum = 0;
///         image.for_each_chunk(|chunk| sum += chunk.iter().map(|&b| u64::from(b)).sum::<u64>());
///         sum
///     }
///     fn render(&self, width: u32, height: u32) -> Loan {
///         // Inside a handler, a loan comes from the caller's connection.
///         let mut out = Loan::new(width as usize * height as usize).expect("memory");
///         out.as_mut().expect("our own loan").fill(0x80);
///         out
///     }
/// }
///
/// # fn main() -> Result<(), lpc::Error> {
/// let images = ImagesClient::connect("images")?;
/// let mut frame = images.client().loan(64 << 20)?; // 64 MiB, in shared memory
/// frame.as_mut().expect("our own loan").fill(7); // written once, in place
/// let sum = images.checksum(&frame)?; // the service reads it where it is
/// let picture = images.render(1920, 1080)?; // read in place, too
/// assert_eq!(picture.len(), 1920 * 1080);
/// # Ok(()) }
/// ```
///
/// Buffers are reused: after the first call of a size, later calls touch no new memory, so a
/// call with a 64 MiB loan costs about what one with 1 KiB costs. A buffer goes back to its
/// creator when the receiving side drops its `Loan`; the sender does not reuse it before.
///
/// # Who may touch the bytes, when
///
/// - A loan **made here** ([`Loan::new`], [`crate::Client::loan`]) is yours: [`Loan::as_mut`]
///   and [`Loan::as_slice`] borrow its bytes in place. The other process maps it read-only, so
///   nothing else can change them under the borrow. Once you pass it in a call or return it,
///   it is *lent*: `as_mut` is refused with [`LoanError::Lent`] until the receiver drops it
///   (after a call that timed out, the handler may still be reading it).
/// - A loan **received** (an argument in a handler, a result in a client) stays in the
///   memory of the process that wrote it, which could still write it if it misbehaved. So it
///   is never borrowed as `&[u8]`: read it by copying, with [`Loan::read`],
///   [`Loan::for_each_chunk`] (64 KiB at a time, cache-sized) or [`Loan::to_vec`], and treat
///   what you read as input to validate. Its length cannot change.
pub struct Loan {
    inner: Inner,
    len: usize,
    /// The token of the connection it belongs to (`Channel::token`).
    token: u64,
}

enum Inner {
    /// Made here: ours to fill.
    Ours(BulkClaim),
    /// Received from the peer: read in place.
    Theirs(Arc<PeerBulk>),
    /// A stand-in, empty, that tracing a type's shape makes (it never leaves the tracer).
    Traced,
}

impl Loan {
    /// A loan of `len` bytes for the result of the call this handler runs (in the caller's
    /// connection). Outside a handler, use [`crate::Client::loan`].
    pub fn new(len: usize) -> Result<Loan, Error> {
        scope::served(|channel| claim(channel, len, channel.peer_limit())).unwrap_or_else(|| {
            Err(Error::io(
                "",
                "Loan::new outside a handler",
                std::io::Error::other(
                    "a loan belongs to a connection: use Client::loan outside handlers",
                ),
            ))
        })
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of a loan made here, to fill in place. Refused for a received loan
    /// ([`LoanError::Received`]) and while the loan is lent to the other process
    /// ([`LoanError::Lent`]).
    pub fn as_mut(&mut self) -> Result<&mut [u8], LoanError> {
        match &mut self.inner {
            Inner::Ours(claim) => claim.data_mut(self.len).ok_or(LoanError::Lent),
            Inner::Theirs(_) => Err(LoanError::Received),
            Inner::Traced => Ok(&mut []),
        }
    }

    /// The bytes of a loan made here, in place (also while lent: the other process can only
    /// read them). Refused for a received loan ([`LoanError::Received`]): read it by copying.
    pub fn as_slice(&self) -> Result<&[u8], LoanError> {
        match &self.inner {
            Inner::Ours(claim) => Ok(claim.data(self.len)),
            Inner::Theirs(_) => Err(LoanError::Received),
            Inner::Traced => Ok(&[]),
        }
    }

    /// Whether this loan was received from the other process (read it by copying).
    pub fn is_received(&self) -> bool {
        matches!(self.inner, Inner::Theirs(_))
    }

    /// Whether this loan, made here, is lent to the other process (which has not dropped it
    /// yet).
    pub fn is_lent(&self) -> bool {
        match &self.inner {
            Inner::Ours(claim) => claim.buffer().is_lent(),
            Inner::Theirs(_) | Inner::Traced => false,
        }
    }

    /// Copies the bytes from `offset` into `out`, as many as both have; returns how many.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len.saturating_sub(offset));
        let out = &mut out[..n];
        match &self.inner {
            Inner::Ours(claim) => out.copy_from_slice(&claim.data(self.len)[offset..offset + n]),
            Inner::Theirs(bulk) => bulk
                .read(offset, out)
                .expect("length checked against the buffer when received"),
            Inner::Traced => {}
        }
        n
    }

    /// Calls `f` with the bytes in order, in pieces: for a received loan, each copied into a
    /// private 64 KiB buffer first (small enough to stay in cache between the copy and `f`);
    /// for a loan made here, the whole in place.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        match &self.inner {
            Inner::Ours(claim) => f(claim.data(self.len)),
            Inner::Theirs(_) => {
                let mut chunk = vec![0u8; CHUNK.min(self.len)];
                let mut offset = 0;
                while offset < self.len {
                    let n = self.read(offset, &mut chunk);
                    f(&chunk[..n]);
                    offset += n;
                }
            }
            Inner::Traced => {}
        }
    }

    /// The byte at `index`, copied, if the loan is longer.
    pub fn get(&self, index: usize) -> Option<u8> {
        let mut byte = [0u8];
        (self.read(index, &mut byte) == 1).then_some(byte[0])
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.read(0, &mut out);
        out
    }

    /// Shortens the loan to `len` bytes (no effect if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// The pieces [`Loan::for_each_chunk`] copies a received loan in.
const CHUNK: usize = 64 * 1024;

/// Why a loan's bytes cannot be borrowed (see [`Loan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanError {
    /// The loan was received from the other process, which can still write it: read it by
    /// copying.
    Received,
    /// The loan is lent to the other process, which may still be reading it.
    Lent,
}

impl fmt::Display for LoanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoanError::Received => {
                "this loan was received from the other process, which can still write it: \
                 read it by copying (Loan::read, Loan::for_each_chunk, Loan::to_vec)"
            }
            LoanError::Lent => {
                "this loan is lent to the other process, which may still be reading it (after a \
                 call that timed out, or a result it keeps): write it once the other side has \
                 dropped it, or make a new loan"
            }
        })
    }
}

impl std::error::Error for LoanError {}

impl fmt::Debug for Loan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (side, id) = match &self.inner {
            Inner::Ours(claim) => ("ours", claim.buffer().id()),
            Inner::Theirs(_) => ("received", u32::MAX),
            Inner::Traced => ("traced", u32::MAX),
        };
        f.debug_struct("Loan")
            .field("len", &self.len)
            .field("side", &side)
            .field("buffer", &id)
            .finish()
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if let Inner::Theirs(bulk) = &self.inner {
            bulk.give_back();
        }
    }
}

fn refuse<E: serde::ser::Error>(why: &'static str) -> E {
    note_custom_reason(why.to_owned());
    E::custom(why)
}

fn refuse_de<E: serde::de::Error>(why: String) -> E {
    let error = E::custom(&why);
    note_custom_reason(why);
    error
}

/// In a binary lpc call only the handle crosses: (buffer id, length). In a human-readable
/// format (a JSON call, `lpc call`) the bytes themselves are written, and nothing is lent.
impl Serialize for Loan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serde_bytes::ByteBuf::from(self.to_vec()).serialize(serializer);
        }
        let Inner::Ours(claim) = &self.inner else {
            return Err(refuse(
                "a received loan cannot be sent on: copy it into a loan of your own",
            ));
        };
        claim.lend();
        // A newtype of the handle (transparent in postcard), so that shapes name it.
        serializer.serialize_newtype_struct(
            LOAN_NAME,
            &(self.token, claim.buffer().id(), self.len as u64),
        )
    }
}

/// Reads the handle of a binary call's loan.
struct HandleVisitor;

impl<'de> serde::de::Visitor<'de> for HandleVisitor {
    type Value = Loan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an lpc loan handle")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Loan, D::Error> {
        let (token, id, len) = <(u64, u32, u64)>::deserialize(deserializer)?;
        if tracing() {
            return Ok(Loan {
                inner: Inner::Traced,
                len: 0,
                token,
            });
        }
        receive(token, id, len)
    }
}

impl<'de> Deserialize<'de> for Loan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Loan, D::Error> {
        if deserializer.is_human_readable() {
            // A JSON call: the bytes come by value; copy them into a loan of the connection.
            let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
            let mut loan =
                scope::current(|channel| claim(channel, bytes.len(), channel.receive_limit()))
                    .ok_or_else(|| D::Error::custom("a Loan can only be received in an lpc call"))?
                    .map_err(|e| D::Error::custom(e.to_string()))?;
            loan.as_mut()
                .expect("a fresh loan of our own")
                .copy_from_slice(&bytes);
            return Ok(loan);
        }
        deserializer.deserialize_newtype_struct(LOAN_NAME, HandleVisitor)
    }
}

/// The loan a binary call's handle names, mapped from the current connection.
fn receive<E: serde::de::Error>(token: u64, id: u32, len: u64) -> Result<Loan, E> {
    let len = usize::try_from(len).map_err(|_| E::custom("loan length does not fit in memory"))?;
    let received = scope::current(|channel| {
        (channel.token() == token).then(|| {
            let limit = channel.receive_limit();
            if len as u64 > limit {
                // A loan counts against the limit like any payload.
                crate::channel::budget::note_refusal(crate::channel::budget::Refusal::TooLarge(
                    len as u64,
                ));
                return Err(ChannelError::TooLarge {
                    size: len as u64,
                    limit,
                });
            }
            channel.bulk_theirs(id, limit)
        })
    });
    let bulk = match received {
        Some(Some(Ok(bulk))) => bulk,
        Some(Some(Err(ChannelError::Busy(reason)))) => {
            // The service turns this failure of the arguments into `Busy`.
            crate::channel::budget::note_refusal(crate::channel::budget::Refusal::Busy);
            return Err(refuse_de(format!(
                "cannot map loaned buffer {id}: {reason}"
            )));
        }
        Some(Some(Err(e))) => return Err(refuse_de(format!("cannot map loaned buffer {id}: {e}"))),
        Some(None) => {
            return Err(refuse_de(
                "this loan belongs to another connection: make it with the client you call".into(),
            ))
        }
        None => {
            return Err(refuse_de(
                "a Loan can only be received as an argument or result of an lpc call".into(),
            ))
        }
    };
    if len > bulk.capacity() {
        return Err(refuse_de(format!(
            "loan of {len} bytes exceeds its {} byte buffer",
            bulk.capacity()
        )));
    }
    Ok(Loan {
        inner: Inner::Theirs(bulk),
        len,
        token,
    })
}

/// A loan of `len` bytes in `channel`, at most `limit` (what the peer accepts).
pub(crate) fn claim(channel: &Channel, len: usize, limit: u64) -> Result<Loan, Error> {
    if len as u64 > limit {
        return Err(Error::TooLarge {
            service: channel.service().to_owned(),
            method: None,
            size: len as u64,
            limit,
        });
    }
    channel
        .bulk_claim(len)
        .map(|c| Loan {
            inner: Inner::Ours(c),
            len,
            token: channel.token(),
        })
        .map_err(|e| e.into_error(channel.service(), None, CallPhase::NotSent))
}

#[cfg(test)]
mod tests {
    use crate::wire::interface::{InterfaceDescriptor, MethodDescriptor, ParamDescriptor};
    use crate::wire::shape::Shape;

    #[test]
    fn a_loan_has_a_shape_of_its_own() {
        static METHODS: [MethodDescriptor; 1] = [MethodDescriptor {
            name: "lend",
            id: 1,
            signature: "fn lend(&self, a: Option<&Loan>) -> Loan",
            params: &[ParamDescriptor {
                name: "a",
                ty: "Option<&Loan>",
                out: false,
            }],
            output: "Loan",
            returns_result: false,
            oneway: false,
            trace: |t| {
                t.param::<Option<super::Loan>>()?;
                t.result::<super::Loan>()
            },
        }];
        static INTERFACE: InterfaceDescriptor = InterfaceDescriptor {
            name: "Lender",
            fingerprint: 0,
            methods: &METHODS,
            info: crate::wire::interface::InfoCache::new(),
        };
        let info = INTERFACE.info().expect("traces");
        assert_eq!(
            info.methods[0].params[0].shape,
            Shape::Option(Box::new(Shape::Loan))
        );
        assert_eq!(info.methods[0].result, Shape::Loan);
    }
}
