//! [`AccessLogLayer`]: one log event per request, with method, route template, status and
//! duration.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use tower::{Layer, Service};

/// Emits an `INFO` event `request completed` (target `aiods::access`) per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// The service made by [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
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
        let route = super::route_of(&req);
        // Probes and scrapes of the chassis endpoints would drown the log; they are counted
        // in the metrics instead.
        let chassis = route.as_ref().is_some_and(|r| is_chassis_route(r.as_str()));
        // The global level only (a load): the event's own callsite applies the full filter.
        let enabled = !chassis && tracing::level_enabled!(tracing::Level::INFO);
        let fields = enabled.then(|| Fields {
            method: req.method().clone(),
            path: route.is_none().then(|| req.uri().path().to_owned()),
            route,
            started: Instant::now(),
        });
        ResponseFuture {
            inner: self.inner.call(req),
            fields,
        }
    }
}

/// Whether `route` is one of the endpoints the chassis itself serves.
pub(crate) fn is_chassis_route(route: &str) -> bool {
    matches!(
        route,
        "/health" | "/health/live" | "/health/ready" | "/metrics" | "/info" | "/openapi.json"
    ) || route.starts_with("/docs")
}

struct Fields {
    method: Method,
    route: Option<MatchedPath>,
    path: Option<String>,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The response future of [`AccessLog`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        fields: Option<Fields>,
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
        if let Some(f) = this.fields.take() {
            let status = result.as_ref().map(|r| r.status().as_u16()).unwrap_or(500);
            // Microsecond precision is plenty, and keeps the lines short.
            let duration_ms = (f.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
            let route = f.route.as_ref().map(MatchedPath::as_str).unwrap_or("");
            // The message as a `&str` field rather than format arguments: it reaches the JSON
            // writer as a string, not through the formatting machinery (same line out).
            tracing::info!(
                target: "aiods::access",
                message = "request completed",
                method = f.method.as_str(),
                route = route,
                path = f.path.as_deref(),
                status = status,
                duration_ms,
            );
        }
        Poll::Ready(result)
    }
}
