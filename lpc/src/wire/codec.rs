//! The payload codec: postcard (a compact, well-kept serde format with a stable wire spec).
//!
//! Payloads are encoded into a [`Sink`] and decoded from a [`Source`] so that the channel can
//! put large payloads straight into shared memory and read them from there: a byte buffer
//! crosses with one copy on each side (see [`WireBytes`]), not the three of an encode into a
//! private buffer, a copy into shared memory, a copy out and a decode.

use std::cell::Cell;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::Serialize;

use super::budget::Budget;
use super::decode::Decoder;
use super::encode::Encoder;

pub(crate) use super::encode::{ArrayBuffer, Sink};

/// Where a decoder reads a payload that is not in private memory (a spill buffer). It hands
/// out copies: shared memory is never borrowed. Every take is checked against the bytes left
/// before anything is allocated for it, and allocates fallibly.
pub(crate) trait Source<'de>: 'de {
    /// The next byte, if any.
    fn pop(&mut self) -> Option<u8>;
    /// Copies of the next `n` bytes, valid until the next call.
    fn take_temp(&mut self, n: usize) -> Result<&[u8], Short>;
    /// The next `n` bytes in a buffer borrowed for the whole decode (for types that borrow
    /// from their input).
    fn take_borrowed(&mut self, n: usize) -> Result<&'de [u8], Short>;
    /// The next `n` bytes, copied once into a `Vec` of their own (see [`WireBytes`]).
    fn take_owned(&mut self, n: usize) -> Result<Vec<u8>, Short>;
    /// Bytes not yet taken.
    fn remaining(&self) -> usize;
}

/// Why a [`Source`] handed out no bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Short {
    /// Fewer are left than asked for.
    End,
    /// No memory for a copy of this many bytes.
    Memory(usize),
}

/// A postcard input over a [`Source`].
struct SourceFlavor<S>(S);

fn short(why: Short) -> postcard::Error {
    match why {
        Short::End => postcard::Error::DeserializeUnexpectedEnd,
        Short::Memory(n) => {
            note_custom_reason(format!("no memory for a copy of {n} bytes of the payload"));
            postcard::Error::SerdeDeCustom
        }
    }
}

impl<'de, S: Source<'de>> postcard::de_flavors::Flavor<'de> for SourceFlavor<S> {
    type Remainder = usize;
    type Source = S;

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        self.0
            .pop()
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.remaining())
    }

    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        self.0.take_borrowed(ct).map_err(short)
    }

    fn try_take_n_temp<'a>(&'a mut self, ct: usize) -> postcard::Result<&'a [u8]>
    where
        'de: 'a,
    {
        if OWNED_WANTED.replace(false) {
            let bytes = self.0.take_owned(ct).map_err(short)?;
            HANDED_OVER.set(Some(bytes));
            // The visitor takes the bytes from `HANDED_OVER`, not from this slice.
            return Ok(&[]);
        }
        self.0.take_temp(ct).map_err(short)
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0.remaining())
    }
}

thread_local! {
    /// The message of the last custom serde error raised on this thread (postcard keeps only
    /// "custom error"); taken by the next failure that reports it.
    static CUSTOM_REASON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why a `Serialize`/`Deserialize` impl is about to fail with a custom error.
pub(crate) fn note_custom_reason(why: String) {
    CUSTOM_REASON.with(|r| *r.borrow_mut() = Some(why));
}

/// A postcard error's message: for a custom error, the reason noted just before it. Only
/// failures read the note (nothing on the success path), and every failure clears it.
fn explain(e: postcard::Error) -> String {
    let noted = CUSTOM_REASON.with(|r| r.borrow_mut().take());
    match e {
        postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom => {
            noted.unwrap_or_else(|| e.to_string())
        }
        _ => e.to_string(),
    }
}

/// Writes the postcard encoding of `value` to `sink` (a `Vec` appends it). A sink failure
/// comes back as "sink full": the sink itself knows why.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    sink: &mut S,
) -> Result<(), String> {
    value
        .serialize(&mut <Encoder<'_, S>>::new(sink))
        .map_err(|e| {
            // A refusing `Serialize` impl may have noted its reason for postcard's sake: the
            // message carries it already, and the note must not outlive this failure.
            CUSTOM_REASON.with(|r| r.borrow_mut().take());
            e.to_string()
        })
}

/// Decodes `bytes` as exactly one `T`: trailing bytes mean the peer encoded something else.
/// `limit` is the largest payload the receiving side accepts, which bounds (with the payload's
/// length) what the decode may allocate ([`Budget::for_payload`]).
pub(crate) fn decode_exact<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, String> {
    let budget = Budget::for_payload(bytes.len(), limit);
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = budget
        .deserialize(&mut deserializer)
        .map_err(|e| refused(&budget, e))?;
    let rest = deserializer.finalize().map_err(explain)?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected trailing bytes", rest.len()));
    }
    Ok(value)
}

