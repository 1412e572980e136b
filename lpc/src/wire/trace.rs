//! Tracing the shape of a type through its `Deserialize`: a serde `Deserializer` that hands
//! out sample values (zero, empty, one element, a chosen variant) and records, for every
//! request the type makes of it, the shape of what it asked for.
//!
//! One deserialization sees one variant of each enum, so a type is traced in *passes*: each
//! pass deserializes the whole type again, choosing a variant not seen yet (or one that leads
//! to an enum with variants not seen yet), until every enum reachable from the type is known.
//! Recursion is cut where the type allows it: an enum met again inside itself takes a variant
//! already known to end; an option, sequence or map whose element turned out to be a type
//! already being traced is given no element in the next pass (its shape is known by then).
//!
//! Why not `serde-reflection` (which does this for serde formats in general): it needs each
//! nested enum traced on its own, by its Rust type, which the code `#[lpc::service]` generates
//! cannot name (it sees only the parameter types); and it overflows the stack on a recursive
//! enum whose first variant recurses. Both were tried (docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, IntoDeserializer, Visitor};

use super::shape::{Field, Shape, TypeDef, TypeTable, Variant, VariantFields};

thread_local! {
    static TRACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is tracing shapes now: a type whose `Deserialize` needs a live call
/// (`lpc::Loan`) hands the tracer a placeholder instead.
pub(crate) fn tracing() -> bool {
    TRACING.with(std::cell::Cell::get)
}

/// Most passes over one type: each explores at least one new variant or cuts one recursion.
const MAX_PASSES: usize = 10_000;
/// Deepest nesting of one sample value (a guard against a type that only ever nests).
const MAX_DEPTH: usize = 256;
/// Stands for "some `Result`" among the enums a variant reaches (results are keyed by path).
const RESULT_MARK: &str = "Result";

/// Why a type's shape could not be traced; the message names the type and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// What the tracer knows of an enum.
#[derive(Default)]
struct EnumState {
    names: Vec<&'static str>,
    /// Payloads of the variants seen, by index.
    seen: BTreeMap<u32, VariantFields>,
    /// Enums met while tracing each variant (to steer later passes towards unknown ones).
    reaches: BTreeMap<u32, BTreeSet<&'static str>>,
}

/// The state of a tracing session: every type met so far.
#[derive(Default)]
pub(crate) struct Tracer {
    /// Struct-like types of finished traces (checked for conflicts of names).
    structs: BTreeMap<&'static str, TypeDef>,
    /// Struct-like types as the passes of the current trace see them (a pass may still hold
    /// a placeholder for a part not traced yet).
    pending: BTreeMap<&'static str, TypeDef>,
    /// Enum variants of finished traces, for conflicts of names.
    committed_variants: BTreeMap<(&'static str, u32), VariantFields>,
    /// The last pass of a trace, with everything known: it records for good.
    committing: bool,
    enums: BTreeMap<&'static str, EnumState>,
    /// Containers being deserialized now, innermost last.
    stack: Vec<&'static str>,
    /// The path of the value being deserialized (field names, indexes).
    path: Vec<String>,
    /// Paths where an option, sequence or map must be empty (its element recursed).
    empty_at: BTreeSet<String>,
    /// The element shape of each of those.
    empty_shape: BTreeMap<String, Shape>,
    /// Enums met in this pass, for `EnumState::reaches`.
    met: Vec<BTreeSet<&'static str>>,
    /// `Result`s by path: the shapes of their `Ok` and `Err` payloads, once seen.
    results: BTreeMap<String, (Option<Shape>, Option<Shape>)>,
}

/// The error a deserialization under the tracer ends with.
#[derive(Debug)]
enum TraceError {
    /// A type being traced was met inside itself, with no way yet to avoid it (the path of
    /// the pass that met it says where to cut).
    Recursion { name: &'static str },
    /// What the tracer found wrong with the types (two of one name, no value can exist, …),
    /// said whole: the message names the type and what to do.
    Explained(String),
    /// What a type's own `Deserialize` said (it refused a sample value, or asked for a
    /// self-describing format).
    Other(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Recursion { name } => write!(f, "`{name}` contains itself"),
            TraceError::Explained(m) | TraceError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError::Other(msg.to_string())
    }
}

type Result<T, E = TraceError> = std::result::Result<T, E>;

impl Tracer {
    /// The shape of `T` (tracing it and every type it contains).
    pub(crate) fn trace<T: Deserialize<'static>>(&mut self) -> Result<Shape, ShapeError> {
        struct Flag;
        impl Drop for Flag {
            fn drop(&mut self) {
                TRACING.with(|t| t.set(false));
            }
        }
        TRACING.with(|t| t.set(true));
        let _flag = Flag;
        self.results.clear();
        self.empty_at.clear();
        self.empty_shape.clear();
        self.pending.clear();
        for _ in 0..MAX_PASSES {
            match self.pass::<T>() {
                Ok(_) if self.incomplete().is_some() => continue,
                Ok(_) => {
                    // Everything is known: one more pass records it for good.
                    self.committing = true;
                    let done = self.pass::<T>();
                    self.committing = false;
                    return done.map_err(|e| self.explain(e));
                }
                Err(TraceError::Recursion { name }) => {
                    // Cut at the innermost option, sequence or map on the way.
                    if !self.cut_recursion(name) {
                        return Err(ShapeError(format!(
                            "`{name}` contains itself with no Option, Vec, map or enum in \
                             between, so no value of it can exist; lpc cannot carry it"
                        )));
                    }
                }
                Err(e) => return Err(self.explain(e)),
            }
        }
        Err(ShapeError(format!(
            "the type did not settle after {MAX_PASSES} tracing passes"
        )))
    }

    /// One deserialization of `T` under the tracer.
    fn pass<T: Deserialize<'static>>(&mut self) -> Result<Shape> {
        self.stack.clear();
        self.path.clear();
        self.met.clear();
        let mut shape = None;
        T::deserialize(Tracing {
            tracer: self,
            out: &mut shape,
        })?;
        Ok(shape.unwrap_or(Shape::Unit))
    }

    /// The error of a trace that failed, with what to do.
    fn explain(&self, e: TraceError) -> ShapeError {
        match e {
            TraceError::Recursion { name } => ShapeError(format!(
                "`{name}` contains itself in a way the tracer could not cut"
            )),
            TraceError::Explained(why) => ShapeError(why),
            TraceError::Other(why) => {
                let inside = self
                    .stack
                    .last()
                    .map(|t| format!(" (inside `{t}`)"))
                    .unwrap_or_default();
                ShapeError(format!(
                    "{why}{inside}. lpc learns a type's shape by deserializing sample values \
                     (zero, empty, each enum variant in turn); a hand-written or validating \
                     `Deserialize` must accept them, and `#[serde(flatten)]`, untagged or \
                     internally tagged enums are not supported (postcard cannot carry them \
                     either)"
                ))
            }
        }
    }

    /// An enum with variants not seen yet, if any.
    fn incomplete(&self) -> Option<&str> {
        self.enums
            .iter()
            .find(|(_, e)| e.seen.len() < e.names.len())
            .map(|(name, _)| *name)
            .or_else(|| {
                self.results
                    .iter()
                    .find(|(_, (ok, err))| ok.is_none() || err.is_none())
                    .map(|(path, _)| path.as_str())
            })
    }

    /// After a pass ended in the recursion of `name`: marks the innermost option, sequence
    /// or map of the path as empty from now on. False if there is none.
    fn cut_recursion(&mut self, name: &'static str) -> bool {
        // The path of the failed pass is still recorded: find its last collection step.
        let Some(at) = self
            .path
            .iter()
            .rposition(|step| step == "?" || step == "[]" || step == "{k}" || step == "{v}")
        else {
            return false;
        };
        let key = self.path[..=at].join("/");
        if !self.empty_at.insert(key.clone()) {
            return false;
        }
        self.empty_shape.insert(key, Shape::Named(name.to_owned()));
        true
    }

    /// The shapes of every named type met, once complete.
    pub(crate) fn types(&self) -> Result<TypeTable, ShapeError> {
        let mut out = BTreeMap::new();
        for (name, def) in &self.structs {
            out.insert((*name).to_owned(), def.clone());
        }
        for (name, state) in &self.enums {
            if state.seen.len() < state.names.len() {
                return Err(ShapeError(format!(
                    "enum `{name}` was not traced completely"
                )));
            }
            let variants = state
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| Variant {
                    name: (*n).to_owned(),
                    fields: state.seen[&(i as u32)].clone(),
                })
                .collect();
            out.insert((*name).to_owned(), TypeDef::Enum(variants));
        }
        Ok(out)
    }

    fn key(&self) -> String {
        self.path.join("/")
    }

    /// Records that struct-like type `name` has definition `def`; a different definition
    /// under the same name is a conflict.
    fn record(&mut self, name: &'static str, def: TypeDef) -> Result<()> {
        if !self.committing {
            self.pending.insert(name, def);
            return Ok(());
        }
        match self.structs.get(name) {
            Some(known) if *known != def => Err(TraceError::Explained(format!(
                "two different types are named `{name}` ({} and {}); lpc names types by their \
                 serde name: rename one with `#[serde(rename = \"…\")]` (a generic type used \
                 with two different parameters needs a name per use)",
                known.rust(name),
                def.rust(name)
            ))),
            _ => {
                self.structs.insert(name, def);
                Ok(())
            }
        }
    }

    fn enter(&mut self, name: &'static str) -> Result<()> {
        if self.stack.contains(&name) {
            return Err(TraceError::Recursion { name });
        }
        if self.stack.len() >= MAX_DEPTH || self.path.len() >= 4 * MAX_DEPTH {
            return Err(TraceError::Explained(format!(
                "types nest deeper than {MAX_DEPTH} levels"
            )));
        }
        self.stack.push(name);
        Ok(())
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    /// The variant of enum `name` to take in this pass.
    fn choose(&mut self, name: &'static str, names: &'static [&'static str]) -> Result<u32> {
        let state = self.enums.entry(name).or_default();
        if state.names.is_empty() {
            state.names = names.to_vec();
        } else if state.names != names {
            return Err(TraceError::Explained(format!(
                "two different enums are named `{name}`; rename one with \
                 `#[serde(rename = \"…\")]`"
            )));
        }
        let recursing = self.stack.contains(&name);
        let count = names.len() as u32;
        let in_progress = |i: u32| {
            let step = format!("{name}::{}", names[i as usize]);
            self.path.contains(&step)
        };
        let state = &self.enums[name];
        let unseen = (0..count).find(|i| !state.seen.contains_key(i) && !in_progress(*i));
        let mut incomplete: BTreeSet<&str> = self
            .enums
            .iter()
            .filter(|(_, e)| e.seen.len() < e.names.len())
            .map(|(n, _)| *n)
            .collect();
        if self
            .results
            .values()
            .any(|(ok, err)| ok.is_none() || err.is_none())
        {
            incomplete.insert(RESULT_MARK);
        }
        let choice = if recursing {
            // Inside itself: a variant known to end, else one not being traced on the way.
            state
                .seen
                .keys()
                .copied()
                .find(|i| !in_progress(*i))
                .or(unseen)
        } else {
            unseen.or_else(|| {
                state
                    .reaches
                    .iter()
                    .find(|(_, r)| r.iter().any(|e| incomplete.contains(e)))
                    .map(|(i, _)| *i)
            })
        };
        if recursing && choice.is_none() {
            return Err(TraceError::Explained(format!(
                "every variant of enum `{name}` contains `{name}` again, so tracing it never \
                 ends: put a variant that does not contain it first"
            )));
        }
        Ok(choice.unwrap_or(0))
    }
}

/// The deserializer of one value under the tracer; writes the value's shape to `out`.
struct Tracing<'t> {
    tracer: &'t mut Tracer,
    out: &'t mut Option<Shape>,
}

impl<'t> Tracing<'t> {
    fn at<'u>(tracer: &'u mut Tracer, out: &'u mut Option<Shape>) -> Tracing<'u> {
        Tracing { tracer, out }
    }
}

/// Deserializes one element at path step `step`, returning its value and shape.
fn element<'de, S: DeserializeSeed<'de>>(
    tracer: &mut Tracer,
    step: String,
    seed: S,
) -> Result<(S::Value, Shape)> {
    tracer.path.push(step);
    let mut shape = None;
    let value = seed.deserialize(Tracing::at(tracer, &mut shape))?;
    tracer.path.pop();
    Ok((value, shape.unwrap_or(Shape::Unit)))
}

macro_rules! primitive {
    ($method:ident, $visit:ident, $value:expr, $shape:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            *self.out = Some($shape);
            visitor.$visit($value)
        }
    };
}

