//! `lpc describe`: a service's interface — its types written as Rust, then method by method
//! the signature, the shapes that cross and an `lpc call` line that works; or, with `--json`,
//! the whole interface with its shapes in the format of `docs/shapes.md`.

use std::fmt::Write as _;

use lpc::shape::{self, Shape, TypeDef, TypeTable, VariantFields};
use lpc::{InterfaceInfo, MethodInfo, ParamInfo};
use serde::Serialize;
use serde_json::Value;

use crate::common::{
    fmt_pid, json_safe, safe, signature, CliError, CliResult, Ctx, DIM, HEADER, NAME,
};

/// The version of the `--json` document (`docs/shapes.md`). Fields may be added without
/// changing it; renaming or removing one, or changing what one means, needs a new version.
pub const FORMAT: &str = "lpc-interface/1";

/// The `--json` document. Field order is the output order.
#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    service: &'a str,
    /// `null` when the service runs in a PID namespace this process cannot see.
    pid: Option<u32>,
    interface: &'a str,
    fingerprint: String,
    methods: Vec<Method<'a>>,
    types: &'a TypeTable,
    /// The events it emits (`#[lpc::events]`), if any: their interface, each with its
    /// parameters' shapes (in `events.types`).
    events: Option<Events<'a>>,
}

/// The events of the `--json` document.
#[derive(Serialize)]
struct Events<'a> {
    interface: &'a str,
    fingerprint: String,
    events: Vec<Event<'a>>,
    types: &'a TypeTable,
}

/// One event of the `--json` document.
#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    id: u32,
    signature: String,
    params: &'a [ParamInfo],
    fingerprint: String,
}

/// One method of the `--json` document.
#[derive(Serialize)]
struct Method<'a> {
    name: &'a str,
    id: u32,
    signature: String,
    params: &'a [ParamInfo],
    output: &'a str,
    returns_result: bool,
    /// Posted, never answered (`#[lpc(oneway)]`).
    oneway: bool,
    result: &'a Shape,
    error: &'a Option<Shape>,
    fingerprint: String,
}

/// The `--json` document of `service`'s interface (what `lpc gen` embeds, too).
pub fn document_json(
    service: &str,
    pid: Option<u32>,
    interface: &lpc::InterfaceInfo,
    events: Option<&lpc::InterfaceInfo>,
) -> Result<String, CliError> {
    let doc = Document {
        format: FORMAT,
        service,
        pid,
        interface: &interface.name,
        fingerprint: hex(interface.fingerprint),
        methods: interface
            .methods
            .iter()
            .map(|m| Method {
                name: &m.name,
                id: m.id,
                signature: signature(m),
                params: &m.params,
                output: &m.output,
                returns_result: m.returns_result,
                oneway: m.oneway,
                result: &m.result,
                error: &m.error,
                fingerprint: hex(m.fingerprint),
            })
            .collect(),
        types: &interface.types,
        events: events.map(|e| Events {
            interface: &e.name,
            fingerprint: hex(e.fingerprint),
            events: e
                .methods
                .iter()
                .map(|m| Event {
                    name: &m.name,
                    id: m.id,
                    signature: signature(m),
                    params: &m.params,
                    fingerprint: hex(m.fingerprint),
                })
                .collect(),
            types: &e.types,
        }),
    };
    serde_json::to_string_pretty(&doc)
        .map_err(|e| CliError::new(format!("cannot write the JSON: {e}")))
}

pub fn run(ctx: &Ctx, service: &str, json: bool) -> CliResult {
    let info = ctx.query(service)?;
    let interface = &info.interface;
    if json {
        let text = document_json(service, info.pid, interface, info.events.as_ref())?;
        anstream::println!("{}", json_safe(text));
        return Ok(());
    }
    let count = interface.methods.len();
    anstream::println!(
        "service {NAME}{service}{NAME:#} (pid {}): interface {NAME}{}{NAME:#}, fingerprint {}, {count} method{}",
        fmt_pid(info.pid),
        safe(&interface.name),
        hex(interface.fingerprint),
        if count == 1 { "" } else { "s" }
    );
    let types = type_order(interface);
    if !types.is_empty() {
        anstream::println!();
        anstream::println!("{HEADER}types{HEADER:#}");
        for name in &types {
            if let Some(def) = interface.types.get(name) {
                anstream::println!("  {}", safe(&def.rust(name)));
            }
        }
    }
    if count > 0 {
        anstream::println!();
        anstream::println!("{HEADER}methods{HEADER:#}");
    }
    for (i, m) in interface.methods.iter().enumerate() {
        if i > 0 {
            anstream::println!();
        }
        print_method(service, m, &interface.types);
    }
    if let Some(events) = &info.events {
        anstream::println!();
        anstream::println!(
            "{HEADER}events{HEADER:#} {DIM}({}, fingerprint {}; `lpc watch {service}` prints them){DIM:#}",
            safe(&events.name),
            hex(events.fingerprint)
        );
        for m in &events.methods {
            anstream::println!("  {}", safe(&signature(m)));
            let params = m
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.shape))
                .collect::<Vec<_>>()
                .join(", ");
            anstream::println!("    {DIM}params{DIM:#}  {}", safe(&params));
        }
    }
    Ok(())
}

