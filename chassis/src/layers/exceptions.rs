//! [`ExceptionLayer`]: catches panics and captures server errors (5xx `aiods::Error`s and
//! panics) as exceptions, once per request.
//!
//! A panic in a handler becomes a 500 problem+json response and the process keeps serving. A
//! panic and a 5xx error take the same path: the layer hands one report to
//! `exceptions::capture`, which logs, counts and reports it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::response::IntoResponse;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::error::{Problem, ServerErrorReport};

/// Catches panics of the inner service, and sends every server error (a response marked with
/// a [`ServerErrorReport`], or a panic) to exception tracking.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExceptionLayer;

impl<S> Layer<S> for ExceptionLayer {
    type Service = Exceptions<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Exceptions { inner }
    }
}

/// The service made by [`ExceptionLayer`].
#[derive(Debug, Clone)]
pub struct Exceptions<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Exceptions<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = super::route_of(&req);
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => State::Running { inner },
            // The report is taken now: the panic hook kept its location on this thread.
            Err(payload) => State::Panicked {
                report: Some(crate::exceptions::panic_report(payload.as_ref())),
            },
        };
        ResponseFuture { state, route }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Exceptions`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        route: Option<MatchedPath>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: F },
        // The inner service panicked in `call`: answered at the first poll, inside the
        // request's trace context.
        Panicked { report: Option<ServerErrorReport> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let route = this.route.as_ref().map(MatchedPath::as_str);
        let report = match this.state.project() {
            StateProj::Running { inner } => {
                match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(mut result)) => {
                        if let Ok(response) = &mut result
                            && let Some(report) =
                                response.extensions_mut().remove::<ServerErrorReport>()
                        {
                            crate::exceptions::capture(report, route);
                        }
                        return Poll::Ready(result);
                    }
                    Err(payload) => crate::exceptions::panic_report(payload.as_ref()),
                }
            }
            StateProj::Panicked { report } => match report.take() {
                Some(report) => report,
                None => crate::exceptions::panic_report(&"polled after completion"),
            },
        };
        crate::exceptions::capture(report, route);
        Poll::Ready(Ok(Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("the service failed to handle the request; it has been reported")
            .into_response()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn app() -> Router {
        Router::new()
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("on purpose");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/fail",
                get(|| async {
                    Err::<(), _>(crate::Error::internal(std::io::Error::other(
                        "disk on fire",
                    )))
                }),
            )
            .route(
                "/missing",
                get(|| async { Err::<(), _>(crate::Error::not_found("no such thing")) }),
            )
    }

    async fn get_through_layer(path: &str) -> Response<Body> {
        let request = Request::get(path).body(Body::empty()).expect("request");
        match ExceptionLayer.layer(app()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn the_layer_alone_turns_a_panic_into_a_500_problem() {
        let response = get_through_layer("/panic").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            crate::error::PROBLEM_JSON
        );
        assert!(response.extensions().get::<ServerErrorReport>().is_none());
    }

    #[tokio::test]
    async fn a_server_error_report_is_taken_once_and_a_4xx_has_none() {
        let failed = get_through_layer("/fail").await;
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            failed.extensions().get::<ServerErrorReport>().is_none(),
            "the layer captured the report; nothing further out reports it again"
        );
        let missing = get_through_layer("/missing").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
