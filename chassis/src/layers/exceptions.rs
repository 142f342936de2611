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
