//! Expansion of `#[aiods::service]` into a `main` that calls `::aiods::__private::run`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use crate::attr::ServiceArgs;

pub(crate) fn service(args: ServiceArgs, item: TokenStream) -> syn::Result<TokenStream> {
    let mut func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "`#[aiods::service]` must be on an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a `#[aiods::service]` function cannot be generic",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "variadic arguments are not supported",
        ));
    }

    let krate = args
        .krate
        .map(|p| quote!(#p))
        .unwrap_or_else(|| quote!(::aiods));
    let mut arg_values = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new_spanned(
                    r,
                    "a `#[aiods::service]` function cannot take `self`",
                ));
            }
            FnArg::Typed(pat) => {
                let ty = &pat.ty;
                arg_values.push(quote_spanned! {ty.span()=>
                    #krate::__private::from_context::<#ty>(&__aiods_ctx)
                });
            }
        }
    }
    let into_parts = match &sig.output {
        ReturnType::Default => quote_spanned! {sig.ident.span()=>
            #krate::__private::into_parts(__aiods_value)
        },
        ReturnType::Type(_, ty) => quote_spanned! {ty.span()=>
            #krate::__private::into_parts::<#ty>(__aiods_value)
        },
    };
    let name = match args.name {
        Some(n) => quote!(#n),
        None => quote!(::core::env!("CARGO_PKG_NAME")),
    };

    let attrs = std::mem::take(&mut func.attrs);
    // The visibility belongs to the generated entry point; the nested function is private.
    let vis = std::mem::replace(&mut func.vis, syn::Visibility::Inherited);
    let outer_ident = func.sig.ident.clone();
    func.sig.ident = syn::Ident::new("__aiods_service_fn", Span::call_site());

    Ok(quote! {
        #(#attrs)*
        #vis fn #outer_ident() -> ::std::process::ExitCode {
            #func
            #krate::__private::run(
                #krate::__private::ServiceSpec {
                    name: #name,
                    version: ::core::env!("CARGO_PKG_VERSION"),
                },
                |__aiods_ctx| async move {
                    let __aiods_value = __aiods_service_fn(#(#arg_values),*).await;
                    #into_parts
                },
            )
        }
    })
}

/// The error, plus the user's function kept (renamed) and an empty entry point, so that the
/// error stands alone instead of being followed by "`main` function not found" and unused
/// import warnings.
pub(crate) fn with_fallback(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.into_compile_error();
    let Ok(mut func) = syn::parse2::<ItemFn>(item) else {
        return error;
    };
    let ident = func.sig.ident.clone();
    func.sig.ident = syn::Ident::new("__aiods_service_fn", Span::call_site());
    quote! {
        #error
        #[allow(dead_code)]
        #func
        fn #ident() -> ::std::process::ExitCode {
            ::std::process::ExitCode::FAILURE
        }
    }
}
