//! Panics in handlers become 500 problem+json responses; the process keeps serving.
//!
//! Built on tower-http's `CatchPanicLayer`. The response carries a [`ServerErrorReport`]
//! extension so that exception tracking reports it like any other server error.

use std::any::Any;

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Response, StatusCode};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{Problem, ServerErrorReport};

/// Turns a panic payload into the response sent to the client.
pub type PanicResponder = fn(Box<dyn Any + Send + 'static>) -> Response<Body>;

/// The panic-catching layer of the chassis.
pub fn panic_layer() -> CatchPanicLayer<PanicResponder> {
    CatchPanicLayer::custom(panic_response as PanicResponder)
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = crate::logging::panic_message(payload.as_ref());
    crate::metrics::count_exception("panic");
    // The panic hook ran on this thread a moment ago and kept the location and stack.
    let (location, stacktrace) = crate::logging::take_last_panic();
    let mut response = Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("the service failed to handle the request; it has been reported")
        .into_response();
    response.extensions_mut().insert(ServerErrorReport {
        kind: "panic",
        message,
        location,
        stacktrace,
    });
    response
}
