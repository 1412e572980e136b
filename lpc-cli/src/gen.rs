//! `lpc gen c NAME`: typed C stubs for an interface — a header and a source file with one C
//! function per method (the client stub), C types for the interface's types, and a service
//! skeleton (a dispatcher calling `<prefix>_impl_<method>` functions the user writes), all on
//! the binary encoding Rust clients use (postcard; no JSON on the typed path).
//!
//! The interface comes from a running service or from a file written by
//! `lpc describe --json`. Supported: integers up to 64 bits, `f32`, `f64`, `bool`, strings,
//! byte buffers, `Option`, sequences, structs with named fields, enums without data, `Result`
//! returns and `&mut` parameters of these; anything else is refused naming the type.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use lpc::shape::{Shape, TypeDef, TypeTable, VariantFields};
use lpc::InterfaceInfo;

use crate::common::{CliError, CliResult, Ctx};

/// Writes `<prefix>.h` and `<prefix>.c` into `out_dir` for service `source` (a name, or with
/// `from_file` the path of an `lpc describe --json` document).
pub fn run(ctx: &Ctx, source: &str, from_file: bool, out_dir: &Path) -> CliResult {
    let (info, document) = if from_file {
        let text = std::fs::read_to_string(source)
            .map_err(|e| CliError::new(format!("cannot read {source}: {e}")))?;
        let info = InterfaceInfo::from_describe_json(&text).map_err(CliError::new)?;
        (info, text)
    } else {
        let service = ctx.query(source)?;
        let document = crate::describe::document_json(
            source,
            None,
            &service.interface,
            service.events.as_ref(),
        )?;
        (service.interface, document)
    };
    let generated = generate(&info, &document).map_err(CliError::new)?;
    for why in &generated.skipped {
        anstream::eprintln!("lpc gen c: left out {why}");
    }
    for (name, text) in [
        (&generated.header_name, &generated.header),
        (&generated.source_name, &generated.source),
        (&generated.service_name, &generated.service),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
        anstream::println!("wrote {}", path.display());
    }
    Ok(())
}

/// The generated files.
pub struct Generated {
    /// The methods left out, each with why (a type C cannot carry).
    pub skipped: Vec<String>,
    pub header_name: String,
    pub header: String,
    pub source_name: String,
    pub source: String,
    pub service_name: String,
    pub service: String,
}

/// snake_case of a Rust type name: `CalcError` → `calc_error`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

/// `name` as a C identifier: C keywords, and the stubs' own parameter names, get a `_`.
fn c_ident(name: &str) -> String {
    const TAKEN: &[&str] = &[
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "bool",
        "true",
        "false",
        "class",
        "new",
        "delete",
        "this",
        "template",
        "namespace",
        "operator",
        "client",
        "out",
        "failed",
        "error",
        "err",
        "context",
    ];
    if TAKEN.contains(&name) {
        format!("{name}_")
    } else {
        name.to_owned()
    }
}

/// What the generator has learned and emitted so far.
struct Gen<'a> {
    prefix: String,
    types: &'a TypeTable,
    /// Typedefs of sequences and options, by C name, in dependency order.
    wrappers: Vec<(String, String)>,
    wrapper_names: BTreeSet<String>,
    /// User types reached, in dependency order.
    named: Vec<String>,
}

fn unsupported(what: &str) -> String {
    format!("not supported in C: {what}")
}

