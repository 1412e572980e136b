//! A small pretty-printer for the tokens of Rust types, generics and the like.
//!
//! The signature text of a method (`fn add(&self, a: i32, b: i32) -> i32`) is part of the
//! interface fingerprint and is shown to people (`lpc-cli`), so it must read like Rust as a
//! person writes it, not like `TokenStream::to_string` (`Vec < u8 >`).

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Keywords that may appear inside a type. Every other identifier is a [`Atom::Word`].
const KEYWORDS: &[&str] = &[
    "as", "async", "const", "dyn", "extern", "fn", "for", "impl", "move", "mut", "ref", "unsafe",
    "where",
];

/// One printable piece of a token stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// An identifier, including path keywords (`self`, `Self`, `crate`, `super`).
    Word(String),
    /// A keyword from [`KEYWORDS`].
    Keyword(String),
    /// `'a`, `'static`, `'_`.
    Lifetime(String),
    /// `4`, `"C"`.
    Literal(String),
    /// A punctuation mark; `::`, `->` and `=>` are one atom each.
    Punct(String),
    /// `(`, `[` or `{`.
    Open(char),
    /// `)`, `]` or `}`.
    Close(char),
}

impl Atom {
    fn text(&self) -> String {
        match self {
            Atom::Word(s)
            | Atom::Keyword(s)
            | Atom::Lifetime(s)
            | Atom::Literal(s)
            | Atom::Punct(s) => s.clone(),
            Atom::Open(c) | Atom::Close(c) => c.to_string(),
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self, Atom::Punct(s) if s == p)
    }

    /// A keyword followed by a space even before `(`, `[` or `<` (`mut [u8]`, `dyn (A)`), unlike
    /// `fn(u8)` and `for<'a>`.
    fn is_spaced_keyword(&self) -> bool {
        matches!(self, Atom::Keyword(k) if k != "fn" && k != "for")
    }
}

/// Prints `tokens` the way a person writes Rust: `&'a [Option<u8>]`,
/// `std::collections::HashMap<String, u32>`, `Box<dyn Fn(&str) -> bool + Send>`.
pub fn pretty(tokens: TokenStream) -> String {
    let mut atoms = Vec::new();
    flatten(tokens, &mut atoms);
    let mut out = String::new();
    for (i, atom) in atoms.iter().enumerate() {
        if i > 0 && space_between(&atoms[i - 1], atom) {
            out.push(' ');
        }
        out.push_str(&atom.text());
    }
    out
}

/// Turns a token stream into atoms, descending into groups (invisible groups, as
/// `macro_rules!` leaves around `$t:ty`, print nothing of their own).
fn flatten(tokens: TokenStream, out: &mut Vec<Atom>) {
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ('(', ')'),
                    Delimiter::Bracket => ('[', ']'),
                    Delimiter::Brace => ('{', '}'),
                    Delimiter::None => {
                        flatten(group.stream(), out);
                        continue;
                    }
                };
                out.push(Atom::Open(open));
                flatten(group.stream(), out);
                out.push(Atom::Close(close));
            }
            TokenTree::Ident(ident) => {
                let text = ident.to_string();
                if KEYWORDS.contains(&text.as_str()) {
                    out.push(Atom::Keyword(text));
                } else {
                    out.push(Atom::Word(text));
                }
            }
            TokenTree::Literal(literal) => out.push(Atom::Literal(literal.to_string())),
            TokenTree::Punct(punct) => {
                let c = punct.as_char();
                if punct.spacing() == Spacing::Joint {
                    let joined = match (c, iter.peek()) {
                        ('\'', Some(TokenTree::Ident(ident))) => {
                            Some(Atom::Lifetime(format!("'{ident}")))
                        }
                        (':', Some(TokenTree::Punct(next))) if next.as_char() == ':' => {
                            Some(Atom::Punct("::".to_owned()))
                        }
                        ('-', Some(TokenTree::Punct(next))) if next.as_char() == '>' => {
                            Some(Atom::Punct("->".to_owned()))
                        }
                        ('=', Some(TokenTree::Punct(next))) if next.as_char() == '>' => {
                            Some(Atom::Punct("=>".to_owned()))
                        }
                        _ => None,
                    };
                    if let Some(atom) = joined {
                        iter.next();
                        out.push(atom);
                        continue;
                    }
                }
                out.push(Atom::Punct(c.to_string()));
            }
        }
    }
}

