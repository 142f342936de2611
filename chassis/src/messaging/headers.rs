//! W3C trace context in NATS message headers.

use async_nats::{HeaderMap, HeaderName};
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

// Header names built once: a lookup by `&str` validates and builds the name every time.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `Nats-Msg-Id`.
pub(crate) const MSG_ID: HeaderName = HeaderName::from_static(super::names::MSG_ID_HEADER);

struct NatsInjector<'a>(&'a mut HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

/// Writes `traceparent` (and `tracestate`) of `cx` into `headers`.
pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut NatsInjector(headers));
}

/// The context carried by `headers` (an empty one when there is none).
pub(crate) fn extract(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    let root = opentelemetry::Context::new();
    match headers {
        Some(h) => crate::otel::traceparent::extract_into(
            &root,
            h.get(TRACEPARENT).map(async_nats::HeaderValue::as_str),
            h.get(TRACESTATE).map(async_nats::HeaderValue::as_str),
        ),
        None => root,
    }
}

/// A header's value as text; `key` a `&str` or, cheaper, a [`HeaderName`] built once.
pub(crate) fn get(
    headers: Option<&HeaderMap>,
    key: impl async_nats::header::IntoHeaderName,
) -> Option<&str> {
    headers
        .and_then(|h| h.get(key))
        .map(async_nats::HeaderValue::as_str)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    #[test]
    fn the_context_round_trips_through_headers() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
        let mut headers = HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(
            get(Some(&headers), "traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let back = extract(Some(&headers));
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
        assert_eq!(back.span().span_context().span_id(), sc.span_id());
        assert!(!extract(None).span().span_context().is_valid());
    }
}