impl Gen<'_> {
    /// The C type of a value of `shape`.
    fn ctype(&mut self, shape: &Shape) -> Result<String, String> {
        Ok(match shape {
            Shape::Bool => "bool".into(),
            Shape::I8 => "int8_t".into(),
            Shape::I16 => "int16_t".into(),
            Shape::I32 => "int32_t".into(),
            Shape::I64 => "int64_t".into(),
            Shape::U8 => "uint8_t".into(),
            Shape::U16 => "uint16_t".into(),
            Shape::U32 => "uint32_t".into(),
            Shape::U64 => "uint64_t".into(),
            Shape::F32 => "float".into(),
            Shape::F64 => "double".into(),
            Shape::Str => "char *".into(),
            Shape::Bytes => format!("{}_bytes", self.prefix),
            Shape::Option(inner) => {
                let inner_c = self.ctype(inner)?;
                let tag = self.tag(inner)?;
                let name = format!("{}_opt_{tag}", self.prefix);
                self.wrapper(&name, format!("  bool present;\n  {inner_c} value;\n"));
                name
            }
            Shape::Seq(inner) => {
                let inner_c = self.ctype(inner)?;
                let tag = self.tag(inner)?;
                let name = format!("{}_seq_{tag}", self.prefix);
                self.wrapper(&name, format!("  {inner_c} *items;\n  size_t len;\n"));
                name
            }
            Shape::Named(name) => {
                self.reach(name)?;
                format!("{}_{}", self.prefix, name)
            }
            Shape::Unit => return Err(unsupported("`()` as a value")),
            Shape::I128 | Shape::U128 => return Err(unsupported("128-bit integers")),
            Shape::Char => return Err(unsupported("`char`")),
            Shape::Map { .. } => return Err(unsupported("maps")),
            Shape::Tuple(_) => return Err(unsupported("tuples")),
            Shape::Array { .. } => return Err(unsupported("fixed-size arrays")),
            Shape::Result { .. } => return Err(unsupported("a `Result` inside a value")),
            Shape::Loan => return Err(unsupported("`lpc::Loan`")),
            Shape::File | Shape::Fd | Shape::Segment => {
                return Err(unsupported(
                    "files, descriptors and segments (call it from Rust)",
                ))
            }
        })
    }

    /// A short name for a shape, for wrapper type names.
    fn tag(&mut self, shape: &Shape) -> Result<String, String> {
        Ok(match shape {
            Shape::Str => "str".into(),
            Shape::Bytes => "bytes".into(),
            Shape::Option(inner) => format!("opt_{}", self.tag(inner)?),
            Shape::Seq(inner) => format!("seq_{}", self.tag(inner)?),
            Shape::Named(name) => name.clone(),
            other => {
                let c = self.ctype(other)?;
                c.trim_end_matches("_t").replace(' ', "_")
            }
        })
    }

    fn wrapper(&mut self, name: &str, fields: String) {
        if self.wrapper_names.insert(name.to_owned()) {
            self.wrappers.push((
                name.to_owned(),
                format!("typedef struct {{\n{fields}}} {name};\n"),
            ));
        }
    }

    /// Registers user type `name` (and what it uses) once.
    fn reach(&mut self, name: &str) -> Result<(), String> {
        if self.named.iter().any(|n| n == name) {
            return Ok(());
        }
        let def = self
            .types
            .get(name)
            .ok_or_else(|| format!("the interface uses type {name} but does not define it"))?
            .clone();
        match &def {
            TypeDef::Struct(fields) => {
                for f in fields {
                    self.ctype(&f.shape)
                        .map_err(|e| format!("{e} (field `{}` of {name})", f.name))?;
                }
            }
            TypeDef::Enum(variants) => {
                if let Some(v) = variants.iter().find(|v| v.fields != VariantFields::Unit) {
                    return Err(unsupported(&format!(
                        "enum {name}: variant {} carries data",
                        v.name
                    )));
                }
            }
            TypeDef::Unit => return Err(unsupported(&format!("unit struct {name}"))),
            TypeDef::Newtype(_) | TypeDef::Tuple(_) => {
                return Err(unsupported(&format!("tuple struct {name}")))
            }
        }
        if !self.named.iter().any(|n| n == name) {
            self.named.push(name.to_owned());
        }
        Ok(())
    }

    /// Code that appends the encoding of `expr` (a value of `shape`) to the buffer `b`.
    fn enc(&self, shape: &Shape, expr: &str) -> String {
        let p = &self.prefix;
        match shape {
            Shape::Bool | Shape::U8 => format!("put_byte(lpc_b, (uint8_t)({expr}));"),
            Shape::I8 => format!("put_byte(lpc_b, (uint8_t)(int8_t)({expr}));"),
            Shape::I16 | Shape::I32 | Shape::I64 => format!("put_zigzag(lpc_b, (int64_t)({expr}));"),
            Shape::U16 | Shape::U32 | Shape::U64 => format!("put_varint(lpc_b, (uint64_t)({expr}));"),
            Shape::F32 => format!("put_f32(lpc_b, {expr});"),
            Shape::F64 => format!("put_f64(lpc_b, {expr});"),
            Shape::Str => format!("put_str(lpc_b, {expr});"),
            Shape::Bytes => format!("put_len(lpc_b, ({expr}).len); put_raw(lpc_b, ({expr}).data, ({expr}).len);"),
            Shape::Option(inner) => format!(
                "if (({expr}).present) {{ put_byte(lpc_b, 1); {} }} else {{ put_byte(lpc_b, 0); }}",
                self.enc(inner, &format!("({expr}).value"))
            ),
            Shape::Seq(inner) => format!(
                "{{ size_t lpc_i; put_len(lpc_b, ({expr}).len); for (lpc_i = 0; lpc_i < ({expr}).len; lpc_i++) {{ {} }} }}",
                self.enc(inner, &format!("({expr}).items[lpc_i]"))
            ),
            Shape::Named(name) => format!("enc_{p}_{name}(lpc_b, &({expr}));"),
            _ => "/* unsupported */".into(),
        }
    }

    /// Code that decodes a value of `shape` from reader `r` into `lvalue`, `goto fail` on error.
    fn dec(&self, shape: &Shape, lvalue: &str) -> String {
        let p = &self.prefix;
        let int = |c: &str, get: &str| {
            format!("{{ {c} lpc_v; if ({get}(lpc_r, &lpc_v)) goto fail; {lvalue} = lpc_v; }}")
        };
        match shape {
            Shape::Bool => format!("{{ uint8_t lpc_v; if (get_byte(lpc_r, &lpc_v) || lpc_v > 1) goto fail; {lvalue} = lpc_v != 0; }}"),
            Shape::U8 => int("uint8_t", "get_byte"),
            Shape::I8 => format!("{{ uint8_t lpc_v; if (get_byte(lpc_r, &lpc_v)) goto fail; {lvalue} = (int8_t)lpc_v; }}"),
            Shape::I16 => format!("{{ int64_t lpc_v; if (get_zigzag(lpc_r, &lpc_v) || lpc_v < INT16_MIN || lpc_v > INT16_MAX) goto fail; {lvalue} = (int16_t)lpc_v; }}"),
            Shape::I32 => format!("{{ int64_t lpc_v; if (get_zigzag(lpc_r, &lpc_v) || lpc_v < INT32_MIN || lpc_v > INT32_MAX) goto fail; {lvalue} = (int32_t)lpc_v; }}"),
            Shape::I64 => int("int64_t", "get_zigzag"),
            Shape::U16 => format!("{{ uint64_t lpc_v; if (get_varint(lpc_r, &lpc_v) || lpc_v > UINT16_MAX) goto fail; {lvalue} = (uint16_t)lpc_v; }}"),
            Shape::U32 => format!("{{ uint64_t lpc_v; if (get_varint(lpc_r, &lpc_v) || lpc_v > UINT32_MAX) goto fail; {lvalue} = (uint32_t)lpc_v; }}"),
            Shape::U64 => int("uint64_t", "get_varint"),
            Shape::F32 => int("float", "get_f32"),
            Shape::F64 => int("double", "get_f64"),
            Shape::Str => format!("if (get_str(lpc_r, &({lvalue}))) goto fail;"),
            Shape::Bytes => format!("if (get_bytes(lpc_r, &({lvalue}).data, &({lvalue}).len)) goto fail;"),
            Shape::Option(inner) => format!(
                "{{ uint8_t lpc_tag; if (get_byte(lpc_r, &lpc_tag) || lpc_tag > 1) goto fail; ({lvalue}).present = lpc_tag == 1; if (lpc_tag) {{ {} }} }}",
                self.dec(inner, &format!("({lvalue}).value"))
            ),
            Shape::Seq(inner) => {
                let c = self.ctype_known(inner);
                format!(
                    "{{ uint64_t lpc_n; size_t lpc_i; if (get_varint(lpc_r, &lpc_n) || lpc_n > (uint64_t)(lpc_r->end - lpc_r->at)) goto fail; \
                     ({lvalue}).len = 0; ({lvalue}).items = lpc_n ? ({c} *)calloc((size_t)lpc_n, sizeof({c})) : NULL; \
                     if (lpc_n && ({lvalue}).items == NULL) goto fail; \
                     for (lpc_i = 0; lpc_i < lpc_n; lpc_i++) {{ {} ({lvalue}).len = lpc_i + 1; }} }}",
                    self.dec(inner, &format!("({lvalue}).items[lpc_i]"))
                )
            }
            Shape::Named(name) => format!("if (dec_{p}_{name}(lpc_r, &({lvalue}))) goto fail;"),
            _ => "goto fail;".into(),
        }
    }

    /// The C type of a shape already checked by `ctype`.
    fn ctype_known(&self, shape: &Shape) -> String {
        let mut again = Gen {
            prefix: self.prefix.clone(),
            types: self.types,
            wrappers: Vec::new(),
            wrapper_names: BTreeSet::new(),
            named: self.named.clone(),
        };
        again.ctype(shape).unwrap_or_else(|_| "void".into())
    }

    /// Code that frees what a decoded `lvalue` of `shape` owns.
    fn free(&self, shape: &Shape, lvalue: &str) -> String {
        let p = &self.prefix;
        match shape {
            Shape::Str => format!("free({lvalue}); {lvalue} = NULL;"),
            Shape::Bytes => format!("free(({lvalue}).data); ({lvalue}).data = NULL; ({lvalue}).len = 0;"),
            Shape::Option(inner) => {
                let inner_free = self.free(inner, &format!("({lvalue}).value"));
                if inner_free.is_empty() {
                    String::new()
                } else {
                    format!("if (({lvalue}).present) {{ {inner_free} }}")
                }
            }
            Shape::Seq(inner) => format!(
                "{{ size_t lpc_i; for (lpc_i = 0; lpc_i < ({lvalue}).len; lpc_i++) {{ {} }} free(({lvalue}).items); ({lvalue}).items = NULL; ({lvalue}).len = 0; }}",
                self.free(inner, &format!("({lvalue}).items[lpc_i]"))
            ),
            Shape::Named(name) if self.owns(shape) => format!("{p}_free_{name}(&({lvalue}));"),
            _ => String::new(),
        }
    }

    /// Whether a value of `shape` owns heap memory.
    fn owns(&self, shape: &Shape) -> bool {
        match shape {
            Shape::Str | Shape::Bytes | Shape::Seq(_) => true,
            Shape::Option(inner) => self.owns(inner),
            Shape::Named(name) => match self.types.get(name) {
                Some(TypeDef::Struct(fields)) => fields.iter().any(|f| self.owns(&f.shape)),
                _ => false,
            },
            _ => false,
        }
    }
}