/// The signature, the shapes that cross, and a working `lpc call` line; everything the
/// service sent escaped ([`safe`]).
fn print_method(service: &str, m: &MethodInfo, types: &TypeTable) {
    anstream::println!("  {}", safe(&signature(m)));
    let params = if m.params.is_empty() {
        "none".to_owned()
    } else {
        m.params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    anstream::println!("    {DIM}params{DIM:#}  {}", safe(&params));
    let outs: Vec<String> = m
        .params
        .iter()
        .filter(|p| p.out)
        .map(|p| format!("`{}`", p.name))
        .collect();
    if !outs.is_empty() {
        anstream::println!(
            "    {DIM}in/out{DIM:#}  {} {DIM}(the service's new value comes back with the result){DIM:#}",
            safe(&outs.join(", "))
        );
    }
    if m.oneway {
        anstream::println!(
            "    {DIM}one-way{DIM:#} posted, never answered {DIM}(`lpc call` returns once it is queued){DIM:#}"
        );
    } else {
        anstream::println!("    {DIM}result{DIM:#}  {}", safe(&m.result.to_string()));
    }
    if let Some(error) = &m.error {
        anstream::println!(
            "    {DIM}error{DIM:#}   {} {DIM}(an application error: `lpc call` prints it and exits with code 3){DIM:#}",
            safe(&error.to_string())
        );
    }
    let shapes = m.params.iter().map(|p| &p.shape).chain([&m.result]);
    if shapes.clone().any(|s| passes_handles(s, types)) {
        anstream::println!(
            "    {DIM}passes files, descriptors or segments (by the kernel): call it from Rust, not with `lpc call`{DIM:#}"
        );
    } else {
        anstream::println!("    {}", safe(&example_call(service, m, types)));
    }
}

/// Whether a value of `shape` holds a file, a descriptor or a segment (which only a binary
/// call can carry): whether one is reachable from it, each user type looked into once (a
/// service's table may be hostile: types holding thousands of the next, recursion).
fn passes_handles(shape: &Shape, types: &TypeTable) -> bool {
    use lpc::shape::{TypeDef, VariantFields};
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![shape];
    while let Some(shape) = stack.pop() {
        match shape {
            Shape::File | Shape::Fd | Shape::Segment => return true,
            Shape::Option(s) | Shape::Seq(s) | Shape::Array { item: s, .. } => stack.push(s),
            Shape::Map { key, value } => stack.extend([&**key, &**value]),
            Shape::Result { ok, err } => stack.extend([&**ok, &**err]),
            Shape::Tuple(items) => stack.extend(items),
            Shape::Named(name) if seen.insert(name.as_str()) => match types.get(name) {
                Some(TypeDef::Newtype(s)) => stack.push(s),
                Some(TypeDef::Tuple(items)) => stack.extend(items),
                Some(TypeDef::Struct(fields)) => stack.extend(fields.iter().map(|f| &f.shape)),
                Some(TypeDef::Enum(variants)) => {
                    for v in variants {
                        match &v.fields {
                            VariantFields::Unit => {}
                            VariantFields::Newtype(s) => stack.push(s),
                            VariantFields::Tuple(items) => stack.extend(items),
                            VariantFields::Struct(fields) => {
                                stack.extend(fields.iter().map(|f| &f.shape))
                            }
                        }
                    }
                }
                Some(TypeDef::Unit) | None => {}
            },
            _ => {}
        }
    }
    false
}

/// Every user type of the interface: first those the methods use, in first-use order, then
/// any other the table holds, by name.
fn type_order(interface: &InterfaceInfo) -> Vec<String> {
    let shapes = interface.methods.iter().flat_map(|m| {
        m.params
            .iter()
            .map(|p| &p.shape)
            .chain(std::iter::once(&m.result))
            .chain(m.error.iter())
    });
    let mut names = shape::referenced(shapes, &interface.types);
    names.retain(|n| interface.types.contains_key(n));
    for name in interface.types.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// `lpc call SERVICE METHOD --args '{"a": 0, "b": 0}'`: the arguments by parameter name, each
/// an example value of its shape, fields in declaration order.
pub fn example_call(service: &str, m: &MethodInfo, types: &TypeTable) -> String {
    let mut line = format!("lpc call {} {}", shell_word(service), shell_word(&m.name));
    if m.params.is_empty() {
        return line;
    }
    let mut args = String::from("{");
    for (i, p) in m.params.iter().enumerate() {
        if i > 0 {
            args.push_str(", ");
        }
        let value = shape::example_json(&p.shape, types);
        let _ = write!(args, "{}: ", Value::String(p.name.clone()));
        write_json(&mut args, &value, &p.shape, types, 0);
    }
    args.push('}');
    let _ = write!(line, " --args {}", shell_word(&args));
    line
}

/// `value` (of `shape`) as one-line JSON, with the fields of structs in declaration order
/// (serde_json's own maps are sorted by key).
fn write_json(out: &mut String, value: &Value, shape: &Shape, types: &TypeTable, depth: usize) {
    let plain = |out: &mut String| out.push_str(&value.to_string());
    if depth > 64 {
        return plain(out);
    }
    let d = depth + 1;
    match (shape, value) {
        (Shape::Option(inner), v) if !v.is_null() => write_json(out, v, inner, types, d),
        (Shape::Seq(item) | Shape::Array { item, .. }, Value::Array(items)) => {
            write_list(out, items.iter().map(|v| (v, &**item)), types, d);
        }
        (Shape::Tuple(shapes), Value::Array(items)) if shapes.len() == items.len() => {
            write_list(out, items.iter().zip(shapes), types, d);
        }
        (Shape::Result { ok, err }, Value::Object(map)) if map.len() == 1 => {
            let (tag, inner) = map.iter().next().expect("one entry");
            let s = if tag == "Ok" { ok } else { err };
            let _ = write!(out, "{{{}: ", Value::String(tag.clone()));
            write_json(out, inner, s, types, d);
            out.push('}');
        }
        (Shape::Named(name), v) => match (types.get(name), v) {
            (Some(TypeDef::Newtype(s)), v) => write_json(out, v, s, types, d),
            (Some(TypeDef::Tuple(shapes)), Value::Array(items)) if shapes.len() == items.len() => {
                write_list(out, items.iter().zip(shapes), types, d);
            }
            (Some(TypeDef::Struct(fields)), Value::Object(map)) => {
                write_fields(out, fields, map, types, d);
            }
            (Some(TypeDef::Enum(variants)), Value::Object(map)) if map.len() == 1 => {
                let (tag, inner) = map.iter().next().expect("one entry");
                let _ = write!(out, "{{{}: ", Value::String(tag.clone()));
                match (
                    variants.iter().find(|v| &v.name == tag).map(|v| &v.fields),
                    inner,
                ) {
                    (Some(VariantFields::Newtype(s)), v) => write_json(out, v, s, types, d),
                    (Some(VariantFields::Tuple(shapes)), Value::Array(items))
                        if shapes.len() == items.len() =>
                    {
                        write_list(out, items.iter().zip(shapes), types, d);
                    }
                    (Some(VariantFields::Struct(fields)), Value::Object(m)) => {
                        write_fields(out, fields, m, types, d);
                    }
                    (_, v) => out.push_str(&v.to_string()),
                }
                out.push('}');
            }
            _ => plain(out),
        },
        _ => plain(out),
    }
}

fn write_list<'a>(
    out: &mut String,
    items: impl Iterator<Item = (&'a Value, &'a Shape)>,
    types: &TypeTable,
    depth: usize,
) {
    out.push('[');
    for (i, (v, s)) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_json(out, v, s, types, depth);
    }
    out.push(']');
}

