//! The postcard encoder, written straight into a [`Sink`].
//!
//! Byte for byte the format of postcard 1.x (its wire specification: varints for integers
//! wider than a byte, zigzag for signed ones, a varint length before sequences, maps, strings
//! and byte strings, a varint variant index), which decodes lpc's payloads and which other
//! implementations follow. lpc encodes with its own serializer because postcard's goes
//! through a flavor that first encodes each varint into a buffer and then copies it out: for
//! the small call's arguments and result that was about 150 of its instructions, most of the
//! encoding (the hot path's profile in docs/benchmarks.md). The tests compare every kind of
//! value with postcard's own output.

use std::fmt;

use serde::ser::{self, Serialize};

/// Where an encoder writes: a private `Vec`, or a channel's payload writer. A sink that
/// cannot take more (its memory failed) returns `Err(())` and keeps the reason itself.
pub(crate) trait Sink {
    fn put(&mut self, byte: u8) -> Result<(), ()>;
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), ()>;
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, byte: u8) -> Result<(), ()> {
        self.push(byte);
        Ok(())
    }

    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// A sink of at most `N` bytes on the stack, for small encodings that need no allocation
/// (a one-way post's arguments). Writing past `N` fails and sets [`ArrayBuffer::overflowed`],
/// so that the caller can encode again into a `Vec`.
pub(crate) struct ArrayBuffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> ArrayBuffer<N> {
    #[inline]
    pub(crate) const fn new() -> Self {
        ArrayBuffer {
            bytes: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    /// What was written.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether a write did not fit (the encoding is then incomplete).
    #[inline]
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

impl<const N: usize> Sink for ArrayBuffer<N> {
    #[inline]
    fn put(&mut self, byte: u8) -> Result<(), ()> {
        match self.bytes.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                Ok(())
            }
            None => {
                self.overflowed = true;
                Err(())
            }
        }
    }

    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), ()> {
        match self.bytes.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
                Ok(())
            }
            None => {
                self.overflowed = true;
                Err(())
            }
        }
    }
}

/// Why an encode failed: a `Serialize` impl refused (its message), or the sink could take no
/// more (it knows why).
#[derive(Debug)]
pub(crate) enum EncodeError {
    Custom(String),
    SinkFull,
    LengthUnknown,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Custom(why) => f.write_str(why),
            EncodeError::SinkFull => f.write_str("the payload could not be written"),
            EncodeError::LengthUnknown => {
                f.write_str("a sequence or map without a known length cannot be encoded")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(msg.to_string())
    }
}

/// Writes values to a sink in postcard's format; with `FIXINT`, integers wider than a byte at
/// their width, little-endian, signed ones two's complement (postcard's `fixint::le` for
/// every integer value; lengths and variant indexes stay varints), as
/// [`super::decode::Decoder`] reads them back.
pub(crate) struct Encoder<'s, S: Sink, const FIXINT: bool = false> {
    sink: &'s mut S,
}

impl<'s, S: Sink, const FIXINT: bool> Encoder<'s, S, FIXINT> {
    pub(crate) fn new(sink: &'s mut S) -> Self {
        Encoder { sink }
    }

    #[inline]
    fn byte(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.sink.put(byte).map_err(|()| EncodeError::SinkFull)
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.sink.put_all(bytes).map_err(|()| EncodeError::SinkFull)
    }

    /// A varint: seven bits a byte, least significant first, the high bit set on all but
    /// the last.
    #[inline]
    fn varint(&mut self, mut v: u64) -> Result<(), EncodeError> {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }

    fn varint_u128(&mut self, mut v: u128) -> Result<(), EncodeError> {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }

    #[inline]
    fn len(&mut self, len: usize) -> Result<(), EncodeError> {
        self.varint(len as u64)
    }
}

