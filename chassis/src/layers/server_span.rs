//! The server span of each request, continuing the caller's W3C trace context.
//!
//! The span is the chassis's own recording span (`otel::server_span`, sampled and limited as
//! the SDK's configuration says) rather than a `tracing` span: it is named
//! `METHOD /route/template`, carries the HTTP semantic-convention attributes, and its context
//! is made current while the request's future runs, so log lines, exceptions, the chassis
//! client and any `tracing` span a handler opens all attach to it. The response carries the
//! trace id (`traceresponse` and `x-trace-id` headers). Without a configured OTLP trace
//! exporter no span is made: an inbound `traceparent` is made current as it is (so log lines
//! and the chassis client carry the caller's ids, and the response its `x-trace-id`), and a
//! request without one passes straight through.
//!
//! The chassis's probe and scrape endpoints (`/health`, `/health/live`, `/health/ready`,
//! `/metrics`) are not traced unless `AIODS_TRACE_PROBES` says so: a probe every few seconds
//! per instance would bury the requests in a trace list.

use std::time::SystemTime;

use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};

use crate::otel::server_span::{ServerRequest, keys};
use crate::telemetry::labels::METHODS;

// Header names made once: a `&str` name is parsed and checked again on every use, which cost
// ~1,100 instructions per request for these three (callgrind).
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
static TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");
static X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// Whether `route` is one of the chassis's probe or scrape endpoints.
pub(crate) fn is_probe_route(route: &str) -> bool {
    matches!(
        route,
        "/health" | "/health/live" | "/health/ready" | "/metrics"
    )
}

/// The trace context a request runs in.
pub(crate) struct RequestTrace {
    cx: opentelemetry::Context,
    /// Whether `cx` holds our own server span (false: the caller's context, carried on).
    recording: bool,
}

impl RequestTrace {
    /// The context of `req` (method slot `slot`, route `route`): a new server span, the
    /// caller's context carried on without an exporter, or `None` (nothing to trace and
    /// nothing to carry on, or a probe left untraced).
    pub(crate) fn start<B>(
        req: &Request<B>,
        slot: usize,
        route: Option<&str>,
        trace_probes: bool,
    ) -> Option<Self> {
        let spans = crate::otel::server_span::server_spans();
        let traceparent = req.headers().get(&TRACEPARENT);
        // Nothing to trace and nothing to carry on: the cheapest path, taken first.
        if spans.is_none() && traceparent.is_none() {
            return None;
        }
        if !trace_probes && route.is_some_and(is_probe_route) {
            return None;
        }
        let parent = if traceparent.is_some() {
            crate::otel::traceparent::extract_into(
                &opentelemetry::Context::new(),
                traceparent.and_then(|v| v.to_str().ok()),
                req.headers().get(&TRACESTATE).and_then(|v| v.to_str().ok()),
            )
        } else {
            opentelemetry::Context::new()
        };
        let Some(spans) = spans else {
            // No exporter: no span of our own, but the caller's context is carried on, as the
            // OpenTelemetry API does without an SDK, so logs and outgoing calls keep its ids.
            return parent.span().span_context().is_valid().then_some(Self {
                cx: parent,
                recording: false,
            });
        };
        let names = span_names(slot, route);
        let cx = spans.start(
            &parent,
            ServerRequest {
                name: names.name,
                method: names.method,
                route: names.route,
                path: req.uri().path(),
                protocol_version: match req.version() {
                    http::Version::HTTP_10 => "1.0",
                    http::Version::HTTP_2 => "2",
                    http::Version::HTTP_3 => "3",
                    _ => "1.1",
                },
            },
        );
        Some(Self {
            cx,
            recording: true,
        })
    }

    /// The context to make current while the request runs.
    pub(crate) fn context(&self) -> &opentelemetry::Context {
        &self.cx
    }

