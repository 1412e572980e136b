//! A postcard decoder over private bytes that reads varints a word at a time.
//!
//! postcard's own deserializer takes its input one byte at a time (`Flavor::pop`) and decodes
//! a varint in a loop of one pop, one mask, one shift and one test per byte: eleven
//! instructions a byte, 736 of the 1,165 a [`Shared`](crate::Shared) `get` of a `[u64; 8]`
//! took (docs/benchmarks-shared.md). This decoder accepts exactly what postcard 1.x accepts
//! and gives the same values and the same errors (the tests compare it with postcard on
//! values of every kind and on hostile bytes), but when eight bytes are left it loads them as
//! one little-endian word, finds the varint's last byte (the first with its high bit clear)
//! with one `trailing_zeros`, and gathers its 7-bit groups with three shift-and-mask steps: a
//! varint of up to 8 bytes costs about the same whatever its length. Shorter inputs, the rare
//! 9- and 10-byte `u64` varints and every `u128` take postcard's byte loop, written as
//! postcard writes it.
//!
//! Every read is bounds-checked against the slice (safe code: no read past its end), and
//! every refusal is postcard's [`postcard::Error`], so [`super::codec`]'s messages and the
//! [`Budget`](super::budget::Budget) around it work unchanged.

use postcard::Error;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

type Result<T> = std::result::Result<T, Error>;

/// The high bit of each byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The varint at the start of the little-endian word `w`, with its length in bytes, if it
/// ends within the word (else `None`: its first 8 bytes all have their high bit set).
#[inline(always)]
fn varint_in_word(w: u64) -> Option<(u64, usize)> {
    // A byte whose high bit is clear ends the varint: the lowest such byte is the last.
    let stops = !w & HIGH_BITS;
    if stops == 0 {
        return None;
    }
    let last_bit = stops.trailing_zeros() as usize; // 8 × (length − 1) + 7
                                                    // Bits 0..=last_bit: the varint's bytes, nothing after it; less their high bits.
    let x = w & (stops ^ (stops - 1)) & !HIGH_BITS;
    // Gather the 7-bit groups: pairs into 14 bits, pairs of those into 28, those into 56.
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
    Some((x, (last_bit + 1) / 8))
}

/// postcard's varint loop over the start of `input`, for a type whose varint takes at most
/// `max_len` bytes and whose largest value is `max`: the value and its length. (A function of
/// the bytes, not of the decoder, so that the decoder's position can stay in a register.)
#[cold]
#[inline(never)]
fn varint_bytewise(input: &[u8], max_len: usize, max: u64) -> Result<(u64, usize)> {
    let last_max = (max >> (7 * (max_len - 1))) as u8;
    let mut out = 0u64;
    for i in 0..max_len {
        let byte = *input.get(i).ok_or(Error::DeserializeUnexpectedEnd)?;
        out |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == max_len - 1 && byte > last_max {
                return Err(Error::DeserializeBadVarint);
            }
            return Ok((out, i + 1));
        }
    }
    Err(Error::DeserializeBadVarint)
}

/// Decodes postcard from a slice of private bytes (never shared memory: copy it out first).
///
/// With `FIXINT`, integers wider than a byte are read at their width, little-endian (signed
/// ones two's complement, not zigzagged): postcard's `fixint::le`, for every integer value
/// (lengths and variant indexes stay varints). The stored form of shared values.
pub(crate) struct Decoder<'de, const FIXINT: bool = false> {
    input: &'de [u8],
}

impl<'de, const FIXINT: bool> Decoder<'de, FIXINT> {
    pub(crate) fn new(input: &'de [u8]) -> Self {
        Decoder { input }
    }

