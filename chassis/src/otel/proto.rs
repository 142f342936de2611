//! Finished spans written straight to an OTLP `ExportTraceServiceRequest` in protobuf.
//!
//! The SDK's exporter first converts every `SpanData` into the generated protobuf structs
//! (a `String` or `Vec` per id, name, key and value, a hash map to group them), then encodes
//! those. Under `valgrind --tool=callgrind` that conversion and encoding cost ~17,400
//! instructions per span, a third of everything the service did per request with traces on
//! (`docs/benchmarks.md`). Writing the wire format from the `SpanData` directly, into one
//! reused buffer, does the same work without the intermediate copies.
//!
//! Measured (`python3 bench/overhead.py`, its callgrind phase: `examples/hello-service` with
//! access log, metrics, a span per request over OTLP and Sentry on, 2,000 requests on one
//! keep-alive connection after 200 of warm-up, the graceful stop included): 58,200
//! instructions per request through the SDK's exporter, 43,800 with this encoder (the export
//! thread: 17,700 → 2,900 per request).
//!
//! The output decodes to exactly what the SDK's conversion produces (a unit test below
//! compares the two through `opentelemetry-proto`): same fields, same defaults omitted, same
//! span flags.

use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

use super::server_span::{FinishedSpan, Typed};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Writes protobuf fields into a buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// A length-delimited field, written even when empty (a oneof member or a present message).
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A string or bytes field, omitted when empty (proto3's default).
    fn bytes_opt(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.bytes(field, b);
        }
    }

    fn uint_opt(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    fn fixed64_opt(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn fixed32_opt(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, FIXED32);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A nested message: its length is known only once it is written, so one byte is reserved
    /// (enough below 128 bytes, the common case for keys and values) and the body moved when
    /// the length needs more.
    fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer<'_>)) {
        self.key(field, LEN);
        let at = self.0.len();
        self.0.push(0);
        body(&mut Writer(self.0));
        let end = self.0.len();
        let len = end - at - 1;
        if len < 0x80 {
            self.0[at] = len as u8;
        } else {
            // Move the body right by the extra bytes of the length, in place.
            let mut prefix = [0u8; 10];
            let n = varint_into(&mut prefix, len as u64);
            self.0.resize(end + n - 1, 0);
            self.0.copy_within(at + 1..end, at + n);
            self.0[at..at + n].copy_from_slice(&prefix[..n]);
        }
    }

    fn attributes(&mut self, field: u32, attributes: &[KeyValue]) {
        for kv in attributes {
            self.key_value(field, kv.key.as_str(), &kv.value);
        }
    }

    fn key_value(&mut self, field: u32, key: &str, value: &Value) {
        // A scalar value's lengths are known before writing: no patching (the common case,
        // and a measurable share of the encoder's time in the benchmarks).
        match value {
            Value::String(s) => self.str_key_value(field, key, s.as_str()),
            Value::I64(i) => self.int_key_value(field, key, *i),
            Value::Bool(_) => self.scalar_key_value(field, key, 2, |w| w.any_value(value)),
            Value::F64(_) => self.scalar_key_value(field, key, 9, |w| w.any_value(value)),
            _ => self.message(field, |w| {
                w.bytes_opt(1, key.as_bytes());
                w.message(2, |w| w.any_value(value));
            }),
        }
    }

    /// A `KeyValue` with a string value.
    fn str_key_value(&mut self, field: u32, key: &str, value: &str) {
        let any_len = 1 + varint_len(value.len() as u64) + value.len();
        self.scalar_key_value(field, key, any_len, |w| w.bytes(1, value.as_bytes()));
    }

    /// A `KeyValue` with an integer value.
    fn int_key_value(&mut self, field: u32, key: &str, value: i64) {
        let any_len = 1 + varint_len(value as u64);
        self.scalar_key_value(field, key, any_len, |w| {
            w.key(3, VARINT);
            w.varint(value as u64);
        });
    }

    /// A `KeyValue` whose `AnyValue` body, `any_len` bytes long, `any` writes.
    fn scalar_key_value(
        &mut self,
        field: u32,
        key: &str,
        any_len: usize,
        any: impl FnOnce(&mut Self),
    ) {
        let key_len = if key.is_empty() {
            0
        } else {
            1 + varint_len(key.len() as u64) + key.len()
        };
        let len = key_len + 1 + varint_len(any_len as u64) + any_len;
        self.0.reserve(len + 12);
        self.key(field, LEN);
        self.varint(len as u64);
        self.bytes_opt(1, key.as_bytes());
        self.key(2, LEN);
        self.varint(any_len as u64);
        any(self);
    }

    /// The members of an `AnyValue` (a oneof: written whatever the value).
    fn any_value(&mut self, value: &Value) {
        match value {
            Value::Bool(b) => {
                self.key(2, VARINT);
                self.varint(u64::from(*b));
            }
            Value::I64(i) => {
                self.key(3, VARINT);
                self.varint(*i as u64);
            }
            Value::F64(f) => {
                self.key(4, FIXED64);
                self.0.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::String(s) => self.bytes(1, s.as_str().as_bytes()),
            Value::Array(array) => self.message(5, |w| match array {
                Array::Bool(v) => v.iter().for_each(|b| w.array_item(Value::Bool(*b))),
                Array::I64(v) => v.iter().for_each(|i| w.array_item(Value::I64(*i))),
                Array::F64(v) => v.iter().for_each(|f| w.array_item(Value::F64(*f))),
                Array::String(v) => v
                    .iter()
                    .for_each(|s| w.array_item(Value::String(s.clone()))),
                other => w.array_item(Value::String(other.to_string().into())),
            }),
            other => self.bytes(1, other.to_string().as_bytes()),
        }
    }

    fn array_item(&mut self, value: Value) {
        self.message(1, |w| w.any_value(&value));
    }

    fn scope(&mut self, scope: &InstrumentationScope) {
        self.bytes_opt(1, scope.name().as_bytes());
        self.bytes_opt(2, scope.version().unwrap_or_default().as_bytes());
        for kv in scope.attributes() {
            self.key_value(3, kv.key.as_str(), &kv.value);
        }
    }

    fn span(&mut self, span: &FinishedSpan) {
        match span {
            FinishedSpan::Sdk(span) => self.span_fields(
                SpanFields {
                    span_context: &span.span_context,
                    parent_span_id: span.parent_span_id,
                    parent_is_remote: span.parent_span_is_remote,
                    name: &span.name,
                    kind: kind(&span.span_kind),
                    start_time: span.start_time,
                    end_time: span.end_time,
                    dropped_attributes_count: span.dropped_attributes_count,
                    events: &span.events,
                    links: &span.links,
                    status: &span.status,
                },
                |w| w.attributes(9, &span.attributes),
            ),
            FinishedSpan::Server(span) => self.span_fields(
                SpanFields {
                    span_context: &span.span_context,
                    parent_span_id: span.parent_span_id,
                    parent_is_remote: span.parent_is_remote,
                    name: &span.name,
                    kind: kind(&SpanKind::Server),
                    start_time: span.start_time,
                    end_time: span.end_time,
                    dropped_attributes_count: span.dropped_attributes_count,
                    events: &span.events,
                    links: &span.links,
                    status: &span.status,
                },
                |w| {
                    for (key, value) in span.typed_attributes() {
                        match value {
                            Typed::Str(s) => w.str_key_value(9, key, s),
                            Typed::Int(i) => w.int_key_value(9, key, i),
                        }
                    }
                    w.attributes(9, &span.attributes);
                },
            ),
        }
    }

    /// A `Span` message's fields; `attributes` writes the attributes (field 9).
    fn span_fields(&mut self, span: SpanFields<'_>, attributes: impl FnOnce(&mut Self)) {
        let cx = span.span_context;
        self.bytes(1, &cx.trace_id().to_bytes());
        self.bytes(2, &cx.span_id().to_bytes());
        self.bytes_opt(3, cx.trace_state().header().as_bytes());
        if span.parent_span_id != SpanId::INVALID {
            self.bytes(4, &span.parent_span_id.to_bytes());
        }
        self.fixed32_opt(16, flags(span.parent_is_remote, cx.trace_flags().to_u8()));
        self.bytes_opt(5, span.name.as_bytes());
        self.uint_opt(6, span.kind);
        self.fixed64_opt(7, nanos(span.start_time));
        self.fixed64_opt(8, nanos(span.end_time));
        attributes(self);
        self.uint_opt(10, u64::from(span.dropped_attributes_count));
        for event in span.events.iter() {
            self.message(11, |w| {
                w.fixed64_opt(1, nanos(event.timestamp));
                w.bytes_opt(2, event.name.as_bytes());
                w.attributes(3, &event.attributes);
                w.uint_opt(4, u64::from(event.dropped_attributes_count));
            });
        }
        self.uint_opt(12, u64::from(span.events.dropped_count));
        for link in span.links.iter() {
            self.message(13, |w| {
                let cx = &link.span_context;
                w.bytes(1, &cx.trace_id().to_bytes());
                w.bytes(2, &cx.span_id().to_bytes());
                w.bytes_opt(3, cx.trace_state().header().as_bytes());
                w.attributes(4, &link.attributes);
                w.uint_opt(5, u64::from(link.dropped_attributes_count));
                w.fixed32_opt(6, flags(cx.is_remote(), cx.trace_flags().to_u8()));
            });
        }
        self.uint_opt(14, u64::from(span.links.dropped_count));
        self.message(15, |w| match span.status {
            Status::Unset => {}
            Status::Ok => w.uint_opt(3, 1),
            Status::Error { description } => {
                w.bytes_opt(2, description.as_bytes());
                w.uint_opt(3, 2);
            }
        });
    }
}

/// What the `Span` message holds besides attributes, borrowed from either kind of span.
struct SpanFields<'a> {
    span_context: &'a SpanContext,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    name: &'a str,
    kind: u64,
    start_time: SystemTime,
    end_time: SystemTime,
    dropped_attributes_count: u32,
    events: &'a SpanEvents,
    links: &'a SpanLinks,
    status: &'a Status,
}

