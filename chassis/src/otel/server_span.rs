//! The chassis's own recording span for the server span of a request.
//!
//! A server span always carries the same few attributes (method, route, path, scheme,
//! protocol version, status code): this span keeps them as typed fields, and the protobuf
//! encoder writes them straight from there. It implements the OpenTelemetry `Span` trait, so
//! it sits in the request's `Context` like an SDK span: log lines, exceptions (an `exception`
//! event), the chassis client and a handler's own spans attach to it, and a handler may add
//! attributes, events and links, within the SDK's span limits. Sampling and ids come from the
//! SDK's configuration (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, the span limit
//! variables), decided as the SDK's tracer decides them.
//!
//! Why not the SDK's span: under `valgrind --tool=callgrind` (the overhead benchmark's
//! callgrind phase, `bench/overhead.py`), building the SDK span from a builder, its
//! `SpanData` and the generic attribute list, then encoding that list, cost ~2,000 more
//! instructions per request than these typed fields (`docs/benchmarks.md`).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    Config, SamplingDecision, SpanData, SpanEvents, SpanLimits, SpanLinks,
};

use crate::telemetry::BatchQueue;

/// A finished span waiting for export: one the SDK made (a client, messaging or handler span)
/// or a server span of the chassis's own.
#[derive(Debug)]
pub(crate) enum FinishedSpan {
    /// Made by the SDK.
    Sdk(SpanData),
    /// A request's server span (by value, as the SDK's: no allocation per span).
    Server(ServerSpanRecord),
}

impl FinishedSpan {
    /// The span as the SDK's exporters take it.
    pub(crate) fn into_span_data(self) -> SpanData {
        match self {
            FinishedSpan::Sdk(span) => span,
            FinishedSpan::Server(record) => record.into_span_data(),
        }
    }
}

/// The instrumentation scope of server spans: the chassis's tracer's (`aiods`).
pub(crate) fn scope() -> &'static InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE.get_or_init(|| InstrumentationScope::builder(super::TRACER_NAME).build())
}

/// What a server span records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerSpanRecord {
    pub(crate) span_context: SpanContext,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    /// `METHOD /route` (or the method alone), unless a handler renamed the span.
    pub(crate) name: Cow<'static, str>,
    /// `http.request.method`.
    pub(crate) method: &'static str,
    /// `http.route`.
    pub(crate) route: Option<&'static str>,
    /// `url.path`.
    pub(crate) path: String,
    /// `network.protocol.version`.
    pub(crate) protocol_version: &'static str,
    /// `http.response.status_code`, once answered.
    pub(crate) status_code: Option<i64>,
    pub(crate) start_time: SystemTime,
    pub(crate) end_time: SystemTime,
    /// Attributes beyond the typed ones: from the sampler, then from handlers.
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) events: SpanEvents,
    pub(crate) links: SpanLinks,
    pub(crate) status: Status,
}

/// The value of a typed attribute, borrowed from the record (the encoder writes it without
/// making a `KeyValue`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed<'a> {
    /// A string value.
    Str(&'a str),
    /// An integer value.
    Int(i64),
}

/// The typed attributes' keys, in the order they are written.
pub(crate) mod keys {
    pub(crate) const METHOD: &str = "http.request.method";
    pub(crate) const ROUTE: &str = "http.route";
    pub(crate) const PATH: &str = "url.path";
    pub(crate) const SCHEME: &str = "url.scheme";
    pub(crate) const PROTOCOL_VERSION: &str = "network.protocol.version";
    pub(crate) const STATUS_CODE: &str = "http.response.status_code";
}

/// `url.scheme`: the chassis serves plain HTTP (TLS ends in front of it).
pub(crate) const SCHEME: &str = "http";

/// The typed attributes this many count against the span's attribute limit.
const TYPED_ATTRIBUTES: usize = 6;

impl ServerSpanRecord {
    /// The typed attributes as key-values, in the order they are written.
    pub(crate) fn typed_attributes(&self) -> impl Iterator<Item = (&'static str, Typed<'_>)> {
        [
            Some((keys::METHOD, Typed::Str(self.method))),
            self.route.map(|r| (keys::ROUTE, Typed::Str(r))),
            Some((keys::PATH, Typed::Str(&self.path))),
            Some((keys::SCHEME, Typed::Str(SCHEME))),
            Some((keys::PROTOCOL_VERSION, Typed::Str(self.protocol_version))),
            self.status_code.map(|c| (keys::STATUS_CODE, Typed::Int(c))),
        ]
        .into_iter()
        .flatten()
    }