    /// The next `N` bytes, for a fixed-width integer.
    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (bytes, rest) = self
            .input
            .split_first_chunk::<N>()
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.input = rest;
        Ok(*bytes)
    }

    /// The bytes not yet decoded.
    pub(crate) fn rest(&self) -> &'de [u8] {
        self.input
    }

    /// Hands a visitor the `len` values that follow (a sequence's, a tuple's or a struct's),
    /// through a copy of the decoder local to this call, written back after: its position
    /// then lives in a register across the values (the compiler cannot know that the value
    /// being built does not overlap a decoder reached through a pointer, so it would store
    /// and reload the position around every value, which is most of a `[u64; 8]`'s decode).
    #[inline(always)]
    fn counted<R>(&mut self, len: usize, visit: impl FnOnce(Counted<'_, 'de, FIXINT>) -> R) -> R {
        let mut local = Decoder::<'de, FIXINT> { input: self.input };
        let out = visit(Counted {
            decoder: &mut local,
            len,
        });
        self.input = local.input;
        out
    }

    #[inline]
    fn pop(&mut self) -> Result<u8> {
        let (&byte, rest) = self
            .input
            .split_first()
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.input = rest;
        Ok(byte)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        let (taken, rest) = self
            .input
            .split_at_checked(n)
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.input = rest;
        Ok(taken)
    }

    /// A varint of at most `MAX` bytes whose value is at most `max` (postcard's rule for a
    /// type of that width: at most `MAX` bytes, and the `MAX`th no more than the type's
    /// remaining bits hold; for these widths, the same as the value fitting the type).
    #[inline(always)]
    fn varint<const MAX: usize>(&mut self, max: u64) -> Result<u64> {
        if let Some(word) = self.input.first_chunk::<8>() {
            match varint_in_word(u64::from_le_bytes(*word)) {
                Some((value, len)) => {
                    if len > MAX || value > max {
                        return Err(Error::DeserializeBadVarint);
                    }
                    self.input = &self.input[len..];
                    return Ok(value);
                }
                // Eight bytes without an end: too long for any type but u64's 10.
                None if MAX <= 8 => return Err(Error::DeserializeBadVarint),
                None => {}
            }
        }
        self.varint_bytewise(MAX, max)
    }

    /// postcard's loop, for the last few bytes of the input and the 9- and 10-byte varints.
    #[inline(always)]
    fn varint_bytewise(&mut self, max_len: usize, max: u64) -> Result<u64> {
        let (value, len) = varint_bytewise(self.input, max_len, max)?;
        self.input = &self.input[len..];
        Ok(value)
    }

    #[inline]
    fn varint_u16(&mut self) -> Result<u16> {
        Ok(self.varint::<3>(u16::MAX.into())? as u16)
    }

    #[inline]
    fn varint_u32(&mut self) -> Result<u32> {
        Ok(self.varint::<5>(u32::MAX.into())? as u32)
    }

    #[inline]
    fn varint_u64(&mut self) -> Result<u64> {
        self.varint::<10>(u64::MAX)
    }

    /// postcard's loop for u128 (19 bytes at most, the last no more than 3).
    fn varint_u128(&mut self) -> Result<u128> {
        let mut out = 0u128;
        for i in 0..19 {
            let byte = self.pop()?;
            out |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == 18 && byte > 0x03 {
                    return Err(Error::DeserializeBadVarint);
                }
                return Ok(out);
            }
        }
        Err(Error::DeserializeBadVarint)
    }

    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn varint_usize(&mut self) -> Result<usize> {
        Ok(self.varint_u64()? as usize)
    }

    #[cfg(target_pointer_width = "32")]
    #[inline]
    fn varint_usize(&mut self) -> Result<usize> {
        Ok(self.varint_u32()? as usize)
    }
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn unzigzag_u128(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

/// What postcard hands a visitor for a sequence, a tuple or a map: a count of what follows.
struct Counted<'a, 'de, const FIXINT: bool> {
    decoder: &'a mut Decoder<'de, FIXINT>,
    len: usize,
}

impl<'de, const FIXINT: bool> de::SeqAccess<'de> for Counted<'_, 'de, FIXINT> {
    type Error = Error;

    #[inline]
    fn next_element_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<Option<V::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // As postcard: no hint when fewer bytes are left than elements claimed.
        (self.decoder.input.len() >= self.len).then_some(self.len)
    }
}

