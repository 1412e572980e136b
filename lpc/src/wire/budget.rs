//! What decoding a peer's bytes may allocate: a budget, charged as values are decoded.
//!
//! A peer chooses every length in what it sends. Lengths of strings and byte buffers are
//! checked against the bytes present before anything is allocated for them (postcard's slice
//! input, and [`super::codec::Source`]), and serde pre-allocates at most 1 MiB for a sequence or
//! map whatever length it claims. But one byte on the wire can still become many bytes in
//! memory: a unit variant of a large enum, `None` of a large `Option`, `()`, a `Box` of a
//! value that takes no bytes on the wire — so a `Vec` of them grows (infallibly, by doubling)
//! to `size_of::<T>()` × the number of elements, whatever the payload's length. A 16 MiB
//! payload of zeros read as a `Vec` of a 1 KiB enum (each zero its unit variant) would ask for
//! 16 GiB and abort the process; a 100,000-byte payload of ones read as a recursive enum would
//! overflow the decoder's stack.
//!
//! [`Budget::deserialize`] runs a `Deserialize` through [`Budgeted`], a deserializer that
//! forwards to the real one (postcard, serde_json, a JSON `Value`) and charges, before a value
//! reaches its container:
//!
//! * each element of a sequence, and each key and value of a map: `size_of` its type (at least
//!   1, so that a sequence of zero-sized values is bounded in time too);
//! * each value that turns out larger than the place that holds it — the value a `Box`, `Rc`
//!   or `Arc` allocates: the difference.
//!
//! and refuses values nested deeper than [`MAX_DEPTH`]. The budget of a payload of `len` bytes
//! is [`FLOOR`] + [`PER_BYTE`] × `len`, and never more than [`FLOOR`] + the receiving side's
//! payload limit ([`Budget::for_payload`]): so what a decode holds is proportional to the bytes
//! actually present, and never more than the limit the side configured allows. The charge is
//! what the values take in their containers; the memory behind it is within a small factor
//! (a `Vec` grown by doubling has up to twice its length, a hash map about as much again,
//! and the allocator adds its own headers). Strings and byte buffers are not charged: each
//! takes the bytes it came in, which the payload already holds.
//!
//! What a type's own `Deserialize` allocates without asking the deserializer (a field
//! `#[serde(skip)]`ped to a large default, a hand-written visitor that trusts a length it read
//! as a number) is the type's business, like what a handler does with valid arguments.

use std::cell::Cell;
use std::fmt;
use std::mem::size_of;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// What any payload may decode into, however short: serde's own cap on pre-allocation.
pub(crate) const FLOOR: usize = 1 << 20;
/// What each byte of a payload may decode into, beyond [`FLOOR`].
pub(crate) const PER_BYTE: usize = 64;
/// Deepest nesting of values accepted from a peer: a sequence's element, a map's key or
/// value, an option's value and a variant's payload each count one level (a type can recur
/// only through one of them; a struct's fields do not count). The same figure as serde_json's
/// limit for JSON (128 arrays or objects). A level costs the decoder a few stack frames: in a
/// debug build, 128 levels of a recursive enum holding 1 KiB inline take between 256 and
/// 512 KiB of stack, a quarter or less of a thread's default 2 MiB.
pub(crate) const MAX_DEPTH: u32 = 128;

/// The budget of one decode.
pub(crate) struct Budget {
    /// Bytes of values the decode may still charge.
    left: Cell<usize>,
    /// How deeply the value being decoded is nested.
    depth: Cell<u32>,
    /// The payload's length and limit, for the error.
    payload: usize,
    limit: usize,
    /// The first refusal: formats such as postcard keep no message of a custom error.
    refused: Cell<Option<Refusal>>,
}

/// Where a decode stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Element `index` (from 0) of a sequence of `size`-byte elements, which claimed `claimed`
    /// elements (if its format says and the payload could hold them).
    Sequence {
        index: usize,
        size: usize,
        claimed: Option<usize>,
    },
    /// Entry `index` of a map whose keys and values take `size` bytes.
    Map {
        index: usize,
        size: usize,
        claimed: Option<usize>,
    },
    /// A value of `size` bytes held in a place of `held` bytes (a `Box`, `Rc`, `Arc`).
    Boxed { size: usize, held: usize },
    /// Nested deeper than [`MAX_DEPTH`].
    Depth,
}

