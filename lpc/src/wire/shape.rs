//! The shapes of the types an interface carries: what crosses, in serde's data model, with
//! user types by name (their definitions in a table beside). Traced from the types' own
//! `Deserialize` (`wire::trace`), sent in the handshake, compared per method at connect, shown
//! by `lpc describe`, and used to check JSON arguments strictly.
//!
//! The JSON form (`lpc describe --json`) is serde's default for these types and is documented
//! in `docs/shapes.md`; it is meant to stay stable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The serde name `lpc::Loan` uses for itself, so that tracing recognises it.
pub(crate) const LOAN_NAME: &str = "lpc::Loan";
/// The serde names the handles passed in calls use, so that tracing recognises them.
pub(crate) const FILE_NAME: &str = "std::fs::File";
pub(crate) const FD_NAME: &str = "std::os::fd::OwnedFd";
pub(crate) const SEGMENT_NAME: &str = "lpc::Segment";
/// Deepest shape accepted from a peer (a guard against a stack overflow while decoding).
const MAX_SHAPE_DEPTH: usize = 64;

/// The shape of a value as it crosses between the processes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `()`.
    Unit,
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    Str,
    /// A byte buffer (`Vec<u8>` and `&[u8]` parameters and results, `serde_bytes`).
    Bytes,
    /// `Option<T>`.
    Option(Box<Shape>),
    /// A sequence: `Vec<T>`, `&[T]`, sets.
    Seq(Box<Shape>),
    /// A map.
    Map {
        /// The keys' shape.
        key: Box<Shape>,
        /// The values' shape.
        value: Box<Shape>,
    },
    /// A tuple.
    Tuple(Vec<Shape>),
    /// A fixed-size array `[T; N]`.
    Array {
        /// The elements' shape.
        item: Box<Shape>,
        /// N.
        len: usize,
    },
    /// `Result<T, E>` inside another type.
    Result {
        /// The `Ok` payload.
        ok: Box<Shape>,
        /// The `Err` payload.
        err: Box<Shape>,
    },
    /// A user type, defined in the interface's type table under this (serde) name.
    Named(String),
    /// An `lpc::Loan`: a byte buffer lent in place (a handle crosses, not the bytes).
    Loan,
    /// A `std::fs::File` passed by the kernel (its descriptor crosses, not its name).
    File,
    /// A descriptor (`OwnedFd`, `BorrowedFd`) passed by the kernel.
    Fd,
    /// An `lpc::Segment` passed by the kernel, read-write or read-only as the sender holds it.
    Segment,
}

/// Mirror of [`Shape`] for decoding, behind a depth guard (a peer's welcome is hostile input).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ShapeRepr {
    Unit,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Option(Box<Shape>),
    Seq(Box<Shape>),
    Map { key: Box<Shape>, value: Box<Shape> },
    Tuple(Vec<Shape>),
    Array { item: Box<Shape>, len: usize },
    Result { ok: Box<Shape>, err: Box<Shape> },
    Named(String),
    Loan,
    File,
    Fd,
    Segment,
}

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(d.get() - 1));
            }
        }
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let _level = Level;
        if depth > MAX_SHAPE_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "a shape nested deeper than {MAX_SHAPE_DEPTH} levels"
            )));
        }
        Ok(match ShapeRepr::deserialize(deserializer)? {
            ShapeRepr::Unit => Shape::Unit,
            ShapeRepr::Bool => Shape::Bool,
            ShapeRepr::I8 => Shape::I8,
            ShapeRepr::I16 => Shape::I16,
            ShapeRepr::I32 => Shape::I32,
            ShapeRepr::I64 => Shape::I64,
            ShapeRepr::I128 => Shape::I128,
            ShapeRepr::U8 => Shape::U8,
            ShapeRepr::U16 => Shape::U16,
            ShapeRepr::U32 => Shape::U32,
            ShapeRepr::U64 => Shape::U64,
            ShapeRepr::U128 => Shape::U128,
            ShapeRepr::F32 => Shape::F32,
            ShapeRepr::F64 => Shape::F64,
            ShapeRepr::Char => Shape::Char,
            ShapeRepr::Str => Shape::Str,
            ShapeRepr::Bytes => Shape::Bytes,
            ShapeRepr::Option(s) => Shape::Option(s),
            ShapeRepr::Seq(s) => Shape::Seq(s),
            ShapeRepr::Map { key, value } => Shape::Map { key, value },
            ShapeRepr::Tuple(s) => Shape::Tuple(s),
            ShapeRepr::Array { item, len } => Shape::Array { item, len },
            ShapeRepr::Result { ok, err } => Shape::Result { ok, err },
            ShapeRepr::Named(n) => Shape::Named(n),
            ShapeRepr::Loan => Shape::Loan,
            ShapeRepr::File => Shape::File,
            ShapeRepr::Fd => Shape::Fd,
            ShapeRepr::Segment => Shape::Segment,
        })
    }
}

