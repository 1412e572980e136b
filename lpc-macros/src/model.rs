//! Reads a service trait, checks that lpc can carry it, and describes it for code generation.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Generics, Ident, ItemTrait, Lifetime, Pat,
    PatType, Path, PathArguments, ReceiverKind, ReturnType, Safety, Signature, TraitItem,
    TraitItemFn, Type, Visibility,
};

use crate::hash::{fnv1a64, method_id};
use crate::pretty::pretty;

/// Most parameters a method may have: serde implements (de)serialization for tuples of up to 16
/// elements, and the arguments travel as one tuple.
pub const MAX_PARAMS: usize = 16;

/// Names of the inherent methods of the generated `XxxClient`; a service method may not reuse one.
const CLIENT_METHODS: &[&str] = &[
    "connect",
    "connect_with",
    "from_client",
    "client",
    "with_timeout",
];

/// A checked service trait.
pub struct Service {
    /// The trait as written, emitted unchanged.
    pub item: ItemTrait,
    /// The trait name, without `r#`.
    pub name: String,
    /// The trait's own identifier (for `<T as Calc>::method`).
    pub ident: Ident,
    /// The trait's visibility, given to every generated item.
    pub vis: Visibility,
    /// FNV-1a 64 over the name and the signatures.
    pub fingerprint: u64,
    /// The methods, in declaration order.
    pub methods: Vec<Method>,
}

/// A checked service method.
pub struct Method {
    /// The method's identifier as written (maybe `r#match`).
    pub ident: Ident,
    /// The method name, without `r#`.
    pub name: String,
    /// `lpc::method_id(name)`.
    pub id: u32,
    /// The signature as a person writes it.
    pub signature: String,
    /// The `#[doc]` attributes, copied onto the client method.
    pub docs: Vec<Attribute>,
    /// Lifetime parameters only.
    pub generics: Generics,
    /// The lifetime of `&'a self`, if written.
    pub receiver_lifetime: Option<Lifetime>,
    /// The parameters after `&self`.
    pub params: Vec<Param>,
    /// What the method returns.
    pub output: Output,
    /// The return type as a person writes it; `()` when there is none.
    pub output_text: String,
    /// Whether the return type is written `Result<T, E>` (`std::result::Result` or
    /// `core::result::Result`, possibly through its full path): `E` is an application error.
    pub returns_result: bool,
    /// Whether the return type names `lpc::Loan` (see [`holds_loan`]): the client then decodes
    /// the result where the loan's buffer can be mapped.
    pub returns_loan: bool,
    /// `#[lpc(oneway)]`: posted into the connection's one-way queue, never answered.
    pub oneway: bool,
    /// Whether a parameter or the result passes files, descriptors or segments (see
    /// [`holds_handle`]): the call then goes where descriptors can travel.
    pub passes_handles: bool,
}

/// A method parameter.
pub struct Param {
    /// The parameter name.
    pub ident: Ident,
    /// The parameter name without `r#`, as the descriptor and JSON calls spell it.
    pub name: String,
    /// The type as written (what the client method takes).
    pub ty: Type,
    /// The type as a person writes it: `&mut MyInfo`.
    pub ty_text: String,
    /// How it travels.
    pub kind: ParamKind,
}

/// How a parameter is sent by the client and received by the service.
pub enum ParamKind {
    /// `T` by value: the service decodes a `T`.
    Value,
    /// `Vec<u8>` by value: sent as bytes, decoded as `WireBytes` (one copy).
    ByteVec,
    /// `&str`: the service decodes a `String`.
    Str,
    /// `&[u8]`: sent as bytes, decoded as `WireBytes` (one copy).
    ByteSlice,
    /// `&[T]`: the service decodes a `Vec<T>`.
    Slice(Type),
    /// `&T`: the service decodes a `T`.
    Ref(Type),
    /// `&mut T`: the service decodes a `T`, and sends it back after the call.
    RefMut(Type),
    /// A file or descriptor passed by the kernel: `File`, `&File`, `OwnedFd`, `&OwnedFd`,
    /// `BorrowedFd<'_>`.
    Handle {
        /// `File` (else a descriptor).
        file: bool,
        /// How the handler takes it.
        by: HandleBy,
    },
}

/// How a handler takes a file or descriptor parameter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HandleBy {
    /// `File`, `OwnedFd`.
    Value,
    /// `&File`, `&OwnedFd`.
    Ref,
    /// `BorrowedFd<'_>`.
    Borrowed,
}

/// What a method returns.
pub enum Output {
    /// Nothing (or `()`).
    Unit,
    /// `Vec<u8>`: sent as bytes.
    ByteVec,
    /// A file or descriptor passed by the kernel: `File`, `OwnedFd`, or either as the `Ok` of
    /// a `Result<_, E>` (whose `E` is given).
    Handle {
        /// `File` (else `OwnedFd`).
        file: bool,
        /// `E` of `Result<File, E>`.
        err: Option<Box<Type>>,
    },
    /// Any other type.
    Type(Box<Type>),
}

/// Errors gathered while checking, reported all at once.
#[derive(Default)]
struct Errors {
    /// Every error so far, combined in the order found (the order the compiler shows them).
    all: Option<syn::Error>,
    /// How many were pushed: a check that pushed none passed.
    count: usize,
}