    /// The record as the SDK's `SpanData` (for the SDK's exporters: JSON, compression).
    pub(crate) fn into_span_data(self) -> SpanData {
        let mut attributes: Vec<KeyValue> = self
            .typed_attributes()
            .map(|(key, value)| match value {
                Typed::Str(s) => KeyValue::new(key, s.to_owned()),
                Typed::Int(i) => KeyValue::new(key, i),
            })
            .collect();
        attributes.extend(self.attributes);
        SpanData {
            span_context: self.span_context,
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: SpanKind::Server,
            name: self.name,
            start_time: self.start_time,
            end_time: self.end_time,
            attributes,
            dropped_attributes_count: self.dropped_attributes_count,
            events: self.events,
            links: self.links,
            status: self.status,
            instrumentation_scope: scope().clone(),
        }
    }
}

/// Where server spans are made and sent: the SDK's sampler, id generator and limits, and the
/// span queue.
pub(crate) struct ServerSpans {
    config: Config,
    /// The span queue, shared with the SDK's span processor.
    queue: Arc<BatchQueue<FinishedSpan>>,
}

impl std::fmt::Debug for ServerSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpans")
            .field("sampler", &self.config.sampler)
            .field("queue", &self.queue)
            .finish()
    }
}

static SERVER_SPANS: OnceLock<ServerSpans> = OnceLock::new();

/// Sets where server spans go (once, when traces are exported).
pub(crate) fn install(queue: Arc<BatchQueue<FinishedSpan>>) {
    let _ = SERVER_SPANS.set(ServerSpans {
        config: Config::default(),
        queue,
    });
}

/// Where server spans go, when traces are exported.
pub(crate) fn server_spans() -> Option<&'static ServerSpans> {
    SERVER_SPANS.get()
}

/// The request a server span is started for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerRequest<'a> {
    /// The span name.
    pub(crate) name: &'static str,
    /// `http.request.method`.
    pub(crate) method: &'static str,
    /// `http.route`.
    pub(crate) route: Option<&'static str>,
    /// `url.path`.
    pub(crate) path: &'a str,
    /// `network.protocol.version`.
    pub(crate) protocol_version: &'static str,
}

impl ServerSpans {
    /// `parent` with the server span of `request` in it, decided as the SDK's tracer decides:
    /// the parent's trace when it has a valid span, the sampler's decision, a span that
    /// records only when the decision says so.
    pub(crate) fn start(&'static self, parent: &Context, request: ServerRequest<'_>) -> Context {
        self.start_at(parent, request, opentelemetry::time::now())
    }

    fn start_at(
        &'static self,
        parent: &Context,
        request: ServerRequest<'_>,
        start_time: SystemTime,
    ) -> Context {
        if parent.is_telemetry_suppressed() {
            return parent.clone();
        }
        let config = &self.config;
        let span_id = config.id_generator.new_span_id();
        let parent_span = parent.span();
        let parent_cx = parent_span.span_context();
        let (trace_id, parent_span_id, parent_is_remote, flags) = if parent_cx.is_valid() {
            (
                parent_cx.trace_id(),
                parent_cx.span_id(),
                parent_cx.is_remote(),
                parent_cx.trace_flags(),
            )
        } else {
            (
                config.id_generator.new_trace_id(),
                SpanId::INVALID,
                false,
                opentelemetry::trace::TraceFlags::default(),
            )
        };
        // The samplers the environment can choose read neither attributes nor links.
        let sampling = config.sampler.should_sample(
            Some(parent),
            trace_id,
            request.name,
            &SpanKind::Server,
            &[],
            &[],
        );
        let sampled = match sampling.decision {
            SamplingDecision::Drop => {
                let cx = SpanContext::new(
                    trace_id,
                    span_id,
                    opentelemetry::trace::TraceFlags::default(),
                    false,
                    sampling.trace_state,
                );
                return parent.with_remote_span_context(cx);
            }
            SamplingDecision::RecordOnly => false,
            SamplingDecision::RecordAndSample => true,
        };
        let span_context = SpanContext::new(
            trace_id,
            span_id,
            flags.with_sampled(sampled),
            false,
            sampling.trace_state,
        );
        let mut attributes = sampling.attributes;
        let dropped = truncate(
            &mut attributes,
            u32::try_from(attribute_limit(&config.span_limits)).unwrap_or(u32::MAX),
        );
        let record = ServerSpanRecord {
            span_context: span_context.clone(),
            parent_span_id,
            parent_is_remote,
            name: Cow::Borrowed(request.name),
            method: request.method,
            route: request.route,
            path: request.path.to_owned(),
            protocol_version: request.protocol_version,
            status_code: None,
            start_time,
            end_time: start_time,
            attributes,
            dropped_attributes_count: dropped,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
        };
        parent.with_span(ServerSpan {
            span_context,
            record: Some(record),
            spans: self,
        })
    }
}

