//! The layers of the `lpc` crate, checked: every `crate::…` (and `super::…`) path in
//! `lpc/src` must point to a module of a lower layer than its own, by the layer table of
//! `docs/architecture.md`; inside a layer, the files under one module must not import each
//! other in a cycle (a module's `mod.rs` and its children may use each other: the parent is the
//! face of its children). Violations are reported with file and line.
//!
//! The checker reads source text, not the compiler's resolution: it skips comments and string
//! literals, follows `use` groups (`crate::{a, b::c}`), inline modules (`mod tests { use
//! super::* }`) and the crate root's re-exports (`crate::Error` is `error`'s).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One import: where it is, and the module path it names (as written, after `crate::`).
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    from: Vec<String>,
    to: Vec<String>,
}

/// The layer table: module → rank (higher ranks may import lower ones).
fn parse_table(doc: &str) -> BTreeMap<String, u32> {
    let start = doc
        .find("<!-- layer table -->")
        .expect("docs/architecture.md has a `<!-- layer table -->` marker before its table");
    let mut table = BTreeMap::new();
    for line in doc[start..].lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if table.is_empty() {
                continue;
            }
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Ok(rank) = cells[0].parse::<u32>() else {
            continue; // the header row and its rule
        };
        for module in cells[1].split(',') {
            let module = module.trim().trim_matches('`');
            table.insert(module.to_owned(), rank);
        }
    }
    assert!(!table.is_empty(), "the layer table has no rows");
    table
}