impl Errors {
    fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn count(&self) -> usize {
        self.count
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.all {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Checks the trait and describes it. On error, every problem found is reported.
pub fn read_service(mut item: ItemTrait) -> syn::Result<Service> {
    let mut errors = Errors::default();

    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            "lpc service traits cannot be generic: the interface must name concrete types; \
             replace the type parameters with the concrete types the service uses",
        );
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.spanned(
            where_clause,
            "lpc service traits cannot have a `where` clause: remove it \
             (supertraits such as `Send + Sync` may be written after `:`)",
        );
    }

    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(function) => {
                if let Some(method) = read_method(function, &mut errors) {
                    methods.push(method);
                }
            }
            TraitItem::Type(assoc) => errors.spanned(
                assoc,
                "lpc service traits cannot have associated types: the client must know every \
                 type at compile time; use concrete types in the method signatures instead",
            ),
            TraitItem::Const(assoc) => errors.spanned(
                assoc,
                "lpc service traits cannot have associated consts: only method calls travel \
                 between processes; use a free `const`, or a method that returns the value",
            ),
            TraitItem::Macro(mac) => errors.spanned(
                mac,
                "lpc service traits cannot contain macro invocations: `#[lpc::service]` cannot \
                 see the methods they expand to; write the methods out",
            ),
            other => errors.spanned(
                other,
                "`#[lpc::service]` does not understand this trait item: only methods \
                 `fn name(&self, ...) -> T;` are allowed",
            ),
        }
    }

    for (i, later) in methods.iter().enumerate() {
        for earlier in &methods[..i] {
            if earlier.id == later.id {
                errors.spanned(
                    &later.ident,
                    format!(
                        "lpc method ids collide: `{}` and `{}` both hash to {:#010x}; \
                         rename one of these methods",
                        earlier.name, later.name, later.id
                    ),
                );
            }
        }
    }

    // `#[lpc(...)]` is read here; the trait emitted keeps no trace of it (no such attribute).
    for trait_item in &mut item.items {
        if let TraitItem::Fn(function) = trait_item {
            function.attrs.retain(|attr| !attr.path().is_ident("lpc"));
        }
    }

    let name = item.ident.unraw().to_string();
    let mut fingerprint_text = name.clone();
    for method in &methods {
        fingerprint_text.push('\n');
        fingerprint_text.push_str(&method.signature);
    }
    let fingerprint = fnv1a64(fingerprint_text.as_bytes());

    let service = Service {
        name,
        ident: item.ident.clone(),
        vis: item.vis.clone(),
        fingerprint,
        methods,
        item,
    };
    errors.finish(service)
}

/// Checks one method. Returns `None` (with errors recorded) when it cannot be described.
///
/// Every check runs even when an earlier one failed, so that all of a method's problems are
/// reported at once; the order of the calls is the order of the diagnostics.
fn read_method(function: &TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let sig = &function.sig;
    let errors_before = errors.count();

    check_attributes(&function.attrs, errors);
    let oneway = read_lpc_attributes(&function.attrs, errors);
    check_qualifiers(sig, errors);
    check_generics(&sig.generics, errors);
    let name = read_name(&sig.ident, errors);
    let receiver_lifetime = read_receiver(sig, errors);
    let params = read_params(sig, errors);
    let output = read_output(&sig.output, errors);
    if oneway {
        check_oneway(sig, &params, errors);
    }

    if errors.count() > errors_before {
        return None;
    }
    let signature = signature_text(sig, &params);
    Some(Method {
        ident: sig.ident.clone(),
        id: method_id(&name),
        name,
        signature: if oneway {
            format!("#[lpc(oneway)] {signature}")
        } else {
            signature
        },
        oneway,
        docs: read_docs(&function.attrs),
        generics: sig.generics.clone(),
        receiver_lifetime,
        params,
        output,
        output_text: output_text(&sig.output),
        returns_result: returns_result(&sig.output),
        returns_loan: returns_loan(&sig.output),
        passes_handles: matches!(&sig.output, ReturnType::Type(_, ty) if holds_handle(ty))
            || sig
                .inputs
                .iter()
                .any(|input| matches!(input, syn::FnArg::Typed(typed) if holds_handle(&typed.ty))),
    })
}

/// Reads the `#[lpc(...)]` attributes of a method: whether it is `#[lpc(oneway)]`.
fn read_lpc_attributes(attrs: &[Attribute], errors: &mut Errors) -> bool {
    let mut oneway = false;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("lpc")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("oneway") {
                oneway = true;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown lpc method attribute: the only one is `#[lpc(oneway)]` (the client \
                     posts the call and does not wait for it)",
                ))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    oneway
}

/// A one-way method has nothing to send back: no return type, no `&mut` parameter, no loan
/// (whose buffer the caller would reuse before the service reads it).
fn check_oneway(sig: &Signature, params: &[Param], errors: &mut Errors) {
    if let ReturnType::Type(_, ty) = &sig.output {
        errors.spanned(
            ty,
            "a `#[lpc(oneway)]` method cannot have a return type: the client does not wait for \
             it to run, so nothing comes back; remove `-> ...`, or make it a two-way method",
        );
    }
    for param in params {
        if matches!(param.kind, ParamKind::RefMut(_)) {
            errors.spanned(
                &param.ty,
                "a `#[lpc(oneway)]` method cannot take a `&mut` parameter: nothing comes back \
                 to the caller; take the value (`T` or `&T`)",
            );
        } else if holds_loan(&param.ty) {
            errors.spanned(
                &param.ty,
                "a `#[lpc(oneway)]` method cannot take an `lpc::Loan`: the caller would reuse \
                 the buffer before the service reads it; pass the bytes (`Vec<u8>`, `&[u8]`)",
            );
        }
    }
}

/// Rejects `#[cfg]` and `#[cfg_attr]` on a method.
fn check_attributes(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.spanned(
                attr,
                "lpc service methods cannot be `#[cfg]`-gated: client and service must agree on \
                 the interface fingerprint, which is computed when the macro runs; gate the whole \
                 trait, or move the method to a separate service",
            );
        }
    }
}