impl Budget {
    /// The budget of a payload of `len` bytes received under `limit` (the largest payload the
    /// receiving side accepts; `u64::MAX` if none).
    #[inline]
    pub(crate) fn for_payload(len: usize, limit: u64) -> Budget {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Budget {
            left: Cell::new(FLOOR.saturating_add(len.saturating_mul(PER_BYTE).min(limit))),
            depth: Cell::new(0),
            payload: len,
            limit,
            refused: Cell::new(None),
        }
    }

    /// The most this budget allowed, and whether the limit capped it.
    fn allowed(&self) -> (usize, bool) {
        let by_length = self.payload.saturating_mul(PER_BYTE);
        (
            FLOOR.saturating_add(by_length.min(self.limit)),
            self.limit < by_length,
        )
    }

    /// Decodes a `T` from `deserializer` within this budget.
    #[inline]
    pub(crate) fn deserialize<'de, T, D>(&self, deserializer: D) -> Result<T, D::Error>
    where
        T: de::Deserialize<'de>,
        D: Deserializer<'de>,
    {
        T::deserialize(Budgeted {
            inner: deserializer,
            budget: self,
            held: size_of::<T>(),
        })
    }

    /// Why the decode was refused, if this budget refused it (whatever error the format
    /// reported for it).
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refused.get().map(|r| self.explain(r))
    }

    /// Bytes left to charge (for tests).
    #[cfg(test)]
    fn left(&self) -> usize {
        self.left.get()
    }

    #[inline]
    fn charge<E: de::Error>(&self, bytes: usize, site: impl FnOnce() -> Refusal) -> Result<(), E> {
        let left = self.left.get();
        if bytes <= left {
            self.left.set(left - bytes);
            return Ok(());
        }
        Err(self.refuse(site()))
    }

    #[inline]
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(self.refuse(Refusal::Depth));
        }
        self.depth.set(depth);
        Ok(())
    }

    #[inline]
    fn leave(&self) {
        self.depth.set(self.depth.get() - 1);
    }

    #[cold]
    fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        // Nothing more is charged once refused (a `Deserialize` that swallowed the error would
        // be refused again at its next value).
        self.left.set(0);
        if self.refused.get().is_none() {
            self.refused.set(Some(refusal));
        }
        E::custom(self.explain(self.refused.get().unwrap_or(refusal)))
    }

    fn explain(&self, refusal: Refusal) -> String {
        let claimed = |n: Option<usize>, what: &str| match n {
            Some(n) => format!(" claiming {n} {what}"),
            None => String::new(),
        };
        let place = match refusal {
            Refusal::Depth => {
                return format!("values nested deeper than {MAX_DEPTH} levels");
            }
            Refusal::Sequence {
                index,
                size,
                claimed: n,
            } => format!(
                "element {index} of a sequence{} of {size}-byte elements",
                claimed(n, "elements")
            ),
            Refusal::Map {
                index,
                size,
                claimed: n,
            } => format!(
                "entry {index} of a map{} whose keys and values take {size} bytes",
                claimed(n, "entries")
            ),
            Refusal::Boxed { size, held } => {
                format!("a {size}-byte value held by a {held}-byte pointer")
            }
        };
        let (allowed, capped) = self.allowed();
        let rule = if capped {
            "1 MiB more than the payload limit"
        } else {
            "1 MiB + 64 bytes per payload byte"
        };
        format!(
            "a {} byte payload may decode into at most {allowed} bytes of values ({rule}); \
             refused at {place}",
            self.payload
        )
    }
}