/// [`decode_exact`] with lpc's own decoder ([`super::decode`]), which reads varints a word
/// at a time: the same values, the same errors, the same budget, in a fraction of the
/// instructions for integer-heavy values. What a shared value's `get` decodes with.
#[inline]
#[cfg(test)]
pub(crate) fn decode_exact_fast<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, String> {
    decode_exact_with::<T, false>(bytes, limit)
}

/// [`decode_exact_fast`] of the fixed-width form [`encode_fixint`] writes: what a shared
/// value's `get` decodes with.
#[inline]
pub(crate) fn decode_exact_fixint<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, String> {
    decode_exact_with::<T, true>(bytes, limit)
}

#[inline(always)]
fn decode_exact_with<'a, T: serde::Deserialize<'a>, const FIXINT: bool>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, String> {
    let budget = Budget::for_payload(bytes.len(), limit);
    let mut decoder = Decoder::<'a, FIXINT>::new(bytes);
    let value = budget
        .deserialize(&mut decoder)
        .map_err(|e| refused(&budget, e))?;
    let rest = decoder.rest();
    if !rest.is_empty() {
        return Err(format!("{} unexpected trailing bytes", rest.len()));
    }
    Ok(value)
}

/// Encodes `value` in postcard's format with every integer wider than a byte at its width,
/// little-endian (signed ones two's complement), lengths and variant indexes still varints:
/// the stored form of shared values, which a reader decodes without a chain of varints.
pub(crate) fn encode_fixint<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    value
        .serialize(&mut Encoder::<'_, Vec<u8>, true>::new(&mut out))
        .map_err(|e| {
            // As in `encode_into`: the note of a refusing impl must not outlive this failure.
            CUSTOM_REASON.with(|r| r.borrow_mut().take());
            e.to_string()
        })?;
    Ok(out)
}

/// Decodes the whole of `source` as exactly one `T`, within the budget of its length and
/// `limit` (see [`decode_exact`]).
pub(crate) fn decode_exact_from<'de, T: Deserialize<'de>, S: Source<'de>>(
    source: S,
    limit: u64,
) -> Result<T, String> {
    let budget = Budget::for_payload(source.remaining(), limit);
    let mut deserializer = postcard::Deserializer::from_flavor(SourceFlavor(source));
    let value = budget
        .deserialize(&mut deserializer)
        .map_err(|e| refused(&budget, e))?;
    let rest = deserializer.finalize().map_err(explain)?;
    if rest != 0 {
        return Err(format!("{rest} unexpected trailing bytes"));
    }
    Ok(value)
}

/// A failed decode's message: the budget's refusal if it refused (postcard keeps no message
/// of its own for it), else the postcard error's.
fn refused(budget: &Budget, e: postcard::Error) -> String {
    let why = explain(e);
    budget.refusal().unwrap_or(why)
}

