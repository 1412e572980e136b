//! Postcard bytes read and written by shape alone, without the Rust type: what `lpc get` and
//! `lpc set` do with a shared value, whose shape its memory records. The JSON form is
//! serde_json's for the same type (structs as objects, enums externally tagged, `None` as
//! `null`), so the JSON `lpc get` prints is what the program's own `serde_json` would print.
//!
//! Postcard's encoding, by shape: `bool`, `u8` and `i8` one byte; other integers varints
//! (signed ones zigzagged); floats little-endian; strings, `char` and byte buffers a varint
//! length then the bytes; an option a tag byte; sequences and maps a varint count; tuples,
//! arrays and structs their items in order; an enum a varint variant index, then the payload.
//!
//! The bytes are hostile input: every length is checked against the bytes left before anything
//! is allocated for it, nesting is bounded, and so is the number of values produced.

use serde_json::{Map, Number, Value};

use super::shape::{Field, Shape, TypeDef, TypeTable, VariantFields};

/// Deepest nesting decoded or encoded.
const MAX_DEPTH: usize = 128;
/// Most values one decode produces (a sequence of a million `()` takes a few bytes).
const MAX_VALUES: usize = 1 << 20;

/// The largest postcard encoding of any value of `shape`, if there is one (no strings,
/// sequences, maps or recursion).
pub(crate) fn max_encoded_size(shape: &Shape, types: &TypeTable) -> Option<usize> {
    fn size(shape: &Shape, types: &TypeTable, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let d = depth + 1;
        Some(match shape {
            Shape::Unit => 0,
            Shape::Bool | Shape::U8 | Shape::I8 => 1,
            Shape::U16 | Shape::I16 => 3,
            Shape::U32 | Shape::I32 => 5,
            Shape::U64 | Shape::I64 => 10,
            Shape::U128 | Shape::I128 => 19,
            Shape::F32 => 4,
            Shape::F64 => 8,
            Shape::Char => 5,
            Shape::Str
            | Shape::Bytes
            | Shape::Seq(_)
            | Shape::Map { .. }
            | Shape::Loan
            | Shape::File
            | Shape::Fd
            | Shape::Segment => return None,
            Shape::Option(s) => 1 + size(s, types, d)?,
            Shape::Tuple(items) => items
                .iter()
                .try_fold(0usize, |acc, s| acc.checked_add(size(s, types, d)?))?,
            Shape::Array { item, len } => size(item, types, d)?.checked_mul(*len)?,
            Shape::Result { ok, err } => 1 + size(ok, types, d)?.max(size(err, types, d)?),
            Shape::Named(name) => match types.get(name)? {
                TypeDef::Unit => 0,
                TypeDef::Newtype(s) => size(s, types, d)?,
                TypeDef::Tuple(items) => items
                    .iter()
                    .try_fold(0usize, |acc, s| acc.checked_add(size(s, types, d)?))?,
                TypeDef::Struct(fields) => fields
                    .iter()
                    .try_fold(0usize, |acc, f| acc.checked_add(size(&f.shape, types, d)?))?,
                TypeDef::Enum(variants) => {
                    let mut most = 0;
                    for v in variants {
                        let payload = match &v.fields {
                            VariantFields::Unit => 0,
                            VariantFields::Newtype(s) => size(s, types, d)?,
                            VariantFields::Tuple(items) => items
                                .iter()
                                .try_fold(0usize, |acc, s| acc.checked_add(size(s, types, d)?))?,
                            VariantFields::Struct(fields) => {
                                fields.iter().try_fold(0usize, |acc, f| {
                                    acc.checked_add(size(&f.shape, types, d)?)
                                })?
                            }
                        };
                        most = most.max(payload);
                    }
                    5 + most
                }
            },
        })
    }
    size(shape, types, 0)
}

/// Decodes postcard `bytes` (all of them) as a value of `shape` into JSON.
pub(crate) fn decode_json(bytes: &[u8], shape: &Shape, types: &TypeTable) -> Result<Value, String> {
    decode_json_as(bytes, shape, types, false)
}