/// Rejects the qualifiers a remote call cannot honour: `const`, `async`, `unsafe`, `extern`
/// and `...`.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            "lpc service methods cannot be `const`: remove `const`",
        );
    }
    if let Some(asyncness) = &sig.asyncness {
        errors.spanned(
            asyncness,
            "lpc service methods cannot be `async`: calls are synchronous; make it a plain `fn` \
             (and block on any async work inside the implementation)",
        );
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.spanned(
            unsafety,
            "lpc service methods cannot be `unsafe fn`: a caller in another process cannot \
             uphold safety conditions; make the method safe and check its inputs inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "lpc service methods cannot have an `extern` ABI: remove it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "lpc service methods cannot be variadic: take a `Vec<T>` or a slice `&[T]` instead",
        );
    }
}

/// Allows lifetime parameters only: the dispatcher must name every type concretely.
fn check_generics(generics: &Generics, errors: &mut Errors) {
    for param in &generics.params {
        match param {
            GenericParam::Lifetime(_) => {}
            GenericParam::Type(_) | GenericParam::Const(_) => errors.spanned(
                param,
                "lpc service methods cannot be generic: the dispatcher needs concrete types; \
                 use a concrete type, or an enum of the types you need",
            ),
        }
    }
    if let Some(where_clause) = &generics.where_clause {
        errors.spanned(
            where_clause,
            "lpc service methods cannot have a `where` clause: the dispatcher needs concrete \
             types; remove it",
        );
    }
}

/// The method name without `r#`; rejects the names of the generated client's own methods.
fn read_name(ident: &Ident, errors: &mut Errors) -> String {
    let name = ident.unraw().to_string();
    if CLIENT_METHODS.contains(&name.as_str()) {
        errors.spanned(
            ident,
            format!(
                "`{name}` is a method of the generated client type (`connect`, `connect_with`, \
                 `from_client`, `client`, `with_timeout`); rename this service method"
            ),
        );
    }
    name
}

/// Checks that the method takes `&self`; returns the receiver's lifetime, if written.
fn read_receiver(sig: &Signature, errors: &mut Errors) -> Option<Lifetime> {
    const TAKE_REF_SELF: &str = "lpc service methods take `&self`; use interior mutability \
                                 (Mutex, atomics) for state";
    let Some(receiver) = sig.receiver() else {
        // No receiver: point at the parentheses' contents, or at the name when they are empty.
        match sig.inputs.first() {
            Some(first) => errors.spanned(first, TAKE_REF_SELF),
            None => errors.spanned(&sig.ident, TAKE_REF_SELF),
        }
        return None;
    };
    match &receiver.kind {
        ReceiverKind::Reference(_, lifetime, None) if receiver.mutability.is_none() => {
            lifetime.clone()
        }
        _ => {
            errors.spanned(receiver, TAKE_REF_SELF);
            None
        }
    }
}

/// The parameters after `&self` that can be described; checks that they fit the tuples they
/// travel in.
fn read_params(sig: &Signature, errors: &mut Errors) -> Vec<Param> {
    let params: Vec<Param> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => read_param(typed, errors),
            FnArg::Receiver(_) => None,
        })
        .collect();
    check_param_counts(sig, &params, errors);
    params
}

/// One parameter, or `None` (with the error recorded) when it cannot travel.
fn read_param(typed: &PatType, errors: &mut Errors) -> Option<Param> {
    let ident = match &*typed.pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
        other => {
            errors.spanned(
                other,
                "lpc service method parameters must be plain names (`name: Type`): the \
                 generated client method reuses them; destructure inside the method body",
            );
            return None;
        }
    };
    let ty = &*typed.ty;
    if let Some(problem) = type_problem(ty) {
        errors.spanned(ty, problem);
        return None;
    }
    match param_kind(ty) {
        Ok(ParamKind::RefMut(inner)) if holds_loan(&inner) => {
            errors.spanned(
                ty,
                "an `lpc::Loan` cannot travel in a `&mut` parameter: the loan the service \
                 receives is the caller's, and cannot be sent back; take `&Loan` and return a \
                 `Loan` of the service's own",
            );
            None
        }
        Ok(kind) => Some(Param {
            name: ident.unraw().to_string(),
            ty_text: pretty(ty.to_token_stream()),
            ident,
            ty: ty.clone(),
            kind,
        }),
        Err(message) => {
            errors.spanned(ty, message);
            None
        }
    }
}

/// Checks that the arguments fit in one tuple, and the result and the `&mut` parameters' new
/// values in another: serde (de)serializes tuples of up to [`MAX_PARAMS`] elements.
fn check_param_counts(sig: &Signature, params: &[Param], errors: &mut Errors) {
    if params.len() > MAX_PARAMS {
        // Point at the parameters beyond the limit.
        let extra: TokenStream = sig
            .inputs
            .iter()
            .skip(sig.inputs.len() - (params.len() - MAX_PARAMS))
            .map(ToTokens::to_token_stream)
            .collect();
        errors.spanned(
            extra,
            format!(
                "lpc service methods take at most {MAX_PARAMS} parameters besides `&self` (the \
                 arguments travel as one tuple); group some of them into a struct"
            ),
        );
    }
    let mut_count = params
        .iter()
        .filter(|p| matches!(p.kind, ParamKind::RefMut(_)))
        .count();
    if mut_count >= MAX_PARAMS {
        errors.spanned(
            &sig.inputs,
            format!(
                "lpc service methods take at most {} `&mut` parameters (the result and the \
                 updated values travel back as one tuple); group some of them into a struct",
                MAX_PARAMS - 1
            ),
        );
    }
}