/// The definition of a user type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeDef {
    /// `struct S;`
    Unit,
    /// `struct S(T);`
    Newtype(Shape),
    /// `struct S(A, B);`
    Tuple(Vec<Shape>),
    /// `struct S { a: A, b: B }`, fields in declaration order.
    Struct(Vec<Field>),
    /// `enum E { … }`, variants in declaration order.
    Enum(Vec<Variant>),
}

/// A named field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// Its (serde) name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
}

/// An enum variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Variant {
    /// Its (serde) name.
    pub name: String,
    /// What it carries.
    pub fields: VariantFields,
}

/// What an enum variant carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantFields {
    /// Nothing.
    Unit,
    /// One value: `V(T)`.
    Newtype(Shape),
    /// Values: `V(A, B)`.
    Tuple(Vec<Shape>),
    /// Named fields: `V { a: A }`.
    Struct(Vec<Field>),
}

/// User types by name.
pub type TypeTable = BTreeMap<String, TypeDef>;

impl fmt::Display for Shape {
    /// The shape written as a Rust type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Unit => f.write_str("()"),
            Shape::Bool => f.write_str("bool"),
            Shape::I8 => f.write_str("i8"),
            Shape::I16 => f.write_str("i16"),
            Shape::I32 => f.write_str("i32"),
            Shape::I64 => f.write_str("i64"),
            Shape::I128 => f.write_str("i128"),
            Shape::U8 => f.write_str("u8"),
            Shape::U16 => f.write_str("u16"),
            Shape::U32 => f.write_str("u32"),
            Shape::U64 => f.write_str("u64"),
            Shape::U128 => f.write_str("u128"),
            Shape::F32 => f.write_str("f32"),
            Shape::F64 => f.write_str("f64"),
            Shape::Char => f.write_str("char"),
            Shape::Str => f.write_str("String"),
            Shape::Bytes => f.write_str("Vec<u8>"),
            Shape::Option(s) => write!(f, "Option<{s}>"),
            Shape::Seq(s) => write!(f, "Vec<{s}>"),
            Shape::Map { key, value } => write!(f, "Map<{key}, {value}>"),
            Shape::Tuple(items) => {
                f.write_str("(")?;
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{s}")?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Shape::Array { item, len } => write!(f, "[{item}; {len}]"),
            Shape::Result { ok, err } => write!(f, "Result<{ok}, {err}>"),
            Shape::Named(n) => f.write_str(n),
            Shape::Loan => f.write_str("lpc::Loan"),
            Shape::File => f.write_str("std::fs::File"),
            Shape::Fd => f.write_str("std::os::fd::OwnedFd"),
            Shape::Segment => f.write_str("lpc::Segment"),
        }
    }
}

fn fields_rust(fields: &[Field]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.name, f.shape))
        .collect();
    format!("{{ {} }}", list.join(", "))
}