/// The C parameter list of a method: its arguments (a `&mut` one as a pointer), then where
/// the result goes.
struct MethodC {
    name: String,
    id: u32,
    fingerprint: u64,
    /// `(C declaration, name, shape, out)` per parameter.
    params: Vec<(String, String, Shape, bool)>,
    result: Option<(String, Shape)>,
    error: Option<(String, Shape)>,
}

pub fn generate(info: &InterfaceInfo, document: &str) -> Result<Generated, String> {
    let prefix = snake(&info.name);
    let mut g = Gen {
        prefix: prefix.clone(),
        types: &info.types,
        wrappers: Vec::new(),
        wrapper_names: BTreeSet::new(),
        named: Vec::new(),
    };
    let mut methods = Vec::new();
    let mut skipped = Vec::new();
    for m in &info.methods {
        let mut method = || -> Result<MethodC, String> {
            let within = |e: String| format!("method {}: {e}", m.name);
            if m.oneway {
                return Err(within(unsupported(
                    "one-way methods (not yet in the C ABI)",
                )));
            }
            let mut params = Vec::new();
            for p in &m.params {
                let c = g
                    .ctype(&p.shape)
                    .map_err(|e| within(format!("{e} (parameter `{}`)", p.name)))?;
                let name = c_ident(&p.name);
                let decl = if p.out {
                    format!("{c} *{name}")
                } else if c == "char *" {
                    format!("const char *{name}")
                } else if matches!(
                    p.shape,
                    Shape::Named(_) | Shape::Seq(_) | Shape::Bytes | Shape::Option(_)
                ) {
                    format!("const {c} *{name}")
                } else {
                    format!("{c} {name}")
                };
                params.push((decl, name, p.shape.clone(), p.out));
            }
            let result = match &m.result {
                Shape::Unit => None,
                shape => Some((
                    g.ctype(shape)
                        .map_err(|e| within(format!("{e} (result)")))?,
                    shape.clone(),
                )),
            };
            let error = match &m.error {
                Some(Shape::Unit) | None => None,
                Some(shape) => Some((
                    g.ctype(shape).map_err(|e| within(format!("{e} (error)")))?,
                    shape.clone(),
                )),
            };
            Ok(MethodC {
                name: m.name.clone(),
                id: m.id,
                fingerprint: m.fingerprint,
                params,
                result,
                error,
            })
        };
        // A method C cannot carry is left out, with the reason, not the whole interface.
        match method() {
            Ok(method) => methods.push(method),
            Err(why) => skipped.push(why),
        }
    }
    if methods.is_empty() {
        return Err(format!(
            "no method of {} can be called from C: {}",
            info.name,
            skipped.join("; ")
        ));
    }
    let upper = prefix.to_ascii_uppercase();
    let header_name = format!("{prefix}.h");
    let source_name = format!("{prefix}.c");

    // ---- header ----
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* Typed C stubs of the lpc interface {} (fingerprint {:016x}), generated by\n * `lpc gen c`: do not edit. Client: {prefix}_connect, then one function per method. Service:\n * implement the {prefix}_impl_* functions and call {prefix}_serve. Strings are UTF-8, NUL-terminated;\n * what a call returns is owned by the caller (free it with the {prefix}_free_* functions or free()). */",
        info.name, info.fingerprint
    );
    for why in &skipped {
        let _ = writeln!(h, "/* Left out: {why}. */");
    }
    let _ = writeln!(h, "#ifndef {upper}_LPC_H\n#define {upper}_LPC_H\n");
    h.push_str(
        "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n#include \"lpc.h\"\n\n",
    );
    h.push_str("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    let _ = writeln!(
        h,
        "typedef struct {{\n  uint8_t *data;\n  size_t len;\n}} {prefix}_bytes;\n"
    );
    // User types, in the order they were reached (a struct's field types first).
    let mut emitted = BTreeSet::new();
    let mut order = Vec::new();
    fn visit(name: &str, types: &TypeTable, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        if let Some(TypeDef::Struct(fields)) = types.get(name) {
            for f in fields {
                let mut stack = vec![&f.shape];
                while let Some(s) = stack.pop() {
                    match s {
                        Shape::Named(n) => visit(n, types, seen, order),
                        Shape::Option(i) | Shape::Seq(i) => stack.push(i),
                        _ => {}
                    }
                }
            }
        }
        order.push(name.to_owned());
    }
    for name in g.named.clone() {
        visit(&name, &info.types, &mut emitted, &mut order);
    }
    // Wrappers may contain named types and named types wrappers: emit named enums first,
    // then wrappers and structs interleaved by need (wrappers of enums and scalars first).
    for name in &order {
        if let Some(TypeDef::Enum(variants)) = info.types.get(name) {
            let _ = writeln!(h, "typedef enum {{");
            for (i, v) in variants.iter().enumerate() {
                let _ = writeln!(
                    h,
                    "  {}_{}_{} = {i},",
                    upper,
                    snake(name).to_ascii_uppercase(),
                    snake(&v.name).to_ascii_uppercase()
                );
            }
            let _ = writeln!(h, "}} {prefix}_{name};\n");
        }
    }
    let mut pending_wrappers = g.wrappers.clone();
    let mut done_structs = BTreeSet::new();
    let flush_wrappers =
        |h: &mut String, pending: &mut Vec<(String, String)>, done: &BTreeSet<String>| {
            pending.retain(|(_, text)| {
                let needs_struct = order.iter().any(|n| {
                    matches!(info.types.get(n), Some(TypeDef::Struct(_)))
                        && text.contains(&format!("{prefix}_{n} "))
                        && !done.contains(n)
                });
                if needs_struct {
                    true
                } else {
                    h.push_str(text);
                    h.push('\n');
                    false
                }
            });
        };
    flush_wrappers(&mut h, &mut pending_wrappers, &done_structs);
    for name in &order {
        if let Some(TypeDef::Struct(fields)) = info.types.get(name) {
            let _ = writeln!(h, "typedef struct {{");
            for f in fields {
                let c = g.ctype_known(&f.shape);
                let _ = writeln!(
                    h,
                    "  {c}{}{};",
                    if c.ends_with('*') { "" } else { " " },
                    c_ident(&f.name)
                );
            }
            let _ = writeln!(h, "}} {prefix}_{name};\n");
            done_structs.insert(name.clone());
            flush_wrappers(&mut h, &mut pending_wrappers, &done_structs);
        }
    }
    for name in &order {
        if g.owns(&Shape::Named(name.clone())) {
            let _ = writeln!(h, "/* Frees what a {prefix}_{name} returned by lpc owns. */\nvoid {prefix}_free_{name}({prefix}_{name} *value);\n");
        }
    }
    let _ = writeln!(
        h,
        "/* Connects to service `name` (options may be NULL) and checks that it serves {} as this\n * file knows it: every method with the same id and shapes (LPC_ERR_MISMATCH otherwise). */\nlpc_status {prefix}_connect(const char *name, const lpc_options *options, lpc_client **client, lpc_error **err);\n",
        info.name
    );
    let signature = |m: &MethodC, with_client: bool| {
        let mut parts = Vec::new();
        if with_client {
            parts.push("lpc_client *client".to_owned());
        } else {
            parts.push("void *context".to_owned());
        }
        parts.extend(m.params.iter().map(|(decl, ..)| decl.clone()));
        if let Some((c, _)) = &m.result {
            parts.push(format!("{c} *out"));
        }
        if let Some((c, _)) = &m.error {
            parts.push("bool *failed".to_owned());
            parts.push(format!("{c} *error"));
        }
        if with_client {
            parts.push("lpc_error **err".to_owned());
        }
        parts.join(", ")
    };
    for m in &methods {
        let sig = info
            .methods
            .iter()
            .find(|x| x.name == m.name)
            .map(|x| x.signature.as_str())
            .unwrap_or("");
        let _ = writeln!(
            h,
            "/* {sig} */\nlpc_status {prefix}_{}({});\n",
            m.name,
            signature(m, true)
        );
    }
    let _ = writeln!(h, "/* The service: implement these (return 0, or nonzero to refuse the call); they may run on\n * several threads at once. Results they return are freed by lpc after encoding. */");
    for m in &methods {
        let _ = writeln!(
            h,
            "int32_t {prefix}_impl_{}({});",
            m.name,
            signature(m, false)
        );
    }
    let _ = writeln!(
        h,
        "\n/* Binds service `name` (in runtime_dir, or the user's runtime directory if NULL), calls\n * ready(context) if not NULL once clients can connect, and serves until SIGTERM or SIGINT. */\nlpc_status {prefix}_serve(const char *name, const char *runtime_dir, void *context, void (*ready)(void *context), lpc_error **err);\n"
    );
    h.push_str("#ifdef __cplusplus\n}\n#endif\n\n");
    let _ = writeln!(h, "#endif /* {upper}_LPC_H */");

    // ---- sources ----
    // The codecs of the user types, as chunks each file takes only if it uses them (`-Werror`
    // rejects unused static functions); the free functions are public, in the client file.
    let mut codecs: Vec<(String, String)> = Vec::new();
    let mut frees = String::new();
    for name in &order {
        match info.types.get(name) {
            Some(TypeDef::Enum(variants)) => {
                codecs.push((format!("enc_{prefix}_{name}"), format!("static void enc_{prefix}_{name}(buf *lpc_b, const {prefix}_{name} *v) {{ put_varint(lpc_b, (uint64_t)*v); }}\n")));
                codecs.push((format!("dec_{prefix}_{name}"), format!("static int dec_{prefix}_{name}(reader *lpc_r, {prefix}_{name} *v) {{\n  uint64_t i;\n  if (get_varint(lpc_r, &i) || i >= {}) return -1;\n  *v = ({prefix}_{name})i;\n  return 0;\n}}\n", variants.len())));
            }
            Some(TypeDef::Struct(fields)) => {
                let mut enc = format!(
                    "static void enc_{prefix}_{name}(buf *lpc_b, const {prefix}_{name} *v) {{\n"
                );
                for f in fields {
                    let _ = writeln!(
                        enc,
                        "  {}",
                        g.enc(&f.shape, &format!("v->{}", c_ident(&f.name)))
                    );
                }
                enc.push_str("}\n");
                codecs.push((format!("enc_{prefix}_{name}"), enc));
                let owns = g.owns(&Shape::Named(name.clone()));
                if owns {
                    let _ = writeln!(frees, "void {prefix}_free_{name}({prefix}_{name} *v) {{\n  if (v == NULL) return;");
                    for f in fields {
                        let free = g.free(&f.shape, &format!("v->{}", c_ident(&f.name)));
                        if !free.is_empty() {
                            let _ = writeln!(frees, "  {free}");
                        }
                    }
                    let _ = writeln!(frees, "}}\n");
                }
                let mut dec = format!("static int dec_{prefix}_{name}(reader *lpc_r, {prefix}_{name} *v) {{\n  memset(v, 0, sizeof *v);\n");
                for f in fields {
                    let _ = writeln!(
                        dec,
                        "  {}",
                        g.dec(&f.shape, &format!("v->{}", c_ident(&f.name)))
                    );
                }
                let free = if owns {
                    format!("{prefix}_free_{name}(v); ")
                } else {
                    String::new()
                };
                let _ = writeln!(dec, "  return 0;\nfail:\n  {free}return -1;\n}}");
                codecs.push((format!("dec_{prefix}_{name}"), dec));
            }
            _ => {}
        }
    }
    let mut c = String::new();
    c.push_str(&frees);
    // The interface, for the check at connect and for serving.
    let _ = writeln!(c, "static const struct {{ const char *name; uint32_t id; uint64_t fingerprint; }} METHODS[] = {{");
    for m in &methods {
        let _ = writeln!(
            c,
            "  {{\"{}\", {}u, 0x{:016x}ull}},",
            m.name, m.id, m.fingerprint
        );
    }
    let _ = writeln!(c, "}};\n");
    let _ = writeln!(
        c,
        "lpc_status {prefix}_connect(const char *name, const lpc_options *options, lpc_client **client, lpc_error **err) {{\n  size_t i;\n  lpc_client *c = lpc_connect(name, options, err);\n  if (c == NULL) return lpc_error_status(err ? *err : NULL);\n  for (i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++) {{\n    uint32_t id; uint64_t fingerprint;\n    lpc_status s = lpc_method_fingerprint(c, METHODS[i].name, &id, &fingerprint, err);\n    if (s != LPC_OK || id != METHODS[i].id || fingerprint != METHODS[i].fingerprint) {{\n      if (s == LPC_OK) s = lpc_fail(LPC_ERR_MISMATCH, \"the service's method has other shapes than this file's\", METHODS[i].name, err);\n      lpc_client_free(c);\n      return s;\n    }}\n  }}\n  *client = c;\n  return LPC_OK;\n}}\n"
    );
    for m in &methods {
        let _ = writeln!(
            c,
            "lpc_status {prefix}_{}({}) {{",
            m.name,
            signature(m, true)
        );
        c.push_str("  uint8_t lpc_space[LPC_STACK_BYTES];\n  buf lpc_args = {lpc_space, 0, sizeof lpc_space, 0, 1};\n  buf *lpc_b = &lpc_args;\n  uint8_t lpc_room[LPC_STACK_BYTES];\n  uint8_t *lpc_res = NULL;\n  size_t lpc_res_len = 0;\n  lpc_status lpc_s;\n  reader lpc_rr;\n  reader *lpc_r = &lpc_rr;\n  (void)lpc_b;\n  (void)lpc_r;\n");
        for (_, name, shape, out) in &m.params {
            let expr = if *out
                || matches!(
                    shape,
                    Shape::Named(_) | Shape::Seq(_) | Shape::Bytes | Shape::Option(_)
                ) {
                format!("(*{name})")
            } else {
                name.clone()
            };
            let _ = writeln!(c, "  {}", g.enc(shape, &expr));
        }
        let _ = writeln!(c, "  if (lpc_args.failed) {{ buf_free(&lpc_args); return lpc_fail(LPC_ERR_SYSTEM, \"no memory for the arguments\", \"{}\", err); }}", m.name);
        let _ = writeln!(c, "  lpc_s = lpc_call_into(client, {}u, lpc_args.data, lpc_args.len, lpc_room, sizeof lpc_room, &lpc_res, &lpc_res_len, err);\n  buf_free(&lpc_args);\n  if (lpc_s != LPC_OK) return lpc_s;\n  lpc_rr.at = lpc_res; lpc_rr.end = lpc_res + lpc_res_len;", m.id);
        if let Some((_, eshape)) = &m.error {
            let _ = writeln!(c, "  {{ uint64_t lpc_tag; if (get_varint(lpc_r, &lpc_tag) || lpc_tag > 1) goto fail; *failed = lpc_tag == 1;");
            let _ = writeln!(
                c,
                "    if (lpc_tag == 1) {{ {} }} else {{ {} }} }}",
                g.dec(eshape, "*error"),
                m.result
                    .as_ref()
                    .map_or(String::new(), |(_, s)| g.dec(s, "*out"))
            );
        } else if let Some((_, rshape)) = &m.result {
            let _ = writeln!(c, "  {}", g.dec(rshape, "*out"));
        }
        for (_, name, shape, out) in &m.params {
            if *out {
                let free = g.free(shape, &format!("(*{name})"));
                let _ = writeln!(c, "  {free} {}", g.dec(shape, &format!("(*{name})")));
            }
        }
        let _ = writeln!(c, "  if (lpc_rr.at != lpc_rr.end) goto fail;\n  if (lpc_res != lpc_room) lpc_bytes_free(lpc_res, lpc_res_len);\n  return LPC_OK;\nfail:\n  if (lpc_res != lpc_room) lpc_bytes_free(lpc_res, lpc_res_len);\n  return lpc_fail(LPC_ERR_PROTOCOL, \"the result does not decode as this file's interface says\", \"{}\", err);\n}}\n", m.name);
    }
    // The service side, in its own file.
    let client_body = std::mem::take(&mut c);
    c.push_str("static int32_t dispatch(void *context, uint32_t method, const uint8_t *data, size_t len, lpc_reply *reply) {\n  reader lpc_rr;\n  reader *lpc_r = &lpc_rr;\n  uint8_t lpc_space[LPC_STACK_BYTES];\n  buf lpc_out = {lpc_space, 0, sizeof lpc_space, 0, 1};\n  buf *lpc_b = &lpc_out;\n  int32_t lpc_status_ = 1;\n  lpc_rr.at = data; lpc_rr.end = data + len;\n  (void)lpc_b;\n  (void)lpc_r;\n");
    for m in &methods {
        let _ = writeln!(c, "  if (method == {}u) {{", m.id);
        for (_, name, shape, _) in &m.params {
            let ct = g.ctype_known(shape);
            let _ = writeln!(
                c,
                "    {ct}{}lpc_a_{name};",
                if ct.ends_with('*') { "" } else { " " }
            );
            let _ = writeln!(c, "    memset(&lpc_a_{name}, 0, sizeof lpc_a_{name});");
        }
        if let Some((ct, _)) = &m.result {
            let _ = writeln!(
                c,
                "    {ct}{}lpc_result;\n    memset(&lpc_result, 0, sizeof lpc_result);",
                if ct.ends_with('*') { "" } else { " " }
            );
        }
        if let Some((ct, _)) = &m.error {
            let _ = writeln!(c, "    bool lpc_failed = false;\n    {ct}{}lpc_error_;\n    memset(&lpc_error_, 0, sizeof lpc_error_);", if ct.ends_with('*') { "" } else { " " });
        }
        for (_, name, shape, _) in &m.params {
            let _ = writeln!(c, "    {}", g.dec(shape, &format!("lpc_a_{name}")));
        }
        let _ = writeln!(c, "    if (lpc_rr.at != lpc_rr.end) goto fail_{};", m.name);
        let mut call = vec!["context".to_owned()];
        for (_, name, shape, out) in &m.params {
            if *out
                || matches!(
                    shape,
                    Shape::Named(_) | Shape::Seq(_) | Shape::Bytes | Shape::Option(_)
                )
            {
                call.push(format!("&lpc_a_{name}"));
            } else {
                call.push(format!("lpc_a_{name}"));
            }
        }
        if m.result.is_some() {
            call.push("&lpc_result".into());
        }
        if m.error.is_some() {
            call.push("&lpc_failed".into());
            call.push("&lpc_error_".into());
        }
        let _ = writeln!(
            c,
            "    lpc_status_ = {prefix}_impl_{}({});",
            m.name,
            call.join(", ")
        );
        let _ = writeln!(c, "    if (lpc_status_ == 0) {{");
        if let Some((_, eshape)) = &m.error {
            let _ = writeln!(c, "      if (lpc_failed) {{ put_byte(lpc_b, 1); {} }} else {{ put_byte(lpc_b, 0); {} }}", g.enc(eshape, "lpc_error_"), m.result.as_ref().map_or(String::new(), |(_, s)| g.enc(s, "lpc_result")));
        } else if let Some((_, rshape)) = &m.result {
            let _ = writeln!(c, "      {}", g.enc(rshape, "lpc_result"));
        }
        for (_, name, shape, out) in &m.params {
            if *out {
                let _ = writeln!(c, "      {}", g.enc(shape, &format!("lpc_a_{name}")));
            }
        }
        let _ = writeln!(c, "    }}");
        if let Some((_, s)) = &m.result {
            let _ = writeln!(c, "    {}", g.free(s, "lpc_result"));
        }
        if let Some((_, s)) = &m.error {
            let _ = writeln!(c, "    {}", g.free(s, "lpc_error_"));
        }
        let _ = writeln!(
            c,
            "    goto done_{0};\n  fail_{0}:\n    lpc_status_ = 1;\n  done_{0}:",
            m.name
        );
        for (_, name, shape, _) in &m.params {
            let _ = writeln!(c, "    {}", g.free(shape, &format!("lpc_a_{name}")));
        }
        let _ = writeln!(c, "    goto finish;\n  }}");
    }
    c.push_str("  return 2;\nfinish:\n  if (lpc_status_ == 0 && !lpc_out.failed) lpc_reply_write(reply, lpc_out.data, lpc_out.len);\n  if (lpc_out.failed) lpc_status_ = 3;\n  buf_free(&lpc_out);\n  return lpc_status_;\n}\n\n");
    let _ = writeln!(
        c,
        "lpc_status {prefix}_serve(const char *name, const char *runtime_dir, void *context, void (*ready)(void *context), lpc_error **err) {{\n  lpc_server *server = lpc_server_bind(name, runtime_dir, err);\n  if (server == NULL) return lpc_error_status(err ? *err : NULL);\n  if (ready != NULL) ready(context);\n  return lpc_server_serve(server, INTERFACE_JSON, dispatch, context, err);\n}}"
    );
    // The service's decoders `goto fail`; give each method's block its own label by renaming.
    let service_body = format!(
        "static const char INTERFACE_JSON[] = {};\n\n{}",
        c_string(document),
        rename_service_fails(&c, &methods)
    );
    let assemble = |what: &str, body: &str| {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "/* Generated by `lpc gen c` from the lpc interface {} ({what}): do not edit. */",
            info.name
        );
        let _ = writeln!(
            out,
            "#include <stdlib.h>\n#include <string.h>\n\n#include \"{header_name}\"\n"
        );
        out.push_str(TYPES);
        out.push_str(&statics_used_by(body, &codecs));
        out.push_str(body);
        out
    };
    let source = assemble(
        "the client stubs and the types' free functions",
        &client_body,
    );
    let service = assemble(
        "the service skeleton; link it with the client file",
        &service_body,
    );
    Ok(Generated {
        skipped,
        header_name,
        header: h,
        source,
        service_name: format!("{prefix}_service.c"),
        service,
        source_name,
    })
}