/// [`decode_json`] of postcard with fixed-width integers (`codec::encode_fixint`) if
/// `fixint`: a shared value's stored form.
pub(crate) fn decode_json_as(
    bytes: &[u8],
    shape: &Shape,
    types: &TypeTable,
    fixint: bool,
) -> Result<Value, String> {
    let mut reader = Reader {
        bytes,
        at: 0,
        values: 0,
        types,
        fixint,
    };
    let value = reader.value(shape, 0)?;
    if reader.at != bytes.len() {
        return Err(format!(
            "{} bytes left over after a value of `{shape}`",
            bytes.len() - reader.at
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    values: usize,
    types: &'a TypeTable,
    /// Integer values at their width, little-endian (lengths and indexes stay varints).
    fixint: bool,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| "the bytes end in the middle of a value".to_owned())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&[u8], String> {
        if self.bytes.len() - self.at < len {
            return Err(format!(
                "a length of {len} bytes, but only {} are left",
                self.bytes.len() - self.at
            ));
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    fn varint(&mut self, bits: u32) -> Result<u128, String> {
        let mut out: u128 = 0;
        for i in 0..19 {
            let b = self.byte()?;
            let shift = 7 * i;
            if shift >= bits {
                return Err(format!("a varint longer than a {bits}-bit integer"));
            }
            out |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if bits < 128 && out >> bits != 0 {
                    return Err(format!("a varint beyond a {bits}-bit integer"));
                }
                return Ok(out);
            }
        }
        Err("a varint of more than 19 bytes".to_owned())
    }

    /// An unsigned integer value of `bits` bits.
    fn unsigned(&mut self, bits: u32) -> Result<u128, String> {
        if !self.fixint {
            return self.varint(bits);
        }
        let mut le = [0u8; 16];
        le[..bits as usize / 8].copy_from_slice(self.take(bits as usize / 8)?);
        Ok(u128::from_le_bytes(le))
    }

    fn signed(&mut self, bits: u32) -> Result<i128, String> {
        if self.fixint {
            // Sign-extended from its width.
            let raw = self.unsigned(bits)?;
            let unused = 128 - bits;
            return Ok(((raw << unused) as i128) >> unused);
        }
        let raw = self.varint(bits)?;
        Ok(((raw >> 1) as i128) ^ -((raw & 1) as i128))
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.varint(64)?).map_err(|_| "a length beyond usize".to_owned())
    }

    fn value(&mut self, shape: &Shape, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("a value nested deeper than {MAX_DEPTH} levels"));
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
        let d = depth + 1;
        Ok(match shape {
            Shape::Unit => Value::Null,
            Shape::Bool => match self.byte()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{b} is not a bool")),
            },
            Shape::U8 => self.byte()?.into(),
            Shape::I8 => (self.byte()? as i8).into(),
            Shape::U16 => (self.unsigned(16)? as u64).into(),
            Shape::U32 => (self.unsigned(32)? as u64).into(),
            Shape::U64 => (self.unsigned(64)? as u64).into(),
            Shape::U128 => big_unsigned(self.unsigned(128)?),
            Shape::I16 => (self.signed(16)? as i64).into(),
            Shape::I32 => (self.signed(32)? as i64).into(),
            Shape::I64 => (self.signed(64)? as i64).into(),
            Shape::I128 => big_signed(self.signed(128)?),
            Shape::F32 => {
                let b = self.take(4)?;
                let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number)
            }
            Shape::F64 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(self.take(8)?);
                Number::from_f64(f64::from_le_bytes(a)).map_or(Value::Null, Value::Number)
            }
            Shape::Char | Shape::Str => {
                let len = self.len()?;
                let text = std::str::from_utf8(self.take(len)?)
                    .map_err(|e| format!("a string that is not UTF-8: {e}"))?;
                if *shape == Shape::Char && text.chars().count() != 1 {
                    return Err(format!("{text:?} is not one char"));
                }
                Value::String(text.to_owned())
            }
            Shape::Bytes => {
                let len = self.len()?;
                Value::Array(self.take(len)?.iter().map(|&b| b.into()).collect())
            }
            Shape::Option(s) => match self.byte()? {
                0 => Value::Null,
                1 => self.value(s, d)?,
                b => return Err(format!("{b} is not an option tag")),
            },
            Shape::Seq(s) => {
                let len = self.len()?;
                let mut items = Vec::with_capacity(len.min(self.bytes.len() - self.at));
                for _ in 0..len {
                    items.push(self.value(s, d)?);
                }
                Value::Array(items)
            }
            Shape::Map { key, value } => {
                let len = self.len()?;
                let mut map = Map::new();
                for _ in 0..len {
                    let k = match self.value(key, d)? {
                        Value::String(s) => s,
                        other @ (Value::Number(_) | Value::Bool(_)) => other.to_string(),
                        other => return Err(format!("a map key {other} JSON cannot carry")),
                    };
                    let v = self.value(value, d)?;
                    map.insert(k, v);
                }
                Value::Object(map)
            }
            Shape::Tuple(items) => self.items(items, d)?,
            Shape::Array { item, len } => {
                let mut items = Vec::new();
                for _ in 0..*len {
                    items.push(self.value(item, d)?);
                }
                Value::Array(items)
            }
            Shape::Result { ok, err } => match self.varint(32)? {
                0 => serde_json::json!({ "Ok": self.value(ok, d)? }),
                1 => serde_json::json!({ "Err": self.value(err, d)? }),
                v => return Err(format!("{v} is not a Result variant")),
            },
            Shape::Loan => return Err("a loan cannot be read by shape".to_owned()),
            Shape::File | Shape::Fd | Shape::Segment => {
                return Err(format!("a {shape} cannot be read by shape"))
            }
            Shape::Named(name) => {
                let def = self
                    .types
                    .get(name)
                    .ok_or_else(|| format!("type `{name}` is not in the type table"))?;
                match def {
                    TypeDef::Unit => Value::Null,
                    TypeDef::Newtype(s) => self.value(s, d)?,
                    TypeDef::Tuple(items) => self.items(items, d)?,
                    TypeDef::Struct(fields) => self.fields(fields, d)?,
                    TypeDef::Enum(variants) => {
                        let index = self.varint(32)? as usize;
                        let v = variants.get(index).ok_or_else(|| {
                            format!(
                                "`{name}` has no variant {index} ({} variants)",
                                variants.len()
                            )
                        })?;
                        let payload = match &v.fields {
                            VariantFields::Unit => return Ok(Value::String(v.name.clone())),
                            VariantFields::Newtype(s) => self.value(s, d)?,
                            VariantFields::Tuple(items) => self.items(items, d)?,
                            VariantFields::Struct(fields) => self.fields(fields, d)?,
                        };
                        let mut map = Map::new();
                        map.insert(v.name.clone(), payload);
                        Value::Object(map)
                    }
                }
            }
        })
    }

    fn items(&mut self, items: &[Shape], depth: usize) -> Result<Value, String> {
        let mut out = Vec::with_capacity(items.len());
        for s in items {
            out.push(self.value(s, depth)?);
        }
        Ok(Value::Array(out))
    }

    fn fields(&mut self, fields: &[Field], depth: usize) -> Result<Value, String> {
        let mut map = Map::new();
        for f in fields {
            let v = self
                .value(&f.shape, depth)
                .map_err(|e| format!("field `{}`: {e}", f.name))?;
            map.insert(f.name.clone(), v);
        }
        Ok(Value::Object(map))
    }
}