/// What the method returns; records why when it cannot return that.
fn read_output(output: &ReturnType, errors: &mut Errors) -> Output {
    match output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => output_kind(ty).unwrap_or_else(|message| {
            errors.spanned(ty, message);
            Output::Unit
        }),
    }
}

/// The return type as a person writes it; `()` when there is none.
fn output_text(output: &ReturnType) -> String {
    match output {
        ReturnType::Default => "()".to_owned(),
        ReturnType::Type(_, ty) => pretty(ty.to_token_stream()),
    }
}

/// Whether the return type is written `Result<T, E>` (see [`is_result`]).
fn returns_result(output: &ReturnType) -> bool {
    matches!(output, ReturnType::Type(_, ty) if is_result(ty))
}

/// Whether the return type holds an `lpc::Loan` (see [`holds_loan`]).
fn returns_loan(output: &ReturnType) -> bool {
    matches!(output, ReturnType::Type(_, ty) if holds_loan(ty))
}

/// The `#[doc]` attributes, which the client method repeats.
fn read_docs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .cloned()
        .collect()
}

/// Why a type cannot appear in a service method at all, if it cannot.
fn type_problem(ty: &Type) -> Option<String> {
    let tokens = ty.to_token_stream();
    if contains_ident(&tokens, "impl") {
        return Some(
            "`impl Trait` is not allowed in lpc service methods: the dispatcher and the client \
             need concrete types; name a concrete type (e.g. `Vec<T>` instead of \
             `impl Iterator<Item = T>`)"
                .to_owned(),
        );
    }
    if contains_ident(&tokens, "Self") {
        return Some(
            "lpc service methods cannot mention `Self` in parameter or return types: the client \
             has no `Self`; name the concrete type"
                .to_owned(),
        );
    }
    None
}

/// Whether `ident` occurs anywhere in `tokens`.
fn contains_ident(tokens: &TokenStream, ident: &str) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(found) => found == ident,
        TokenTree::Group(group) => contains_ident(&group.stream(), ident),
        _ => false,
    })
}

/// Looks through parentheses and invisible groups.
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(paren) => peel(&paren.elem),
        Type::Group(group) => peel(&group.elem),
        other => other,
    }
}

/// Whether `ty` is the path `name` with no generic arguments (`u8`, `str`).
fn is_plain(ty: &Type, name: &str) -> bool {
    match peel(ty) {
        Type::Path(path) => {
            path.qself.is_none()
                && path.path.leading_colon.is_none()
                && path.path.segments.len() == 1
                && path.path.segments[0].ident == name
                && path.path.segments[0].arguments.is_none()
        }
        _ => false,
    }
}

/// Whether `ty` is exactly `Vec<u8>`.
fn is_byte_vec(ty: &Type) -> bool {
    let Type::Path(path) = peel(ty) else {
        return false;
    };
    if path.qself.is_some() || path.path.leading_colon.is_some() || path.path.segments.len() != 1 {
        return false;
    }
    let segment = &path.path.segments[0];
    if segment.ident != "Vec" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return false;
    };
    args.args.len() == 1
        && matches!(&args.args[0], GenericArgument::Type(elem) if is_plain(elem, "u8"))
}

/// Whether `ty` is written `Result<T, E>`, `std::result::Result<T, E>` or
/// `core::result::Result<T, E>`. A type alias with one parameter (`io::Result<T>`) or another
/// name is not recognised: such a method returns its value as one opaque type.
/// The `T` and `E` of a return type written `Result<T, E>` (see [`is_result`]).
pub fn result_args(ty: &Type) -> Option<(Type, Type)> {
    if !is_result(ty) {
        return None;
    }
    let Type::Path(path) = peel(ty) else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    Some((types.next()?, types.next()?))
}

fn is_result(ty: &Type) -> bool {
    let Type::Path(path) = peel(ty) else {
        return false;
    };
    if path.qself.is_some() {
        return false;
    }
    let segments: Vec<_> = path.path.segments.iter().collect();
    let Some((last, prefix)) = segments.split_last() else {
        return false;
    };
    let prefix_ok = match prefix {
        [] => path.path.leading_colon.is_none(),
        [krate, module] => {
            (krate.ident == "std" || krate.ident == "core")
                && module.ident == "result"
                && krate.arguments.is_none()
                && module.arguments.is_none()
        }
        _ => false,
    };
    if !prefix_ok || last.ident != "Result" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    args.args.len() == 2
        && args
            .args
            .iter()
            .all(|arg| matches!(arg, GenericArgument::Type(_)))
}

/// Whether a value of type `ty` may hold an `lpc::Loan`: `ty` is one (see [`is_loan_path`]), or
/// one appears among its elements or generic arguments (`Option<Loan>`, `Result<Loan, E>`,
/// `(u32, Loan)`, `Vec<Loan>`, `[Loan; 2]`). Only what the signature spells is seen: a struct
/// with a `Loan` field, or an alias of `Loan`, is not recognised.
fn holds_loan(ty: &Type) -> bool {
    match ty {
        Type::Array(array) => holds_loan(&array.elem),
        Type::Group(group) => holds_loan(&group.elem),
        Type::Paren(paren) => holds_loan(&paren.elem),
        Type::Reference(reference) => holds_loan(&reference.elem),
        Type::Slice(slice) => holds_loan(&slice.elem),
        Type::Tuple(tuple) => tuple.elems.iter().any(holds_loan),
        Type::Path(path) => {
            (path.qself.is_none() && is_loan_path(&path.path))
                || path.path.segments.iter().any(|segment| {
                    let PathArguments::AngleBracketed(args) = &segment.arguments else {
                        return false;
                    };
                    args.args
                        .iter()
                        .any(|arg| matches!(arg, GenericArgument::Type(ty) if holds_loan(ty)))
                })
        }
        _ => false,
    }
}

