//! [`ExceptionLayer`]: reports server errors (5xx `aiods::Error`s and panics) as exceptions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::error::ServerErrorReport;

/// Sends responses marked with a [`ServerErrorReport`] to exception tracking.
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

impl<S, B, RB> Service<Request<B>> for Exceptions<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ResponseFuture {
            route: super::route_of(&req),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Exceptions`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result
            && let Some(report) = response.extensions().get::<ServerErrorReport>()
        {
            crate::exceptions::report(report, this.route.as_ref().map(MatchedPath::as_str));
        }
        Poll::Ready(result)
    }
}