/// Whether a space separates two adjacent atoms.
fn space_between(prev: &Atom, next: &Atom) -> bool {
    // Inside brackets: `(u8, u16)`, `[u8]`, `()`.
    if matches!(prev, Atom::Open(_)) || matches!(next, Atom::Close(_)) {
        return false;
    }
    // Separators: `u8, u16`, `[u8; 4]`.
    if next.is_punct(",") || next.is_punct(";") {
        return false;
    }
    if prev.is_punct(",") || prev.is_punct(";") {
        return true;
    }
    // Operators spaced on both sides: `-> u8`, `dyn A + Send`, `Item = u8`.
    if ["->", "=>", "+", "="]
        .iter()
        .any(|op| prev.is_punct(op) || next.is_punct(op))
    {
        return true;
    }
    // `name: Type` style colons.
    if prev.is_punct(":") {
        return true;
    }
    if next.is_punct(":") {
        return false;
    }
    // Prefixes glued to what follows: `&str`, `*const u8`, `std::io`, `Vec<u8>`.
    if ["&", "*", "::", "<", "!"]
        .iter()
        .any(|op| prev.is_punct(op))
    {
        return false;
    }
    // `&'a &T`, `&mut &T`, `dyn &T` (the last two are not types, but read better spaced).
    if next.is_punct("&") || next.is_punct("*") {
        return matches!(prev, Atom::Lifetime(_) | Atom::Keyword(_));
    }
    // `std::io`, `Vec<u8>`, but `as ::std::Any`, `dyn <T as X>::Y`.
    if next.is_punct("::") || next.is_punct("<") {
        return prev.is_spaced_keyword();
    }
    if next.is_punct(">") {
        return false;
    }
    // `Fn(u8)`, `fn(u8)`, but `&'a [u8]`, `&mut [u8]`.
    if matches!(next, Atom::Open(_)) {
        return matches!(prev, Atom::Lifetime(_)) || prev.is_spaced_keyword();
    }
    // Words in a row: `dyn Trait`, `&'a str`, `for<'a> fn`, `extern "C" fn`.
    let wordish_prev = matches!(
        prev,
        Atom::Word(_) | Atom::Keyword(_) | Atom::Lifetime(_) | Atom::Literal(_) | Atom::Close(_)
    ) || prev.is_punct(">");
    let wordish_next = matches!(
        next,
        Atom::Word(_) | Atom::Keyword(_) | Atom::Lifetime(_) | Atom::Literal(_)
    );
    wordish_prev && wordish_next
}

#[cfg(test)]
mod tests {
    use super::pretty;
    use quote::ToTokens;

    /// Parses `source` as a type and prints it.
    fn ty(source: &str) -> String {
        let parsed: syn::Type = syn::parse_str(source).expect("a type");
        pretty(parsed.to_token_stream())
    }

    #[track_caller]
    fn same(source: &str) {
        assert_eq!(ty(source), source);
    }

    #[test]
    fn prints_types_as_people_write_them() {
        for source in [
            "i32",
            "String",
            "&str",
            "&mut MyInfo",
            "&[u8]",
            "Vec<u8>",
            "Vec<Vec<u8>>",
            "Result<Vec<String>, MyError>",
            "&'a [Option<u8>]",
            "&'static str",
            "&'a mut Vec<u8>",
            "std::collections::HashMap<String, u32>",
            "::std::collections::HashMap<String, Vec<(u8, u16)>>",
            "()",
            "(u8,)",
            "(u8, String, Option<&str>)",
            "[u8; 4]",
            "&mut [u8; 16]",
            "Cow<'a, str>",
            "Box<dyn Fn(&str) -> bool + Send + 'static>",
            "Box<dyn std::error::Error + Send + Sync>",
            "fn(u8) -> u8",
            "for<'a> fn(&'a u8) -> &'a u8",
            "unsafe extern \"C\" fn(i32)",
            "*const u8",
            "*mut [u8]",
            "<T as Trait>::Assoc",
            "<Vec<u8> as IntoIterator>::Item",
            "Box<dyn Iterator<Item = u8>>",
            "Option<Self>",
            "crate::types::Point",
            "super::Point",
            "&dyn Any",
            "&mut dyn Write",
            "&&T",
            "&mut &T",
            "impl Iterator<Item = String> + Send",
            "!",
            "my_type!()",
        ] {
            same(source);
        }
    }

    #[test]
    fn normalizes_spacing() {
        assert_eq!(ty("Vec < u8 >"), "Vec<u8>");
        assert_eq!(ty("std :: vec :: Vec<u8>"), "std::vec::Vec<u8>");
        assert_eq!(ty("& 'a  mut  [ u8 ]"), "&'a mut [u8]");
        assert_eq!(ty("HashMap<String,u32>"), "HashMap<String, u32>");
        assert_eq!(ty("fn ( u8 )->u8"), "fn(u8) -> u8");
    }

    #[test]
    fn looks_through_invisible_groups() {
        use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
        let inner: TokenStream = "Vec<u8>".parse().expect("tokens");
        let group = TokenTree::Group(Group::new(Delimiter::None, inner));
        let mut tokens: TokenStream = "Option<".parse().expect("tokens");
        tokens.extend([group]);
        tokens.extend("> ".parse::<TokenStream>().expect("tokens"));
        assert_eq!(pretty(tokens), "Option<Vec<u8>>");
    }
}