/// Keeps the first `limit` of `attributes`; returns how many were dropped.
fn truncate(attributes: &mut Vec<KeyValue>, limit: u32) -> u32 {
    let dropped = attributes.len().saturating_sub(limit as usize);
    attributes.truncate(limit as usize);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// Attributes a handler may add beyond the typed ones.
fn attribute_limit(limits: &SpanLimits) -> usize {
    (limits.max_attributes_per_span as usize).saturating_sub(TYPED_ATTRIBUTES)
}

/// The recording server span, as it sits in the request's `Context`; sent to the span queue
/// when it ends (or is dropped unended, as the SDK's spans are).
#[derive(Debug)]
pub(crate) struct ServerSpan {
    span_context: SpanContext,
    /// `None` once ended. Held in place: the span itself is boxed once, by the `Context`.
    record: Option<ServerSpanRecord>,
    spans: &'static ServerSpans,
}

impl opentelemetry::trace::Span for ServerSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let limits = &self.spans.config.span_limits;
        let Some(record) = self.record.as_mut() else {
            return;
        };
        if record.events.len() < limits.max_events_per_span as usize {
            let dropped = truncate(&mut attributes, limits.max_attributes_per_event);
            record
                .events
                .events
                .push(Event::new(name, timestamp, attributes, dropped));
        } else {
            record.events.dropped_count += 1;
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        let limit = attribute_limit(&self.spans.config.span_limits);
        let Some(record) = self.record.as_mut() else {
            return;
        };
        // The status code is a typed field: the chassis sets it, a handler may too.
        if attribute.key.as_str() == keys::STATUS_CODE
            && let opentelemetry::Value::I64(code) = attribute.value
        {
            record.status_code = Some(code);
        } else if record.attributes.len() < limit {
            record.attributes.push(attribute);
        } else {
            record.dropped_attributes_count += 1;
        }
    }

    fn set_status(&mut self, status: Status) {
        if let Some(record) = self.record.as_mut()
            && status > record.status
        {
            record.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(record) = self.record.as_mut() {
            record.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        let limits = &self.spans.config.span_limits;
        let Some(record) = self.record.as_mut() else {
            return;
        };
        if record.links.links.len() < limits.max_links_per_span as usize {
            let dropped = truncate(&mut attributes, limits.max_attributes_per_link);
            record
                .links
                .links
                .push(Link::new(span_context, attributes, dropped));
        } else {
            record.links.dropped_count += 1;
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.finish(Some(timestamp));
    }
}

impl ServerSpan {
    fn finish(&mut self, timestamp: Option<SystemTime>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.end_time = timestamp.unwrap_or_else(opentelemetry::time::now);
        if record.span_context.is_sampled() {
            self.spans.queue.push(FinishedSpan::Server(record));
        }
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceFlags, TraceId, TraceState};
    use std::sync::atomic::AtomicU64;
    use std::sync::mpsc;
    use std::time::Duration;

    fn spans_with(
        sampler: opentelemetry_sdk::trace::Sampler,
    ) -> (&'static ServerSpans, mpsc::Receiver<Vec<FinishedSpan>>) {
        let (tx, rx) = mpsc::channel();
        let queue = BatchQueue::start(
            "test-spans",
            crate::telemetry::BatchConfig::default(),
            Arc::new(AtomicU64::new(0)),
            move |batch: &mut Vec<FinishedSpan>| tx.send(std::mem::take(batch)).is_ok(),
        )
        .expect("queue");
        let mut config = Config::default();
        config.sampler = Box::new(sampler);
        config.span_limits.max_attributes_per_span = TYPED_ATTRIBUTES as u32 + 1;
        let spans: &'static ServerSpans = Box::leak(Box::new(ServerSpans {
            config,
            queue: Arc::new(queue),
        }));
        (spans, rx)
    }

    fn request() -> ServerRequest<'static> {
        ServerRequest {
            name: "GET /orders/{id}",
            method: "GET",
            route: Some("/orders/{id}"),
            path: "/orders/7",
            protocol_version: "1.1",
        }
    }

    fn finished(
        spans: &ServerSpans,
        rx: &mpsc::Receiver<Vec<FinishedSpan>>,
    ) -> Vec<ServerSpanRecord> {
        assert!(spans.queue.flush(Duration::from_secs(5)));
        rx.try_iter()
            .flatten()
            .map(|s| match s {
                FinishedSpan::Server(r) => r,
                FinishedSpan::Sdk(s) => panic!("an SDK span: {s:?}"),
            })
            .collect()
    }

    #[test]
    fn a_remote_parent_is_continued_and_everything_recorded_reaches_the_queue() {
        let (spans, rx) = spans_with(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::AlwaysOff,
        )));
        let remote = SpanContext::new(
            TraceId::from_bytes([3; 16]),
            SpanId::from_bytes([4; 8]),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("v", "1")]).expect("state"),
        );
        let parent = Context::new().with_remote_span_context(remote);
        let cx = spans.start(&parent, request());
        let span = cx.span();
        assert!(span.is_recording());
        assert_eq!(span.span_context().trace_id(), TraceId::from_bytes([3; 16]));
        span.set_attribute(KeyValue::new(keys::STATUS_CODE, 503_i64));
        span.set_attribute(KeyValue::new("tenant", "t1"));
        span.set_attribute(KeyValue::new("over", "the limit"));
        span.add_event("exception", vec![KeyValue::new("exception.type", "E")]);
        span.set_status(Status::error("503"));
        span.update_name("renamed");
        span.end();
        assert!(!span.is_recording());
        span.end();
        let records = finished(spans, &rx);
        assert_eq!(records.len(), 1, "ended once");
        let r = &records[0];
        assert_eq!(r.parent_span_id, SpanId::from_bytes([4; 8]));
        assert!(r.parent_is_remote);
        assert_eq!(r.span_context.trace_state().header(), "v=1");
        assert_eq!(r.status_code, Some(503));
        assert_eq!(r.attributes, [KeyValue::new("tenant", "t1")]);
        assert_eq!(r.dropped_attributes_count, 1);
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.status, Status::error("503"));
        assert_eq!(r.name, "renamed");
        assert!(r.end_time >= r.start_time);
    }

    #[test]
    fn a_dropped_decision_makes_a_context_without_a_recording_span() {
        let (spans, rx) = spans_with(opentelemetry_sdk::trace::Sampler::AlwaysOff);
        let cx = spans.start(&Context::new(), request());
        assert!(!cx.span().is_recording());
        assert!(cx.span().span_context().is_valid());
        assert!(!cx.span().span_context().is_sampled());
        drop(cx);
        assert!(finished(spans, &rx).is_empty());
    }

    #[test]
    fn a_span_dropped_unended_is_ended_and_sent() {
        let (spans, rx) = spans_with(opentelemetry_sdk::trace::Sampler::AlwaysOn);
        let cx = spans.start(&Context::new(), request());
        assert_eq!(cx.span().span_context().trace_flags(), TraceFlags::SAMPLED);
        drop(cx);
        let records = finished(spans, &rx);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].parent_span_id, SpanId::INVALID);
        assert_eq!(records[0].status_code, None);
    }

    #[test]
    fn the_span_data_carries_the_typed_attributes_first() {
        let (spans, rx) = spans_with(opentelemetry_sdk::trace::Sampler::AlwaysOn);
        let cx = spans.start(&Context::new(), request());
        cx.span()
            .set_attribute(KeyValue::new(keys::STATUS_CODE, 200_i64));
        cx.span().end();
        let data = finished(spans, &rx).remove(0).into_span_data();
        let keys: Vec<&str> = data.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                keys::METHOD,
                keys::ROUTE,
                keys::PATH,
                keys::SCHEME,
                keys::PROTOCOL_VERSION,
                keys::STATUS_CODE
            ]
        );
        assert_eq!(data.span_kind, SpanKind::Server);
        assert_eq!(data.instrumentation_scope.name(), "aiods");
    }
}
