//! A telemetry sink for the overhead benchmark: accepts OTLP/HTTP protobuf traces and logs and
//! Sentry envelopes, as a collector would, and counts what it decodes, so that the benchmark
//! can check that every request's span arrived.
//!
//! - `POST /v1/traces`: an `ExportTraceServiceRequest` (protobuf, or JSON when the content type
//!   says so); its spans are counted.
//! - `POST /v1/logs`: an `ExportLogsServiceRequest`; its log records are counted.
//! - `POST /v1/metrics`: accepted, counted as a request.
//! - `POST /api/{project}/envelope/`: a Sentry envelope (gzip allowed); its items are counted
//!   by type (`event`, `transaction`, anything else).
//! - `GET /counts`: the counts as JSON; `POST /counts/reset` sets them to zero.
//!
//! Protobuf bodies are walked at the wire level down to each span or log record (every
//! length and tag checked, each span's trace and span ids checked for their sizes) rather than
//! decoded into structs: the sink shares the benchmark's two cores, so it must cost little. A
//! body that does not parse is answered 400 and counted in `bad_bodies`.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

/// What the sink has received since start or the last reset.
#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    trace_requests: AtomicU64,
    log_records: AtomicU64,
    log_requests: AtomicU64,
    metric_requests: AtomicU64,
    sentry_events: AtomicU64,
    sentry_transactions: AtomicU64,
    sentry_other_items: AtomicU64,
    bad_bodies: AtomicU64,
}

impl Counts {
    fn all(&self) -> [(&'static str, &AtomicU64); 9] {
        [
            ("spans", &self.spans),
            ("trace_requests", &self.trace_requests),
            ("log_records", &self.log_records),
            ("log_requests", &self.log_requests),
            ("metric_requests", &self.metric_requests),
            ("sentry_events", &self.sentry_events),
            ("sentry_transactions", &self.sentry_transactions),
            ("sentry_other_items", &self.sentry_other_items),
            ("bad_bodies", &self.bad_bodies),
        ]
    }
}

type Shared = Arc<Counts>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let counts = Shared::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .route("/api/{project}/envelope/", post(envelope))
        .route("/counts", get(read_counts))
        .route("/counts/reset", post(reset_counts))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

async fn traces(
    State(c): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    c.trace_requests.fetch_add(1, Ordering::Relaxed);
    let counted = if is_json(&headers) {
        count_json_items(&body, Signal::Traces)
    } else {
        count_otlp_items(&body, Signal::Traces)
    };
    match counted {
        Ok(n) => {
            c.spans.fetch_add(n, Ordering::Relaxed);
            (StatusCode::OK, "{}")
        }
        Err(_) => {
            c.bad_bodies.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, "{}")
        }
    }
}

async fn logs(
    State(c): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    c.log_requests.fetch_add(1, Ordering::Relaxed);
    let counted = if is_json(&headers) {
        count_json_items(&body, Signal::Logs)
    } else {
        count_otlp_items(&body, Signal::Logs)
    };
    match counted {
        Ok(n) => {
            c.log_records.fetch_add(n, Ordering::Relaxed);
            (StatusCode::OK, "{}")
        }
        Err(_) => {
            c.bad_bodies.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, "{}")
        }
    }
}

async fn metrics(State(c): State<Shared>, body: Bytes) -> &'static str {
    std::hint::black_box(body.len());
    c.metric_requests.fetch_add(1, Ordering::Relaxed);
    "{}"
}

async fn envelope(State(c): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut inflated = Vec::new();
    let body: &[u8] = if gzip {
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut inflated)
            .is_err()
        {
            c.bad_bodies.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST;
        }
        &inflated
    } else {
        &body
    };
    match envelope_item_types(body) {
        Ok(types) => {
            for t in types {
                let counter = match t.as_str() {
                    "event" => &c.sentry_events,
                    "transaction" => &c.sentry_transactions,
                    _ => &c.sentry_other_items,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            StatusCode::OK
        }
        Err(_) => {
            c.bad_bodies.fetch_add(1, Ordering::Relaxed);
            StatusCode::BAD_REQUEST
        }
    }
}

async fn read_counts(State(c): State<Shared>) -> String {
    let fields: Vec<String> = c
        .all()
        .iter()
        .map(|(k, v)| format!("\"{k}\":{}", v.load(Ordering::Relaxed)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

async fn reset_counts(State(c): State<Shared>) -> &'static str {
    for (_, v) in c.all() {
        v.store(0, Ordering::Relaxed);
    }
    "{}"
}

/// A body that is not what it claims to be.
#[derive(Debug, PartialEq, Eq)]
struct Malformed(&'static str);

#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Logs,
}

/// The protobuf wire types this walker meets.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(Malformed("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed("varint too long"))
}

/// The next field of a message: its number and, for length-delimited fields, its bytes.
fn field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Option<&'a [u8]>), Malformed> {
    let key = varint(buf)?;
    let (number, wire) = (key >> 3, key & 7);
    if number == 0 {
        return Err(Malformed("field number 0"));
    }
    let skip = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], Malformed> {
        if buf.len() < n {
            return Err(Malformed("truncated field"));
        }
        let (bytes, rest) = buf.split_at(n);
        *buf = rest;
        Ok(bytes)
    };
    match wire {
        VARINT => varint(buf).map(|_| (number, None)),
        FIXED64 => skip(buf, 8).map(|_| (number, None)),
        FIXED32 => skip(buf, 4).map(|_| (number, None)),
        LEN => {
            let n = usize::try_from(varint(buf)?).map_err(|_| Malformed("length"))?;
            skip(buf, n).map(|b| (number, Some(b)))
        }
        _ => Err(Malformed("unsupported wire type")),
    }
}