impl<'de, const FIXINT: bool> de::MapAccess<'de> for Counted<'_, 'de, FIXINT> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.decoder)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // As postcard: a map's claim is passed on as it is.
        Some(self.len)
    }
}

impl<'de, const FIXINT: bool> de::Deserializer<'de> for &mut Decoder<'de, FIXINT> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.pop()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Error::DeserializeBadBool),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(self.pop()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_i16(i16::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u16()?;
        visitor.visit_i16(unzigzag(v.into()) as i16)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_i32(i32::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u32()?;
        visitor.visit_i32(unzigzag(v.into()) as i32)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_i64(i64::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u64()?;
        visitor.visit_i64(unzigzag(v))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_i128(i128::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u128()?;
        visitor.visit_i128(unzigzag_u128(v))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.pop()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_u16(u16::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u16()?;
        visitor.visit_u16(v)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_u32(u32::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u32()?;
        visitor.visit_u32(v)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_u64(u64::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u64()?;
        visitor.visit_u64(v)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if FIXINT {
            return visitor.visit_u128(u128::from_le_bytes(self.fixed()?));
        }
        let v = self.varint_u128()?;
        visitor.visit_u128(v)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let bytes = self.take(4)?;
        let mut buf = [0u8; 4];
        buf.copy_from_slice(bytes);
        visitor.visit_f32(f32::from_le_bytes(buf))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let bytes = self.take(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(bytes);
        visitor.visit_f64(f64::from_le_bytes(buf))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        if len > 4 {
            return Err(Error::DeserializeBadChar);
        }
        let bytes = self.take(len)?;
        // As postcard: the first character of the bytes as UTF-8 (any after it are ignored).
        let c = std::str::from_utf8(bytes)
            .map_err(|_| Error::DeserializeBadChar)?
            .chars()
            .next()
            .ok_or(Error::DeserializeBadChar)?;
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| Error::DeserializeBadUtf8)?;
        visitor.visit_borrowed_str(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // postcard lends a temporary copy here (`visit_str`): the same, for visitors that
        // distinguish.
        let len = self.varint_usize()?;
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| Error::DeserializeBadUtf8)?;
        visitor.visit_str(s)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        visitor.visit_bytes(self.take(len)?)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.pop()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(Error::DeserializeBadOption),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        self.counted(len, |seq| visitor.visit_seq(seq))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.counted(len, |seq| visitor.visit_seq(seq))
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.counted(len, |seq| visitor.visit_seq(seq))
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.varint_usize()?;
        self.counted(len, |map| visitor.visit_map(map))
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.counted(fields.len(), |seq| visitor.visit_seq(seq))
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }
}

impl<'de, const FIXINT: bool> de::EnumAccess<'de> for &mut Decoder<'de, FIXINT> {
    type Error = Error;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = self.varint_u32()?;
        let tag = seed.deserialize(index.into_deserializer())?;
        Ok((tag, self))
    }
}

impl<'de, const FIXINT: bool> de::VariantAccess<'de> for &mut Decoder<'de, FIXINT> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<V::Value> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.counted(len, |seq| visitor.visit_seq(seq))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.counted(fields.len(), |seq| visitor.visit_seq(seq))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::super::budget::Budget;
    use super::*;

    /// What `codec::decode_exact` does with postcard's deserializer (less its notes of custom
    /// reasons, which these types never give).
    fn decode_exact<T: DeserializeOwned>(
        bytes: &[u8],
        limit: u64,
    ) -> std::result::Result<T, String> {
        let budget = Budget::for_payload(bytes.len(), limit);
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        let value = budget
            .deserialize(&mut deserializer)
            .map_err(|e: Error| budget.refusal().unwrap_or_else(|| e.to_string()))?;
        let rest = deserializer.finalize().map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} unexpected trailing bytes", rest.len()));
        }
        Ok(value)
    }

    /// The same with this decoder (what `codec::decode_exact_fast` does).
    fn decode_exact_fast<T: DeserializeOwned>(
        bytes: &[u8],
        limit: u64,
    ) -> std::result::Result<T, String> {
        let budget = Budget::for_payload(bytes.len(), limit);
        let mut decoder = <Decoder>::new(bytes);
        let value = budget
            .deserialize(&mut decoder)
            .map_err(|e: Error| budget.refusal().unwrap_or_else(|| e.to_string()))?;
        if !decoder.rest().is_empty() {
            return Err(format!(
                "{} unexpected trailing bytes",
                decoder.rest().len()
            ));
        }
        Ok(value)
    }

    /// Both decoders' results for `bytes` as a `T`: the same value, or the same error (as
    /// their `Debug`, so that a NaN equals itself).
    fn agree<T: DeserializeOwned + Debug>(bytes: &[u8]) -> bool {
        let theirs = decode_exact::<T>(bytes, u64::MAX);
        let ours = decode_exact_fast::<T>(bytes, u64::MAX);
        assert_eq!(
            format!("{ours:?}"),
            format!("{theirs:?}"),
            "decoding {bytes:02x?} as {}",
            std::any::type_name::<T>()
        );
        ours.is_ok()
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let bytes = postcard::to_stdvec(value).unwrap();
        assert_eq!(&decode_exact_fast::<T>(&bytes, u64::MAX).unwrap(), value);
        assert!(agree::<T>(&bytes));
        // Every truncation fails as postcard's does, and so does a trailing byte.
        for end in 0..bytes.len() {
            agree::<T>(&bytes[..end]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!agree::<T>(&longer));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Unit,
        Newtype(i16),
        Tuple(u8, String),
        Struct { a: Option<u32>, b: f64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: u64,
        name: String,
        tags: Vec<Kind>,
        scores: BTreeMap<String, i64>,
        unit: (),
        pair: (bool, char),
        bytes: serde_bytes::ByteBuf,
        wide: (u128, i128),
        small: (u16, i32, u32, i64),
        floats: (f32, f64),
    }

    #[test]
    fn every_varint_length_decodes_as_postcard_does() {
        // Values whose varints take each length from 1 to 10 bytes, and the boundaries.
        let mut values = vec![0u64, u64::MAX, u64::MAX - 1];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]);
        }
        for &v in &values {
            round_trip(&v);
            round_trip(&(v as u32));
            round_trip(&(v as u16));
            round_trip(&(v as i64));
            round_trip(&(v as i32));
            round_trip(&(v as i16));
            round_trip(&(v as i64).wrapping_neg());
            round_trip(&u128::from(v));
            round_trip(&(i128::from(v) << 64));
            // Followed by more bytes, so that the word read covers the next value too.
            round_trip(&(v, v as u16, v as u32, 0xffu8, v));
        }
        round_trip(&u128::MAX);
        round_trip(&i128::MIN);
    }

    #[test]
    fn values_of_every_kind_decode_as_postcard_does() {
        round_trip(&[(1u64 << 49) + 7; 8]);
        round_trip(&Record {
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
            pair: (true, 'é'),
            bytes: serde_bytes::ByteBuf::from(vec![0u8, 255, 7]),
            wide: (u128::MAX - 5, i128::MIN + 3),
            small: (300, -70000, 1 << 31, i64::MIN),
            floats: (1.5, -0.0),
        });
        round_trip(&Some('\u{10FFFF}'));
        round_trip(&None::<String>);
        round_trip(&vec![(); 3]);
        round_trip(&"x".repeat(200));
        // Long values, with strings, bytes and single bytes moving the position by other
        // amounts between the varints.
        round_trip(&(0..200).map(|i| 1u64 << (i * 7 % 64)).collect::<Vec<_>>());
        round_trip(
            &(0..60u32)
                .map(|i| {
                    let text = "é".repeat((i * 13 % 70) as usize);
                    (text, i.wrapping_mul(0x9e37_79b9), i as u8, u64::MAX >> i)
                })
                .collect::<Vec<_>>(),
        );
    }

    /// Non-canonical and over-long varints: accepted or refused exactly as postcard does.
    #[test]
    fn odd_varints_are_judged_as_postcard_judges_them() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in 1..=12 {
            for last in [0x00, 0x01, 0x02, 0x03, 0x04, 0x0f, 0x10, 0x7f, 0x80] {
                let mut bytes = vec![0x80u8; len - 1];
                bytes.push(last);
                cases.push(bytes.clone());
                let mut all_ones = vec![0xffu8; len - 1];
                all_ones.push(last);
                cases.push(all_ones.clone());
                // With enough after it for the word-at-a-time path.
                bytes.extend([0; 12]);
                all_ones.extend([0x11; 12]);
                cases.push(bytes);
                cases.push(all_ones);
            }
        }
        for bytes in &cases {
            for end in 0..=bytes.len() {
                let b = &bytes[..end];
                agree::<u16>(b);
                agree::<u32>(b);
                agree::<u64>(b);
                agree::<i16>(b);
                agree::<i32>(b);
                agree::<i64>(b);
                agree::<u128>(b);
                agree::<(u16, u8)>(b);
                agree::<(u32, u64)>(b);
                agree::<(u64, u64)>(b);
                agree::<Vec<u8>>(b);
                agree::<String>(b);
                agree::<Kind>(b);
            }
        }
    }

    /// A tiny deterministic generator (xorshift), for bytes a hostile writer could leave.
    struct Bytes(u64);

    impl Bytes {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Bytes biased towards the interesting ones: continuation bytes, small values.
        fn fill(&mut self, len: usize) -> Vec<u8> {
            (0..len)
                .map(|_| {
                    let r = self.next();
                    match r % 4 {
                        0 => 0x80 | (r >> 8) as u8,
                        1 => (r >> 8) as u8 & 0x03,
                        _ => (r >> 8) as u8,
                    }
                })
                .collect()
        }
    }

    #[test]
    fn hostile_bytes_give_postcards_answers() {
        let mut gen = Bytes(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for round in 0..20_000 {
            // Mostly short inputs, some long ones.
            let len = (gen.next() % if round % 8 == 0 { 300 } else { 40 }) as usize;
            let b = gen.fill(len);
            let results = [
                agree::<[u64; 8]>(&b),
                agree::<(u16, u32, u64)>(&b),
                agree::<(i16, i32, i64, bool)>(&b),
                agree::<Option<u32>>(&b),
                agree::<Vec<u16>>(&b),
                agree::<BTreeMap<u16, u32>>(&b),
                agree::<(char, String)>(&b),
                agree::<Vec<Kind>>(&b),
                agree::<(f32, f64, u128, i128)>(&b),
                agree::<u64>(&b),
            ];
            accepted += results.iter().filter(|&&ok| ok).count();
        }
        // The inputs reach the success paths too, not only the refusals.
        assert!(accepted > 1000, "only {accepted} decodes succeeded");
    }

    #[test]
    fn a_word_holds_its_varint_and_nothing_after_it() {
        // 0x05 ends the varint; the bytes after it (high bits set or not) are not in it.
        let word = u64::from_le_bytes([0x85, 0x05, 0xff, 0x01, 0, 0, 0, 0x80]);
        assert_eq!(varint_in_word(word), Some((5 | 5 << 7, 2)));
        assert_eq!(varint_in_word(u64::MAX), None);
        let eight = u64::from_le_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(varint_in_word(eight), Some(((1 << 56) - 1, 8)));
    }
}