/// In the dispatcher, each method's decoders jump to `fail_<method>`, not `fail`.
fn rename_service_fails(source: &str, methods: &[MethodC]) -> String {
    let Some(start) = source.find("static int32_t dispatch(") else {
        return source.to_owned();
    };
    let (head, body) = source.split_at(start);
    let mut out = String::from(head);
    let mut current: Option<&str> = None;
    for line in body.lines() {
        if let Some(m) = methods
            .iter()
            .find(|m| line.trim_start() == format!("if (method == {}u) {{", m.id))
        {
            current = Some(&m.name);
        }
        match current {
            Some(name) => out.push_str(&line.replace("goto fail;", &format!("goto fail_{name};"))),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The static functions `body` calls — helpers and the types' codecs — with those they call
/// in turn, in their order (a function before its callers).
fn statics_used_by(body: &str, codecs: &[(String, String)]) -> String {
    let chunks: Vec<(&str, &str)> = HELPERS
        .iter()
        .map(|(name, code)| (*name, *code))
        .chain(codecs.iter().map(|(n, c)| (n.as_str(), c.as_str())))
        .collect();
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut text = body.to_owned();
    loop {
        let more: Vec<(&str, &str)> = chunks
            .iter()
            .filter(|(name, _)| !wanted.contains(name) && text.contains(&format!("{name}(")))
            .copied()
            .collect();
        if more.is_empty() {
            break;
        }
        for (name, code) in more {
            wanted.insert(name);
            text.push_str(code);
        }
    }
    chunks
        .iter()
        .filter(|(name, _)| wanted.contains(name))
        .map(|(_, code)| format!("{code}\n"))
        .collect()
}

/// `text` as a C string literal.
fn c_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n\"\n    \""),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// The encoding helpers every generated source starts with (postcard's format).
/// The encoding helpers a generated source may use (postcard's format), in an order where
/// each comes after those it calls; a source gets only those it uses (see `statics_used_by`).
const HELPERS: &[(&str, &str)] = &[
    (
        "buf_free",
        r#"static void buf_free(buf *b) {
  if (!b->borrowed) free(b->data);
}
"#,
    ),
    (
        "put_raw",
        r#"static void put_raw(buf *b, const void *bytes, size_t n) {
  if (b->failed || n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    uint8_t *grown;
    while (cap < b->len + n) cap *= 2;
    /* A borrowed array (on the caller's stack) is copied out, never realloc'd. */
    grown = (uint8_t *)(b->borrowed ? malloc(cap) : realloc(b->data, cap));
    if (grown == NULL) { b->failed = 1; return; }
    if (b->borrowed && b->len) memcpy(grown, b->data, b->len);
    b->data = grown;
    b->cap = cap;
    b->borrowed = 0;
  }
  memcpy(b->data + b->len, bytes, n);
  b->len += n;
}
"#,
    ),
    (
        "put_byte",
        r#"static void put_byte(buf *b, uint8_t v) { put_raw(b, &v, 1); }
"#,
    ),
    (
        "put_varint",
        r#"static void put_varint(buf *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) { tmp[n++] = (uint8_t)(v | 0x80); v >>= 7; }
  tmp[n++] = (uint8_t)v;
  put_raw(b, tmp, n);
}
"#,
    ),
    (
        "put_zigzag",
        r#"static void put_zigzag(buf *b, int64_t v) { put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }
"#,
    ),
    (
        "put_len",
        r#"static void put_len(buf *b, size_t n) { put_varint(b, (uint64_t)n); }
"#,
    ),
    (
        "put_f32",
        r#"static void put_f32(buf *b, float v) {
  uint32_t u; uint8_t tmp[4]; int i;
  memcpy(&u, &v, 4);
  for (i = 0; i < 4; i++) tmp[i] = (uint8_t)(u >> (8 * i));
  put_raw(b, tmp, 4);
}
"#,
    ),
    (
        "put_f64",
        r#"static void put_f64(buf *b, double v) {
  uint64_t u; uint8_t tmp[8]; int i;
  memcpy(&u, &v, 8);
  for (i = 0; i < 8; i++) tmp[i] = (uint8_t)(u >> (8 * i));
  put_raw(b, tmp, 8);
}
"#,
    ),
    (
        "put_str",
        r#"static void put_str(buf *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  put_len(b, n);
  put_raw(b, s, n);
}
"#,
    ),
    (
        "get_byte",
        r#"static int get_byte(reader *r, uint8_t *v) {
  if (r->at >= r->end) return -1;
  *v = *r->at++;
  return 0;
}
"#,
    ),
    (
        "get_varint",
        r#"static int get_varint(reader *r, uint64_t *v) {
  uint64_t out = 0;
  int shift;
  for (shift = 0; shift < 64; shift += 7) {
    uint8_t byte;
    if (get_byte(r, &byte)) return -1;
    out |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) { *v = out; return 0; }
  }
  return -1;
}
"#,
    ),
    (
        "get_zigzag",
        r#"static int get_zigzag(reader *r, int64_t *v) {
  uint64_t z;
  if (get_varint(r, &z)) return -1;
  *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
  return 0;
}
"#,
    ),
    (
        "get_f32",
        r#"static int get_f32(reader *r, float *v) {
  uint32_t u = 0; int i;
  if (r->end - r->at < 4) return -1;
  for (i = 0; i < 4; i++) u |= (uint32_t)*r->at++ << (8 * i);
  memcpy(v, &u, 4);
  return 0;
}
"#,
    ),
    (
        "get_f64",
        r#"static int get_f64(reader *r, double *v) {
  uint64_t u = 0; int i;
  if (r->end - r->at < 8) return -1;
  for (i = 0; i < 8; i++) u |= (uint64_t)*r->at++ << (8 * i);
  memcpy(v, &u, 8);
  return 0;
}
"#,
    ),
    (
        "get_bytes",
        r#"static int get_bytes(reader *r, uint8_t **data, size_t *len) {
  uint64_t n;
  if (get_varint(r, &n) || n > (uint64_t)(r->end - r->at)) return -1;
  *data = (uint8_t *)malloc(n ? (size_t)n : 1);
  if (*data == NULL) return -1;
  memcpy(*data, r->at, (size_t)n);
  *len = (size_t)n;
  r->at += n;
  return 0;
}
"#,
    ),
    (
        "get_str",
        r#"static int get_str(reader *r, char **s) {
  uint8_t *data; size_t len;
  if (get_bytes(r, &data, &len)) return -1;
  if (memchr(data, 0, len) != NULL) { free(data); return -1; }
  *s = (char *)realloc(data, len + 1);
  if (*s == NULL) { free(data); return -1; }
  (*s)[len] = '\0';
  return 0;
}
"#,
    ),
];

/// The buffer and reader types every generated source starts with.
const TYPES: &str = r#"/* A growable buffer for an encoding; `failed` once memory ran out. It starts in an array on
 * the caller's stack (`borrowed`), so a small call allocates nothing, and moves to the heap
 * when it outgrows it. */
typedef struct {
  uint8_t *data;
  size_t len, cap;
  int failed, borrowed;
} buf;

/* Room on the stack for a call's arguments and for its result. */
#define LPC_STACK_BYTES 256

/* A cursor over received bytes; every get checks what is left. */
typedef struct {
  const uint8_t *at, *end;
} reader;

"#;