/// Parses JSON `bytes` into a `Value` within `budget` (serde_json also limits its nesting to
/// 128 arrays or objects).
pub(crate) fn json_value(bytes: &[u8], budget: &Budget) -> serde_json::Result<serde_json::Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = budget.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A deserializer that charges what it decodes to a [`Budget`] (see the module's doc).
pub(crate) struct Budgeted<'b, D> {
    inner: D,
    budget: &'b Budget,
    /// Bytes of the place the value goes to, already accounted for by whoever holds it.
    held: usize,
}

impl<D> Budgeted<'_, D> {
    /// Charges a value of type `T` decoded into a place of `self.held` bytes: the difference,
    /// if it is larger (a `Box`, `Rc` or `Arc` allocates it).
    #[inline]
    fn place<T, E: de::Error>(&self) -> Result<(), E> {
        let size = size_of::<T>();
        if size <= self.held {
            return Ok(());
        }
        let held = self.held;
        self.budget
            .charge(size - held, || Refusal::Boxed { size, held })
    }
}

/// Forwards `deserialize_*` methods. `counted`: whether the sequences and maps a visitor is
/// handed are the value's own (charged per element, each a level deeper), rather than the
/// fixed fields of a tuple, struct or variant. `place`: whether the value may be larger than
/// its place (a `Box` of a compound value; primitives, strings and bytes are at most a few
/// words, and their bytes are on the wire), which is then charged.
macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*) $counted:literal $place:literal;)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                if $place {
                    self.place::<V::Value, D::Error>()?;
                }
                let wrapped = Wrap::<V, $counted> { inner: visitor, budget: self.budget };
                self.inner.$method($($arg,)* wrapped)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Budgeted<'_, D> {
    type Error = D::Error;

    forward! {
        deserialize_any() true true;
        deserialize_bool() false false;
        deserialize_i8() false false;
        deserialize_i16() false false;
        deserialize_i32() false false;
        deserialize_i64() false false;
        deserialize_i128() false false;
        deserialize_u8() false false;
        deserialize_u16() false false;
        deserialize_u32() false false;
        deserialize_u64() false false;
        deserialize_u128() false false;
        deserialize_f32() false false;
        deserialize_f64() false false;
        deserialize_char() false false;
        // A visitor may be handed a sequence for these (JSON bytes as an array of numbers).
        deserialize_str() true false;
        deserialize_string() true false;
        deserialize_bytes() true false;
        deserialize_byte_buf() true false;
        deserialize_option() true true;
        deserialize_unit() false false;
        deserialize_unit_struct(name: &'static str) false true;
        deserialize_newtype_struct(name: &'static str) true true;
        deserialize_seq() true true;
        deserialize_tuple(len: usize) false true;
        deserialize_tuple_struct(name: &'static str, len: usize) false true;
        deserialize_map() true true;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) false true;
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) false true;
        deserialize_identifier() false false;
        deserialize_ignored_any() true false;
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor whose nested values are decoded by [`Budgeted`] deserializers; `COUNTED` as for
/// [`forward!`].
struct Wrap<'b, V, const COUNTED: bool> {
    inner: V,
    budget: &'b Budget,
}

macro_rules! visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            #[inline]
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>, const COUNTED: bool> Visitor<'de> for Wrap<'_, V, COUNTED> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let budget = self.budget;
        budget.enter()?;
        let value = self.inner.visit_some(Budgeted {
            inner: deserializer,
            budget,
            held: size_of::<V::Value>(),
        });
        budget.leave();
        value
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        // No level deeper: a type can recur only through an option, a sequence, a map or an
        // enum's variant (else it could hold no value, and its shape does not trace).
        self.inner.visit_newtype_struct(Budgeted {
            inner: deserializer,
            budget: self.budget,
            held: size_of::<V::Value>(),
        })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let claimed = if COUNTED { seq.size_hint() } else { None };
        self.inner.visit_seq(Seq::<A, COUNTED> {
            inner: seq,
            budget: self.budget,
            index: 0,
            claimed,
        })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let claimed = if COUNTED { map.size_hint() } else { None };
        self.inner.visit_map(Map::<A, COUNTED> {
            inner: map,
            budget: self.budget,
            index: 0,
            key_size: 0,
            claimed,
        })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Enum {
            inner: data,
            budget: self.budget,
        })
    }
}