fn big_unsigned(v: u128) -> Value {
    u64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from)
}

fn big_signed(v: i128) -> Value {
    i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from)
}

/// Encodes the JSON `value` as postcard bytes of `shape`, or says what does not fit.
pub(crate) fn encode_json(
    value: &Value,
    shape: &Shape,
    types: &TypeTable,
) -> Result<Vec<u8>, String> {
    encode_json_as(value, shape, types, false)
}

/// [`encode_json`] into postcard with fixed-width integers (`codec::encode_fixint`) if
/// `fixint`: a shared value's stored form.
pub(crate) fn encode_json_as(
    value: &Value,
    shape: &Shape,
    types: &TypeTable,
    fixint: bool,
) -> Result<Vec<u8>, String> {
    let mut out = Out {
        bytes: Vec::new(),
        fixint,
    };
    encode(value, shape, types, &mut out, 0)?;
    Ok(out.bytes)
}

/// Where `encode` writes, and how it writes integer values.
struct Out {
    bytes: Vec<u8>,
    fixint: bool,
}

impl std::ops::Deref for Out {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl std::ops::DerefMut for Out {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

/// An unsigned integer value of `bits` bits (checked to fit by the caller).
fn put_unsigned(out: &mut Out, v: u128, bits: u32) {
    if out.fixint {
        out.bytes
            .extend_from_slice(&v.to_le_bytes()[..bits as usize / 8]);
    } else {
        put_varint(out, v);
    }
}

/// A signed integer value of `bits` bits (checked to fit by the caller).
fn put_signed_int(out: &mut Out, v: i128, bits: u32) {
    if out.fixint {
        // Two's complement: the low `bits` of its bits, as an unsigned value's.
        put_unsigned(out, v as u128, bits);
    } else {
        put_signed(out, v);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_signed(out: &mut Vec<u8>, v: i128) {
    put_varint(out, ((v << 1) ^ (v >> 127)) as u128);
}

fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, got {value}")
}

fn unsigned(value: &Value, max: u128, ty: &str) -> Result<u128, String> {
    let v = match value {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => s.parse::<u128>().ok(),
        _ => None,
    }
    .ok_or_else(|| expected(&format!("an integer of type {ty}"), value))?;
    if v > max {
        return Err(format!("{v} does not fit in {ty}"));
    }
    Ok(v)
}

fn signed(value: &Value, min: i128, max: i128, ty: &str) -> Result<i128, String> {
    let v = match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    }
    .ok_or_else(|| expected(&format!("an integer of type {ty}"), value))?;
    if v < min || v > max {
        return Err(format!("{v} does not fit in {ty}"));
    }
    Ok(v)
}

fn encode(
    value: &Value,
    shape: &Shape,
    types: &TypeTable,
    out: &mut Out,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("a value nested deeper than {MAX_DEPTH} levels"));
    }
    let d = depth + 1;
    match shape {
        Shape::Unit => match value {
            Value::Null => {}
            _ => return Err(expected("null", value)),
        },
        Shape::Bool => out.push(u8::from(
            value
                .as_bool()
                .ok_or_else(|| expected("true or false", value))?,
        )),
        Shape::U8 => out.push(unsigned(value, u8::MAX.into(), "u8")? as u8),
        Shape::I8 => out.push(signed(value, i8::MIN.into(), i8::MAX.into(), "i8")? as i8 as u8),
        Shape::U16 => put_unsigned(out, unsigned(value, u16::MAX.into(), "u16")?, 16),
        Shape::U32 => put_unsigned(out, unsigned(value, u32::MAX.into(), "u32")?, 32),
        Shape::U64 => put_unsigned(out, unsigned(value, u64::MAX.into(), "u64")?, 64),
        Shape::U128 => put_unsigned(out, unsigned(value, u128::MAX, "u128")?, 128),
        Shape::I16 => put_signed_int(
            out,
            signed(value, i16::MIN.into(), i16::MAX.into(), "i16")?,
            16,
        ),
        Shape::I32 => put_signed_int(
            out,
            signed(value, i32::MIN.into(), i32::MAX.into(), "i32")?,
            32,
        ),
        Shape::I64 => put_signed_int(
            out,
            signed(value, i64::MIN.into(), i64::MAX.into(), "i64")?,
            64,
        ),
        Shape::I128 => put_signed_int(out, signed(value, i128::MIN, i128::MAX, "i128")?, 128),
        Shape::F32 => {
            let f = value.as_f64().ok_or_else(|| expected("a number", value))?;
            out.extend_from_slice(&(f as f32).to_le_bytes());
        }
        Shape::F64 => {
            let f = value.as_f64().ok_or_else(|| expected("a number", value))?;
            out.extend_from_slice(&f.to_le_bytes());
        }
        Shape::Char | Shape::Str => {
            let s = value.as_str().ok_or_else(|| expected("a string", value))?;
            if *shape == Shape::Char && s.chars().count() != 1 {
                return Err(expected("a string of one char", value));
            }
            put_varint(out, s.len() as u128);
            out.extend_from_slice(s.as_bytes());
        }
        Shape::Bytes => {
            let items = value
                .as_array()
                .ok_or_else(|| expected("an array of bytes", value))?;
            put_varint(out, items.len() as u128);
            for item in items {
                out.push(unsigned(item, 255, "u8")? as u8);
            }
        }
        Shape::Option(s) => match value {
            Value::Null => out.push(0),
            v => {
                out.push(1);
                encode(v, s, types, out, d)?;
            }
        },
        Shape::Seq(s) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected("an array", value))?;
            put_varint(out, items.len() as u128);
            for item in items {
                encode(item, s, types, out, d)?;
            }
        }
        Shape::Map { key, value: vs } => {
            let map = value
                .as_object()
                .ok_or_else(|| expected("an object", value))?;
            put_varint(out, map.len() as u128);
            for (k, v) in map {
                let key_value = if **key == Shape::Str || **key == Shape::Char {
                    Value::String(k.clone())
                } else {
                    serde_json::from_str(k)
                        .map_err(|_| format!("map key {k:?} is not a `{key}`"))?
                };
                encode(&key_value, key, types, out, d)?;
                encode(v, vs, types, out, d)?;
            }
        }
        Shape::Tuple(items) => encode_items(value, items, types, out, d)?,
        Shape::Array { item, len } => {
            let items = value
                .as_array()
                .ok_or_else(|| expected("an array", value))?;
            if items.len() != *len {
                return Err(format!(
                    "expected an array of {len} items, got {}",
                    items.len()
                ));
            }
            for v in items {
                encode(v, item, types, out, d)?;
            }
        }
        Shape::Result { ok, err } => {
            let map = value
                .as_object()
                .filter(|m| m.len() == 1)
                .ok_or_else(|| expected("{\"Ok\": …} or {\"Err\": …}", value))?;
            if let Some(v) = map.get("Ok") {
                out.push(0);
                encode(v, ok, types, out, d)?;
            } else if let Some(v) = map.get("Err") {
                out.push(1);
                encode(v, err, types, out, d)?;
            } else {
                return Err(expected("{\"Ok\": …} or {\"Err\": …}", value));
            }
        }
        Shape::Loan => return Err("a loan cannot be written by shape".to_owned()),
        Shape::File | Shape::Fd | Shape::Segment => {
            return Err(format!("a {shape} cannot be written by shape"))
        }
        Shape::Named(name) => {
            let def = types
                .get(name)
                .ok_or_else(|| format!("type `{name}` is not in the type table"))?;
            match def {
                TypeDef::Unit => {}
                TypeDef::Newtype(s) => encode(value, s, types, out, d)?,
                TypeDef::Tuple(items) => encode_items(value, items, types, out, d)?,
                TypeDef::Struct(fields) => encode_fields(value, name, fields, types, out, d)?,
                TypeDef::Enum(variants) => {
                    let (vname, payload) = match value {
                        Value::String(s) => (s.as_str(), None),
                        Value::Object(m) if m.len() == 1 => {
                            let (k, v) = m.iter().next().expect("one entry");
                            (k.as_str(), Some(v))
                        }
                        _ => return Err(expected(&format!("a variant of `{name}`"), value)),
                    };
                    let Some(index) = variants.iter().position(|v| v.name == vname) else {
                        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                        return Err(format!(
                            "`{name}` has no variant `{vname}` (its variants: {})",
                            names.join(", ")
                        ));
                    };
                    put_varint(out, index as u128);
                    let variant = &variants[index];
                    match (&variant.fields, payload) {
                        (VariantFields::Unit, None | Some(Value::Null)) => {}
                        (VariantFields::Newtype(s), Some(v)) => encode(v, s, types, out, d)?,
                        (VariantFields::Tuple(items), Some(v)) => {
                            encode_items(v, items, types, out, d)?
                        }
                        (VariantFields::Struct(fields), Some(v)) => {
                            encode_fields(v, &variant.name, fields, types, out, d)?
                        }
                        _ => {
                            return Err(format!(
                                "variant `{vname}` of `{name}` takes {}",
                                match &variant.fields {
                                    VariantFields::Unit => "no value".to_owned(),
                                    VariantFields::Newtype(s) => format!("a `{s}`"),
                                    VariantFields::Tuple(items) =>
                                        format!("{} values", items.len()),
                                    VariantFields::Struct(_) => "an object of fields".to_owned(),
                                }
                            ))
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn encode_items(
    value: &Value,
    items: &[Shape],
    types: &TypeTable,
    out: &mut Out,
    depth: usize,
) -> Result<(), String> {
    let values = value
        .as_array()
        .ok_or_else(|| expected("an array", value))?;
    if values.len() != items.len() {
        return Err(format!(
            "expected an array of {} items, got {}",
            items.len(),
            values.len()
        ));
    }
    for (v, s) in values.iter().zip(items) {
        encode(v, s, types, out, depth)?;
    }
    Ok(())
}

fn encode_fields(
    value: &Value,
    name: &str,
    fields: &[Field],
    types: &TypeTable,
    out: &mut Out,
    depth: usize,
) -> Result<(), String> {
    let map = value
        .as_object()
        .ok_or_else(|| expected(&format!("an object of `{name}`'s fields"), value))?;
    if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
        let list: Vec<String> = fields
            .iter()
            .map(|f| format!("{}: {}", f.name, f.shape))
            .collect();
        return Err(format!(
            "`{name}` has no field `{unknown}` (its fields: {})",
            list.join(", ")
        ));
    }
    for f in fields {
        let v = match map.get(&f.name) {
            Some(v) => v,
            None if matches!(f.shape, Shape::Option(_)) => &Value::Null,
            None => {
                return Err(format!(
                    "`{name}` is missing field `{}` ({})",
                    f.name, f.shape
                ))
            }
        };
        encode(v, &f.shape, types, out, depth).map_err(|e| format!("field `{}`: {e}", f.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::trace::Tracer;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    struct Point {
        x: i32,
        y: u64,
        tag: Option<char>,
        kind: Kind,
        big: u128,
        f: f64,
        pair: (bool, i8),
        arr: [u16; 3],
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    enum Kind {
        #[default]
        A,
        B(u32),
        C {
            name: String,
        },
        D(Vec<u8>, i64),
    }

    fn shape_of<T: for<'de> Deserialize<'de>>() -> (Shape, TypeTable) {
        let mut tracer = Tracer::default();
        let shape = tracer.trace::<T>().unwrap();
        (shape, tracer.types().unwrap())
    }

    #[test]
    fn json_round_trips_match_serde() {
        let (shape, types) = shape_of::<Point>();
        for kind in [
            Kind::A,
            Kind::B(7),
            Kind::C { name: "zé".into() },
            Kind::D(vec![1, 2], -5),
        ] {
            let p = Point {
                x: -3,
                y: u64::MAX,
                tag: Some('q'),
                kind,
                big: u128::from(u64::MAX),
                f: 2.5,
                pair: (true, -128),
                arr: [1, 300, 65535],
            };
            let bytes = postcard::to_stdvec(&p).unwrap();
            let json = decode_json(&bytes, &shape, &types).unwrap();
            assert_eq!(json, serde_json::to_value(&p).unwrap());
            assert_eq!(encode_json(&json, &shape, &types).unwrap(), bytes);
        }
        // Kind::C holds a String: no largest size.
        assert_eq!(max_encoded_size(&shape, &types), None);

        // Integers beyond 64 bits, which serde_json's numbers cannot hold, are strings.
        let bytes = postcard::to_stdvec(&u128::MAX).unwrap();
        let json = decode_json(&bytes, &Shape::U128, &types).unwrap();
        assert_eq!(json, Value::String(u128::MAX.to_string()));
        assert_eq!(encode_json(&json, &Shape::U128, &types).unwrap(), bytes);
        let bytes = postcard::to_stdvec(&i128::MIN).unwrap();
        let json = decode_json(&bytes, &Shape::I128, &types).unwrap();
        assert_eq!(encode_json(&json, &Shape::I128, &types).unwrap(), bytes);
    }

    /// The fixed-width form (a shared value's stored bytes) read and written by shape, as
    /// serde writes and reads it: every integer at its width, negative ones sign-extended.
    #[test]
    fn fixint_json_round_trips_match_serde() {
        use crate::wire::codec::{decode_exact_fixint, encode_fixint};
        let (shape, types) = shape_of::<Point>();
        for (kind, x, y) in [
            (Kind::A, -3, u64::MAX),
            (Kind::B(7), i32::MIN, 0),
            (Kind::C { name: "zé".into() }, i32::MAX, 1 << 40),
            (Kind::D(vec![1, 2], -5), -1, 300),
        ] {
            let p = Point {
                x,
                y,
                tag: Some('q'),
                kind,
                big: u128::from(u64::MAX) - 7,
                f: -2.5,
                pair: (false, -128),
                arr: [1, 300, 65535],
            };
            let bytes = encode_fixint(&p).unwrap();
            assert_ne!(bytes, postcard::to_stdvec(&p).unwrap());
            assert_eq!(decode_exact_fixint::<Point>(&bytes, u64::MAX).unwrap(), p);
            let json = decode_json_as(&bytes, &shape, &types, true).unwrap();
            assert_eq!(json, serde_json::to_value(&p).unwrap());
            assert_eq!(encode_json_as(&json, &shape, &types, true).unwrap(), bytes);
        }
        // `[u64; 8]`: eight words, nothing else.
        let words = [u64::MAX, 0, 1, 2, 3, 4, 5, 1 << 49];
        let bytes = encode_fixint(&words).unwrap();
        assert_eq!(bytes.len(), 64);
        assert_eq!(&bytes[..8], &u64::MAX.to_le_bytes());
        assert_eq!(decode_exact_fixint::<[u64; 8]>(&bytes, 64).unwrap(), words);
        // A short input is an error, never a read past its end.
        assert!(decode_exact_fixint::<[u64; 8]>(&bytes[..63], 64).is_err());
        assert!(decode_json_as(&bytes[..63], &shape_of::<[u64; 8]>().0, &types, true).is_err());
    }

    #[test]
    fn sizes_and_hostile_bytes() {
        let (shape, types) = shape_of::<(u64, [u8; 4], Option<bool>)>();
        assert_eq!(max_encoded_size(&shape, &types), Some(10 + 4 + 2));
        let (shape, types) = shape_of::<Vec<()>>();
        let err = decode_json(&[0xff, 0xff, 0xff, 0xff, 0x0f], &shape, &types).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let (shape, types) = shape_of::<String>();
        let err = decode_json(&[0xff, 0xff, 0x03, b'a'], &shape, &types).unwrap_err();
        assert!(err.contains("only 1 are left"), "{err}");
        let err = encode_json(&serde_json::json!(5), &Shape::U8, &types);
        assert!(err.is_ok());
        let err = encode_json(&serde_json::json!(256), &Shape::U8, &types).unwrap_err();
        assert!(err.contains("does not fit in u8"), "{err}");
    }
}
