//! The chassis's tower middleware, one concept per module; [`RequestLayer`] puts the
//! per-request ones (server span, HTTP metrics, access log, exceptions) in one layer.

pub(crate) mod access_log;
pub mod faults;
pub(crate) mod http_metrics;
pub mod problem;
pub mod request;
pub(crate) mod server_span;

pub use faults::{FaultLayer, Faults};
pub use problem::{ProblemJson, ProblemJsonLayer};
pub use request::{RequestLayer, RequestService};

use axum::extract::MatchedPath;
use http::Request;

/// The route template of a request (`/orders/{id}`), when the router matched one.
pub(crate) fn route_of<B>(req: &Request<B>) -> Option<MatchedPath> {
    req.extensions().get::<MatchedPath>().cloned()
}