/// Whether `path` names lpc's `Loan`: `Loan` (imported), `lpc::Loan` or `::lpc::Loan`. A path
/// of several segments must start at `lpc`, so that another crate's type of the same name
/// (`bank::Loan`) keeps the plain path; `::Loan` would be a crate named `Loan`.
fn is_loan_path(path: &Path) -> bool {
    let Some(last) = path.segments.last() else {
        return false;
    };
    if last.ident != "Loan" || !last.arguments.is_none() {
        return false;
    }
    match path.segments.first() {
        Some(first) if path.segments.len() > 1 => first.ident == "lpc",
        _ => path.leading_colon.is_none(),
    }
}

/// Which handle `path` names: `Some(true)` for `File` (`File`, `fs::File`, `std::fs::File`),
/// `Some(false)` for `OwnedFd` or `BorrowedFd` (also through `std::os::fd::`, `fd::`). A
/// path of another crate's type of that name is not recognised unless written from `std`.
fn handle_path(path: &Path) -> Option<bool> {
    let last = path.segments.last()?;
    let first = path.segments.first()?;
    let from_std = path.segments.len() == 1
        || matches!(first.ident.to_string().as_str(), "std" | "fs" | "fd" | "os");
    if !from_std {
        return None;
    }
    match last.ident.to_string().as_str() {
        "File" if last.arguments.is_none() => Some(true),
        "OwnedFd" if last.arguments.is_none() => Some(false),
        "BorrowedFd" => Some(false),
        _ => None,
    }
}

/// Whether `path` names lpc's `Segment`: `Segment`, `lpc::Segment`, `::lpc::Segment`.
fn is_segment_path(path: &Path) -> bool {
    let Some(last) = path.segments.last() else {
        return false;
    };
    if last.ident != "Segment" || !last.arguments.is_none() {
        return false;
    }
    match path.segments.first() {
        Some(first) if path.segments.len() > 1 => first.ident == "lpc",
        _ => path.leading_colon.is_none(),
    }
}

/// Whether a value of type `ty` may hold a file, a descriptor or a segment, anywhere in it
/// (as [`holds_loan`] looks for loans).
pub(crate) fn holds_handle(ty: &Type) -> bool {
    match ty {
        Type::Array(array) => holds_handle(&array.elem),
        Type::Group(group) => holds_handle(&group.elem),
        Type::Paren(paren) => holds_handle(&paren.elem),
        Type::Reference(reference) => holds_handle(&reference.elem),
        Type::Slice(slice) => holds_handle(&slice.elem),
        Type::Tuple(tuple) => tuple.elems.iter().any(holds_handle),
        Type::Path(path) => {
            (path.qself.is_none()
                && (handle_path(&path.path).is_some() || is_segment_path(&path.path)))
                || path.path.segments.iter().any(|segment| {
                    let PathArguments::AngleBracketed(args) = &segment.arguments else {
                        return false;
                    };
                    args.args
                        .iter()
                        .any(|arg| matches!(arg, GenericArgument::Type(ty) if holds_handle(ty)))
                })
        }
        _ => false,
    }
}

/// The file or descriptor `ty` is itself (`Some(true)` for a file), if it is one.
fn handle_type(ty: &Type) -> Option<bool> {
    match peel(ty) {
        Type::Path(path) if path.qself.is_none() => handle_path(&path.path),
        _ => None,
    }
}

/// Why a file or descriptor sits where it cannot travel, if one does: files and descriptors
/// are passed as parameters or results themselves (or a result's `Ok`), not inside other
/// types (segments, which lpc serialises itself, may be anywhere).
fn nested_handle_problem(ty: &Type) -> Option<String> {
    fn nested(ty: &Type) -> bool {
        match ty {
            Type::Array(a) => handle_type(&a.elem).is_some() || nested(&a.elem),
            Type::Group(g) => nested(&g.elem),
            Type::Paren(p) => nested(&p.elem),
            Type::Reference(r) => nested(&r.elem),
            Type::Slice(s) => handle_type(&s.elem).is_some() || nested(&s.elem),
            Type::Tuple(t) => t
                .elems
                .iter()
                .any(|e| handle_type(e).is_some() || nested(e)),
            Type::Path(path) => path.path.segments.iter().any(|segment| {
                let PathArguments::AngleBracketed(args) = &segment.arguments else {
                    return false;
                };
                args.args.iter().any(|arg| {
                    matches!(arg, GenericArgument::Type(ty)
                        if handle_type(ty).is_some() || nested(ty))
                })
            }),
            _ => false,
        }
    }
    nested(ty).then(|| {
        "a `File` or a descriptor (`OwnedFd`, `BorrowedFd`) travels only as a parameter          (`File`, `&File`, `OwnedFd`, `&OwnedFd`, `BorrowedFd<'_>`) or a result (`File`,          `OwnedFd`, `Result<File, E>`) of its own, not inside another type: its descriptor is          passed by the kernel beside the payload"
            .to_owned()
    })
}