fn tuple_rust(items: &[Shape]) -> String {
    let list: Vec<String> = items.iter().map(Shape::to_string).collect();
    format!("({})", list.join(", "))
}

impl TypeDef {
    /// The definition written as Rust: `struct MyInfo { red: f64, blue: f64 }`.
    pub fn rust(&self, name: &str) -> String {
        match self {
            TypeDef::Unit => format!("struct {name};"),
            TypeDef::Newtype(s) => format!("struct {name}({s});"),
            TypeDef::Tuple(items) => format!("struct {name}{};", tuple_rust(items)),
            TypeDef::Struct(fields) => format!("struct {name} {}", fields_rust(fields)),
            TypeDef::Enum(variants) => {
                let list: Vec<String> = variants.iter().map(Variant::rust).collect();
                format!("enum {name} {{ {} }}", list.join(", "))
            }
        }
    }
}

impl Variant {
    fn rust(&self) -> String {
        match &self.fields {
            VariantFields::Unit => self.name.clone(),
            VariantFields::Newtype(s) => format!("{}({s})", self.name),
            VariantFields::Tuple(items) => format!("{}{}", self.name, tuple_rust(items)),
            VariantFields::Struct(fields) => format!("{} {}", self.name, fields_rust(fields)),
        }
    }
}