impl<'de> de::Deserializer<'de> for Tracing<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(TraceError::Other(
            "a type asks for a self-describing format (`deserialize_any`)".into(),
        ))
    }

    primitive!(deserialize_bool, visit_bool, false, Shape::Bool);
    primitive!(deserialize_i8, visit_i8, 0, Shape::I8);
    primitive!(deserialize_i16, visit_i16, 0, Shape::I16);
    primitive!(deserialize_i32, visit_i32, 0, Shape::I32);
    primitive!(deserialize_i64, visit_i64, 0, Shape::I64);
    primitive!(deserialize_i128, visit_i128, 0, Shape::I128);
    primitive!(deserialize_u8, visit_u8, 0, Shape::U8);
    primitive!(deserialize_u16, visit_u16, 0, Shape::U16);
    primitive!(deserialize_u32, visit_u32, 0, Shape::U32);
    primitive!(deserialize_u64, visit_u64, 0, Shape::U64);
    primitive!(deserialize_u128, visit_u128, 0, Shape::U128);
    primitive!(deserialize_f32, visit_f32, 0.0, Shape::F32);
    primitive!(deserialize_f64, visit_f64, 0.0, Shape::F64);
    primitive!(deserialize_char, visit_char, 'a', Shape::Char);
    primitive!(deserialize_str, visit_borrowed_str, "", Shape::Str);
    primitive!(deserialize_string, visit_string, String::new(), Shape::Str);
    primitive!(deserialize_bytes, visit_bytes, &[], Shape::Bytes);
    primitive!(
        deserialize_byte_buf,
        visit_byte_buf,
        Vec::new(),
        Shape::Bytes
    );

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        *self.out = Some(Shape::Unit);
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.tracer.path.push("?".into());
        let key = self.tracer.key();
        if self.tracer.empty_at.contains(&key) {
            let inner = self.tracer.empty_shape[&key].clone();
            self.tracer.path.pop();
            *self.out = Some(Shape::Option(Box::new(inner)));
            return visitor.visit_none();
        }
        let mut inner = None;
        let value = visitor.visit_some(Tracing::at(self.tracer, &mut inner))?;
        self.tracer.path.pop();
        *self.out = Some(Shape::Option(Box::new(inner.unwrap_or(Shape::Unit))));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.tracer.record(name, TypeDef::Unit)?;
        *self.out = Some(Shape::Named(name.to_owned()));
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let handle = match name {
            super::shape::FILE_NAME => Some(Shape::File),
            super::shape::FD_NAME => Some(Shape::Fd),
            super::shape::SEGMENT_NAME => Some(Shape::Segment),
            _ => None,
        };
        if let Some(shape) = handle {
            *self.out = Some(shape);
            let mut ignored = None;
            return visitor.visit_newtype_struct(Tracing::at(self.tracer, &mut ignored));
        }
        if name == super::shape::LOAN_NAME {
            *self.out = Some(Shape::Loan);
            let mut ignored = None;
            return visitor.visit_newtype_struct(Tracing::at(self.tracer, &mut ignored));
        }
        self.tracer.enter(name)?;
        self.tracer.path.push(format!("{name}.0"));
        let mut inner = None;
        let value = visitor.visit_newtype_struct(Tracing::at(self.tracer, &mut inner))?;
        self.tracer.path.pop();
        self.tracer.leave();
        self.tracer
            .record(name, TypeDef::Newtype(inner.unwrap_or(Shape::Unit)))?;
        *self.out = Some(Shape::Named(name.to_owned()));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.tracer.path.push("[]".into());
        let key = self.tracer.key();
        let empty = self.tracer.empty_at.contains(&key);
        let (value, shapes) =
            visit_elements(self.tracer, usize::from(!empty), Step::Item, visitor)?;
        let item = shapes.into_iter().next_back();
        self.tracer.path.pop();
        let item = item.unwrap_or_else(|| {
            self.tracer
                .empty_shape
                .get(&key)
                .cloned()
                .unwrap_or(Shape::Unit)
        });
        *self.out = Some(Shape::Seq(Box::new(item)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let (value, shapes) = visit_elements(self.tracer, len, Step::Index, visitor)?;
        // `[T; N]` asks for a tuple of N: alike elements make an array.
        *self.out = Some(match shapes.first() {
            Some(first) if len > 1 && shapes.iter().all(|s| s == first) => Shape::Array {
                item: Box::new(first.clone()),
                len,
            },
            _ => Shape::Tuple(shapes),
        });
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.tracer.enter(name)?;
        let (value, shapes) = visit_elements(self.tracer, len, Step::Index, visitor)?;
        self.tracer.leave();
        self.tracer.record(name, TypeDef::Tuple(shapes))?;
        *self.out = Some(Shape::Named(name.to_owned()));
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let base = self.tracer.key();
        let empty = self.tracer.empty_at.contains(&format!("{base}/{{k}}"))
            || self.tracer.empty_at.contains(&format!("{base}/{{v}}"));
        let mut access = Entries {
            tracer: self.tracer,
            left: usize::from(!empty),
            key: None,
            value: None,
        };
        let value = visitor.visit_map(&mut access)?;
        let (key, item) = (access.key.take(), access.value.take());
        let known = |tracer: &Tracer, step: &str| {
            tracer
                .empty_shape
                .get(&format!("{base}/{step}"))
                .cloned()
                .unwrap_or(Shape::Unit)
        };
        *self.out = Some(Shape::Map {
            key: Box::new(key.unwrap_or_else(|| known(self.tracer, "{k}"))),
            value: Box::new(item.unwrap_or_else(|| known(self.tracer, "{v}"))),
        });
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.tracer.enter(name)?;
        let (value, shapes) =
            visit_elements(self.tracer, fields.len(), Step::Names(fields), visitor)?;
        self.tracer.leave();
        let fields = fields
            .iter()
            .zip(shapes)
            .map(|(name, shape)| Field {
                name: (*name).to_owned(),
                shape,
            })
            .collect();
        self.tracer.record(name, TypeDef::Struct(fields))?;
        *self.out = Some(Shape::Named(name.to_owned()));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if variants.is_empty() {
            return Err(TraceError::Explained(format!(
                "enum `{name}` has no variants: no value of it can exist"
            )));
        }
        // `Result<T, E>` is generic: described in place, not as a type of its own.
        if name == "Result" && variants == ["Ok", "Err"] {
            return self.result_enum(visitor);
        }
        let index = self.tracer.choose(name, variants)?;
        let recursing = self.tracer.stack.contains(&name);
        if !recursing {
            self.tracer.stack.push(name);
        }
        for met in &mut self.tracer.met {
            met.insert(name);
        }
        self.tracer.met.push(BTreeSet::new());
        self.tracer
            .path
            .push(format!("{name}::{}", variants[index as usize]));
        let mut fields = None;
        let value = visitor.visit_enum(Choice {
            tracer: self.tracer,
            index,
            fields: &mut fields,
        });
        let reached = self.tracer.met.pop().unwrap_or_default();
        let value = value?;
        self.tracer.path.pop();
        if !recursing {
            self.tracer.stack.pop();
        }
        let fields = fields.unwrap_or(VariantFields::Unit);
        if self.tracer.committing {
            if let Some(known) = self.tracer.committed_variants.get(&(name, index)) {
                if *known != fields {
                    return Err(TraceError::Explained(format!(
                        "two different enums are named `{name}`; rename one with \
                         `#[serde(rename = \"…\")]`"
                    )));
                }
            }
            self.tracer
                .committed_variants
                .insert((name, index), fields.clone());
        }
        let state = self.tracer.enums.get_mut(name).expect("chosen above");
        state.seen.insert(index, fields);
        state.reaches.entry(index).or_default().extend(reached);
        *self.out = Some(Shape::Named(name.to_owned()));
        Ok(value)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(TraceError::Other(
            "a type skips a value it does not know (`deserialize_ignored_any`)".into(),
        ))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl Tracing<'_> {
    /// `Result<T, E>`, generic, described in place: each pass takes the side not seen yet at
    /// this path (the `Ok` side first).
    fn result_enum<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        for met in &mut self.tracer.met {
            met.insert(RESULT_MARK);
        }
        let key = self.tracer.key();
        let (ok, err) = self.tracer.results.entry(key.clone()).or_default().clone();
        let index = u32::from(ok.is_some() && err.is_none());
        self.tracer
            .path
            .push(if index == 0 { "Ok" } else { "Err" }.into());
        let mut fields = None;
        let value = visitor.visit_enum(Choice {
            tracer: self.tracer,
            index,
            fields: &mut fields,
        })?;
        self.tracer.path.pop();
        let payload = match fields {
            Some(VariantFields::Newtype(shape)) => shape,
            _ => Shape::Unit,
        };
        let sides = self.tracer.results.entry(key).or_default();
        if index == 0 {
            sides.0 = Some(payload);
        } else {
            sides.1 = Some(payload);
        }
        let known = |side: &Option<Shape>| Box::new(side.clone().unwrap_or(Shape::Unit));
        *self.out = Some(Shape::Result {
            ok: known(&sides.0),
            err: known(&sides.1),
        });
        Ok(value)
    }
}