/// Removes comments and the contents of string and char literals, keeping line breaks.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(prev(&chars, i))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some('\n') => out.push('\n'),
                    _ => {}
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal (a lifetime has no closing quote two characters on).
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev(chars: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        chars[i - 1]
    }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Tokens with their line numbers.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if ident_char(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// Reads a path after `crate::` (or `super::`) at `at`: the names of one path, or of each
/// path of a group. Returns the paths and their lines.
fn read_paths(tokens: &[(Token, usize)], mut at: usize, prefix: Vec<String>) -> Vec<Vec<String>> {
    let mut path = prefix;
    loop {
        match tokens.get(at) {
            Some((Token::Ident(name), _)) => {
                path.push(name.clone());
                at += 1;
                if tokens.get(at).map(|t| &t.0) == Some(&Token::PathSep) {
                    at += 1;
                    continue;
                }
                return vec![path];
            }
            Some((Token::Open, _)) => {
                // A group: each top-level item is a path of its own.
                let mut paths = Vec::new();
                at += 1;
                loop {
                    match tokens.get(at) {
                        Some((Token::Close, _)) | None => return paths,
                        Some((Token::Comma, _)) => at += 1,
                        _ => {
                            let inner = read_paths(tokens, at, path.clone());
                            paths.extend(inner);
                            // Skip to the next comma or the group's end at this depth.
                            let mut depth = 0;
                            while let Some((t, _)) = tokens.get(at) {
                                match t {
                                    Token::Open => depth += 1,
                                    Token::Close if depth == 0 => break,
                                    Token::Close => depth -= 1,
                                    Token::Comma if depth == 0 => break,
                                    _ => {}
                                }
                                at += 1;
                            }
                        }
                    }
                }
            }
            _ => return vec![path],
        }
    }
}

/// The imports of one file, whose module path is `module`.
fn imports_of(file: &str, module: &[String], source: &str) -> Vec<Import> {
    let toks = tokens(&strip(source));
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    for i in 0..toks.len() {
        match &toks[i].0 {
            Token::Open => depth += 1,
            Token::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Open, _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Token::Ident(word) if word == "crate" || word == "super" || word == "lpc" => {
                let preceded_by_sep = i > 0 && toks[i - 1].0 == Token::PathSep;
                if preceded_by_sep || toks.get(i + 1).map(|t| &t.0) != Some(&Token::PathSep) {
                    continue;
                }
                let here: Vec<String> = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(n, _)| n.clone()))
                    .collect();
                // `super::super::x` climbs once per `super`.
                let mut base = if word == "super" {
                    here[..here.len().saturating_sub(1)].to_vec()
                } else {
                    Vec::new()
                };
                let mut at = i + 2;
                if word == "super" {
                    while let (Some((Token::Ident(w), _)), Some((Token::PathSep, _))) =
                        (toks.get(at), toks.get(at + 1))
                    {
                        if w != "super" {
                            break;
                        }
                        base.pop();
                        at += 2;
                    }
                }
                for to in read_paths(&toks, at, base) {
                    out.push(Import {
                        file: file.to_owned(),
                        line: toks[i].1,
                        from: module.to_vec(),
                        to,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The crate root's `pub use` re-exports: item name → module path it comes from.
fn root_reexports(lib: &str) -> BTreeMap<String, Vec<String>> {
    let toks = tokens(&strip(lib));
    let mut map = BTreeMap::new();
    for i in 0..toks.len() {
        if toks[i].0 == Token::Ident("pub".into())
            && toks.get(i + 1).map(|t| &t.0) == Some(&Token::Ident("use".into()))
        {
            let mut at = i + 2;
            if toks.get(at).map(|t| &t.0) == Some(&Token::Ident("crate".into())) {
                at += 2;
            }
            for path in read_paths(&toks, at, Vec::new()) {
                if let Some((name, module)) = path.split_last() {
                    if !module.is_empty() {
                        map.insert(name.clone(), module.to_vec());
                    }
                }
            }
        }
    }
    map
}

/// Checks `files` (path relative to `src`, text) against `table`; returns the violations.
fn check(table: &BTreeMap<String, u32>, files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(f, _)| module_of(f)).collect();
    let lib = files
        .iter()
        .find(|(f, _)| f == "lib.rs")
        .map(|(_, s)| s.as_str())
        .unwrap_or("");
    let reexports = root_reexports(lib);
    let mut problems = Vec::new();
    let mut inner: Vec<(Vec<String>, Vec<String>, String)> = Vec::new();
    for (file, source) in files {
        let module = module_of(file);
        let Some(top) = module.first() else {
            continue; // the crate root may use every layer
        };
        let Some(&rank) = table.get(top) else {
            problems.push(format!(
                "src/{file}: module `{top}` is not in the layer table of docs/architecture.md"
            ));
            continue;
        };
        for import in imports_of(file, &module, source) {
            let mut to = import.to.clone();
            if let Some(first) = to.first() {
                if !table.contains_key(first) {
                    match reexports.get(first) {
                        Some(origin) => to = origin.clone(),
                        None => continue, // `crate::__private`, a macro, …: not a layer
                    }
                }
            }
            let Some(target_top) = to.first() else {
                continue;
            };
            let target_rank = table[target_top];
            let here = format!("src/{}:{}", import.file, import.line);
            if target_top == top {
                // The module file the path lands in: its longest prefix that is a module.
                let target = (1..=to.len())
                    .rev()
                    .map(|n| to[..n].to_vec())
                    .find(|p| modules.contains(p))
                    .unwrap_or_else(|| vec![top.clone()]);
                inner.push((import.from.clone(), target, here));
            } else if target_rank >= rank {
                problems.push(format!(
                    "{here}: `{top}` (layer {rank}) imports `{}` (layer {target_rank}): \
                     imports must point to a lower layer (docs/architecture.md)",
                    to.join("::")
                ));
            }
        }
    }
    problems.extend(sibling_cycles(&inner));
    problems
}

/// Cycles among the files under one module: an edge from `a/x…` to `a/y…` is an edge x → y
/// among the children of `a` (edges between a module and its own descendants do not count).
fn sibling_cycles(edges: &[(Vec<String>, Vec<String>, String)]) -> Vec<String> {
    let mut graph: BTreeMap<(Vec<String>, String), BTreeMap<String, String>> = BTreeMap::new();
    for (from, to, at) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // one contains the other
        }
        let parent = from[..common].to_vec();
        graph
            .entry((parent, from[common].clone()))
            .or_default()
            .entry(to[common].clone())
            .or_insert_with(|| at.clone());
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for (parent, start) in graph.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            let Some(next) = graph.get(&(parent.clone(), node.clone())) else {
                continue;
            };
            for (to, at) in next {
                let mut trail: Vec<(String, String, String)> = trail.clone();
                trail.push((node.clone(), to.clone(), at.clone()));
                if to == start {
                    let mut members: Vec<String> = trail.iter().map(|t| t.0.clone()).collect();
                    members.sort();
                    if reported.insert((parent.clone(), members)) {
                        let steps: Vec<String> = trail
                            .iter()
                            .map(|(a, b, at)| format!("`{a}` uses `{b}` at {at}"))
                            .collect();
                        problems.push(format!(
                            "a cycle inside `{}`: {}",
                            if parent.is_empty() {
                                "lpc".into()
                            } else {
                                parent.join("::")
                            },
                            steps.join("; ")
                        ));
                    }
                } else if seen.insert(to.clone()) {
                    stack.push((to.clone(), trail));
                }
            }
        }
    }
    problems
}

/// `channel/payload.rs` → `channel::payload`; `channel/mod.rs` → `channel`; `lib.rs` → root.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(Into::into)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.strip_prefix(root).expect("under src");
            let name = name.to_string_lossy().replace('\\', "/");
            out.push((name, std::fs::read_to_string(&path).expect("source")));
        }
    }
}