/// A seed whose value is decoded by a [`Budgeted`] deserializer: one level deeper if `DEEPER`
/// (a sequence's element, a map's key or value, a variant's payload; not a field).
struct Seed<'b, T, const DEEPER: bool> {
    inner: T,
    budget: &'b Budget,
}

impl<'de, T: DeserializeSeed<'de>, const DEEPER: bool> DeserializeSeed<'de>
    for Seed<'_, T, DEEPER>
{
    type Value = T::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        let budget = self.budget;
        if DEEPER {
            budget.enter()?;
        }
        let value = self.inner.deserialize(Budgeted {
            inner: deserializer,
            budget,
            held: size_of::<T::Value>(),
        });
        if DEEPER {
            budget.leave();
        }
        value
    }
}

struct Seq<'b, A, const COUNTED: bool> {
    inner: A,
    budget: &'b Budget,
    index: usize,
    claimed: Option<usize>,
}

impl<'de, A: SeqAccess<'de>, const COUNTED: bool> SeqAccess<'de> for Seq<'_, A, COUNTED> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let budget = self.budget;
        let element = self.inner.next_element_seed(Seed::<T, COUNTED> {
            inner: seed,
            budget,
        });
        if !COUNTED {
            // A field: nothing to charge (and the result passes through untouched).
            return element;
        }
        let element = element?;
        if element.is_some() {
            // Charged before the element reaches its container (the visitor pushes it).
            let size = size_of::<T::Value>().max(1);
            let (index, claimed) = (self.index, self.claimed);
            budget.charge(size, || Refusal::Sequence {
                index,
                size,
                claimed,
            })?;
            self.index += 1;
        }
        Ok(element)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // Every element costs at least a byte: never more than the budget left can hold, for
        // visitors that pre-allocate what they are told.
        let hint = self.inner.size_hint();
        if COUNTED {
            hint.map(|n| n.min(self.budget.left.get()))
        } else {
            hint
        }
    }
}

struct Map<'b, A, const COUNTED: bool> {
    inner: A,
    budget: &'b Budget,
    index: usize,
    /// The size of the key just decoded, for the error of its value.
    key_size: usize,
    claimed: Option<usize>,
}

impl<'de, A: MapAccess<'de>, const COUNTED: bool> MapAccess<'de> for Map<'_, A, COUNTED> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let budget = self.budget;
        let key = self.inner.next_key_seed(Seed::<K, COUNTED> {
            inner: seed,
            budget,
        });
        if !COUNTED {
            return key;
        }
        let key = key?;
        if key.is_some() {
            let size = size_of::<K::Value>().max(1);
            self.key_size = size;
            let (index, claimed) = (self.index, self.claimed);
            budget.charge(size, || Refusal::Map {
                index,
                size,
                claimed,
            })?;
        }
        Ok(key)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let budget = self.budget;
        let value = self.inner.next_value_seed(Seed::<T, COUNTED> {
            inner: seed,
            budget,
        });
        if !COUNTED {
            return value;
        }
        let value = value?;
        let size = size_of::<T::Value>().max(1);
        let (index, claimed, entry) = (self.index, self.claimed, self.key_size + size);
        budget.charge(size, || Refusal::Map {
            index,
            size: entry,
            claimed,
        })?;
        self.index += 1;
        Ok(value)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        let hint = self.inner.size_hint();
        if COUNTED {
            hint.map(|n| n.min(self.budget.left.get()))
        } else {
            hint
        }
    }
}

struct Enum<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'b, A> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant>;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (tag, variant) = self.inner.variant_seed(Seed::<T, false> {
            inner: seed,
            budget,
        })?;
        Ok((
            tag,
            Variant {
                inner: variant,
                budget,
            },
        ))
    }
}