/// How the path names the elements of a sequence-like access.
enum Step {
    /// The elements of a sequence: the sequence's own `[]` step stands for each.
    Item,
    /// The elements of a tuple: by position.
    Index,
    /// The fields of a struct or struct variant: by name.
    Names(&'static [&'static str]),
}

/// Lets `visitor` read `left` elements named by `step`; returns its value and their shapes.
fn visit_elements<'de, V: Visitor<'de>>(
    tracer: &mut Tracer,
    left: usize,
    step: Step,
    visitor: V,
) -> Result<(V::Value, Vec<Shape>)> {
    let mut access = Elements {
        tracer,
        left,
        shapes: Vec::new(),
        step,
    };
    let value = visitor.visit_seq(&mut access)?;
    Ok((value, access.shapes))
}

/// The elements of a sequence, tuple or struct.
struct Elements<'t> {
    tracer: &'t mut Tracer,
    left: usize,
    shapes: Vec<Shape>,
    step: Step,
}

impl<'de> de::SeqAccess<'de> for &mut Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let i = self.shapes.len();
        let (value, shape) = match &self.step {
            // A sequence's element keeps the `[]` step its sequence pushed.
            Step::Item => {
                let mut shape = None;
                let value = seed.deserialize(Tracing::at(self.tracer, &mut shape))?;
                (value, shape.unwrap_or(Shape::Unit))
            }
            Step::Index => element(self.tracer, i.to_string(), seed)?,
            // `left` is the number of names: every element has one.
            Step::Names(names) => element(self.tracer, names[i].to_owned(), seed)?,
        };
        self.shapes.push(shape);
        Ok(Some(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The entries of a map: one, or none where the map recursed before.
struct Entries<'t> {
    tracer: &'t mut Tracer,
    left: usize,
    key: Option<Shape>,
    value: Option<Shape>,
}

impl<'de> de::MapAccess<'de> for &mut Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (key, shape) = element(self.tracer, "{k}".into(), seed)?;
        self.key = Some(shape);
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let (value, shape) = element(self.tracer, "{v}".into(), seed)?;
        self.value = Some(shape);
        Ok(value)
    }
}

