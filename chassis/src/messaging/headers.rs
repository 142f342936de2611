//! W3C trace context in NATS message headers.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

struct NatsInjector<'a>(&'a mut HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct NatsExtractor<'a>(&'a HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|(k, _)| AsRef::<str>::as_ref(k))
            .collect()
    }
}

/// Writes `traceparent` (and `tracestate`) of `cx` into `headers`.
pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut NatsInjector(headers));
}

/// The context carried by `headers` (an empty one when there is none).
pub(crate) fn extract(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&NatsExtractor(h)),
        None => opentelemetry::Context::new(),
    }
}

/// A header's value as text.
pub(crate) fn get<'a>(headers: Option<&'a HeaderMap>, key: &str) -> Option<&'a str> {
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
