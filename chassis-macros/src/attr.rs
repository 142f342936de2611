//! Parsing of `#[aiods::service(...)]` options.

use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// The options of `#[aiods::service]`.
pub(crate) struct ServiceArgs {
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `crate = "..."`.
    pub(crate) krate: Option<syn::Path>,
}

impl ServiceArgs {
    pub(crate) fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = ServiceArgs {
            name: None,
            krate: None,
        };
        for meta in metas {
            let Meta::NameValue(nv) = &meta else {
                return Err(syn::Error::new_spanned(
                    &meta,
                    "expected `key = \"value\"`; `#[aiods::service]` accepts `name` and `crate`",
                ));
            };
            let key = nv
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => s.clone(),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        format!("`{key}` takes a string literal"),
                    ));
                }
            };
            match key.as_str() {
                "name" => {
                    if args.name.is_some() {
                        return Err(syn::Error::new_spanned(&nv.path, "`name` is set twice"));
                    }
                    if value.value().trim().is_empty() {
                        return Err(syn::Error::new_spanned(&value, "the service name is empty"));
                    }
                    args.name = Some(value);
                }
                "crate" => {
                    if args.krate.is_some() {
                        return Err(syn::Error::new_spanned(&nv.path, "`crate` is set twice"));
                    }
                    args.krate = Some(value.parse()?);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &nv.path,
                        format!(
                            "unknown `#[aiods::service]` option `{}`; expected `name` or `crate`",
                            quote::ToTokens::to_token_stream(&nv.path)
                        ),
                    ));
                }
            }
        }
        Ok(args)
    }
}