/// The user types `shape` refers to, directly or through other types, in first-use order.
pub fn referenced<'a>(
    shapes: impl IntoIterator<Item = &'a Shape>,
    types: &TypeTable,
) -> Vec<String> {
    fn walk(shape: &Shape, types: &TypeTable, out: &mut Vec<String>) {
        match shape {
            Shape::Option(s) | Shape::Seq(s) => walk(s, types, out),
            Shape::Map { key, value } => {
                walk(key, types, out);
                walk(value, types, out);
            }
            Shape::Result { ok, err } => {
                walk(ok, types, out);
                walk(err, types, out);
            }
            Shape::Array { item, .. } => walk(item, types, out),
            Shape::Tuple(items) => items.iter().for_each(|s| walk(s, types, out)),
            Shape::Named(name) => {
                if out.contains(name) {
                    return;
                }
                out.push(name.clone());
                if let Some(def) = types.get(name) {
                    for s in def_shapes(def) {
                        walk(s, types, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for shape in shapes {
        walk(shape, types, &mut out);
    }
    out
}

/// Every shape directly inside a definition.
fn def_shapes(def: &TypeDef) -> Vec<&Shape> {
    match def {
        TypeDef::Unit => Vec::new(),
        TypeDef::Newtype(s) => vec![s],
        TypeDef::Tuple(items) => items.iter().collect(),
        TypeDef::Struct(fields) => fields.iter().map(|f| &f.shape).collect(),
        TypeDef::Enum(variants) => variants
            .iter()
            .flat_map(|v| match &v.fields {
                VariantFields::Unit => Vec::new(),
                VariantFields::Newtype(s) => vec![s],
                VariantFields::Tuple(items) => items.iter().collect(),
                VariantFields::Struct(fields) => fields.iter().map(|f| &f.shape).collect(),
            })
            .collect(),
    }
}

/// A fingerprint of `shapes` and of every user type they refer to (names included): equal
/// fingerprints mean the same bytes decode into the same values on both sides.
pub fn fingerprint<'a>(
    name: &str,
    shapes: impl IntoIterator<Item = &'a Shape> + Clone,
    types: &TypeTable,
) -> u64 {
    let mut canonical = postcard::to_stdvec(name).unwrap_or_default();
    for shape in shapes.clone() {
        canonical.extend(postcard::to_stdvec(shape).unwrap_or_default());
    }
    for used in referenced(shapes, types) {
        canonical.extend(postcard::to_stdvec(&used).unwrap_or_default());
        canonical.extend(postcard::to_stdvec(&types.get(&used)).unwrap_or_default());
    }
    super::hash::fnv1a64(&canonical)
}

/// Two sides' view of shapes, for [`difference`].
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The user types of this side.
    pub types: &'a TypeTable,
    /// How messages call this side ("the service", "this client").
    pub label: &'a str,
}

/// The first difference between shape `a` (on side `sa`) and `b` (on side `sb`), if any,
/// naming the type and what differs.
pub fn difference(a: &Shape, sa: Side<'_>, b: &Shape, sb: Side<'_>) -> Option<String> {
    let mut seen = BTreeSet::new();
    diff(a, sa, b, sb, &mut seen)
}

fn diff(
    a: &Shape,
    sa: Side<'_>,
    b: &Shape,
    sb: Side<'_>,
    seen: &mut BTreeSet<(String, String)>,
) -> Option<String> {
    let differ = || Some(format!("`{a}` in {}, `{b}` in {}", sa.label, sb.label));
    match (a, b) {
        // A byte buffer and a sequence of `u8` (a `Vec<u8>` field without `serde_bytes`) are
        // the same bytes in postcard (a length, then one byte each) and the same JSON array.
        (Shape::Bytes, Shape::Seq(item)) | (Shape::Seq(item), Shape::Bytes)
            if **item == Shape::U8 =>
        {
            None
        }
        (Shape::Option(x), Shape::Option(y)) | (Shape::Seq(x), Shape::Seq(y)) => {
            diff(x, sa, y, sb, seen)
        }
        (Shape::Map { key: k1, value: v1 }, Shape::Map { key: k2, value: v2 })
        | (Shape::Result { ok: k1, err: v1 }, Shape::Result { ok: k2, err: v2 }) => {
            diff(k1, sa, k2, sb, seen).or_else(|| diff(v1, sa, v2, sb, seen))
        }
        (Shape::Array { item: x, len: n }, Shape::Array { item: y, len: m }) => {
            if n != m {
                return differ();
            }
            diff(x, sa, y, sb, seen)
        }
        (Shape::Tuple(xs), Shape::Tuple(ys)) => {
            if xs.len() != ys.len() {
                return differ();
            }
            xs.iter()
                .zip(ys)
                .find_map(|(x, y)| diff(x, sa, y, sb, seen))
        }
        (Shape::Named(x), Shape::Named(y)) => {
            if x != y {
                return differ();
            }
            if !seen.insert((x.clone(), y.clone())) {
                return None; // compared already, or being compared (recursion)
            }
            match (sa.types.get(x), sb.types.get(y)) {
                (Some(da), Some(db)) => def_diff(x, da, sa, db, sb, seen),
                (None, None) => None,
                _ => Some(format!("`{x}` is not defined on one side")),
            }
        }
        _ if a == b => None,
        _ => differ(),
    }
}

fn def_diff(
    name: &str,
    a: &TypeDef,
    sa: Side<'_>,
    b: &TypeDef,
    sb: Side<'_>,
    seen: &mut BTreeSet<(String, String)>,
) -> Option<String> {
    let whole = || {
        Some(format!(
            "`{name}` is `{}` in {}, `{}` in {}",
            a.rust(name),
            sa.label,
            b.rust(name),
            sb.label
        ))
    };
    match (a, b) {
        (TypeDef::Unit, TypeDef::Unit) => None,
        (TypeDef::Newtype(x), TypeDef::Newtype(y)) => {
            diff(x, sa, y, sb, seen).map(|d| format!("`{name}`: {d}"))
        }
        (TypeDef::Tuple(xs), TypeDef::Tuple(ys)) => {
            if xs.len() != ys.len() {
                return whole();
            }
            xs.iter().zip(ys).enumerate().find_map(|(i, (x, y))| {
                diff(x, sa, y, sb, seen).map(|d| format!("`{name}` field {i}: {d}"))
            })
        }
        (TypeDef::Struct(xs), TypeDef::Struct(ys)) => {
            fields_diff(name, "field", xs, sa, ys, sb, seen)
        }
        (TypeDef::Enum(xs), TypeDef::Enum(ys)) => {
            for i in 0..xs.len().max(ys.len()) {
                match (xs.get(i), ys.get(i)) {
                    (Some(x), Some(y)) if x.name != y.name => {
                        return Some(format!(
                            "`{name}` variant {i} is `{}` in {}, `{}` in {}",
                            x.rust(),
                            sa.label,
                            y.rust(),
                            sb.label
                        ))
                    }
                    (Some(x), Some(y)) => {
                        let inner = match (&x.fields, &y.fields) {
                            (VariantFields::Unit, VariantFields::Unit) => None,
                            (VariantFields::Newtype(p), VariantFields::Newtype(q)) => {
                                diff(p, sa, q, sb, seen)
                            }
                            (VariantFields::Tuple(p), VariantFields::Tuple(q))
                                if p.len() == q.len() =>
                            {
                                p.iter().zip(q).find_map(|(p, q)| diff(p, sa, q, sb, seen))
                            }
                            (VariantFields::Struct(p), VariantFields::Struct(q)) => fields_diff(
                                &format!("{name}::{}", x.name),
                                "field",
                                p,
                                sa,
                                q,
                                sb,
                                seen,
                            )
                            .map(|d| d.replacen('`', "", 0)),
                            _ => Some(format!(
                                "`{}` in {}, `{}` in {}",
                                x.rust(),
                                sa.label,
                                y.rust(),
                                sb.label
                            )),
                        };
                        if let Some(d) = inner {
                            return Some(format!("`{name}` variant {i} `{}`: {d}", x.name));
                        }
                    }
                    (Some(x), None) => {
                        return Some(format!(
                            "`{name}` variant {i} `{}` is in {} only",
                            x.rust(),
                            sa.label
                        ))
                    }
                    (None, Some(y)) => {
                        return Some(format!(
                            "`{name}` variant {i} `{}` is in {} only",
                            y.rust(),
                            sb.label
                        ))
                    }
                    (None, None) => {}
                }
            }
            None
        }
        _ => whole(),
    }
}

fn fields_diff(
    name: &str,
    what: &str,
    xs: &[Field],
    sa: Side<'_>,
    ys: &[Field],
    sb: Side<'_>,
    seen: &mut BTreeSet<(String, String)>,
) -> Option<String> {
    for i in 0..xs.len().max(ys.len()) {
        match (xs.get(i), ys.get(i)) {
            (Some(x), Some(y)) => {
                if x.name != y.name || x.shape.to_string() != y.shape.to_string() {
                    if x.name == y.name {
                        if let Some(d) = diff(&x.shape, sa, &y.shape, sb, seen) {
                            return Some(format!("`{name}` {what} {i} `{}`: {d}", x.name));
                        }
                    }
                    return Some(format!(
                        "`{name}` {what} {i} is `{}: {}` in {}, `{}: {}` in {}",
                        x.name, x.shape, sa.label, y.name, y.shape, sb.label
                    ));
                }
                if let Some(d) = diff(&x.shape, sa, &y.shape, sb, seen) {
                    return Some(format!("`{name}` {what} {i} `{}`: {d}", x.name));
                }
            }
            (Some(x), None) => {
                return Some(format!(
                    "`{name}` {what} {i} `{}: {}` is in {} only",
                    x.name, x.shape, sa.label
                ))
            }
            (None, Some(y)) => {
                return Some(format!(
                    "`{name}` {what} {i} `{}: {}` is in {} only",
                    y.name, y.shape, sb.label
                ))
            }
            (None, None) => {}
        }
    }
    None
}

/// At most this many JSON values in an example (a peer's shapes may name an array of 2^60
/// elements, or types that each hold a thousand of the next).
const MAX_EXAMPLE_VALUES: usize = 1024;

/// A JSON value of `shape`: what `lpc describe` shows as an example argument. At most
/// [`MAX_EXAMPLE_VALUES`] values: past them, `null` (and arrays cut short).
pub fn example_json(shape: &Shape, types: &TypeTable) -> Value {
    fn example(shape: &Shape, types: &TypeTable, depth: usize, left: &mut usize) -> Value {
        if depth > 8 || *left == 0 {
            return Value::Null;
        }
        *left -= 1;
        let d = depth + 1;
        match shape {
            Shape::Unit => Value::Null,
            Shape::Bool => Value::Bool(false),
            Shape::I8 | Shape::I16 | Shape::I32 | Shape::I64 | Shape::I128 => 0.into(),
            Shape::U8 | Shape::U16 | Shape::U32 | Shape::U64 | Shape::U128 => 0.into(),
            Shape::F32 | Shape::F64 => serde_json::json!(0.0),
            Shape::Char => "a".into(),
            Shape::Str => "".into(),
            Shape::Bytes | Shape::Loan => serde_json::json!([]),
            Shape::File | Shape::Fd | Shape::Segment => Value::Null,
            Shape::Option(_) => Value::Null,
            Shape::Seq(s) => {
                if depth > 3 {
                    serde_json::json!([])
                } else {
                    Value::Array(vec![example(s, types, d, left)])
                }
            }
            Shape::Map { .. } => serde_json::json!({}),
            Shape::Tuple(items) => {
                Value::Array(items.iter().map(|s| example(s, types, d, left)).collect())
            }
            Shape::Array { item, len } => {
                let mut items = Vec::new();
                while items.len() < *len && *left > 0 {
                    items.push(example(item, types, d, left));
                }
                Value::Array(items)
            }
            Shape::Result { ok, .. } => serde_json::json!({ "Ok": example(ok, types, d, left) }),
            Shape::Named(name) => match types.get(name) {
                None | Some(TypeDef::Unit) => Value::Null,
                Some(TypeDef::Newtype(s)) => example(s, types, d, left),
                Some(TypeDef::Tuple(items)) => {
                    Value::Array(items.iter().map(|s| example(s, types, d, left)).collect())
                }
                Some(TypeDef::Struct(fields)) => Value::Object(
                    fields
                        .iter()
                        .map(|f| (f.name.clone(), example(&f.shape, types, d, left)))
                        .collect(),
                ),
                Some(TypeDef::Enum(variants)) => {
                    let first = variants
                        .iter()
                        .find(|v| v.fields == VariantFields::Unit)
                        .or(variants.first());
                    match first {
                        None => Value::Null,
                        Some(v) => match &v.fields {
                            VariantFields::Unit => Value::String(v.name.clone()),
                            VariantFields::Newtype(s) => {
                                serde_json::json!({ v.name.clone(): example(s, types, d, left) })
                            }
                            VariantFields::Tuple(items) => serde_json::json!({
                                v.name.clone(): items.iter().map(|s| example(s, types, d, left)).collect::<Vec<_>>()
                            }),
                            VariantFields::Struct(fields) => serde_json::json!({
                                v.name.clone(): fields
                                    .iter()
                                    .map(|f| (f.name.clone(), example(&f.shape, types, d, left)))
                                    .collect::<serde_json::Map<_, _>>()
                            }),
                        },
                    }
                }
            },
        }
    }
    let mut left = MAX_EXAMPLE_VALUES;
    example(shape, types, 0, &mut left)
}

/// Checks a JSON argument against `shape` strictly: every object for a struct (or a struct
/// variant) has exactly its fields. Other mismatches are left to the decoder, whose messages
/// already name what is wrong.
pub fn check_json(value: &Value, shape: &Shape, types: &TypeTable) -> Result<(), String> {
    fn fields(
        map: &serde_json::Map<String, Value>,
        name: &str,
        fields: &[Field],
        types: &TypeTable,
        depth: usize,
    ) -> Result<(), String> {
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
            match map.get(&f.name) {
                Some(v) => check(v, &f.shape, types, depth + 1)
                    .map_err(|e| format!("field `{}` of `{name}`: {e}", f.name))?,
                None if matches!(f.shape, Shape::Option(_)) => {}
                None => {
                    return Err(format!(
                        "`{name}` is missing field `{}` ({})",
                        f.name, f.shape
                    ))
                }
            }
        }
        Ok(())
    }
    fn check(value: &Value, shape: &Shape, types: &TypeTable, depth: usize) -> Result<(), String> {
        if depth > MAX_SHAPE_DEPTH {
            return Ok(());
        }
        match (shape, value) {
            (Shape::File | Shape::Fd | Shape::Segment, _) => Err(format!(
                "a {shape} is passed by the kernel (its descriptor), which a JSON call cannot \
                 carry: call this method from Rust"
            )),
            (Shape::Option(s), v) if !v.is_null() => check(v, s, types, depth + 1),
            (Shape::Seq(s), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    check(v, s, types, depth + 1).map_err(|e| format!("element {i}: {e}"))?;
                }
                Ok(())
            }
            (Shape::Array { item, .. }, Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    check(v, item, types, depth + 1).map_err(|e| format!("element {i}: {e}"))?;
                }
                Ok(())
            }
            (Shape::Tuple(shapes), Value::Array(items)) => {
                for (i, (v, s)) in items.iter().zip(shapes).enumerate() {
                    check(v, s, types, depth + 1).map_err(|e| format!("element {i}: {e}"))?;
                }
                Ok(())
            }
            (Shape::Map { value: s, .. }, Value::Object(map)) => {
                for (k, v) in map {
                    check(v, s, types, depth + 1).map_err(|e| format!("entry `{k}`: {e}"))?;
                }
                Ok(())
            }
            (Shape::Named(name), v) => match (types.get(name), v) {
                (Some(TypeDef::Struct(fs)), Value::Object(map)) => {
                    fields(map, name, fs, types, depth)
                }
                (Some(TypeDef::Newtype(s)), v) => check(v, s, types, depth + 1),
                (Some(TypeDef::Enum(variants)), Value::Object(map)) if map.len() == 1 => {
                    let (tag, inner) = map.iter().next().expect("one entry");
                    let Some(variant) = variants.iter().find(|v| &v.name == tag) else {
                        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                        return Err(format!(
                            "`{name}` has no variant `{tag}` (its variants: {})",
                            names.join(", ")
                        ));
                    };
                    match (&variant.fields, inner) {
                        (VariantFields::Struct(fs), Value::Object(m)) => {
                            fields(m, &format!("{name}::{tag}"), fs, types, depth)
                        }
                        (VariantFields::Newtype(s), v) => check(v, s, types, depth + 1),
                        _ => Ok(()),
                    }
                }
                (Some(TypeDef::Enum(variants)), Value::String(tag)) => {
                    if variants.iter().any(|v| &v.name == tag) {
                        Ok(())
                    } else {
                        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                        Err(format!(
                            "`{name}` has no variant `{tag}` (its variants: {})",
                            names.join(", ")
                        ))
                    }
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
    check(value, shape, types, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(defs: &[(&str, TypeDef)]) -> TypeTable {
        defs.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    }

    fn field(name: &str, shape: Shape) -> Field {
        Field {
            name: name.into(),
            shape,
        }
    }

    #[test]
    fn reordered_fields_are_named_with_the_first_difference() {
        let service = table(&[(
            "MyInfo",
            TypeDef::Struct(vec![field("blue", Shape::F64), field("red", Shape::F64)]),
        )]);
        let client = table(&[(
            "MyInfo",
            TypeDef::Struct(vec![field("red", Shape::F64), field("blue", Shape::F64)]),
        )]);
        let named = Shape::Named("MyInfo".into());
        let d = difference(
            &named,
            Side {
                types: &service,
                label: "the service",
            },
            &named,
            Side {
                types: &client,
                label: "this client",
            },
        );
        assert_eq!(
            d.as_deref(),
            Some("`MyInfo` field 0 is `blue: f64` in the service, `red: f64` in this client")
        );
        assert_ne!(
            fingerprint("m", [&named], &service),
            fingerprint("m", [&named], &client)
        );
        assert_eq!(
            fingerprint("m", [&named], &client),
            fingerprint("m", [&named], &client.clone())
        );
    }

    #[test]
    fn a_byte_buffer_and_a_sequence_of_bytes_are_the_same_on_the_wire() {
        let types = TypeTable::new();
        let side = |label| Side {
            types: &types,
            label,
        };
        let bytes = Shape::Bytes;
        let seq = Shape::Seq(Box::new(Shape::U8));
        assert_eq!(difference(&bytes, side("a"), &seq, side("b")), None);
        assert_eq!(difference(&seq, side("a"), &bytes, side("b")), None);
        // The postcard encodings agree, so a caller of either decodes the other's bytes.
        let data = vec![1u8, 2, 3, 250];
        assert_eq!(
            postcard::to_stdvec(&data).unwrap(),
            postcard::to_stdvec(&serde_bytes::ByteBuf::from(data.clone())).unwrap()
        );
        let other = Shape::Seq(Box::new(Shape::U16));
        assert!(difference(&bytes, side("a"), &other, side("b")).is_some());
    }

    #[test]
    fn a_shape_too_deep_is_refused_when_decoded() {
        let mut shape = Shape::U8;
        for _ in 0..100 {
            shape = Shape::Option(Box::new(shape));
        }
        let bytes = postcard::to_stdvec(&shape).unwrap();
        assert!(postcard::from_bytes::<Shape>(&bytes).is_err());
        let mut ok = Shape::U8;
        for _ in 0..10 {
            ok = Shape::Seq(Box::new(ok));
        }
        let bytes = postcard::to_stdvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Shape>(&bytes).unwrap(), ok);
    }

    #[test]
    fn json_arguments_are_checked_field_by_field() {
        let types = table(&[(
            "MyInfo",
            TypeDef::Struct(vec![
                field("red", Shape::F64),
                field("note", Shape::Option(Box::new(Shape::Str))),
            ]),
        )]);
        let named = Shape::Named("MyInfo".into());
        let check = |v: Value| check_json(&v, &named, &types);
        assert!(check(serde_json::json!({"red": 1.0})).is_ok());
        let unknown = check(serde_json::json!({"red": 1.0, "purple": 2})).unwrap_err();
        assert!(unknown.contains("no field `purple`"), "{unknown}");
        let missing = check(serde_json::json!({"note": "x"})).unwrap_err();
        assert_eq!(missing, "`MyInfo` is missing field `red` (f64)");
    }

    #[test]
    fn examples_of_a_peers_shapes_are_bounded() {
        fn count(v: &Value) -> usize {
            1 + match v {
                Value::Array(items) => items.iter().map(count).sum(),
                Value::Object(map) => map.values().map(count).sum(),
                _ => 0,
            }
        }
        let types = TypeTable::new();
        // An array of 2^60 elements.
        let huge = Shape::Array {
            item: Box::new(Shape::U8),
            len: 1 << 60,
        };
        assert!(count(&example_json(&huge, &types)) <= MAX_EXAMPLE_VALUES + 1);
        // Types that each hold a thousand of the next, eight deep: 1000^8 values unbounded.
        let mut types = TypeTable::new();
        for level in 0..8 {
            let next = Shape::Named(format!("T{}", level + 1));
            types.insert(format!("T{level}"), TypeDef::Tuple(vec![next; 1000]));
        }
        let wide = example_json(&Shape::Named("T0".into()), &types);
        assert!(
            count(&wide) <= 8 * 1000 + MAX_EXAMPLE_VALUES,
            "{}",
            count(&wide)
        );
        // An honest array is shown whole.
        let small = Shape::Array {
            item: Box::new(Shape::U8),
            len: 32,
        };
        assert_eq!(
            example_json(&small, &types),
            Value::Array(vec![0.into(); 32])
        );
    }
}
