//! Generates the descriptor, the client proxy and the dispatcher of a checked service.
//!
//! [`expand`] emits the trait unchanged, then the items of [`ServiceGenerator`], one method
//! per generated item (or piece of one), in this order:
//!
//! - [`interface_static`](ServiceGenerator::interface_static): the `XXX_INTERFACE` static,
//!   whose methods come from [`method_descriptor`](ServiceGenerator::method_descriptor) and
//!   their parameters from [`param_descriptor`](ServiceGenerator::param_descriptor);
//! - [`client_struct`](ServiceGenerator::client_struct): `struct XxxClient`;
//! - [`client_impl`](ServiceGenerator::client_impl): its inherent impl (`connect`,
//!   `connect_with`, `from_client`, `client`, `with_timeout`), holding one
//!   [`client_method`](ServiceGenerator::client_method) per service method, whose body is
//!   [`client_body`](ServiceGenerator::client_body);
//! - [`server_struct`](ServiceGenerator::server_struct): `struct XxxServer<T>`;
//! - [`server_impl`](ServiceGenerator::server_impl): its inherent impl (`new`, `inner`);
//! - [`dispatch_impl`](ServiceGenerator::dispatch_impl): `impl lpc::Dispatch for XxxServer<T>`,
//!   with [`dispatch_fn`](ServiceGenerator::dispatch_fn) (one
//!   [`dispatch_arm`](ServiceGenerator::dispatch_arm) per method, postcard) and
//!   [`dispatch_json_fn`](ServiceGenerator::dispatch_json_fn) (one
//!   [`json_arm`](ServiceGenerator::json_arm) per method, JSON, which decodes with
//!   [`json_decode`](ServiceGenerator::json_decode) and replies with
//!   [`json_respond`](ServiceGenerator::json_respond)).

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{Ident, LitInt};

use crate::model::{
    erase_lifetimes, result_args, HandleBy, Method, Output, Param, ParamKind, Service,
};

/// `ImageFilter` → `IMAGE_FILTER`, `HTTPServer` → `HTTP_SERVER`.
pub fn screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower);
            if boundary && prev != '_' {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// A hexadecimal literal with `_` every four digits: `0x1234_abcd`.
fn hex_literal(value: u64, digits: usize) -> LitInt {
    let hex = format!("{value:0digits$x}");
    let groups: Vec<&str> = hex
        .as_bytes()
        .chunks(4)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    LitInt::new(&format!("0x{}", groups.join("_")), Span::call_site())
}

/// The code generated for one service: the trait as written, then the generated items.
pub fn expand(service: &Service) -> TokenStream {
    let item = &service.item;
    let generated = ServiceGenerator::new(service);
    quote! {
        #item
        #generated
    }
}

/// Generates the items of one service from its description, one method per item.
pub(crate) struct ServiceGenerator<'a> {
    service: &'a Service,
    /// `XXX_INTERFACE`, the descriptor static.
    interface: Ident,
    /// `XxxClient`, the client proxy.
    client: Ident,
    /// `XxxServer`, the dispatcher.
    server: Ident,
    /// The type parameter of the `Dispatch` impl: the implementation of the trait.
    impl_ty: Ident,
    /// The parameters of `dispatch` and `dispatch_json`, which the arms use. Hygienic
    /// (`Span::mixed_site`), so that they cannot capture a name written in the trait's types
    /// (an array length `[u8; args]` naming a constant).
    method_id: Ident,
    args: Ident,
    reply: Ident,
}

impl ToTokens for ServiceGenerator<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend([
            self.interface_static(),
            self.client_struct(),
            self.client_impl(),
            self.server_struct(),
            self.server_impl(),
            self.dispatch_impl(),
        ]);
    }
}

impl<'a> ServiceGenerator<'a> {
    pub(crate) fn new(service: &'a Service) -> Self {
        // The generated names carry the trait name's span, so that an error about one (a name
        // already taken) points at the trait.
        let span = service.ident.span();
        let name = &service.name;
        Self {
            service,
            interface: Ident::new(&format!("{}_INTERFACE", screaming_snake(name)), span),
            client: Ident::new(&format!("{name}Client"), span),
            server: Ident::new(&format!("{name}Server"), span),
            impl_ty: Ident::new("__LpcImpl", Span::call_site()),
            method_id: Ident::new("method_id", Span::mixed_site()),
            args: Ident::new("args", Span::mixed_site()),
            reply: Ident::new("reply", Span::mixed_site()),
        }
    }