    /// Ends the span, at `ended`, with the request's outcome and puts the trace id on the
    /// response.
    pub(crate) fn finish<RB, E>(self, result: &mut Result<Response<RB>, E>, ended: SystemTime) {
        let span = self.cx.span();
        if !self.recording {
            if let Ok(response) = result {
                let mut id = [0u8; 32];
                crate::logging::write_hex(&mut id, &span.span_context().trace_id().to_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&id) {
                    response.headers_mut().insert(X_TRACE_ID.clone(), v);
                }
            }
            return;
        }
        match result {
            Ok(response) => {
                let status = response.status();
                span.set_attribute(KeyValue::new(keys::STATUS_CODE, i64::from(status.as_u16())));
                if status.is_server_error() {
                    span.set_status(Status::error(status.as_str().to_owned()));
                }
                let header = crate::otel::traceparent::format(span.span_context());
                if let Ok(v) = HeaderValue::from_bytes(&header) {
                    response.headers_mut().insert(TRACERESPONSE.clone(), v);
                }
                if let Ok(v) = HeaderValue::from_bytes(&header[3..35]) {
                    response.headers_mut().insert(X_TRACE_ID.clone(), v);
                }
            }
            Err(_) => {
                span.set_status(Status::error("the service failed"));
            }
        }
        span.end_with_timestamp(ended);
    }
}

/// The span name and attribute strings of a (method, route) pair.
#[derive(Clone, Copy)]
struct SpanNames {
    name: &'static str,
    method: &'static str,
    route: Option<&'static str>,
}

/// Distinct (method, route) pairs whose strings are interned; route templates are few, and
/// past this bound names are built per request instead.
const MAX_INTERNED: usize = 1024;

/// Interned names by route template (looked up by `&str`, no allocation), one slot per method
/// (as [`METHODS`] orders them).
#[derive(Default)]
struct InternedNames {
    by_route: std::collections::HashMap<Box<str>, [Option<SpanNames>; 10]>,
    no_route: [Option<SpanNames>; 10],
    count: usize,
}

static INTERNED: std::sync::LazyLock<std::sync::RwLock<InternedNames>> =
    std::sync::LazyLock::new(Default::default);

/// Interned span names: building `"GET /orders/{id}"` and copying the route for every request
/// showed up in the profile, so each pair is built once and kept for the process's life.
fn span_names(slot: usize, route: Option<&str>) -> SpanNames {
    let method: &'static str = METHODS[slot];
    // A few recent names per thread, found without the lock and the hash (the shared table
    // cost ~650 instructions per request under callgrind, the overhead benchmark).
    let cached = RECENT.with(|recent| {
        recent
            .borrow()
            .iter()
            .flatten()
            .find(|(s, names)| usize::from(*s) == slot && names.route == route)
            .map(|(_, names)| *names)
    });
    if let Some(found) = cached {
        return found;
    }
    let found = span_names_shared(slot, method, route);
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        recent.rotate_right(1);
        recent[0] = Some((slot as u8, found));
    });
    found
}

thread_local! {
    static RECENT: std::cell::RefCell<[Option<(u8, SpanNames)>; 4]> =
        const { std::cell::RefCell::new([None; 4]) };
}

fn span_names_shared(slot: usize, method: &'static str, route: Option<&str>) -> SpanNames {
    let lookup = |names: &InternedNames| match route {
        Some(r) => names.by_route.get(r).and_then(|slots| slots[slot]),
        None => names.no_route[slot],
    };
    if let Ok(names) = INTERNED.read()
        && let Some(found) = lookup(&names)
    {
        return found;
    }
    let unnamed = SpanNames {
        name: method,
        method,
        route: None,
    };
    let Ok(mut names) = INTERNED.write() else {
        return unnamed;
    };
    if let Some(found) = lookup(&names) {
        return found;
    }
    if names.count >= MAX_INTERNED {
        return unnamed;
    }
    names.count += 1;
    let Some(route) = route else {
        names.no_route[slot] = Some(unnamed);
        return unnamed;
    };
    let leaked: &'static str = Box::leak(Box::<str>::from(route));
    let found = SpanNames {
        name: Box::leak(format!("{method} {route}").into_boxed_str()),
        method,
        route: Some(leaked),
    };
    names.by_route.entry(Box::from(route)).or_default()[slot] = Some(found);
    found
}