/// The bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    // Lengths and keys are nearly always below 2^14: two compares instead of a bit count and
    // a division.
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        (64 - v.leading_zeros() as usize).div_ceil(7)
    }
}

/// Writes `v` as a varint at the start of `out`; returns its length.
fn varint_into(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

fn flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let mut flags = u32::from(trace_flags) | HAS_IS_REMOTE;
    if parent_is_remote {
        flags |= IS_REMOTE;
    }
    flags
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The service's resource, encoded once: the `Resource` message and the schema URL.
#[derive(Debug, Clone)]
pub(crate) struct EncodedResource {
    message: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    /// Encodes `resource`'s attributes.
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut message = Vec::new();
        let mut w = Writer(&mut message);
        for (key, value) in resource.iter() {
            w.key_value(1, key.as_str(), value);
        }
        Self {
            message,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// Writes `spans` as one `ExportTraceServiceRequest` into `out` (cleared first): one
/// `ResourceSpans` with one `ScopeSpans` per instrumentation scope, in the order the scopes
/// first appear.
pub(crate) fn encode_trace_request(
    resource: &EncodedResource,
    spans: &[FinishedSpan],
    out: &mut Vec<u8>,
) {
    out.clear();
    if spans.is_empty() {
        return;
    }
    // Scopes are few (the chassis's own, and a handler's `tracing` spans): a linear search.
    let mut scopes: Vec<(&InstrumentationScope, Vec<&FinishedSpan>)> = Vec::new();
    for span in spans {
        let scope = match span {
            FinishedSpan::Sdk(span) => &span.instrumentation_scope,
            FinishedSpan::Server(_) => super::server_span::scope(),
        };
        match scopes
            .iter_mut()
            .find(|(s, _)| std::ptr::eq(*s, scope) || *s == scope)
        {
            Some((_, list)) => list.push(span),
            None => scopes.push((scope, vec![span])),
        }
    }
    let mut w = Writer(out);
    w.message(1, |w| {
        w.bytes(1, &resource.message);
        for (scope, spans) in &scopes {
            w.message(2, |w| {
                w.message(1, |w| w.scope(scope));
                for span in spans {
                    w.message(2, |w| w.span(span));
                }
                w.bytes_opt(3, scope.schema_url().unwrap_or_default().as_bytes());
            });
        }
        w.bytes_opt(3, resource.schema_url.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel::server_span::ServerSpanRecord;
    use opentelemetry::trace::{Event, Link, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::SpanData;
    use prost::Message as _;
    use std::time::Duration;

    fn context(n: u8, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n + 1; 8]),
            TraceFlags::SAMPLED,
            remote,
            TraceState::from_key_value([("vendor", "value")]).expect("trace state"),
        )
    }

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)
    }

    fn events() -> SpanEvents {
        let start = start();
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "exception",
            start + Duration::from_micros(5),
            vec![
                KeyValue::new("exception.type", "io::Error"),
                KeyValue::new("exception.message", "x".repeat(300)),
            ],
            1,
        ));
        events.dropped_count = 2;
        events
    }

    fn links() -> SpanLinks {
        let mut links = SpanLinks::default();
        links
            .links
            .push(Link::new(context(9, true), vec![KeyValue::new("k", 1)], 0));
        links
    }

    fn status(n: u8) -> Status {
        match n % 3 {
            0 => Status::Unset,
            1 => Status::Ok,
            _ => Status::error("500"),
        }
    }

    fn span(n: u8, scope: &InstrumentationScope) -> FinishedSpan {
        let start = start();
        FinishedSpan::Sdk(SpanData {
            span_context: context(n, false),
            parent_span_id: if n.is_multiple_of(2) {
                SpanId::from_bytes([7; 8])
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: n.is_multiple_of(2),
            span_kind: if n.is_multiple_of(2) {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            name: format!("GET /orders/{{id}} {n}").into(),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("flag", true),
                KeyValue::new("empty", ""),
                KeyValue::new("long", "y".repeat(200)),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2]))),
                // Keys of one and two length bytes.
                KeyValue::new(
                    "an.attribute.key.long.enough.not.to.fit.on.the.stack",
                    -1.5e300,
                ),
                KeyValue::new("k".repeat(200), "v".repeat(130)),
                KeyValue::new("k".repeat(41), i64::MIN),
            ],
            dropped_attributes_count: 3,
            events: events(),
            links: links(),
            status: status(n),
            instrumentation_scope: scope.clone(),
        })
    }

    /// A server span of the chassis's own, with and without its optional parts.
    fn server(n: u8) -> FinishedSpan {
        let start = start();
        let full = n.is_multiple_of(2);
        FinishedSpan::Server(ServerSpanRecord {
            span_context: context(n, false),
            parent_span_id: if full {
                SpanId::from_bytes([5; 8])
            } else {
                SpanId::INVALID
            },
            parent_is_remote: full,
            name: "GET /orders/{id}".into(),
            method: "GET",
            route: full.then_some("/orders/{id}"),
            path: format!("/orders/{}", "9".repeat(usize::from(n) * 20)),
            protocol_version: "1.1",
            status_code: full.then_some(i64::from(n) * 100),
            start_time: start,
            end_time: start + Duration::from_micros(80),
            attributes: if full {
                vec![
                    KeyValue::new("tenant", "t1"),
                    KeyValue::new("n", i64::from(n)),
                ]
            } else {
                Vec::new()
            },
            dropped_attributes_count: u32::from(n % 2),
            events: if full {
                events()
            } else {
                SpanEvents::default()
            },
            links: if full { links() } else { SpanLinks::default() },
            status: status(n),
        })
    }

    #[test]
    fn decodes_to_what_the_sdk_conversion_makes() {
        let resource = Resource::builder()
            .with_service_name("orders")
            .with_attributes([KeyValue::new("service.instance.id", "i-1")])
            .build();
        let scope = InstrumentationScope::builder("aiods")
            .with_version("0.1.0")
            .with_attributes([KeyValue::new("scope.attr", 2)])
            .build();
        // The SDK's spans and the chassis's server spans (scope `aiods` without a version),
        // interleaved.
        let spans: Vec<FinishedSpan> = (0..40).flat_map(|n| [span(n, &scope), server(n)]).collect();
        let decoded = assert_same_as_sdk(&resource, spans);
        assert_eq!(decoded.resource_spans[0].scope_spans.len(), 2);
    }

    #[test]
    fn attributes_of_every_key_length_and_scalar_type_decode_as_the_sdk_makes_them() {
        let resource = Resource::builder().with_service_name("s").build();
        let scope = InstrumentationScope::builder("aiods").build();
        let mut spans = Vec::new();
        for n in 0..=100 {
            let key = "k".repeat(n);
            let FinishedSpan::Sdk(mut span) = span(1, &scope) else {
                unreachable!("an SDK span");
            };
            span.attributes = vec![
                KeyValue::new(key.clone(), "v".repeat(n * 3)),
                KeyValue::new(key.clone(), i64::try_from(n).unwrap_or(0) - 50),
                KeyValue::new(key.clone(), n % 2 == 0),
                KeyValue::new(key.clone(), n as f64 / 7.0),
            ];
            spans.push(FinishedSpan::Sdk(span));
        }
        assert_same_as_sdk(&resource, spans);
    }

    /// Encodes `spans`, checks the request decodes to what the SDK's conversion makes of
    /// them, and returns it.
    fn assert_same_as_sdk(
        resource: &Resource,
        spans: Vec<FinishedSpan>,
    ) -> ExportTraceServiceRequest {
        let mut ours = Vec::new();
        encode_trace_request(&EncodedResource::new(resource), &spans, &mut ours);
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).expect("decodes");
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans
                    .into_iter()
                    .map(FinishedSpan::into_span_data)
                    .collect(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        // The SDK groups scopes through a hash map: compare them in a fixed order.
        let sorted = |mut r: ExportTraceServiceRequest| {
            for rs in &mut r.resource_spans {
                if let Some(res) = &mut rs.resource {
                    res.attributes.sort_by(|a, b| a.key.cmp(&b.key));
                }
                rs.scope_spans.sort_by_key(|s| {
                    s.scope
                        .as_ref()
                        .map(|s| (s.name.clone(), s.version.clone()))
                });
            }
            r
        };
        assert_eq!(sorted(decoded.clone()), sorted(expected));
        decoded
    }

    #[test]
    fn spans_of_two_scopes_go_in_two_scope_spans_in_order() {
        let resource = Resource::builder().with_service_name("s").build();
        let a = InstrumentationScope::builder("aiods").build();
        let b = InstrumentationScope::builder("handler").build();
        let spans = vec![span(1, &a), span(2, &b), server(3), span(3, &a)];
        let mut out = Vec::new();
        encode_trace_request(&EncodedResource::new(&resource), &spans, &mut out);
        let decoded = ExportTraceServiceRequest::decode(out.as_slice()).expect("decodes");
        let scopes: Vec<(String, usize)> = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| (s.scope.clone().unwrap_or_default().name, s.spans.len()))
            .collect();
        // The server span's scope is `aiods` too: one group.
        assert_eq!(scopes, [("aiods".to_owned(), 3), ("handler".to_owned(), 1)]);
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
            (-3_i64) as u64,
        ] {
            let mut written = Vec::new();
            Writer(&mut written).varint(v);
            let mut fixed = [0u8; 10];
            let n = varint_into(&mut fixed, v);
            assert_eq!(varint_len(v), written.len(), "{v}");
            assert_eq!(&fixed[..n], written.as_slice(), "{v}");
        }
    }

    #[test]
    fn no_spans_make_no_body() {
        let mut out = vec![1, 2, 3];
        let resource = EncodedResource::new(&Resource::builder().build());
        encode_trace_request(&resource, &[], &mut out);
        assert!(out.is_empty());
    }
}
