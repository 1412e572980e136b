//! The `#[lpc::service]` attribute. Use it through the `lpc` crate, which re-exports it; the
//! generated code names `::lpc`.
//!
//! On `pub trait Calc { fn add(&self, a: i32, b: i32) -> i32; }` it keeps the trait and adds:
//!
//! - `pub static CALC_INTERFACE: lpc::InterfaceDescriptor`: the trait name, a fingerprint over
//!   every method signature, and each method's name, id, signature text, parameters (name, type
//!   text, whether `&mut`), return type text and whether it returns `Result<T, E>`;
//! - `pub struct CalcClient`: a proxy with one method per trait method, returning
//!   `Result<R, lpc::Error>`;
//! - `pub struct CalcServer<T>`: wraps an implementation of `Calc` and implements
//!   `lpc::Dispatch`: `dispatch` (postcard, what the client sends) and `dispatch_json`
//!   (arguments as a JSON array or object, reply `{"result": …}` / `{"error": …}` plus
//!   `"out"` for `&mut` parameters).

mod events;
mod expand;
mod hash;
mod model;
mod pretty;

use proc_macro::TokenStream;
use quote::ToTokens as _;

/// Turns a trait into the events a service emits (see the `lpc` crate's guide): generates
/// `XXX_INTERFACE` (the events with their shapes), `XxxEmitter` (what the service emits
/// through) and `XxxEvent` (what a subscriber receives). Each method is an event: `&self`, no
/// result, parameters by value.
#[proc_macro_attribute]
pub fn events(args: TokenStream, input: TokenStream) -> TokenStream {
    let input: proc_macro2::TokenStream = input.into();
    if !args.is_empty() {
        let error = syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[lpc::events]` takes no arguments",
        );
        return with_errors(input, error).into();
    }
    let item = match syn::parse2::<syn::ItemTrait>(input.clone()) {
        Ok(item) => item,
        Err(error) => return with_errors(input, error).into(),
    };
    match model::read_service(item.clone()) {
        Ok(mut service) => match events::expand(&mut service) {
            Ok(tokens) => tokens.into(),
            Err(error) => with_errors(sanitize(item).into_token_stream(), error).into(),
        },
        Err(error) => with_errors(sanitize(item).into_token_stream(), error).into(),
    }
}

/// Turns a trait into an lpc service interface.
///
/// Every method must take `&self`, have no type parameters, and use only concrete types that
/// implement `serde::Serialize` and `serde::Deserialize`. Parameters may be taken by value, as
/// `&str`, `&[T]`, `&T` or `&mut T` (the service's changes to a `&mut T` are sent back to the
/// caller). `&[u8]` and `Vec<u8>` travel as raw bytes (as arrays of numbers in JSON calls). A
/// return type written `Result<T, E>` (or `std::result::Result<T, E>`) is marked in the
/// descriptor, and a JSON call of it replies `{"error": E}` when it fails; an alias such as
/// `io::Result<T>` is an ordinary type.
///
/// See the `lpc` crate for what is generated and how to serve and call it.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    service_impl(args.into(), input.into()).into()
}

fn service_impl(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let args_result = parse_args(args);
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Trait(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                item_head(&other),
                "`#[lpc::service]` goes on a trait: `pub trait Calc { fn add(&self, a: i32, \
                 b: i32) -> i32; }`",
            );
            return with_errors(input, error);
        }
        Err(error) => return with_errors(input, error),
    };
    if let Err(error) = args_result {
        return with_errors(input, error);
    }
    match model::read_service(item.clone()) {
        Ok(service) => expand::expand(&service),
        Err(error) => with_errors(sanitize(item).into_token_stream(), error),
    }
}

/// The trait minus what rustc itself would also reject (`...`, `mut self`), so that a rejected
/// trait gets only our error, which says what to do instead.
fn sanitize(mut item: syn::ItemTrait) -> syn::ItemTrait {
    for trait_item in &mut item.items {
        if let syn::TraitItem::Fn(function) = trait_item {
            // `#[lpc(...)]` is the macro's, not an attribute rustc knows.
            function.attrs.retain(|attr| !attr.path().is_ident("lpc"));
            function.sig.variadic = None;
            if let Some(syn::FnArg::Receiver(receiver)) = function.sig.inputs.first_mut() {
                receiver.mutability = None;
            }
        }
    }
    item
}

/// Parses the attribute's arguments. There are none yet: `name = "..."` may come later.
fn parse_args(args: proc_macro2::TokenStream) -> syn::Result<()> {
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
        Err(meta.error(format!(
            "`#[lpc::service]` takes no arguments yet; remove {name} and write \
             `#[lpc::service]`"
        )))
    });
    syn::parse::Parser::parse2(parser, args)
}

/// The tokens to point at when the macro is put on something other than a trait.
fn item_head(item: &syn::Item) -> proc_macro2::TokenStream {
    match item {
        syn::Item::Fn(f) => f.sig.to_token_stream(),
        syn::Item::Struct(s) => {
            let (token, ident) = (&s.struct_token, &s.ident);
            quote::quote!(#token #ident)
        }
        syn::Item::Enum(e) => {
            let (token, ident) = (&e.enum_token, &e.ident);
            quote::quote!(#token #ident)
        }
        syn::Item::Impl(i) => i.impl_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// The input unchanged (so that the rest of the crate still sees the trait) plus the errors.
fn with_errors(input: proc_macro2::TokenStream, error: syn::Error) -> proc_macro2::TokenStream {
    let errors = error.into_compile_error();
    quote::quote!(#input #errors)
}

#[cfg(test)]
mod tests {
    use super::service_impl;
    use quote::quote;

    #[test]
    fn rejects_arguments() {
        let out = service_impl(
            quote!(name = "x"),
            quote!(
                trait T {}
            ),
        );
        let text = out.to_string();
        assert!(text.contains("takes no arguments yet"), "{text}");
        assert!(text.contains("remove `name`"), "{text}");
    }

    #[test]
    fn rejects_non_traits() {
        let out = service_impl(
            quote!(),
            quote!(
                struct S;
            ),
        );
        assert!(out.to_string().contains("goes on a trait"));
    }

    #[test]
    fn loan_results_take_the_loaned_call() {
        let out = service_impl(
            quote!(),
            quote!(
                pub trait Images {
                    fn render(&self, width: u32) -> Option<lpc::Loan>;
                    fn checksum(&self, image: &Loan) -> u64;
                    fn statement(&self) -> bank::Loan;
                }
            ),
        );
        let text = out.to_string();
        assert_eq!(text.matches("call_loaned").count(), 1, "{text}");
        assert!(
            text.contains("call_loaned :: < _ , Option < lpc :: Loan > >"),
            "{text}"
        );
    }

    #[test]
    fn expands_a_service() {
        let out = service_impl(
            quote!(),
            quote!(
                pub trait Calc {
                    fn add(&self, a: i32, b: i32) -> i32;
                }
            ),
        );
        let file: syn::File = syn::parse2(out).expect("valid Rust");
        let names: Vec<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Static(s) => Some(s.ident.to_string()),
                syn::Item::Struct(s) => Some(s.ident.to_string()),
                syn::Item::Trait(t) => Some(t.ident.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            ["Calc", "CALC_INTERFACE", "CalcClient", "CalcServer"]
        );
    }
}
