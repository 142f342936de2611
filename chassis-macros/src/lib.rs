//! Attribute macros of the aiods chassis. Use them through `aiods-chassis`:
//! `#[aiods::service]`.
//!
//! The macros only parse and check the user's code; everything they generate is a call into
//! `::aiods::__private`, so the logic is compiled once, in the chassis.
#![forbid(unsafe_code)]

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Turns `async fn main() -> Router` into a complete aiods service.
///
/// The function may take arguments that the chassis can provide (`aiods::ServiceContext`,
/// `aiods::Settings`, `aiods::HealthRegistry`, `aiods::Client`) and may return `Router`,
/// `OpenApiRouter` or `aiods::Result` of one of them. Options:
///
/// - `name = "greeter"`: the service name (default: the package name; `OTEL_SERVICE_NAME`
///   overrides both at run time).
/// - `crate = "path"`: where the chassis is, when the dependency is renamed.
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = proc_macro2::TokenStream::from(item);
    match attr::ServiceArgs::parse(args).and_then(|args| expand::service(args, item.clone())) {
        Ok(tokens) => tokens.into(),
        Err(e) => expand::with_fallback(e, item).into(),
    }
}