/// The variant the tracer chose for an enum.
struct Choice<'t> {
    tracer: &'t mut Tracer,
    index: u32,
    fields: &'t mut Option<VariantFields>,
}

impl<'de, 't> de::EnumAccess<'de> for Choice<'t> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index: de::value::U32Deserializer<TraceError> = self.index.into_deserializer();
        let variant = seed.deserialize(index)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Choice<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<()> {
        *self.fields = Some(VariantFields::Unit);
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        let mut shape = None;
        let value = seed.deserialize(Tracing::at(self.tracer, &mut shape))?;
        *self.fields = Some(VariantFields::Newtype(shape.unwrap_or(Shape::Unit)));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let (value, shapes) = visit_elements(self.tracer, len, Step::Index, visitor)?;
        *self.fields = Some(VariantFields::Tuple(shapes));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let (value, shapes) =
            visit_elements(self.tracer, fields.len(), Step::Names(fields), visitor)?;
        *self.fields = Some(VariantFields::Struct(
            fields
                .iter()
                .zip(shapes)
                .map(|(name, shape)| Field {
                    name: (*name).to_owned(),
                    shape,
                })
                .collect(),
        ));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Color {
        Red,
        Green(u8),
        Blue { x: i32 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Info {
        red: f64,
        color: Color,
        tags: Vec<Option<Color>>,
        tree: Tree,
        table: BTreeMap<String, [u16; 3]>,
        outcome: Result<u8, String>,
        pair: (bool, char),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Tree {
        Leaf,
        Node(Box<Tree>, Box<Tree>),
    }

    /// Its first variant recurses: the tracer must take the other one inside it.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum List {
        Cons(u32, Box<List>),
        Nil,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Node {
        next: Option<Box<Node>>,
        kids: Vec<Node>,
    }

    fn traced<T: Deserialize<'static>>() -> (Shape, TypeTable) {
        let mut tracer = Tracer::default();
        let shape = tracer.trace::<T>().expect("traces");
        (shape, tracer.types().expect("complete"))
    }

    #[test]
    fn nested_enums_are_traced_whole() {
        let (shape, types) = traced::<Info>();
        assert_eq!(shape, Shape::Named("Info".into()));
        assert_eq!(
            types["Info"].rust("Info"),
            "struct Info { red: f64, color: Color, tags: Vec<Option<Color>>, tree: Tree, \
             table: Map<String, [u16; 3]>, outcome: Result<u8, String>, pair: (bool, char) }"
        );
        assert_eq!(
            types["Color"].rust("Color"),
            "enum Color { Red, Green(u8), Blue { x: i32 } }"
        );
        assert_eq!(
            types["Tree"].rust("Tree"),
            "enum Tree { Leaf, Node(Tree, Tree) }"
        );
    }

    #[test]
    fn recursion_is_cut_where_the_type_allows() {
        let (_, types) = traced::<List>();
        assert_eq!(
            types["List"].rust("List"),
            "enum List { Cons(u32, List), Nil }"
        );
        let (_, types) = traced::<Node>();
        assert_eq!(
            types["Node"].rust("Node"),
            "struct Node { next: Option<Node>, kids: Vec<Node> }"
        );
    }

    #[test]
    fn a_type_that_cannot_exist_is_refused_by_name() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Endless {
            again: Box<Endless>,
        }
        let err = Tracer::default().trace::<Endless>().unwrap_err();
        assert!(err.0.contains("`Endless` contains itself"), "{err}");
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Loop {
            A(Box<Loop>),
            B(Box<Loop>),
        }
        let err = Tracer::default().trace::<Loop>().unwrap_err();
        assert!(err.0.contains("every variant of enum `Loop`"), "{err}");
    }

    #[test]
    fn a_deserialize_that_refuses_the_samples_names_the_type_and_what_to_do() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            count: std::num::NonZeroU32,
        }
        let err = Tracer::default().trace::<Strict>().unwrap_err();
        assert!(err.0.contains("inside `Strict`"), "{err}");
        assert!(err.0.contains("must accept them"), "{err}");
    }

    #[test]
    fn two_types_of_one_name_are_a_conflict() {
        mod a {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub struct Point {
                pub x: i32,
            }
        }
        mod b {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub struct Point {
                pub x: f64,
            }
        }
        let mut tracer = Tracer::default();
        tracer.trace::<a::Point>().unwrap();
        let err = tracer.trace::<b::Point>().unwrap_err();
        assert!(
            err.0.contains("two different types are named `Point`"),
            "{err}"
        );
        assert!(err.0.contains("serde(rename"), "{err}");
    }

    #[test]
    fn primitives_bytes_and_loans_have_their_own_shapes() {
        assert_eq!(traced::<u64>().0, Shape::U64);
        assert_eq!(traced::<&str>().0, Shape::Str);
        assert_eq!(traced::<crate::wire::codec::WireBytes>().0, Shape::Bytes);
        assert_eq!(
            traced::<(i8, [u8; 4])>().0,
            Shape::Tuple(vec![
                Shape::I8,
                Shape::Array {
                    item: Box::new(Shape::U8),
                    len: 4
                }
            ])
        );
    }
}