/// How a parameter of type `ty` travels, or why it cannot.
fn param_kind(ty: &Type) -> Result<ParamKind, String> {
    if let Some(file) = handle_type(ty) {
        let borrowed = matches!(peel(ty), Type::Path(p)
            if p.path.segments.last().is_some_and(|s| s.ident == "BorrowedFd"));
        let by = if borrowed {
            HandleBy::Borrowed
        } else {
            HandleBy::Value
        };
        return Ok(ParamKind::Handle { file, by });
    }
    if let Type::Reference(reference) = peel(ty) {
        if let Some(file) = handle_type(&reference.elem) {
            if reference.mutability.is_some() {
                return Err(
                    "a file or descriptor cannot be a `&mut` parameter: the service cannot send                      the caller's back; take `&File` or `File`, and return a new one"
                        .to_owned(),
                );
            }
            if matches!(peel(&reference.elem), Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == "BorrowedFd"))
            {
                return Err("take `BorrowedFd<'_>` by value, not by reference".to_owned());
            }
            return Ok(ParamKind::Handle {
                file,
                by: HandleBy::Ref,
            });
        }
    }
    if let Some(problem) = nested_handle_problem(ty) {
        return Err(problem);
    }
    let Type::Reference(reference) = peel(ty) else {
        return Ok(if is_byte_vec(ty) {
            ParamKind::ByteVec
        } else {
            ParamKind::Value
        });
    };
    let elem = peel(&reference.elem);
    if let Type::Reference(inner) = elem {
        let outer = if reference.mutability.is_some() {
            "&mut "
        } else {
            "&"
        };
        let inner_text = pretty(inner.to_token_stream());
        return Err(format!(
            "lpc service methods cannot take a reference to a reference (`{outer}{inner_text}`): \
             take `{inner_text}` instead"
        ));
    }
    if reference.mutability.is_some() {
        if matches!(elem, Type::Slice(_)) || is_plain(elem, "str") {
            return Err(
                "lpc service methods cannot take `&mut [T]` or `&mut str`: the updated value \
                 is sent back whole; take `&mut Vec<T>` or `&mut String` instead"
                    .to_owned(),
            );
        }
        return Ok(ParamKind::RefMut(elem.clone()));
    }
    if is_plain(elem, "str") {
        return Ok(ParamKind::Str);
    }
    if let Type::Slice(slice) = elem {
        if is_plain(&slice.elem, "u8") {
            return Ok(ParamKind::ByteSlice);
        }
        return Ok(ParamKind::Slice((*slice.elem).clone()));
    }
    Ok(ParamKind::Ref(elem.clone()))
}

/// What a method returning `ty` returns, or why it cannot return that.
fn output_kind(ty: &Type) -> Result<Output, String> {
    if let Some(problem) = type_problem(ty) {
        return Err(problem);
    }
    match peel(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Ok(Output::Unit),
        Type::Reference(_) => Err(
            "lpc service methods cannot return references: the result is decoded from the \
             reply into a new value; return an owned type (`String`, `Vec<T>`, `T`)"
                .to_owned(),
        ),
        Type::Never(_) => Err(
            "lpc service methods cannot return `!`: the client needs a reply; return `()`"
                .to_owned(),
        ),
        _ if is_byte_vec(ty) => Ok(Output::ByteVec),
        _ if handle_type(ty) == Some(true) || handle_type(ty) == Some(false) => {
            if matches!(peel(ty), Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == "BorrowedFd"))
            {
                return Err("a method cannot return a `BorrowedFd`: return `OwnedFd`".to_owned());
            }
            Ok(Output::Handle {
                file: handle_type(ty) == Some(true),
                err: None,
            })
        }
        _ => {
            if is_result(ty) {
                if let Some((ok, err)) = result_args(ty) {
                    if let Some(file) = handle_type(&ok) {
                        if nested_handle_problem(&err).is_none() && handle_type(&err).is_none() {
                            return Ok(Output::Handle {
                                file,
                                err: Some(Box::new(err)),
                            });
                        }
                    }
                }
            }
            if let Some(problem) = nested_handle_problem(ty) {
                return Err(problem);
            }
            Ok(Output::Type(Box::new(ty.clone())))
        }
    }
}

/// The signature as a person writes it: `fn add(&self, a: i32, b: i32) -> i32`.
fn signature_text(sig: &Signature, params: &[Param]) -> String {
    let mut text = format!("fn {}", sig.ident);
    if !sig.generics.params.is_empty() {
        text.push_str(&pretty(sig.generics.to_token_stream()));
    }
    text.push_str("(&");
    if let Some(receiver) = sig.receiver() {
        if let ReceiverKind::Reference(_, Some(lifetime), _) = &receiver.kind {
            text.push_str(&pretty(lifetime.to_token_stream()));
            text.push(' ');
        }
    }
    text.push_str("self");
    for param in params {
        text.push_str(", ");
        text.push_str(&param.ident.to_string());
        text.push_str(": ");
        text.push_str(&pretty(param.ty.to_token_stream()));
    }
    text.push(')');
    if let ReturnType::Type(_, ty) = &sig.output {
        text.push_str(" -> ");
        text.push_str(&pretty(ty.to_token_stream()));
    }
    text
}