#[test]
fn imports_point_downward_and_no_module_uses_its_siblings_in_a_cycle() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(manifest.join("../docs/architecture.md")).unwrap();
    let table = parse_table(&doc);
    let mut files = Vec::new();
    sources(&manifest.join("src"), &manifest.join("src"), &mut files);
    let problems = check(&table, &files);
    assert!(
        problems.is_empty(),
        "{} layering problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The checker itself: it must see what it is for, and nothing else.
mod checker {
    use super::*;

    fn table() -> BTreeMap<String, u32> {
        parse_table(
            "<!-- layer table -->\n| rank | module | what |\n|---|---|---|\n\
             | 0 | `sys` | os |\n| 1 | `shm` | memory |\n| 2 | `wire` | formats |\n\
             | 3 | `channel`, `loan` | protocol |\n",
        )
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, s)| (f.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn an_upward_import_is_reported_with_file_and_line() {
        let problems = check(
            &table(),
            &files(&[
                ("lib.rs", "pub use loan::Loan;"),
                ("wire/mod.rs", "mod frame;"),
                (
                    "wire/frame.rs",
                    "use std::fmt;\n\nuse crate::channel::Payload;\n",
                ),
                ("channel/mod.rs", "use crate::wire::frame::Frame;"),
            ]),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("src/wire/frame.rs:3:"),
            "{problems:?}"
        );
        assert!(problems[0].contains("`channel::Payload`"), "{problems:?}");
    }

    #[test]
    fn groups_reexports_and_same_layer_imports_count() {
        let problems = check(
            &table(),
            &files(&[
                ("lib.rs", "pub use crate::loan::{Loan, Lent};"),
                ("shm/mod.rs", "use crate::{sys::Mapping, wire::X};"),
                ("channel/mod.rs", "fn f() -> crate::Loan { todo!() }"),
            ]),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let about = |file: &str| problems.iter().find(|p| p.starts_with(file)).cloned();
        assert!(about("src/channel/mod.rs:1:").is_some_and(|p| p.contains("`loan`")));
        assert!(about("src/shm/mod.rs:1:").is_some_and(|p| p.contains("`wire::X`")));
    }

    #[test]
    fn comments_strings_and_unlisted_root_items_do_not_count() {
        let problems = check(
            &table(),
            &files(&[
                ("lib.rs", ""),
                (
                    "sys/mod.rs",
                    "//! See [`crate::channel`].\n/* crate::wire */\nconst A: &str = \"crate::shm\";\n\
                     const R: &str = r#\"crate::shm\"#;\nfn f<'a>(x: &'a u8) -> char { 'c' }\n\
                     use crate::__private::x;\n",
                ),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_cycle_between_sibling_files_is_reported_with_each_step() {
        let problems = check(
            &table(),
            &files(&[
                ("lib.rs", ""),
                ("channel/mod.rs", "mod a; mod b; use self::a::A;"),
                ("channel/a.rs", "use super::Channel;\nuse super::b::B;"),
                ("channel/b.rs", "\n\nuse crate::channel::a::A;"),
                (
                    "channel/c.rs",
                    "use super::a::A; mod tests { use super::*; }",
                ),
            ]),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("a cycle inside `channel`"),
            "{problems:?}"
        );
        assert!(problems[0].contains("src/channel/a.rs:2"), "{problems:?}");
        assert!(problems[0].contains("src/channel/b.rs:3"), "{problems:?}");
    }

    #[test]
    fn a_module_missing_from_the_table_is_reported() {
        let problems = check(&table(), &files(&[("lib.rs", ""), ("extra/mod.rs", "")]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`extra` is not in the layer table"));
    }
}
