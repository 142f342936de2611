//! The chassis's tower middleware: [`RequestLayer`] does all of it in one layer; each concept
//! (server span, HTTP metrics, access log, faults, problem+json) has its own module.

pub(crate) mod access_log;
pub(crate) mod faults;
pub(crate) mod http_metrics;
pub(crate) mod problem;
pub mod request;
pub(crate) mod server_span;

pub use request::{RequestLayer, RequestService};

use axum::extract::MatchedPath;
use http::Request;

/// The route template of a request (`/orders/{id}`), when the router matched one.
pub(crate) fn route_of<B>(req: &Request<B>) -> Option<MatchedPath> {
    req.extensions().get::<MatchedPath>().cloned()
}