thread_local! {
    /// Set by [`WireBytes`] just before it asks the decoder for its bytes: a [`Source`] then
    /// copies them once into a `Vec` of their own and leaves it in `HANDED_OVER`, instead of
    /// copying them into a temporary buffer for the visitor to copy again.
    static OWNED_WANTED: Cell<bool> = const { Cell::new(false) };
    static HANDED_OVER: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// A byte buffer as generated code sends it (`Vec<u8>` and `&[u8]` parameters and results):
/// postcard's `bytes` on the wire (a length, then the bytes), decoded with one copy from
/// wherever the payload is.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireBytes(pub Vec<u8>);

impl WireBytes {
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for WireBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for WireBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Clears the request however the decode ends (an error, a panic in a visitor), so
        /// that it can never apply to a later, unrelated take.
        struct Wanted;
        impl Drop for Wanted {
            fn drop(&mut self) {
                OWNED_WANTED.set(false);
                HANDED_OVER.set(None);
            }
        }
        let _wanted = Wanted;
        OWNED_WANTED.set(true);
        deserializer.deserialize_byte_buf(WireBytesVisitor)
    }
}

struct WireBytesVisitor;

impl<'de> Visitor<'de> for WireBytesVisitor {
    type Value = WireBytes;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<WireBytes, E> {
        // A `Source` handed the bytes over whole; any other input lends them to be copied.
        Ok(WireBytes(
            HANDED_OVER.take().unwrap_or_else(|| bytes.to_vec()),
        ))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<WireBytes, E> {
        Ok(WireBytes(bytes))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireBytes, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(byte) = seq.next_element()? {
            out.push(byte);
        }
        Ok(WireBytes(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_what_postcard_would_write() {
        let value = (1u32, -5i64, "text", vec![1u8, 2, 3], Some(2.5f64));
        let mut out = vec![0xee];
        encode_into(&value, &mut out).unwrap();
        assert_eq!(out[0], 0xee);
        assert_eq!(&out[1..], postcard::to_stdvec(&value).unwrap());
        let back: (u32, i64, String, Vec<u8>, Option<f64>) =
            decode_exact(&out[1..], u64::MAX).unwrap();
        assert_eq!(back, (1, -5, "text".into(), vec![1, 2, 3], Some(2.5)));
        assert!(decode_exact::<u32>(&[1, 2], u64::MAX)
            .unwrap_err()
            .contains("trailing"));
    }

    #[test]
    fn the_fast_decode_answers_as_decode_exact_does() {
        let value = (
            1u32,
            -5i64,
            "text",
            vec![1u8, 2, 3],
            Some(2.5f64),
            [1u64 << 50; 8],
        );
        let bytes = postcard::to_stdvec(&value).unwrap();
        type T = (u32, i64, String, Vec<u8>, Option<f64>, [u64; 8]);
        for end in 0..=bytes.len() {
            assert_eq!(
                decode_exact_fast::<T>(&bytes[..end], u64::MAX),
                decode_exact::<T>(&bytes[..end], u64::MAX)
            );
        }
        assert!(decode_exact_fast::<T>(&bytes, u64::MAX).is_ok());
        assert!(decode_exact_fast::<u32>(&[1, 2], u64::MAX)
            .unwrap_err()
            .contains("trailing"));
        // The budget's refusal, and a custom reason, come through as they do for postcard's.
        let many = [&[0xff, 0xff, 0x03][..], &[0; 100]].concat();
        assert_eq!(
            decode_exact_fast::<Vec<()>>(&many, 64),
            decode_exact::<Vec<()>>(&many, 64)
        );
        note_custom_reason("the real reason".into());
        assert_eq!(
            decode_exact_fast::<Refuser>(&[0], u64::MAX).unwrap_err(),
            "the real reason"
        );
    }

    #[test]
    fn a_noted_reason_explains_only_a_custom_error_and_never_a_later_one() {
        note_custom_reason("stale".into());
        // A non-custom failure clears the note without using it.
        let err = decode_exact::<u64>(&[], u64::MAX).unwrap_err();
        assert!(!err.contains("stale"), "{err}");
        note_custom_reason("the real reason".into());
        let err = decode_exact::<Refuser>(&[0], u64::MAX).unwrap_err();
        assert_eq!(err, "the real reason");
    }

    /// A [`Source`] over private bytes that records how the decoder took them.
    struct Recorder<'a> {
        bytes: &'a [u8],
        owned: &'a mut Vec<usize>,
        temp: &'a mut Vec<usize>,
    }

    impl<'a> Source<'a> for Recorder<'a> {
        fn pop(&mut self) -> Option<u8> {
            let (&b, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            Some(b)
        }
        fn take_temp(&mut self, n: usize) -> Result<&[u8], Short> {
            self.temp.push(n);
            self.take_borrowed(n)
        }
        fn take_borrowed(&mut self, n: usize) -> Result<&'a [u8], Short> {
            let bytes = self.bytes;
            let (taken, rest) = bytes.split_at_checked(n).ok_or(Short::End)?;
            self.bytes = rest;
            Ok(taken)
        }
        fn take_owned(&mut self, n: usize) -> Result<Vec<u8>, Short> {
            self.owned.push(n);
            Ok(self.take_borrowed(n)?.to_vec())
        }
        fn remaining(&self) -> usize {
            self.bytes.len()
        }
    }

    #[test]
    fn wire_bytes_are_handed_over_whole_and_other_takes_are_not() {
        let value = (
            "abc",
            serde_bytes::Bytes::new(&[9u8; 300]),
            String::from("de"),
            serde_bytes::Bytes::new(&[]),
        );
        let encoded = postcard::to_stdvec(&value).unwrap();
        let (mut owned, mut temp) = (Vec::new(), Vec::new());
        let recorder = Recorder {
            bytes: &encoded,
            owned: &mut owned,
            temp: &mut temp,
        };
        let back: (String, WireBytes, String, WireBytes) =
            decode_exact_from(recorder, u64::MAX).unwrap();
        assert_eq!(back.0, "abc");
        assert_eq!(back.1 .0, vec![9u8; 300]);
        assert_eq!((back.2.as_str(), back.3 .0.len()), ("de", 0));
        // Each byte buffer was taken once, owned; the strings went through temporary copies.
        assert_eq!(owned, vec![300, 0]);
        assert_eq!(temp, vec![3, 2]);
        // The request never outlives a WireBytes decode, even a failed one.
        assert!(decode_exact::<WireBytes>(&[5, 1], u64::MAX).is_err());
        assert!(!OWNED_WANTED.get());
    }

    #[derive(Debug)]
    struct Refuser;

    impl<'de> serde::Deserialize<'de> for Refuser {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom("the real reason"))
        }
    }
}