/// Replaces every named lifetime except `'static` with `'_`, so that a type written with the
/// method's lifetime parameters can be named inside the dispatcher (where they do not exist).
pub fn erase_lifetimes(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Group(group) => {
                let mut new =
                    proc_macro2::Group::new(group.delimiter(), erase_lifetimes(group.stream()));
                new.set_span(group.span());
                out.push(TokenTree::Group(new));
            }
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                out.push(TokenTree::Punct(punct));
                if let Some(TokenTree::Ident(ident)) = iter.peek() {
                    if ident != "static" {
                        let span = ident.span();
                        iter.next();
                        out.push(TokenTree::Ident(Ident::new("_", span)));
                    }
                }
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn method(source: &str) -> Method {
        let item: ItemTrait = syn::parse_str(&format!("trait T {{ {source} }}")).expect("trait");
        let mut service = read_service(item).unwrap_or_else(|e| panic!("{source}: {e}"));
        service.methods.remove(0)
    }

    fn error(source: &str) -> String {
        let item: ItemTrait = syn::parse_str(&format!("trait T {{ {source} }}")).expect("trait");
        match read_service(item) {
            Ok(_) => panic!("{source}: accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn signatures_read_like_rust() {
        for (source, expected) in [
            (
                "fn add(&self, a: i32, b: i32) -> i32;",
                "fn add(&self, a: i32, b: i32) -> i32",
            ),
            (
                "fn compare(&self, info: &mut MyInfo) -> Verdict;",
                "fn compare(&self, info: &mut MyInfo) -> Verdict",
            ),
            ("fn name(&self) -> String;", "fn name(&self) -> String"),
            ("fn ping(&self);", "fn ping(&self)"),
            (
                "fn blur(&self, image: &[u8], width: u32) -> Vec<u8>;",
                "fn blur(&self, image: &[u8], width: u32) -> Vec<u8>",
            ),
            (
                "fn get(&self, key: &str) -> Result<Vec<String>, MyError>;",
                "fn get(&self, key: &str) -> Result<Vec<String>, MyError>",
            ),
            (
                "fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32>;",
                "fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32>",
            ),
            (
                "fn m<'a>(&'a self, x: &'a str);",
                "fn m<'a>(&'a self, x: &'a str)",
            ),
            (
                "fn  spaced ( & self , x : Vec < u8 > ) -> ( ) { }",
                "fn spaced(&self, x: Vec<u8>) -> ()",
            ),
            (
                "fn r#match(&self, mut x: u8) {}",
                "fn r#match(&self, x: u8)",
            ),
        ] {
            assert_eq!(method(source).signature, expected);
        }
    }

    #[test]
    fn parameter_descriptions() {
        let m = method("fn f<'a>(&self, r#type: u8, info: &mut MyInfo, x: &'a [Option<u8>]);");
        let described: Vec<(&str, &str)> = m
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.ty_text.as_str()))
            .collect();
        assert_eq!(
            described,
            [
                ("type", "u8"),
                ("info", "&mut MyInfo"),
                ("x", "&'a [Option<u8>]")
            ]
        );
    }

    #[test]
    fn output_texts_and_results() {
        for (source, text, is_result) in [
            ("fn f(&self);", "()", false),
            ("fn f(&self) -> ();", "()", false),
            ("fn f(&self) -> Vec<u8>;", "Vec<u8>", false),
            (
                "fn f(&self) -> Result<Vec<String>, MyError>;",
                "Result<Vec<String>, MyError>",
                true,
            ),
            (
                "fn f(&self) -> std::result::Result<u8, E>;",
                "std::result::Result<u8, E>",
                true,
            ),
            (
                "fn f(&self) -> ::core::result::Result<u8, E>;",
                "::core::result::Result<u8, E>",
                true,
            ),
            ("fn f(&self) -> (Result<u8, E>);", "(Result<u8, E>)", true),
            ("fn f(&self) -> io::Result<u8>;", "io::Result<u8>", false),
            ("fn f(&self) -> Result<u8>;", "Result<u8>", false),
            (
                "fn f(&self) -> my::Result<u8, E>;",
                "my::Result<u8, E>",
                false,
            ),
            ("fn f(&self) -> ::Result<u8, E>;", "::Result<u8, E>", false),
            (
                "fn f(&self) -> Option<Result<u8, E>>;",
                "Option<Result<u8, E>>",
                false,
            ),
        ] {
            let m = method(source);
            assert_eq!(m.output_text, text, "{source}");
            assert_eq!(m.returns_result, is_result, "{source}");
        }
    }

    #[test]
    fn names_and_ids() {
        let m = method("fn r#match(&self);");
        assert_eq!(m.name, "match");
        assert_eq!(m.id, method_id("match"));
    }

    #[test]
    fn parameter_kinds() {
        let m = method(
            "fn f(&self, a: u8, b: Vec<u8>, c: &str, d: &[u8], e: &'a [u16], f: &Point, \
             g: &mut Info, h: (Vec<u8>), i: &Vec<u8>);",
        );
        let kinds: Vec<&str> = m
            .params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Value => "value",
                ParamKind::ByteVec => "bytevec",
                ParamKind::Str => "str",
                ParamKind::ByteSlice => "byteslice",
                ParamKind::Slice(_) => "slice",
                ParamKind::Ref(_) => "ref",
                ParamKind::RefMut(_) => "refmut",
                ParamKind::Handle { .. } => "handle",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "value",
                "bytevec",
                "str",
                "byteslice",
                "slice",
                "ref",
                "refmut",
                "bytevec",
                "ref"
            ]
        );
    }

    #[test]
    fn files_descriptors_and_segments() {
        let m = method(
            "fn f(&self, a: File, b: &std::fs::File, c: OwnedFd, d: &OwnedFd, \
             e: BorrowedFd<'_>, s: &lpc::Segment) -> Result<File, String>;",
        );
        let kinds: Vec<(bool, HandleBy)> = m
            .params
            .iter()
            .filter_map(|p| match p.kind {
                ParamKind::Handle { file, by } => Some((file, by)),
                _ => None,
            })
            .collect();
        assert!(
            kinds
                == [
                    (true, HandleBy::Value),
                    (true, HandleBy::Ref),
                    (false, HandleBy::Value),
                    (false, HandleBy::Ref),
                    (false, HandleBy::Borrowed),
                ]
        );
        // A segment is lpc's own serde type: an ordinary reference.
        assert!(matches!(m.params[5].kind, ParamKind::Ref(_)));
        assert!(matches!(
            m.output,
            Output::Handle {
                file: true,
                err: Some(_)
            }
        ));
        assert!(m.passes_handles);
        assert!(method("fn f(&self, s: Vec<lpc::Segment>);").passes_handles);
        assert!(!method("fn f(&self, a: u32) -> bank::File;").passes_handles);
        for nested in [
            "fn f(&self, a: Option<File>);",
            "fn f(&self) -> Vec<OwnedFd>;",
            "fn f(&self, a: &mut File);",
            "fn f(&self) -> BorrowedFd<'static>;",
        ] {
            let why = error(nested);
            assert!(
                why.contains("descriptor") || why.contains("BorrowedFd"),
                "{nested}: {why}"
            );
        }
    }

    #[test]
    fn outputs() {
        assert!(matches!(method("fn f(&self);").output, Output::Unit));
        assert!(matches!(method("fn f(&self) -> ();").output, Output::Unit));
        assert!(matches!(
            method("fn f(&self) -> Vec<u8>;").output,
            Output::ByteVec
        ));
        assert!(matches!(
            method("fn f(&self) -> Vec<u16>;").output,
            Output::Type(_)
        ));
    }

    #[test]
    fn rejections() {
        for (source, needle) in [
            ("fn f<T>(&self, x: T);", "cannot be generic"),
            ("fn f(self);", "take `&self`"),
            ("fn f(mut self);", "take `&self`"),
            ("fn f(&mut self);", "take `&self`"),
            ("fn f(self: Box<Self>);", "take `&self`"),
            ("fn f();", "take `&self`"),
            ("fn f(x: u8);", "take `&self`"),
            ("fn f(&self, x: impl Display);", "`impl Trait`"),
            ("fn f(&self) -> impl Display;", "`impl Trait`"),
            ("fn f(&self, x: Vec<impl Display>);", "`impl Trait`"),
            ("async fn f(&self);", "`async`"),
            ("unsafe fn f(&self);", "`unsafe fn`"),
            ("fn f(&self, (a, b): (u8, u8)) {}", "plain names"),
            ("fn f(&self, _: u8);", "plain names"),
            ("fn f(&self, x: &&u8);", "reference to a reference"),
            ("fn f(&self, x: &mut &u8);", "reference to a reference"),
            ("fn f(&self, x: &mut [u8]);", "`&mut [T]`"),
            ("fn f(&self) -> &str;", "cannot return references"),
            ("fn f(&self) -> Self;", "`Self`"),
            ("type Item;", "associated types"),
            ("const N: usize;", "associated consts"),
            ("fn connect(&self);", "rename this service method"),
            ("#[cfg(unix)] fn f(&self);", "`#[cfg]`"),
            ("fn m_fybjm(&self); fn m_jxaba(&self);", "ids collide"),
        ] {
            let message = error(source);
            assert!(message.contains(needle), "{source}: {message}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("a{i}: u8")).collect();
        let message = error(&format!("fn f(&self, {});", many.join(", ")));
        assert!(message.contains("at most 16"), "{message}");
    }

    #[test]
    fn loans_are_recognised_by_their_path() {
        let loans: [Type; 14] = [
            parse_quote!(Loan),
            parse_quote!(lpc::Loan),
            parse_quote!(::lpc::Loan),
            parse_quote!(Option<lpc::Loan>),
            parse_quote!(Result<Loan, E>),
            parse_quote!(Result<u8, Loan>),
            parse_quote!((u32, Loan)),
            parse_quote!(Vec<Loan>),
            parse_quote!([Loan; 2]),
            parse_quote!(&[Loan]),
            parse_quote!((Loan)),
            parse_quote!(std::collections::HashMap<String, Vec<Option<::lpc::Loan>>>),
            parse_quote!(Box<Loan>),
            parse_quote!(Option<(u8, [lpc::Loan; 4])>),
        ];
        for ty in &loans {
            assert!(holds_loan(ty), "{}", pretty(ty.to_token_stream()));
        }
        let others: [Type; 15] = [
            parse_quote!(MyLoan),
            parse_quote!(Loaned),
            parse_quote!(loans::Loaned),
            parse_quote!(bank::Loan),
            parse_quote!(::bank::Loan),
            parse_quote!(my_lpc::Loan),
            parse_quote!(::Loan),
            parse_quote!(Loan<u8>),
            parse_quote!(lpc::Loan<u8>),
            parse_quote!(<T as Trait>::Loan),
            parse_quote!(Option<bank::Loan>),
            parse_quote!(Result<MyLoan, LoanError>),
            parse_quote!((u32, loans::Loaned)),
            parse_quote!(Vec<u8>),
            parse_quote!(()),
        ];
        for ty in &others {
            assert!(!holds_loan(ty), "{}", pretty(ty.to_token_stream()));
        }
    }

    #[test]
    fn loan_results_are_marked() {
        for (source, returns_loan) in [
            ("fn f(&self) -> lpc::Loan;", true),
            ("fn f(&self) -> Result<Loan, MyError>;", true),
            ("fn f(&self) -> bank::Loan;", false),
            ("fn f(&self) -> MyLoan;", false),
            // A loan argument is read in place by the service; only the result decides the call.
            ("fn f(&self, image: &Loan) -> u64;", false),
            ("fn f(&self);", false),
        ] {
            assert_eq!(method(source).returns_loan, returns_loan, "{source}");
        }
    }

    #[test]
    fn erases_named_lifetimes() {
        let ty: Type = syn::parse_str("Foo<'a, &'static str, Vec<&'b u8>>").expect("type");
        let erased = pretty(erase_lifetimes(ty.to_token_stream()));
        assert_eq!(erased, "Foo<'_, &'static str, Vec<&'_ u8>>");
    }
}
