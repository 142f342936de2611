//! [`RequestLayer`]: what the chassis does around every request, in one layer — the server
//! span, the HTTP metrics, the access log line, exception tracking (panics and 5xx errors),
//! the injected faults, and problem+json for every error response.
//!
//! One layer rather than six: each wrapped the response future in its own (moving the ever
//! larger future once per layer), looked the route up again and read the clock again. Under
//! `valgrind --tool=callgrind` (the overhead benchmark's callgrind phase, `bench/overhead.py`)
//! folding the four telemetry layers into one saved ~970 instructions per request, and the
//! fault and problem layers ~175 more (`docs/benchmarks.md`).
//!
//! The order of work is the one the separate layers had, outermost first: the request runs
//! inside its trace context (so every log line and exception carries the trace id); a panic,
//! in `call` or while polling, becomes a 500 problem+json response and the process keeps
//! serving; the fault state may hang, delay or fail the request; an error response that is not
//! problem+json yet is rewritten into one; a panic and a response marked with a
//! [`ServerErrorReport`] take the same path to exception tracking (`exceptions::capture`, once
//! per request); then the duration is recorded, the access line written, and the span ended
//! with the status the client gets.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::response::IntoResponse;
use futures_util::future::{BoxFuture, Either};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use super::access_log::{AccessLine, is_chassis_route};
use super::http_metrics::InFlight;
use super::server_span::RequestTrace;
use crate::error::{Problem, ServerErrorReport};
use crate::faults::{Decision, FaultState};
use crate::telemetry::labels::{METHODS, method_index};

/// Traces, measures, logs, guards and (when asked) breaks every request.
#[derive(Debug, Clone)]
pub struct RequestLayer {
    access_log: bool,
    trace_probes: bool,
    faults: Option<Arc<FaultState>>,
}

impl Default for RequestLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestLayer {
    /// A layer that writes the access log, does not trace probes and scrapes, and injects no
    /// faults.
    pub fn new() -> Self {
        Self {
            access_log: true,
            trace_probes: false,
            faults: None,
        }
    }

    /// Whether each request gets an access log line (`AIODS_ACCESS_LOG`).
    #[must_use]
    pub fn with_access_log(mut self, access_log: bool) -> Self {
        self.access_log = access_log;
        self
    }

    /// Whether probes and scrapes are traced too (`AIODS_TRACE_PROBES`).
    #[must_use]
    pub fn with_probes(mut self, trace_probes: bool) -> Self {
        self.trace_probes = trace_probes;
        self
    }

    /// Applies the faults in force in `faults` (`/admin/faults`) to each request.
    #[must_use]
    pub fn with_faults(mut self, faults: Arc<FaultState>) -> Self {
        self.faults = Some(faults);
        self
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequestLayer`].
#[derive(Debug, Clone)]
pub struct RequestService<S> {
    inner: S,
    layer: RequestLayer,
}

/// The future of the service behind the layer: its own, or an injected fault's.
type Inner<F, E> = Either<F, BoxFuture<'static, Result<Response<Body>, E>>>;

impl<S, B> Service<Request<B>> for RequestService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let route = super::route_of(&req);
        let route_str = route.as_ref().map(MatchedPath::as_str);
        let slot = method_index(req.method());
        let in_flight = InFlight::start(metrics::SharedString::const_str(METHODS[slot]));
        let line = self
            .layer
            .access_log
            .then(|| AccessLine::start(route_str))
            .flatten();
        let trace = RequestTrace::start(&req, slot, route_str, self.layer.trace_probes);
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let decision = match &self.layer.faults {
            Some(faults) => faults.decide(path.path(), || route_str.is_some_and(is_chassis_route)),
            None => Decision::Pass,
        };
        let state = {
            let _entered = trace.as_ref().map(|t| t.context().clone().attach());
            let inner = &mut self.inner;
            match catch_unwind(AssertUnwindSafe(|| {
                super::faults::apply(decision, || inner.call(req))
            })) {
                Ok(inner) => State::Running { inner },
                // The report is taken now: the panic hook kept its location on this thread.
                Err(payload) => State::Panicked {
                    report: Some(crate::exceptions::panic_report(payload.as_ref())),
                },
            }
        };
        ResponseFuture {
            state,
            done: Some(Done {
                started,
                route,
                path,
                slot,
                in_flight,
                line,
                trace,
            }),
        }
    }
}

/// What is finished when the response is ready.
struct Done {
    started: Instant,
    route: Option<MatchedPath>,
    /// The request's path (reference-counted: no copy), for the problem+json `instance` and
    /// the access line of a request no route matched.
    path: PathAndQuery,
    slot: usize,
    in_flight: InFlight,
    line: Option<AccessLine>,
    trace: Option<RequestTrace>,
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestService`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
        done: Option<Done>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Running { #[pin] inner: Inner<F, E> },
        // An error response being rewritten into problem+json.
        Rewriting { rewrite: BoxFuture<'static, Response<Body>> },
        // The inner service panicked in `call`: answered at the first poll, inside the
        // request's trace context.
        Panicked { report: Option<ServerErrorReport> },
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let done = this.done.as_ref();
        let _entered = done
            .and_then(|d| d.trace.as_ref())
            .map(|t| t.context().clone().attach());
        let route = done.and_then(|d| d.route.as_ref()).map(MatchedPath::as_str);
        let mut result = loop {
            match this.state.as_mut().project() {
                StateProj::Running { inner } => {
                    match catch_unwind(AssertUnwindSafe(|| inner.poll(task))) {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(response)))
                            if super::problem::needs_rewrite(&response) =>
                        {
                            let path = done.map_or("", |d| d.path.path()).to_owned();
                            this.state.set(State::Rewriting {
                                rewrite: Box::pin(super::problem::rewrite(response, path)),
                            });
                        }
                        Ok(Poll::Ready(result)) => break result,
                        Err(payload) => {
                            crate::exceptions::capture(
                                crate::exceptions::panic_report(payload.as_ref()),
                                route,
                            );
                            break Ok(failed());
                        }
                    }
                }
                StateProj::Rewriting { rewrite } => {
                    break Ok(std::task::ready!(rewrite.as_mut().poll(task)));
                }
                StateProj::Panicked { report } => {
                    let report = report.take().unwrap_or_else(|| {
                        crate::exceptions::panic_report(&"polled after completion")
                    });
                    crate::exceptions::capture(report, route);
                    break Ok(failed());
                }
            }
        };
        if let Ok(response) = &mut result
            && let Some(report) = response.extensions_mut().remove::<ServerErrorReport>()
        {
            crate::exceptions::capture(report, route);
        }
        let Some(done) = this.done.take() else {
            return Poll::Ready(result);
        };
        let route = done.route.as_ref().map(MatchedPath::as_str);
        let status = result.as_ref().map_or(500, |r| r.status().as_u16());
        let elapsed = done.started.elapsed();
        done.in_flight.finish(route, status, elapsed);
        // One reading of the wall clock for the log line and the span's end.
        let answered = SystemTime::now();
        if let Some(line) = done.line {
            let path = route.is_none().then(|| done.path.path());
            line.emit(METHODS[done.slot], route, path, status, elapsed, answered);
        }
        if let Some(trace) = done.trace {
            trace.finish(&mut result, answered);
        }
        Poll::Ready(result)
    }
}

/// The answer to a request whose handler panicked.
fn failed() -> Response<Body> {
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("the service failed to handle the request; it has been reported")
        .into_response()
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
        match RequestLayer::new().layer(app()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn the_layer_turns_a_panic_into_a_500_problem() {
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