/// The decode alone, against postcard's (not a test: figures for docs/benchmarks-shared.md):
/// `cargo test --release -p lpc --lib wire::codec::speed -- --ignored --nocapture`.
#[cfg(test)]
mod speed {
    use std::hint::black_box;
    use std::time::Instant;

    use super::{decode_exact, decode_exact_fast};

    #[test]
    #[ignore]
    fn decode_of_a_64_byte_value() {
        let bytes = postcard::to_stdvec(&[(1u64 << 49) + 12_345; 8]).unwrap();
        assert_eq!(bytes.len(), 64);
        let n = 20_000_000;
        for round in 0..3 {
            let started = Instant::now();
            for _ in 0..n {
                let v: [u64; 8] = decode_exact(black_box(&bytes), 1 << 20).unwrap();
                black_box(v);
            }
            let postcard = started.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            let started = Instant::now();
            for _ in 0..n {
                let v: [u64; 8] = decode_exact_fast(black_box(&bytes), 1 << 20).unwrap();
                black_box(v);
            }
            let ours = started.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            eprintln!("round {round}: postcard {postcard:.1} ns, lpc's decoder {ours:.1} ns");
        }
        // The small call's arguments, `add(i32, i32)` with small numbers: a byte each.
        let bytes = postcard::to_stdvec(&(10i32, 20i32)).unwrap();
        for round in 0..3 {
            let started = Instant::now();
            for _ in 0..n {
                let v: (i32, i32) = decode_exact(black_box(&bytes), 1 << 20).unwrap();
                black_box(v);
            }
            let postcard = started.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            let started = Instant::now();
            for _ in 0..n {
                let v: (i32, i32) = decode_exact_fast(black_box(&bytes), 1 << 20).unwrap();
                black_box(v);
            }
            let ours = started.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            eprintln!(
                "(i32, i32) round {round}: postcard {postcard:.1} ns, lpc's decoder {ours:.1} ns"
            );
        }
    }
}
