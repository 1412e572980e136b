//! `#[lpc::events]`: a trait of events a service emits, beside its service trait.
//!
//! Each method is an event (`fn tick(&self, counter: u64, at_ns: u64);`: no result, its
//! parameters taken by value). Generated, beside the trait as written:
//!
//! - `XXX_INTERFACE`, the events' descriptor (their names, ids and shapes, as a service
//!   interface's methods, marked one-way);
//! - `XxxEmitter`, which the service emits through (to all subscribers, to a connection, or
//!   to the caller of the handler running);
//! - `XxxEvent`, an enum with one variant per event, which a subscriber receives
//!   (`lpc::Subscription<XxxEvent>`) and can hand to an implementation of the trait
//!   (`deliver`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::expand::{screaming_snake, ServiceGenerator};
use crate::model::{Output, ParamKind, Service};

/// `tick_count` → `TickCount`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

pub fn expand(service: &mut Service) -> syn::Result<TokenStream> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for method in &mut service.methods {
        if !matches!(method.output, Output::Unit) {
            push(syn::Error::new_spanned(
                &method.ident,
                "an event returns nothing: `fn tick(&self, counter: u64);`",
            ));
        }
        for param in &method.params {
            if !matches!(param.kind, ParamKind::Value | ParamKind::ByteVec) {
                push(syn::Error::new_spanned(
                    &param.ident,
                    "an event's parameters are taken by value (`String`, not `&str`): the \
                     subscriber receives owned values",
                ));
            }
        }
        method.oneway = true;
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let item = &service.item;
    let vis = &service.vis;
    let name = &service.name;
    let span = service.ident.span();
    let trait_ident = &service.ident;
    let interface = Ident::new(&format!("{}_INTERFACE", screaming_snake(name)), span);
    let emitter = Ident::new(&format!("{name}Emitter"), span);
    let event = Ident::new(&format!("{name}Event"), span);
    let descriptor = ServiceGenerator::new(service).interface_static();
    let hub = Ident::new("hub", Span::mixed_site());
    let target = Ident::new("target", Span::mixed_site());

    let emit_methods = service.methods.iter().enumerate().map(|(index, m)| {
        let ident = &m.ident;
        let params = m.params.iter().map(|p| {
            let (i, ty) = (&p.ident, &p.ty);
            quote!(#i: #ty)
        });
        let args = m.params.iter().map(|p| {
            let i = &p.ident;
            match p.kind {
                ParamKind::ByteVec => quote!(::lpc::__private::serde_bytes::Bytes::new(&#i)),
                _ => quote!(&#i),
            }
        });
        let docs = &m.docs;
        let doc = format!(
            "Emits `{}` to this emitter's subscribers; returns how many it was written to.",
            m.name
        );
        quote! {
            #(#docs)*
            #[doc = #doc]
            #vis fn #ident(&self, #(#params),*) -> usize {
                self.#hub.emit(self.#target, &#interface.methods[#index], &(#(#args,)*))
            }
        }
    });

    let variants = service.methods.iter().map(|m| {
        let v = Ident::new(&camel(&m.name), m.ident.span());
        let fields = m.params.iter().map(|p| {
            let (i, ty) = (&p.ident, &p.ty);
            quote!(#i: #ty)
        });
        let docs = &m.docs;
        quote!(#(#docs)* #v { #(#fields),* })
    });
    let decode_arms = service.methods.iter().map(|m| {
        let v = Ident::new(&camel(&m.name), m.ident.span());
        let id = m.id;
        let idents: Vec<_> = m.params.iter().map(|p| &p.ident).collect();
        let tys = m.params.iter().map(|p| match p.kind {
            ParamKind::ByteVec => quote!(::lpc::__private::WireBytes),
            _ => {
                let ty = &p.ty;
                quote!(#ty)
            }
        });
        let values = m.params.iter().map(|p| {
            let i = &p.ident;
            match p.kind {
                ParamKind::ByteVec => quote!(#i: #i.into_vec()),
                _ => quote!(#i),
            }
        });
        quote! {
            #id => {
                let (#(#idents,)*): (#(#tys,)*) = ::lpc::__private::decode_event_args(payload)?;
                ::core::result::Result::Ok(Self::#v { #(#values),* })
            }
        }
    });
    let deliver_arms = service.methods.iter().map(|m| {
        let v = Ident::new(&camel(&m.name), m.ident.span());
        let ident = &m.ident;
        let idents: Vec<_> = m.params.iter().map(|p| &p.ident).collect();
        quote!(Self::#v { #(#idents),* } => to.#ident(#(#idents),*))
    });
    let name_arms = service.methods.iter().map(|m| {
        let v = Ident::new(&camel(&m.name), m.ident.span());
        let n = &m.name;
        quote!(Self::#v { .. } => #n)
    });
    let emitter_doc = format!(
        "Emits the events of [`{name}`]: to every subscriber, to one connection (`to`), or to \
         the caller of the running handler (`to_caller`). Give it to the server with \
         `lpc::Server::with_events(&emitter)`; clones share it."
    );
    let event_doc = format!(
        "One event of [`{name}`], as a subscriber receives it (`lpc::Subscription<{name}Event>`)."
    );

    Ok(quote! {
        #item
        #descriptor

        #[doc = #emitter_doc]
        #[derive(Clone, Debug)]
        #vis struct #emitter {
            #hub: ::lpc::server::EventHub,
            #target: ::lpc::server::Target,
        }

        #[allow(dead_code)]
        impl #emitter {
            /// An emitter with no subscriber yet, to every subscriber.
            #vis fn new() -> Self {
                Self {
                    #hub: ::lpc::server::EventHub::new(&#interface),
                    #target: ::lpc::server::Target::All,
                }
            }

            /// The hub it emits through.
            #vis fn hub(&self) -> &::lpc::server::EventHub {
                &self.#hub
            }

            /// The same emitter, to the subscriptions linked to `connection` only.
            #vis fn to(&self, connection: ::lpc::server::ConnectionId) -> Self {
                Self {
                    #hub: self.#hub.clone(),
                    #target: ::lpc::server::Target::Connection(connection),
                }
            }

            /// The same emitter, to the caller of the handler running on this thread only
            /// (`None` outside a handler).
            #vis fn to_caller(&self) -> ::core::option::Option<Self> {
                ::lpc::server::current_connection().map(|c| self.to(c))
            }

            #(#emit_methods)*
        }

        impl ::core::default::Default for #emitter {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::core::convert::AsRef<::lpc::server::EventHub> for #emitter {
            fn as_ref(&self) -> &::lpc::server::EventHub {
                &self.#hub
            }
        }

        #[doc = #event_doc]
        #[derive(Debug, Clone)]
        #vis enum #event {
            #(#variants),*
        }

        #[allow(dead_code)]
        impl #event {
            /// Calls the method of `to` this event names.
            #vis fn deliver(self, to: &(impl #trait_ident + ?Sized)) {
                match self {
                    #(#deliver_arms),*
                }
            }

            /// The event's name.
            #vis fn name(&self) -> &'static str {
                match self {
                    #(#name_arms),*
                }
            }
        }

        impl ::lpc::EventSet for #event {
            fn interface() -> ::core::option::Option<&'static ::lpc::InterfaceDescriptor> {
                ::core::option::Option::Some(&#interface)
            }

            fn decode(
                id: u32,
                payload: &[u8],
                _remote: &::lpc::InterfaceInfo,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                match id {
                    #(#decode_arms)*
                    other => ::core::result::Result::Err(::std::format!("no event has id {other:#010x}")),
                }
            }
        }
    })
}