struct Variant<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed::<T, true> {
            inner: seed,
            budget: self.budget,
        })
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let budget = self.budget;
        budget.enter()?;
        let wrapped = Wrap::<V, false> {
            inner: visitor,
            budget,
        };
        let value = self.inner.tuple_variant(len, wrapped);
        budget.leave();
        value
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let budget = self.budget;
        budget.enter()?;
        let wrapped = Wrap::<V, false> {
            inner: visitor,
            budget,
        };
        let value = self.inner.struct_variant(fields, wrapped);
        budget.leave();
        value
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};

    use super::*;

    /// Decodes `bytes` as postcard within the budget of their length and `limit` (what
    /// `codec::decode_exact` does, less its check for trailing bytes).
    fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8], limit: u64) -> Result<T, String> {
        let budget = Budget::for_payload(bytes.len(), limit);
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        budget
            .deserialize(&mut deserializer)
            .map_err(|e: postcard::Error| budget.refusal().unwrap_or_else(|| e.to_string()))
    }

    /// 1,032 bytes in memory; its unit variant is one byte on the wire.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    // Large in memory, small on the wire: what the test is about.
    #[allow(clippy::large_enum_variant)]
    enum Wide {
        Small,
        Large([u64; 32], [u64; 32], [u64; 32], [u64; 32]),
    }

    /// A recursive type: one byte per level on the wire.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Chain {
        End,
        Link(Box<Chain>),
    }

    /// A linked list: a level per node (an option's value; the field does not count).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Node {
        next: Option<Box<Node>>,
    }

    /// Postcard's varint of `n`.
    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A sequence claiming `claimed` elements, followed by `zeros` zero bytes.
    fn sequence(claimed: u64, zeros: usize) -> Vec<u8> {
        let mut out = varint(claimed);
        out.resize(out.len() + zeros, 0);
        out
    }

    #[test]
    fn the_budget_is_proportional_to_the_payload_and_capped_by_the_limit() {
        assert_eq!(Budget::for_payload(0, u64::MAX).left(), FLOOR);
        assert_eq!(Budget::for_payload(1000, u64::MAX).left(), FLOOR + 64_000);
        assert_eq!(Budget::for_payload(1 << 30, 4096).left(), FLOOR + 4096);
        // No overflow at the extremes.
        assert_eq!(Budget::for_payload(usize::MAX, u64::MAX).left(), usize::MAX);
    }

    #[test]
    fn a_length_beyond_the_bytes_present_is_the_end_of_the_payload() {
        // 2^60 elements claimed, three present: serde pre-allocates nothing for a length the
        // payload cannot hold (postcard gives no size hint then), and the decode ends.
        let bytes = sequence(1 << 60, 3);
        let err = decode_exact::<Vec<u64>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert_eq!(err, "Hit the end of buffer, expected more data");
        let err = decode_exact::<String>(&sequence(1 << 60, 3), u64::MAX)
            .map(drop)
            .unwrap_err();
        assert_eq!(err, "Hit the end of buffer, expected more data");
        let err = decode_exact::<HashMap<u64, String>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert_eq!(err, "Hit the end of buffer, expected more data");
    }

    #[test]
    fn one_byte_elements_large_in_memory_are_charged_their_size() {
        // 1,000 unit variants of a 1,032-byte enum: 1,032,000 bytes, within the floor.
        let honest: Vec<Wide> = decode_exact(&sequence(1000, 1000), u64::MAX).unwrap();
        assert_eq!(honest, vec![Wide::Small; 1000]);
        // 1,000 more bytes would be 2 MiB of values for a 2,002-byte payload.
        let bytes = sequence(2000, 2000);
        let err = decode_exact::<Vec<Wide>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        let allowed = FLOOR + 64 * 2002;
        let index = allowed / 1032;
        assert_eq!(
            err,
            format!(
                "a 2002 byte payload may decode into at most {allowed} bytes of values \
                 (1 MiB + 64 bytes per payload byte); refused at element {index} of a sequence \
                 claiming 2000 elements of 1032-byte elements"
            )
        );
        // The same for `None` of a large option.
        let bytes = sequence(4000, 4000);
        let err = decode_exact::<Vec<Option<([u64; 32], [u64; 32])>>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert!(err.contains("of 520-byte elements"), "{err}");
    }

    #[test]
    fn a_boxed_value_is_charged_what_the_box_allocates() {
        let bytes = sequence(2000, 2000);
        let err = decode_exact::<Vec<Box<Wide>>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert!(
            err.contains("refused at a 1032-byte value held by a 8-byte pointer"),
            "{err}"
        );
        // Boxes of small values are charged only their place.
        let honest: Vec<Box<u8>> = decode_exact(&sequence(1000, 1000), u64::MAX).unwrap();
        assert_eq!(honest.len(), 1000);
    }

    #[test]
    fn zero_sized_elements_cost_a_byte_each() {
        // 2^60 `()`s claimed, none present (they take no bytes): refused after the budget's
        // worth, instead of looping for ever.
        let bytes = varint(1 << 60);
        let err = decode_exact::<Vec<()>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        let allowed = FLOOR + 64 * bytes.len();
        assert_eq!(
            err,
            format!(
                "a {} byte payload may decode into at most {allowed} bytes of values \
                 (1 MiB + 64 bytes per payload byte); refused at element {allowed} of a \
                 sequence of 1-byte elements",
                bytes.len()
            )
        );
    }

    #[test]
    fn map_entries_are_charged_their_keys_and_values() {
        // 2,000 entries of key 0 and a unit variant: two bytes each.
        let mut bytes = varint(2000);
        for _ in 0..2000 {
            bytes.extend([0, 0]);
        }
        let err = decode_exact::<BTreeMap<u8, Wide>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert!(
            err.contains("of a map claiming 2000 entries whose keys and values take 1033 bytes"),
            "{err}"
        );
        let err = decode_exact::<HashMap<u8, Wide>>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert!(err.contains("of a map claiming 2000 entries"), "{err}");
    }

    #[test]
    fn the_limit_caps_the_budget_of_a_large_payload() {
        // 100,000 unit variants under a 4 KiB limit: 1 MiB + 4 KiB, not 1 MiB + 6.4 MB.
        let bytes = sequence(100_000, 100_000);
        let err = decode_exact::<Vec<Wide>>(&bytes, 4096)
            .map(drop)
            .unwrap_err();
        assert!(
            err.contains(&format!(
                "may decode into at most {} bytes of values (1 MiB more than the payload limit)",
                FLOOR + 4096
            )),
            "{err}"
        );
    }

    #[test]
    fn values_nested_too_deeply_are_refused_before_the_stack_runs_out() {
        // 100,000 links: each one byte, each a level of recursion in the decoder.
        let mut bytes = vec![1u8; 100_000];
        bytes.push(0);
        let err = decode_exact::<Chain>(&bytes, u64::MAX)
            .map(drop)
            .unwrap_err();
        assert_eq!(err, "values nested deeper than 128 levels");
        // 127 links are fine.
        let mut bytes = vec![1u8; 127];
        bytes.push(0);
        let mut chain = decode_exact::<Chain>(&bytes, u64::MAX).unwrap();
        let mut links = 0;
        while let Chain::Link(next) = chain {
            chain = *next;
            links += 1;
        }
        assert_eq!(links, 127);
        // A linked list takes a level a node.
        let list = |nodes: usize| {
            let mut bytes = vec![1u8; nodes];
            bytes.push(0);
            bytes
        };
        assert!(decode_exact::<Node>(&list(128), u64::MAX).is_ok());
        let err = decode_exact::<Node>(&list(129), u64::MAX)
            .map(drop)
            .unwrap_err();
        assert_eq!(err, "values nested deeper than 128 levels");
    }

    /// Every kind of value, to check that the budget changes nothing about honest decodes.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Everything<'a> {
        unit: (),
        flags: (bool, char, f32, f64),
        ints: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
        text: String,
        #[serde(borrow)]
        borrowed: &'a str,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        options: (Option<u32>, Option<String>),
        list: Vec<Vec<u16>>,
        map: BTreeMap<String, Vec<Wide>>,
        wide: Wide,
        boxed: Box<Wide>,
        chain: Chain,
        array: [u8; 4],
        newtype: Newtype,
        variants: Vec<Kinds>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Newtype(u64);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kinds {
        Unit,
        Newtype(String),
        Tuple(u8, i64),
        Struct { a: Vec<u8>, b: Option<Box<Kinds>> },
    }

    impl Clone for Chain {
        fn clone(&self) -> Chain {
            match self {
                Chain::End => Chain::End,
                Chain::Link(next) => Chain::Link(next.clone()),
            }
        }
    }

    fn everything(borrowed: &str) -> Everything<'_> {
        Everything {
            unit: (),
            flags: (true, 'λ', 1.5, -2.25),
            ints: (
                -1,
                -300,
                -70_000,
                i64::MIN,
                -5,
                255,
                65535,
                u32::MAX,
                1 << 40,
                7,
            ),
            text: "text".into(),
            borrowed,
            bytes: vec![0, 1, 2, 255],
            options: (Some(3), None),
            list: vec![vec![], vec![1, 2, 3]],
            map: [
                ("a".to_owned(), vec![Wide::Small]),
                ("b".to_owned(), vec![]),
            ]
            .into(),
            wide: Wide::Large([1; 32], [2; 32], [3; 32], [4; 32]),
            boxed: Box::new(Wide::Small),
            chain: Chain::Link(Box::new(Chain::Link(Box::new(Chain::End)))),
            array: [9, 8, 7, 6],
            newtype: Newtype(42),
            variants: vec![
                Kinds::Unit,
                Kinds::Newtype("n".into()),
                Kinds::Tuple(1, -1),
                Kinds::Struct {
                    a: vec![5],
                    b: Some(Box::new(Kinds::Unit)),
                },
            ],
        }
    }

    #[test]
    fn honest_values_decode_as_without_a_budget() {
        let value = everything("borrowed");
        let bytes = postcard::to_stdvec(&value).unwrap();
        let back: Everything<'_> = decode_exact(&bytes, u64::MAX).unwrap();
        assert_eq!(back, value);
        // Borrowed from the input, not copied.
        assert!(bytes.as_ptr_range().contains(&back.borrowed.as_ptr()));
        // JSON, through a parsed `Value` and straight from the text.
        let json = serde_json::to_vec(&value).unwrap();
        let budget = Budget::for_payload(json.len(), u64::MAX);
        let parsed = json_value(&json, &budget).unwrap();
        assert_eq!(parsed, serde_json::to_value(&value).unwrap());
        let back: Everything<'_> = budget.deserialize(&parsed).unwrap();
        assert_eq!(back, value);
        let mut text = serde_json::Deserializer::from_slice(&json);
        let back: Everything<'_> = budget.deserialize(&mut text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn json_is_charged_for_its_parsed_values_and_what_they_decode_into() {
        // `[0,0,...]`: two bytes an element, 32 bytes a `Value`: within the budget.
        let mut json = b"[0".to_vec();
        for _ in 0..100_000 {
            json.extend(b",0");
        }
        json.push(b']');
        let budget = Budget::for_payload(json.len(), u64::MAX);
        let value = json_value(&json, &budget).unwrap();
        // `[null,...]` as `None`s of a 1,032-byte option: 5 bytes each on the wire.
        let mut json = b"[null".to_vec();
        for _ in 0..10_000 {
            json.extend(b",null");
        }
        json.push(b']');
        let budget = Budget::for_payload(json.len(), u64::MAX);
        let nulls = json_value(&json, &budget).unwrap();
        let err = budget
            .deserialize::<Vec<Option<Wide>>, _>(nulls)
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("of 1032-byte elements"), "{err}");
        assert!(budget.refusal().is_some());
        drop(value);
        // Deep JSON is refused by serde_json itself (128 levels).
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let budget = Budget::for_payload(deep.len(), u64::MAX);
        let err = json_value(deep.as_bytes(), &budget)
            .unwrap_err()
            .to_string();
        assert!(err.contains("recursion limit"), "{err}");
    }
}
