//! # adamant-derive
//!
//! `#[derive(Module)]` for adamant: a struct of modules whose parameters are named by field,
//! exactly as PyTorch's `state_dict` names them (`fc1.weight`, `blocks.0.ln_1.bias`).
//!
//! Use it through `adamant_layers::Module` (or `adamant::layers::Module`), which re-exports
//! it beside the trait of the same name; the documentation of `adamant_layers::Params` has a
//! compiling example. In short:
//!
//! ```text
//! use adamant::autodiff::Var;
//! use adamant::layers::{Dense, Module, Params};
//!
//! #[derive(Module)]                 // implements Params: the parameters, named by field
//! struct Mlp {
//!     fc1: Dense,                   // fc1.weight, fc1.bias
//!     hidden: Vec<Dense>,           // hidden.0.weight, hidden.0.bias, hidden.1.weight, ...
//!     head: Option<Dense>,          // head.weight, head.bias when Some, nothing when None
//!     width: usize,                 // plain data: no parameters, no attribute needed
//!     #[module(skip)]
//!     notes: Vec<String>,           // anything else that holds no parameters
//! }
//!
//! impl Module for Mlp {             // the forward pass is yours to write
//!     fn forward<'t>(&self, x: Var<'t>) -> Var<'t> { /* ... */ }
//! }
//! ```
//!
//! # What the derive generates
//!
//! An implementation of `Params` (the parameter half of `Module`: `visit_params`,
//! `visit_params_mut` and `visit_buffers`) that walks the fields in declaration order and
//! visits each one under
//! the prefix `"{prefix}{field}."`. A field's type decides what that means, through its own
//! `Params` implementation: a module names its parameters below the prefix, a `Param` is
//! named by the prefix itself (`weight`), so is a `Buffer` (non-trainable state such as
//! `running_mean`, visited by `visit_buffers` only), `Vec<M>` and arrays number their elements
//! (`blocks.0.`), `Option<M>` is visited when `Some`, `Box<M>` is transparent, and plain data
//! (`usize`, `f32`, `bool`, `String`, ...) has no parameters. A field of any other type is a
//! compile error until it is marked `#[module(skip)]`: a forgotten layer never silently drops
//! out of the optimizer.
//!
//! `forward` cannot be derived, so the derive implements `Params` and you implement `Module`
//! (which requires `Params`) with your `forward`. Models whose input is not one float `Var`
//! (token ids, a hidden state) implement only `Params` and have their own `forward`.
//!
//! # Attributes
//!
//! - `#[module(skip)]` on a field: the field is not visited (it holds no parameters).
//! - `#[module(crate = "path")]` on the struct: where adamant-layers is, when neither
//!   `adamant_layers` nor the facade `adamant` is (a renamed dependency).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{parse_macro_input, parse_quote, Data, DeriveInput, Fields, LitStr};

/// Implements `adamant_layers::Params` for a struct: its parameters are its fields'
/// parameters, named `"{field}.{name}"` (see the crate documentation).
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input, quote!(::adamant_layers)).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// [`macro@Module`] as the facade `adamant` re-exports it (`adamant::layers::Module`): the
/// same expansion, naming `::adamant::layers` instead of `::adamant_layers`, so that a crate
/// depending on `adamant` alone can derive without also depending on adamant-layers.
#[proc_macro_derive(ModuleViaFacade, attributes(module))]
pub fn derive_module_via_facade(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input, quote!(::adamant::layers)).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// A field the derive visits: how to reach it and the name it contributes to paths.
struct Visited {
    member: syn::Ident,
    name: String,
    ty: syn::Type,
}

fn expand(mut input: DeriveInput, default_krate: TokenStream2) -> syn::Result<TokenStream2> {
    let mut krate = default_krate;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let path: LitStr = meta.value()?.parse()?;
                let path: syn::Path = path.parse()?;
                krate = quote!(#path);
                Ok(())
            } else {
                Err(meta.error("unknown #[module] option on a struct (expected `crate = \"path\"`)"))
            }
        })?;
    }

    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(_) => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "#[derive(Module)] needs named fields: parameters are named after them",
                ))
            }
        },
        _ => {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Module)] works on structs: an enum or union has no fixed set of parameters",
            ))
        }
    };

    let mut visited = Vec::new();
    for field in fields {
        let mut skip = false;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("skip") {
                    skip = true;
                    Ok(())
                } else {
                    Err(meta.error("unknown #[module] option on a field (expected `skip`)"))
                }
            })?;
        }
        if !skip {
            let member = field.ident.clone().expect("named fields have names");
            // `r#type` is the parameter prefix `type.`, as PyTorch would spell the attribute.
            let name = member.unraw().to_string();
            visited.push(Visited { member, name, ty: field.ty.clone() });
        }
    }

    // A generic struct's fields may be of a parameter type: require what the walk needs.
    if input.generics.type_params().next().is_some() {
        let where_clause = input.generics.make_where_clause();
        for v in &visited {
            let ty = &v.ty;
            where_clause.predicates.push(parse_quote!(#ty: #krate::Params));
        }
    }

    let walk = |visit: TokenStream2| -> Vec<TokenStream2> {
        visited
            .iter()
            .map(|Visited { member, name, ty }| {
                let segment = format!("{name}.");
                let borrow = if visit.to_string() == "visit_params_mut" {
                    quote!(&mut self.#member)
                } else {
                    quote!(&self.#member)
                };
                // Spanned at the field's type, so that "`Tensor: Params` is not satisfied"
                // points at the field to mark `#[module(skip)]`.
                let call = quote_spanned!(ty.span()=> #krate::Params::#visit);
                quote! {
                    #krate::__private::with_path(
                        ::core::format_args!("{}{}", prefix, #segment),
                        |prefix| #call(#borrow, prefix, &mut *f),
                    );
                }
            })
            .collect()
    };
    let (visit, visit_mut, visit_buffers) =
        (walk(quote!(visit_params)), walk(quote!(visit_params_mut)), walk(quote!(visit_buffers)));
    // Unused when the struct has nothing to visit.
    let allow = visited.is_empty().then(|| quote!(#[allow(unused_variables)]));

    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Params for #ident #ty_generics #where_clause {
            #allow
            fn visit_params<'__adamant>(
                &'__adamant self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, &'__adamant #krate::__private::Param),
            ) {
                #(#visit)*
            }

            #allow
            fn visit_params_mut<'__adamant>(
                &'__adamant mut self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, &'__adamant mut #krate::__private::Param),
            ) {
                #(#visit_mut)*
            }

            #allow
            fn visit_buffers<'__adamant>(
                &'__adamant self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, &'__adamant #krate::__private::Buffer),
            ) {
                #(#visit_buffers)*
            }
        }
    })
}