/// The length-delimited fields numbered `number` of a message.
fn each<'a>(
    mut msg: &'a [u8],
    number: u64,
    mut f: impl FnMut(&'a [u8]) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    while !msg.is_empty() {
        if let (n, Some(bytes)) = field(&mut msg)?
            && n == number
        {
            f(bytes)?;
        }
    }
    Ok(())
}

/// Spans (or log records) of an OTLP export request: `resource_spans` (1) → `scope_spans` (2)
/// → `spans` (2), the same shape for logs. Each span must carry a 16-byte trace id (1) and an
/// 8-byte span id (2).
fn count_otlp_items(body: &[u8], signal: Signal) -> Result<u64, Malformed> {
    let mut n = 0;
    each(body, 1, |resource| {
        each(resource, 2, |scope| {
            each(scope, 2, |item| {
                if let Signal::Traces = signal {
                    check_span(item)?;
                }
                n += 1;
                Ok(())
            })
        })
    })?;
    Ok(n)
}

/// The same count for OTLP/JSON: `resourceSpans[].scopeSpans[].spans[]` (`resourceLogs`,
/// `scopeLogs`, `logRecords` for logs); each span must carry a 32-digit hex trace id.
fn count_json_items(body: &[u8], signal: Signal) -> Result<u64, Malformed> {
    let (resources, scopes, items) = match signal {
        Signal::Traces => ("resourceSpans", "scopeSpans", "spans"),
        Signal::Logs => ("resourceLogs", "scopeLogs", "logRecords"),
    };
    let request: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Malformed("not JSON"))?;
    fn list<'a>(v: &'a serde_json::Value, key: &str) -> Result<&'a [serde_json::Value], Malformed> {
        match v.get(key) {
            None => Ok(&[]),
            Some(serde_json::Value::Array(a)) => Ok(a),
            Some(_) => Err(Malformed("not an array")),
        }
    }
    let mut n = 0;
    for resource in list(&request, resources)? {
        for scope in list(resource, scopes)? {
            for item in list(scope, items)? {
                if let Signal::Traces = signal {
                    let id = item.get("traceId").and_then(serde_json::Value::as_str);
                    if id.is_none_or(|id| id.len() != 32) {
                        return Err(Malformed("a span without a valid trace id"));
                    }
                }
                n += 1;
            }
        }
    }
    Ok(n)
}

fn check_span(mut span: &[u8]) -> Result<(), Malformed> {
    let (mut trace_id, mut span_id) = (false, false);
    while !span.is_empty() {
        match field(&mut span)? {
            (1, Some(id)) => trace_id = id.len() == 16,
            (2, Some(id)) => span_id = id.len() == 8,
            _ => {}
        }
    }
    if trace_id && span_id {
        Ok(())
    } else {
        Err(Malformed("a span without a valid trace or span id"))
    }
}

/// The item types of a Sentry envelope: a header line, then per item a JSON header line with
/// its `type` (and `length`, or the payload runs to the next newline) and the payload.
fn envelope_item_types(body: &[u8]) -> Result<Vec<String>, Malformed> {
    let mut rest = match body.iter().position(|b| *b == b'\n') {
        Some(i) => &body[i + 1..],
        None => return Ok(Vec::new()),
    };
    let mut types = Vec::new();
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let header = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if header.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|_| Malformed("item header"))?;
        let kind = header
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or(Malformed("item without a type"))?;
        types.push(kind.to_owned());
        let length = match header.get("length").and_then(serde_json::Value::as_u64) {
            Some(len) => usize::try_from(len).map_err(|_| Malformed("length"))?,
            None => rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len()),
        };
        if rest.len() < length {
            return Err(Malformed("truncated item"));
        }
        rest = &rest[length..];
        if rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;

    fn span(i: u8) -> Span {
        Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            name: format!("GET /hello/{i}"),
            ..Default::default()
        }
    }

    #[test]
    fn counts_the_spans_of_every_resource_and_scope() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![
                        ScopeSpans {
                            spans: vec![span(1), span(2)],
                            ..Default::default()
                        },
                        ScopeSpans {
                            spans: vec![span(3)],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(4)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let body = request.encode_to_vec();
        assert_eq!(count_otlp_items(&body, Signal::Traces), Ok(4));
        assert!(count_otlp_items(&body[..body.len() - 3], Signal::Traces).is_err());
    }

    #[test]
    fn counts_json_spans_as_protobuf_ones() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"},
            {"traceId":"0af7651916cd43dd8448eb211c80319d","spanId":"b7ad6b7169203332"}]}]}]}"#;
        assert_eq!(count_json_items(body, Signal::Traces), Ok(2));
        assert!(
            count_json_items(
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}"#,
                Signal::Traces
            )
            .is_err()
        );
    }

    #[test]
    fn a_span_without_ids_is_malformed() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert!(count_otlp_items(&request.encode_to_vec(), Signal::Traces).is_err());
    }

    #[test]
    fn counts_log_records() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            count_otlp_items(&request.encode_to_vec(), Signal::Logs),
            Ok(3)
        );
    }

    #[test]
    fn envelope_items_are_typed_with_or_without_lengths() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n\
            {\"type\":\"event\",\"length\":8}\n{\"a\":12}\n\
            {\"type\":\"transaction\"}\n{\"b\":2}\n\
            {\"type\":\"attachment\",\"length\":3}\nabc";
        assert_eq!(
            envelope_item_types(body),
            Ok(vec![
                "event".into(),
                "transaction".into(),
                "attachment".into()
            ])
        );
        assert!(envelope_item_types(b"{}\n{\"type\":\"event\",\"length\":99}\n{}").is_err());
    }
}