    /// `pub static XXX_INTERFACE: lpc::InterfaceDescriptor`.
    pub(crate) fn interface_static(&self) -> TokenStream {
        let Service {
            name,
            vis,
            fingerprint,
            methods,
            ..
        } = self.service;
        let interface = &self.interface;
        let doc =
            format!("The interface of the [`{name}`] service: its name, fingerprint and methods.");
        let fingerprint = hex_literal(*fingerprint, 16);
        let methods = methods.iter().map(Self::method_descriptor);
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            #vis static #interface: ::lpc::InterfaceDescriptor = ::lpc::InterfaceDescriptor {
                name: #name,
                fingerprint: #fingerprint,
                methods: &[#(#methods),*],
                info: ::lpc::__private::InfoCache::new(),
            };
        }
    }

    /// One `lpc::MethodDescriptor` of the interface static.
    fn method_descriptor(method: &Method) -> TokenStream {
        let name = &method.name;
        let id = hex_literal(u64::from(method.id), 8);
        let signature = &method.signature;
        let params = method.params.iter().map(Self::param_descriptor);
        let output = &method.output_text;
        let returns_result = method.returns_result;
        let oneway = method.oneway;
        let trace = Self::trace_fn(method);
        quote! {
            ::lpc::MethodDescriptor {
                name: #name,
                id: #id,
                signature: #signature,
                params: &[#(#params),*],
                output: #output,
                returns_result: #returns_result,
                oneway: #oneway,
                trace: #trace,
            }
        }
    }

    /// The `trace` function of a method descriptor: the shapes of the types the service
    /// decodes for each parameter, and of the result the client decodes (`T` and `E` apart for
    /// a `Result` method), traced at run time from their `Deserialize`.
    fn trace_fn(method: &Method) -> TokenStream {
        let tracer = Ident::new("tracer", Span::mixed_site());
        let params = method.params.iter().map(|param| {
            let owned = owned_type(param, Codec::Postcard);
            quote!(#tracer.param::<#owned>()?;)
        });
        let result = match &method.output {
            Output::Unit => quote!(#tracer.result::<()>()?;),
            Output::ByteVec => quote!(#tracer.result::<::lpc::__private::WireBytes>()?;),
            Output::Handle { file, err: None } => {
                let recv = recv_type(*file);
                quote!(#tracer.result::<#recv>()?;)
            }
            Output::Handle {
                file,
                err: Some(err),
            } => {
                let recv = recv_type(*file);
                let err = erase_lifetimes(err.to_token_stream());
                quote!(#tracer.result::<#recv>()?; #tracer.error::<#err>()?;)
            }
            Output::Type(ty) => match result_args(ty) {
                Some((ok, err)) if method.returns_result => {
                    let (ok, err) = (
                        erase_lifetimes(ok.to_token_stream()),
                        erase_lifetimes(err.to_token_stream()),
                    );
                    quote!(#tracer.result::<#ok>()?; #tracer.error::<#err>()?;)
                }
                _ => {
                    let ty = erase_lifetimes(ty.to_token_stream());
                    quote!(#tracer.result::<#ty>()?;)
                }
            },
        };
        quote! {
            |#tracer: &mut ::lpc::__private::MethodTracer<'_>|
                -> ::std::result::Result<(), ::lpc::__private::ShapeError> {
                #(#params)*
                #result
                ::std::result::Result::Ok(())
            }
        }
    }

    /// One `lpc::ParamDescriptor` of a method descriptor.
    fn param_descriptor(param: &Param) -> TokenStream {
        let name = &param.name;
        let ty = &param.ty_text;
        let out = matches!(param.kind, ParamKind::RefMut(_));
        quote! {
            ::lpc::ParamDescriptor { name: #name, ty: #ty, out: #out }
        }
    }

    /// `pub struct XxxClient`.
    fn client_struct(&self) -> TokenStream {
        let Service { name, vis, .. } = self.service;
        let client = &self.client;
        let doc = format!(
            "Client proxy for the [`{name}`] service: each method calls the service's method of \
             the same name in the service process and returns its result, or the [`lpc::Error`] \
             that prevented the call.\n\nCloning is cheap: the clones share the connection."
        );
        quote! {
            #[doc = #doc]
            #[derive(Clone, Debug)]
            #[allow(dead_code)]
            #vis struct #client {
                inner: ::lpc::Client,
            }
        }
    }

    /// `impl XxxClient`: connecting, and one method per service method.
    fn client_impl(&self) -> TokenStream {
        let (client, interface) = (&self.client, &self.interface);
        let methods = self
            .service
            .methods
            .iter()
            .enumerate()
            .map(|(index, method)| self.client_method(index, method));
        quote! {
            #[allow(
                dead_code,
                clippy::too_many_arguments,
                clippy::needless_lifetimes,
                clippy::ptr_arg,
                clippy::type_complexity
            )]
            impl #client {
                /// Connects to the service registered under `name`, with default options.
                pub fn connect(name: &str) -> ::core::result::Result<Self, ::lpc::Error> {
                    Self::connect_with(name, &::lpc::ClientOptions::default())
                }

                /// Connects to the service registered under `name`.
                pub fn connect_with(
                    name: &str,
                    options: &::lpc::ClientOptions,
                ) -> ::core::result::Result<Self, ::lpc::Error> {
                    ::lpc::Client::connect(name, &#interface, options).map(|inner| Self { inner })
                }

                /// Starts `command` as a child service of this interface and connects to
                /// it over an inherited connection (see `lpc::Client::spawn`); the child
                /// serves with `lpc::Server::inherited()`. Dropping the returned
                /// `lpc::Child` kills the child.
                pub fn spawn(
                    command: ::std::process::Command,
                ) -> ::core::result::Result<(::lpc::Child, Self), ::lpc::Error> {
                    Self::spawn_with(command, &::lpc::ClientOptions::default())
                }

                /// [`Self::spawn`] with `options` (connect and call timeouts, limits).
                pub fn spawn_with(
                    command: ::std::process::Command,
                    options: &::lpc::ClientOptions,
                ) -> ::core::result::Result<(::lpc::Child, Self), ::lpc::Error> {
                    ::lpc::Client::spawn(command, &#interface, options)
                        .map(|(child, inner)| (child, Self { inner }))
                }

                /// Wraps a connected client (whose interface must be this one).
                pub fn from_client(inner: ::lpc::Client) -> Self {
                    Self { inner }
                }

                /// The underlying untyped client.
                pub fn client(&self) -> &::lpc::Client {
                    &self.inner
                }

                /// A handle on the same connection whose calls each fail after `timeout`.
                pub fn with_timeout(&self, timeout: ::std::time::Duration) -> Self {
                    Self {
                        inner: self.inner.with_timeout(timeout),
                    }
                }

                #(#methods)*
            }
        }
    }

    /// The client method for the service method at `index`: the trait method's signature
    /// (with the result wrapped in `Result<_, lpc::Error>`) and docs.
    fn client_method(&self, index: usize, method: &Method) -> TokenStream {
        let default_doc = if method.oneway {
            format!(
                "Posts [`{}::{}`] to the service process (one-way): returns once the message \
                 is in the connection's queue, before the handler runs.",
                self.service.name, method.name
            )
        } else {
            format!(
                "Calls [`{}::{}`] in the service process.",
                self.service.name, method.name
            )
        };
        let docs = if method.docs.is_empty() {
            quote!(#[doc = #default_doc])
        } else {
            let docs = &method.docs;
            quote!(#(#docs)*)
        };
        let ident = &method.ident;
        let generics = &method.generics;
        let receiver_lifetime = &method.receiver_lifetime;
        let params = method.params.iter().map(|param| {
            let ident = &param.ident;
            let ty = &param.ty;
            quote!(#ident: #ty)
        });
        let returns = match &method.output {
            Output::Unit => quote!(()),
            Output::ByteVec => quote!(::std::vec::Vec<u8>),
            Output::Handle { file, err } => {
                let handle = handle_type(*file);
                match err {
                    None => handle,
                    Some(err) => quote!(::core::result::Result<#handle, #err>),
                }
            }
            Output::Type(ty) => ty.to_token_stream(),
        };
        let body = self.client_body(index, method);
        quote! {
            #docs
            pub fn #ident #generics (&#receiver_lifetime self, #(#params),*)
                -> ::core::result::Result<#returns, ::lpc::Error>
            {
                #body
            }
        }
    }

    /// The body of a client method: the call, then the `&mut` parameters' new values written
    /// back.
    fn client_body(&self, index: usize, method: &Method) -> TokenStream {
        let serde_bytes = serde_bytes();
        let interface = &self.interface;
        let index = Literal::usize_unsuffixed(index);

        let arguments = method.params.iter().map(|param| {
            let ident = &param.ident;
            match &param.kind {
                ParamKind::Value => quote!(&#ident),
                ParamKind::ByteVec => quote!(#serde_bytes::Bytes::new(&#ident)),
                ParamKind::Str | ParamKind::Slice(_) | ParamKind::Ref(_) => quote!(#ident),
                ParamKind::ByteSlice => quote!(#serde_bytes::Bytes::new(#ident)),
                ParamKind::RefMut(_) => quote!(&*#ident),
                ParamKind::Handle { file, by } => {
                    let send = if *file {
                        quote!(::lpc::__private::SendHandle::file)
                    } else {
                        quote!(::lpc::__private::SendHandle::fd)
                    };
                    match by {
                        HandleBy::Ref => quote!(&#send(#ident)),
                        HandleBy::Value | HandleBy::Borrowed => quote!(&#send(&#ident)),
                    }
                }
            }
        });
        let call_args = quote!(&(#(#arguments,)*));
        if method.oneway {
            // Posted into the one-way queue: returns once the message is in shared memory.
            return quote! {
                self.inner.post(&#interface.methods[#index], #call_args)
            };
        }

        let wire_return = match &method.output {
            Output::Unit => quote!(()),
            Output::ByteVec => quote!(::lpc::__private::WireBytes),
            Output::Handle { file, err: None } => recv_type(*file),
            Output::Handle {
                file,
                err: Some(err),
            } => {
                let recv = recv_type(*file);
                quote!(::core::result::Result<#recv, #err>)
            }
            Output::Type(ty) => ty.to_token_stream(),
        };
        // The received handle, out of its wire wrapper.
        let unwrap_handle = |value: TokenStream| match &method.output {
            Output::Handle { err: None, .. } => quote!(#value.into_inner()),
            Output::Handle { err: Some(_), .. } => quote!(#value.map(|h| h.into_inner())),
            _ => value,
        };

        // A result that holds a `lpc::Loan` is decoded where loans can be mapped; every other
        // method takes the plain path, which pays nothing for loans.
        let call_fn = if method.passes_handles {
            quote!(call_handles)
        } else if method.returns_loan {
            quote!(call_loaned)
        } else {
            quote!(call)
        };
        let call = |wire: TokenStream| {
            quote! {
                self.inner.#call_fn::<_, #wire>(&#interface.methods[#index], #call_args)
            }
        };

        let updated: Vec<(&Ident, &syn::Type)> = method
            .params
            .iter()
            .filter_map(|param| match &param.kind {
                ParamKind::RefMut(ty) => Some((&param.ident, ty)),
                _ => None,
            })
            .collect();
        if updated.is_empty() {
            let call = call(wire_return);
            return match &method.output {
                Output::ByteVec => quote!(#call.map(::lpc::__private::WireBytes::into_vec)),
                Output::Handle { .. } => {
                    let unwrapped = unwrap_handle(quote!(ret));
                    quote!(#call.map(|ret| #unwrapped))
                }
                Output::Unit | Output::Type(_) => call,
            };
        }

        // The reply is the result followed by the `&mut` parameters' new values.
        let updated_types = updated.iter().map(|(_, ty)| ty);
        let call = call(quote!((#wire_return, #(#updated_types),*)));
        let fresh: Vec<Ident> = (0..updated.len())
            .map(|i| Ident::new(&format!("updated{i}"), Span::mixed_site()))
            .collect();
        let targets = updated.iter().map(|(ident, _)| ident);
        let ret = Ident::new("ret", Span::mixed_site());
        let (ret_pattern, ret_value) = match &method.output {
            Output::Unit => (quote!(()), quote!(())),
            Output::ByteVec => (quote!(#ret), quote!(#ret.into_vec())),
            Output::Handle { .. } => (quote!(#ret), unwrap_handle(quote!(#ret))),
            Output::Type(_) => (quote!(#ret), quote!(#ret)),
        };
        quote! {
            let (#ret_pattern, #(#fresh),*) = #call?;
            #(*#targets = #fresh;)*
            ::core::result::Result::Ok(#ret_value)
        }
    }

    /// `pub struct XxxServer<T>`.
    fn server_struct(&self) -> TokenStream {
        let Service { name, vis, .. } = self.service;
        let server = &self.server;
        let doc = format!(
            "Serves a [`{name}`] implementation: give it to `lpc::Server::spawn` (or any runtime \
             entry point taking an [`lpc::Dispatch`])."
        );
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            #vis struct #server<T> {
                inner: T,
            }
        }
    }

    /// `impl<T> XxxServer<T>`: `new` and `inner`.
    fn server_impl(&self) -> TokenStream {
        let server = &self.server;
        quote! {
            #[allow(dead_code)]
            impl<T> #server<T> {
                /// Wraps the implementation that will serve the calls.
                pub fn new(inner: T) -> Self {
                    Self { inner }
                }

                /// The implementation.
                pub fn inner(&self) -> &T {
                    &self.inner
                }
            }
        }
    }

    /// `impl lpc::Dispatch for XxxServer<T>`.
    fn dispatch_impl(&self) -> TokenStream {
        let (server, impl_ty, interface) = (&self.server, &self.impl_ty, &self.interface);
        let trait_ident = &self.service.ident;
        let dispatch = self.dispatch_fn();
        let dispatch_json = self.dispatch_json_fn();
        quote! {
            impl<#impl_ty> ::lpc::Dispatch for #server<#impl_ty>
            where
                #impl_ty: #trait_ident + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                fn interface(&self) -> &'static ::lpc::InterfaceDescriptor {
                    &#interface
                }

                #dispatch

                #dispatch_json
            }
        }
    }

    /// `Dispatch::dispatch`: postcard arguments and reply, as the client sends and expects.
    fn dispatch_fn(&self) -> TokenStream {
        let (method_id, args, reply) = (&self.method_id, &self.args, &self.reply);
        let arms = self
            .service
            .methods
            .iter()
            .map(|method| self.dispatch_arm(method));
        quote! {
            fn dispatch(
                &self,
                #method_id: u32,
                #args: ::lpc::EncodedArgs<'_>,
                #reply: &mut ::lpc::EncodedReply<'_>,
            ) -> ::core::result::Result<(), ::lpc::DispatchError> {
                match #method_id {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::lpc::DispatchError::NoSuchMethod),
                }
            }
        }
    }

    /// `Dispatch::dispatch_json`: JSON arguments and reply, for tools.
    fn dispatch_json_fn(&self) -> TokenStream {
        let (method_id, args, reply) = (&self.method_id, &self.args, &self.reply);
        let arms = self
            .service
            .methods
            .iter()
            .enumerate()
            .map(|(index, method)| self.json_arm(index, method));
        quote! {
            fn dispatch_json(
                &self,
                #method_id: u32,
                #args: &[u8],
                #reply: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::lpc::DispatchError> {
                match #method_id {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::lpc::DispatchError::NoSuchMethod),
                }
            }
        }
    }

    /// One arm of `dispatch`'s `match` on the method id.
    fn dispatch_arm(&self, method: &Method) -> TokenStream {
        let (args, reply) = (&self.args, &self.reply);
        let serde_bytes = serde_bytes();
        let id = hex_literal(u64::from(method.id), 8);
        let locals = argument_locals(method);

        let owned_types = method
            .params
            .iter()
            .map(|param| owned_type(param, Codec::Postcard));
        let bindings = method
            .params
            .iter()
            .zip(&locals)
            .map(|(param, local)| binding(param, local));
        let decode = if method.params.is_empty() {
            quote! {
                ::lpc::__private::decode_args::<()>(#args)?;
            }
        } else {
            quote! {
                let (#(#bindings,)*) =
                    ::lpc::__private::decode_args::<(#(#owned_types,)*)>(#args)?;
            }
        };

        let call = self.handler_call(method, &locals, Codec::Postcard);
        let ret = Ident::new("ret", Span::mixed_site());
        // The run statement, and a reference to the value to encode.
        let (run, encoded) = match &method.output {
            Output::Unit => (quote!(#call;), quote!(&())),
            Output::ByteVec => (
                quote!(let #ret = #call;),
                quote!(#serde_bytes::Bytes::new(&#ret)),
            ),
            Output::Handle { file, err } => {
                let send = if *file {
                    quote!(::lpc::__private::SendHandle::file)
                } else {
                    quote!(::lpc::__private::SendHandle::fd)
                };
                let encoded = match err {
                    None => quote!(&#send(&#ret)),
                    Some(_) => quote!(&#ret.as_ref().map(|h| #send(h))),
                };
                (quote!(let #ret = #call;), encoded)
            }
            Output::Type(_) => (quote!(let #ret = #call;), quote!(&#ret)),
        };
        // Counting the call's handles, for the service's per-call limit.
        let decode = if method.passes_handles {
            quote!(::lpc::__private::begin_handles(); #decode)
        } else {
            decode
        };
        let updated = updated_locals(method, &locals);
        let encode = if updated.is_empty() {
            quote!(::lpc::__private::encode_reply(#encoded, #reply))
        } else {
            quote!(::lpc::__private::encode_reply(&(#encoded, #(#updated),*), #reply))
        };

        quote! {
            #id => {
                #decode
                #run
                #encode
            }
        }
    }

    /// One arm of `dispatch_json`'s `match` on the method id: the arguments come as a JSON
    /// array or object, the reply goes as `{"result": …, "out": {…}}` or `{"error": …}`.
    fn json_arm(&self, index: usize, method: &Method) -> TokenStream {
        let id = hex_literal(u64::from(method.id), 8);
        if method.passes_handles {
            let why = format!(
                "method `{}` passes files, descriptors or segments, which the kernel carries \
                 beside the payload and a JSON call cannot: call it from Rust",
                method.name
            );
            return quote! {
                #id => ::core::result::Result::Err(
                    ::lpc::DispatchError::BadArguments(::std::string::String::from(#why))
                ),
            };
        }
        let locals = argument_locals(method);
        let decode = self.json_decode(index, method, &locals);
        let call = self.handler_call(method, &locals, Codec::Json);
        let respond = self.json_respond(method, &locals, call);
        quote! {
            #id => {
                #decode
                #respond
            }
        }
    }

    /// The statements of a JSON arm that parse the arguments into `locals`.
    fn json_decode(&self, index: usize, method: &Method, locals: &[Ident]) -> TokenStream {
        let json = json();
        let (interface, args) = (&self.interface, &self.args);
        let index = Literal::usize_unsuffixed(index);
        let parsed = Ident::new("json_args", Span::mixed_site());

        let parse = quote!(#json::Args::parse(#args, &#interface, #index)?);
        if method.params.is_empty() {
            return quote!(#parse;);
        }
        let takes =
            method
                .params
                .iter()
                .zip(locals)
                .enumerate()
                .map(|(position, (param, local))| {
                    let owned = owned_type(param, Codec::Json);
                    let binding = binding(param, local);
                    let raw = format_ident!("raw{}", position, span = Span::mixed_site());
                    let position = Literal::usize_unsuffixed(position);
                    if !may_borrow(&owned) {
                        return quote! {
                            let #binding: #owned = #parsed.take::<#owned>(#position)?;
                        };
                    }
                    quote! {
                        let #raw = #parsed.take::<#json::Value>(#position)?;
                        let #binding: #owned = #parsed.decode_borrowed::<#owned>(&#raw, #position)?;
                    }
                });
        quote! {
            let mut #parsed = #parse;
            #(#takes)*
        }
    }

    /// The statements of a JSON arm that run the handler (`call`) and write the reply: the
    /// result (or the error of a `Result`) and the `&mut` parameters' new values.
    fn json_respond(&self, method: &Method, locals: &[Ident], call: TokenStream) -> TokenStream {
        let json = json();
        let reply = &self.reply;
        let ret = Ident::new("ret", Span::mixed_site());
        // The run statement, and a reference to the value of the reply.
        let (run, value) = match &method.output {
            Output::Unit => (quote!(#call;), quote!(&())),
            Output::ByteVec | Output::Type(_) | Output::Handle { .. } => {
                (quote!(let #ret = #call;), quote!(&#ret))
            }
        };

        let outs = Ident::new("outs", Span::mixed_site());
        let updated = method
            .params
            .iter()
            .zip(locals)
            .filter(|(param, _)| matches!(param.kind, ParamKind::RefMut(_)))
            .map(|(param, local)| {
                let name = &param.name;
                quote!(#json::out(#name, &#local)?)
            })
            .collect::<Vec<_>>();
        let collect = if updated.is_empty() {
            quote!(let #outs = ::std::vec::Vec::new();)
        } else {
            quote!(let #outs = ::std::vec![#(#updated),*];)
        };

        let respond = if method.returns_result {
            let (value, error) = (
                Ident::new("value", Span::mixed_site()),
                Ident::new("error", Span::mixed_site()),
            );
            quote! {
                match #ret {
                    ::core::result::Result::Ok(#value) => #json::reply(#reply, false, &#value, #outs),
                    ::core::result::Result::Err(#error) => #json::reply(#reply, true, &#error, #outs),
                }
            }
        } else {
            quote!(#json::reply(#reply, false, #value, #outs))
        };

        quote! {
            #run
            #collect
            #respond
        }
    }

    /// The call of the handler with the decoded arguments in `locals`.
    fn handler_call(&self, method: &Method, locals: &[Ident], codec: Codec) -> TokenStream {
        let (trait_ident, impl_ty) = (&self.service.ident, &self.impl_ty);
        let ident = &method.ident;
        let call_args = method
            .params
            .iter()
            .zip(locals)
            .map(|(param, local)| match &param.kind {
                ParamKind::Value => quote!(#local),
                ParamKind::ByteVec => match codec {
                    Codec::Postcard => quote!(#local.into_vec()),
                    Codec::Json => quote!(#local),
                },
                ParamKind::Str | ParamKind::Ref(_) => quote!(&#local),
                ParamKind::ByteSlice | ParamKind::Slice(_) => quote!(&#local[..]),
                ParamKind::RefMut(_) => quote!(&mut #local),
                ParamKind::Handle { by, .. } => match by {
                    HandleBy::Value => quote!(#local.into_inner()),
                    HandleBy::Ref => quote!(&#local.into_inner()),
                    HandleBy::Borrowed => {
                        quote!(::std::os::fd::AsFd::as_fd(&#local.into_inner()))
                    }
                },
            });
        quote! {
            <#impl_ty as #trait_ident>::#ident(&self.inner, #(#call_args),*)
        }
    }
}

/// The path of `serde_bytes` as re-exported by lpc.
fn serde_bytes() -> TokenStream {
    quote!(::lpc::__private::serde_bytes)
}

/// The path of lpc's JSON helpers for `dispatch_json`.
fn json() -> TokenStream {
    quote!(::lpc::__private::json)
}

/// Which dispatcher a piece of code is for: the two decode the arguments differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// `dispatch`: postcard, with `&[u8]` and `Vec<u8>` as raw bytes (`WireBytes`).
    Postcard,
    /// `dispatch_json`: JSON, with bytes as arrays of numbers (`Vec<u8>`).
    Json,
}

/// The owned type the service decodes for `param`, with the method's lifetimes erased.
fn owned_type(param: &Param, codec: Codec) -> TokenStream {
    let ty = match &param.kind {
        ParamKind::Value => param.ty.to_token_stream(),
        ParamKind::ByteVec | ParamKind::ByteSlice => match codec {
            // Decoded with one copy, straight from shared memory (see `WireBytes`).
            Codec::Postcard => quote!(::lpc::__private::WireBytes),
            Codec::Json => quote!(::std::vec::Vec<u8>),
        },
        ParamKind::Str => quote!(::std::string::String),
        ParamKind::Slice(elem) => quote!(::std::vec::Vec<#elem>),
        ParamKind::Ref(elem) | ParamKind::RefMut(elem) => elem.to_token_stream(),
        ParamKind::Handle { file, .. } => recv_type(*file),
    };
    erase_lifetimes(ty)
}

/// The wire type a received file (`file`) or descriptor is decoded as.
fn recv_type(file: bool) -> TokenStream {
    if file {
        quote!(::lpc::__private::RecvFile)
    } else {
        quote!(::lpc::__private::RecvFd)
    }
}

/// `File` or `OwnedFd`, by full path.
fn handle_type(file: bool) -> TokenStream {
    if file {
        quote!(::std::fs::File)
    } else {
        quote!(::std::os::fd::OwnedFd)
    }
}

/// The locals holding the decoded arguments: `arg0`, `arg1`, …
fn argument_locals(method: &Method) -> Vec<Ident> {
    (0..method.params.len())
        .map(|i| format_ident!("arg{}", i, span = Span::mixed_site()))
        .collect()
}

/// `mut argN` for a `&mut` parameter, `argN` otherwise.
fn binding(param: &Param, local: &Ident) -> TokenStream {
    if matches!(param.kind, ParamKind::RefMut(_)) {
        quote!(mut #local)
    } else {
        quote!(#local)
    }
}

/// The locals of the `&mut` parameters, whose new values go back to the caller.
fn updated_locals<'a>(method: &Method, locals: &'a [Ident]) -> Vec<&'a Ident> {
    method
        .params
        .iter()
        .zip(locals)
        .filter(|(param, _)| matches!(param.kind, ParamKind::RefMut(_)))
        .map(|(_, local)| local)
        .collect()
}

/// Whether a decoded type may borrow from the input (`&str`, `Option<&'a str>`,
/// `Cow<'a, str>`): such a type is not `DeserializeOwned`, so the JSON dispatcher decodes it
/// from a borrowed `serde_json::Value` instead of through `Args::take`.
fn may_borrow(tokens: &TokenStream) -> bool {
    let mut iter = tokens.clone().into_iter().peekable();
    while let Some(tree) = iter.next() {
        let borrows = match tree {
            TokenTree::Group(group) => may_borrow(&group.stream()),
            TokenTree::Punct(punct) => match punct.as_char() {
                '&' => true,
                '\'' => !matches!(iter.peek(), Some(TokenTree::Ident(ident)) if ident == "static"),
                _ => false,
            },
            _ => false,
        };
        if borrows {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_names() {
        assert_eq!(screaming_snake("Calc"), "CALC");
        assert_eq!(screaming_snake("ImageFilter"), "IMAGE_FILTER");
        assert_eq!(screaming_snake("HTTPServer"), "HTTP_SERVER");
        assert_eq!(screaming_snake("KvStore2"), "KV_STORE2");
        assert_eq!(screaming_snake("Calc2D"), "CALC2_D");
        assert_eq!(screaming_snake("snake_case"), "SNAKE_CASE");
        assert_eq!(screaming_snake("Foo_Bar"), "FOO_BAR");
    }

    #[test]
    fn borrowing_types() {
        for (source, borrows) in [
            ("u8", false),
            ("String", false),
            ("Vec<Option<u8>>", false),
            ("Cow<'static, str>", false),
            ("&'static str", true),
            ("Option<&str>", true),
            ("Vec<&'_ str>", true),
            ("Cow<'_, str>", true),
            ("(u8, [&'_ str; 2])", true),
        ] {
            let ty: syn::Type = syn::parse_str(source).expect("a type");
            assert_eq!(may_borrow(&ty.to_token_stream()), borrows, "{source}");
        }
    }

    #[test]
    fn hex_literals() {
        assert_eq!(hex_literal(0x1234_abcd, 8).to_string(), "0x1234_abcd");
        assert_eq!(hex_literal(1, 16).to_string(), "0x0000_0000_0000_0001");
    }
}