/// Zigzag: small negative numbers become small varints.
#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl<S: Sink, const FIXINT: bool> ser::Serializer for &mut Encoder<'_, S, FIXINT> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.byte(u8::from(v))
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.byte(v as u8)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(zigzag(i64::from(v)))
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(zigzag(i64::from(v)))
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(zigzag(v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint_u128(((v << 1) ^ (v >> 127)) as u128)
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.byte(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(u64::from(v))
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(u64::from(v))
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        if FIXINT {
            return self.bytes(&v.to_le_bytes());
        }
        self.varint_u128(v)
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }

    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.len(v.len())?;
        self.bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.len(v.len())?;
        self.bytes(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.byte(0)
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.byte(1)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.varint(u64::from(variant_index))
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.varint(u64::from(variant_index))?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        self.len(len.ok_or(EncodeError::LengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.varint(u64::from(variant_index))?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncodeError> {
        self.len(len.ok_or(EncodeError::LengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.varint(u64::from(variant_index))?;
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound forms: postcard writes their parts one after the other, nothing between.
macro_rules! compound {
    ($trait:ident, $method:ident) => {
        impl<S: Sink, const FIXINT: bool> ser::$trait for &mut Encoder<'_, S, FIXINT> {
            type Ok = ();
            type Error = EncodeError;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

impl<S: Sink, const FIXINT: bool> ser::SerializeMap for &mut Encoder<'_, S, FIXINT> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(&mut **self)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// The forms with named fields: postcard writes the values alone, in order.
macro_rules! named_fields {
    ($trait:ident) => {
        impl<S: Sink, const FIXINT: bool> ser::$trait for &mut Encoder<'_, S, FIXINT> {
            type Ok = ();
            type Error = EncodeError;

            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    };
}

named_fields!(SerializeStruct);
named_fields!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    /// An encoding that fits is the `Vec` encoding byte for byte; one a byte too long for
    /// the array is flagged as overflowed, never cut short silently.
    #[test]
    fn an_array_buffer_holds_what_fits_and_says_when_it_did_not() {
        let value = (7u64, "twelve bytes", [1u8; 3]);
        let whole = ours(&value);
        let mut exact = ArrayBuffer::<17>::new();
        assert_eq!(whole.len(), 17);
        value
            .serialize(&mut <Encoder<'_, ArrayBuffer<17>>>::new(&mut exact))
            .unwrap();
        assert_eq!((exact.as_slice(), exact.overflowed()), (&whole[..], false));
        let mut short = ArrayBuffer::<16>::new();
        assert!(value
            .serialize(&mut <Encoder<'_, ArrayBuffer<16>>>::new(&mut short))
            .is_err());
        assert!(short.overflowed());
    }

    fn ours<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        value
            .serialize(&mut <Encoder<'_, Vec<u8>>>::new(&mut out))
            .unwrap();
        out
    }

    fn same<T: Serialize + ?Sized + fmt::Debug>(value: &T) {
        assert_eq!(
            ours(value),
            postcard::to_allocvec(value).unwrap(),
            "encoding of {value:?}"
        );
    }

    #[derive(Serialize, Debug)]
    enum Kind {
        Unit,
        Newtype(i16),
        Tuple(u8, String),
        Struct { a: Option<u32>, b: f64 },
    }

    #[derive(Serialize, Debug)]
    struct Record {
        id: u64,
        name: String,
        tags: Vec<Kind>,
        scores: BTreeMap<String, i64>,
        unit: (),
        pair: (bool, char),
        bytes: serde_bytes::ByteBuf,
    }

    #[derive(Serialize, Debug)]
    struct Marker;

    #[derive(Serialize, Debug)]
    struct Wrapper(u128);

    #[test]
    fn every_kind_of_value_encodes_as_postcard_does() {
        for v in [0i64, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN, 300, -300] {
            same(&v);
            same(&(v as i32));
            same(&(v as i16));
            same(&(v as i8));
        }
        for v in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::MAX,
            u32::MAX as u64 + 1,
        ] {
            same(&v);
            same(&(v as u32));
            same(&(v as u16));
            same(&(v as u8));
        }
        same(&u128::MAX);
        same(&i128::MIN);
        same(&i128::MAX);
        same(&-1i128);
        same(&Wrapper(1 << 100));
        same(&1.5f32);
        same(&-0.0f64);
        same(&f64::NAN.to_bits());
        same(&'é');
        same(&'\u{10FFFF}');
        same("");
        same(&"x".repeat(200));
        same(&Some(3u8));
        same(&None::<u8>);
        same(&());
        same(&Marker);
        same(&Vec::<Kind>::new());
        same(&[1u16, 2, 3]);
        same(&(1i32, 2i32));
        let record = Record {
            id: 1 << 40,
            name: "probe".into(),
            tags: vec![
                Kind::Unit,
                Kind::Newtype(-7),
                Kind::Tuple(9, "t".into()),
                Kind::Struct {
                    a: Some(70000),
                    b: 2.25,
                },
            ],
            scores: [("a".to_string(), -5), ("b".to_string(), 1 << 50)]
                .into_iter()
                .collect(),
            unit: (),
            pair: (true, 'z'),
            bytes: serde_bytes::ByteBuf::from(vec![0u8, 255, 7]),
        };
        same(&record);
        same(&vec![(); 3]);
    }

    #[test]
    fn a_sequence_of_unknown_length_is_refused_as_postcard_refuses_it() {
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        assert!(postcard::to_allocvec(&Unknown).is_err());
        let err = Unknown
            .serialize(&mut <Encoder<'_, Vec<u8>>>::new(&mut Vec::new()))
            .unwrap_err();
        assert!(err.to_string().contains("known length"), "{err}");
    }
}
