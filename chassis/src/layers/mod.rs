//! The chassis's tower middleware, one concept per module.

pub mod access_log;
pub mod exceptions;
pub mod faults;
pub mod http_metrics;
pub mod problem;
pub mod server_span;

pub use access_log::{AccessLog, AccessLogLayer};
pub use exceptions::{ExceptionLayer, Exceptions};
pub use faults::{FaultLayer, Faults};
pub use http_metrics::{HttpMetrics, HttpMetricsLayer};
pub use problem::{ProblemJson, ProblemJsonLayer};
pub use server_span::{ServerSpan, ServerSpanLayer};

use axum::extract::MatchedPath;
use http::Request;

/// The route template of a request (`/orders/{id}`), when the router matched one.
pub(crate) fn route_of<B>(req: &Request<B>) -> Option<MatchedPath> {
    req.extensions().get::<MatchedPath>().cloned()
}