fn write_fields(
    out: &mut String,
    fields: &[shape::Field],
    map: &serde_json::Map<String, Value>,
    types: &TypeTable,
    depth: usize,
) {
    out.push('{');
    let mut first = true;
    for f in fields {
        if let Some(v) = map.get(&f.name) {
            if !first {
                out.push_str(", ");
            }
            first = false;
            let _ = write!(out, "{}: ", Value::String(f.name.clone()));
            write_json(out, v, &f.shape, types, depth);
        }
    }
    out.push('}');
}

/// `word` as one POSIX shell word: as it is when that is safe, else in single quotes.
fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+=".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpc::shape::{Field, Variant};

    fn info(params: Vec<ParamInfo>, types: TypeTable) -> (MethodInfo, TypeTable) {
        (
            MethodInfo {
                name: "m".into(),
                id: 1,
                signature: String::new(),
                params,
                output: "()".into(),
                returns_result: false,
                oneway: false,
                result: Shape::Unit,
                error: None,
                fingerprint: 0,
            },
            types,
        )
    }

    fn param(name: &str, shape: Shape) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            ty: shape.to_string(),
            out: false,
            shape,
        }
    }

    #[test]
    fn example_calls_keep_declaration_order_and_quote_for_the_shell() {
        let mut types = TypeTable::new();
        types.insert(
            "Point".into(),
            TypeDef::Struct(vec![
                Field {
                    name: "y".into(),
                    shape: Shape::F64,
                },
                Field {
                    name: "x".into(),
                    shape: Shape::Named("Kind".into()),
                },
            ]),
        );
        types.insert(
            "Kind".into(),
            TypeDef::Enum(vec![Variant {
                name: "It's".into(),
                fields: VariantFields::Newtype(Shape::Seq(Box::new(Shape::Named("Point".into())))),
            }]),
        );
        let (m, types) = info(
            vec![
                param("z", Shape::Str),
                param("p", Shape::Named("Point".into())),
            ],
            types,
        );
        let line = example_call("svc", &m, &types);
        assert_eq!(
            line,
            r#"lpc call svc m --args '{"z": "", "p": {"y": 0.0, "x": {"It'\''s": [{"y": 0.0, "x": {"It'\''s": []}}]}}}'"#,
            "{line}"
        );
        let (none, types) = info(Vec::new(), types);
        assert_eq!(example_call("my svc", &none, &types), "lpc call 'my svc' m");
    }

    /// The serde forms `docs/shapes.md` documents (its stability promise rests on them).
    #[test]
    fn shapes_serialize_as_docs_shapes_md_says() {
        use serde_json::json;
        let b = |s: Shape| Box::new(s);
        let named = || Shape::Named("MyInfo".into());
        let cases = [
            (Shape::Unit, json!("unit")),
            (Shape::Bool, json!("bool")),
            (Shape::I8, json!("i8")),
            (Shape::U128, json!("u128")),
            (Shape::F64, json!("f64")),
            (Shape::Char, json!("char")),
            (Shape::Str, json!("str")),
            (Shape::Bytes, json!("bytes")),
            (Shape::Loan, json!("loan")),
            (Shape::File, json!("file")),
            (Shape::Fd, json!("fd")),
            (Shape::Segment, json!("segment")),
            (Shape::Option(b(Shape::Str)), json!({"option": "str"})),
            (Shape::Seq(b(named())), json!({"seq": {"named": "MyInfo"}})),
            (
                Shape::Map {
                    key: b(Shape::Str),
                    value: b(Shape::U64),
                },
                json!({"map": {"key": "str", "value": "u64"}}),
            ),
            (
                Shape::Tuple(vec![Shape::I8, Shape::Str]),
                json!({"tuple": ["i8", "str"]}),
            ),
            (
                Shape::Array {
                    item: b(Shape::U8),
                    len: 4,
                },
                json!({"array": {"item": "u8", "len": 4}}),
            ),
            (
                Shape::Result {
                    ok: b(Shape::U32),
                    err: b(Shape::Named("CalcError".into())),
                },
                json!({"result": {"ok": "u32", "err": {"named": "CalcError"}}}),
            ),
            (named(), json!({"named": "MyInfo"})),
        ];
        for (shape, expected) in cases {
            assert_eq!(serde_json::to_value(&shape).unwrap(), expected, "{shape}");
        }
        let field = |name: &str, shape: Shape| Field {
            name: name.into(),
            shape,
        };
        let defs = [
            (TypeDef::Unit, json!("unit")),
            (TypeDef::Newtype(Shape::U64), json!({"newtype": "u64"})),
            (
                TypeDef::Tuple(vec![Shape::F32, Shape::F32]),
                json!({"tuple": ["f32", "f32"]}),
            ),
            (
                TypeDef::Struct(vec![field("red", Shape::F64), field("blue", Shape::F64)]),
                json!({"struct": [{"name": "red", "shape": "f64"}, {"name": "blue", "shape": "f64"}]}),
            ),
            (
                TypeDef::Enum(vec![
                    Variant {
                        name: "Same".into(),
                        fields: VariantFields::Unit,
                    },
                    Variant {
                        name: "Different".into(),
                        fields: VariantFields::Newtype(Shape::U32),
                    },
                    Variant {
                        name: "Moved".into(),
                        fields: VariantFields::Tuple(vec![Shape::I32, Shape::I32]),
                    },
                    Variant {
                        name: "Renamed".into(),
                        fields: VariantFields::Struct(vec![field("to", Shape::Str)]),
                    },
                ]),
                json!({"enum": [
                    {"name": "Same", "fields": "unit"},
                    {"name": "Different", "fields": {"newtype": "u32"}},
                    {"name": "Moved", "fields": {"tuple": ["i32", "i32"]}},
                    {"name": "Renamed", "fields": {"struct": [{"name": "to", "shape": "str"}]}},
                ]}),
            ),
        ];
        for (def, expected) in defs {
            assert_eq!(
                serde_json::to_value(&def).unwrap(),
                expected,
                "{}",
                def.rust("T")
            );
        }
    }
}
