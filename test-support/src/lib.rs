//! Test support for aiods: real receivers, started in-process on port 0, that decode and keep
//! what services send them.
//!
//! - [`OtlpReceiver`]: OTLP/HTTP `POST /v1/traces`, `/v1/logs`, `/v1/metrics`, protobuf or
//!   JSON, plain or gzip, decoded with `opentelemetry-proto`.
//! - [`SentryReceiver`]: Sentry `POST /api/{project}/envelope/`, the envelope's items parsed.
//! - [`NatsServer`]: a real `nats-server` with JetStream on a free port and a temporary store.
#![allow(clippy::unwrap_used)]

mod nats;
pub use nats::NatsServer;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

pub use opentelemetry_proto::tonic as proto;

/// A span as received, flattened with its resource's service name.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource.
    pub service: String,
    /// The resource attributes.
    pub resource: Vec<(String, String)>,
    /// The span.
    pub span: proto::trace::v1::Span,
}

impl ReceivedSpan {
    /// The trace id, lower-case hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    /// The span id, lower-case hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    /// The parent span id, lower-case hex (empty for a root).
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    /// An attribute rendered as a string.
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
    /// A resource attribute.
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        self.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// A log record as received.
#[derive(Debug, Clone)]
pub struct ReceivedLog {
    /// `service.name` of the resource.
    pub service: String,
    /// The record.
    pub record: proto::logs::v1::LogRecord,
}

impl ReceivedLog {
    /// The body rendered as a string.
    pub fn body(&self) -> String {
        self.record.body.as_ref().map(render).unwrap_or_default()
    }
    /// The trace id, lower-case hex (empty when none).
    pub fn trace_id(&self) -> String {
        hex(&self.record.trace_id)
    }
    /// The span id, lower-case hex.
    pub fn span_id(&self) -> String {
        hex(&self.record.span_id)
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn render(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(render)
}

fn attrs(attrs: &[KeyValue]) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(render).unwrap_or_default(),
            )
        })
        .collect()
}

/// One export request as received: its path and headers.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// `/v1/traces`, `/v1/logs` or `/v1/metrics`.
    pub path: &'static str,
    /// The request's headers.
    pub headers: HeaderMap,
}

#[derive(Default)]
struct OtlpData {
    spans: Vec<ReceivedSpan>,
    logs: Vec<ReceivedLog>,
    metrics: Vec<ExportMetricsServiceRequest>,
    requests: Vec<ReceivedRequest>,
}

/// An OTLP/HTTP receiver.
#[derive(Clone)]
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    data: Arc<Mutex<OtlpData>>,
}

fn body_bytes(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>, StatusCode> {
    let gz = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gz {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        Ok(out)
    } else {
        Ok(body.to_vec())
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<T, StatusCode> {
    let raw = body_bytes(headers, body)?;
    if is_json(headers) {
        serde_json::from_slice(&raw).map_err(|_| StatusCode::BAD_REQUEST)
    } else {
        T::decode(&raw[..]).map_err(|_| StatusCode::BAD_REQUEST)
    }
}

fn service_of(resource: Option<&proto::resource::v1::Resource>) -> (String, Vec<(String, String)>) {
    let all = resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
    let service = all
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    (service, all)
}

fn record(d: &Mutex<OtlpData>, path: &'static str, headers: &HeaderMap) {
    d.lock().unwrap().requests.push(ReceivedRequest {
        path,
        headers: headers.clone(),
    });
}

async fn traces(
    State(d): State<Arc<Mutex<OtlpData>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&d, "/v1/traces", &headers);
    let req: ExportTraceServiceRequest = match decode(&headers, body) {
        Ok(r) => r,
        Err(s) => return s,
    };
    let mut d = d.lock().unwrap();
    for rs in req.resource_spans {
        let (service, resource) = service_of(rs.resource.as_ref());
        for ss in rs.scope_spans {
            for span in ss.spans {
                d.spans.push(ReceivedSpan {
                    service: service.clone(),
                    resource: resource.clone(),
                    span,
                });
            }
        }
    }
    StatusCode::OK
}

async fn logs(
    State(d): State<Arc<Mutex<OtlpData>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&d, "/v1/logs", &headers);
    let req: ExportLogsServiceRequest = match decode(&headers, body) {
        Ok(r) => r,
        Err(s) => return s,
    };
    let mut d = d.lock().unwrap();
    for rl in req.resource_logs {
        let (service, _) = service_of(rl.resource.as_ref());
        for sl in rl.scope_logs {
            for record in sl.log_records {
                d.logs.push(ReceivedLog {
                    service: service.clone(),
                    record,
                });
            }
        }
    }
    StatusCode::OK
}

async fn metrics(
    State(d): State<Arc<Mutex<OtlpData>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&d, "/v1/metrics", &headers);
    let req: ExportMetricsServiceRequest = match decode(&headers, body) {
        Ok(r) => r,
        Err(s) => return s,
    };
    let mut d = d.lock().unwrap();
    d.metrics.push(req);
    StatusCode::OK
}

impl OtlpReceiver {
    /// Starts a receiver on `127.0.0.1:0` on the current Tokio runtime.
    pub async fn start() -> Self {
        let data = Arc::new(Mutex::new(OtlpData::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            .route("/v1/metrics", post(metrics))
            .with_state(data.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, data }
    }

    /// The endpoint to give `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.data.lock().unwrap().spans.clone()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.data.lock().unwrap().logs.clone()
    }

    /// Every export request received so far (decodable or not), with its headers.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.data.lock().unwrap().requests.clone()
    }

    /// Every metrics export received so far.
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.data.lock().unwrap().metrics.clone()
    }

    /// Waits until `pred` holds for the spans received, or `timeout`.
    pub async fn wait_spans(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if pred(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `pred` holds for the logs received, or `timeout`.
    pub async fn wait_logs(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedLog]) -> bool,
    ) -> Vec<ReceivedLog> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if pred(&logs) || Instant::now() >= deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One Sentry envelope as received.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The project id in the URL.
    pub project: String,
    /// The `X-Sentry-Auth` header.
    pub auth: Option<String>,
    /// The envelope header.
    pub header: serde_json::Value,
    /// Each item: its header and its payload (parsed as JSON when it is).
    pub items: Vec<(serde_json::Value, serde_json::Value)>,
}

impl Envelope {
    /// The first `event` item's payload.
    pub fn event(&self) -> Option<&serde_json::Value> {
        self.items
            .iter()
            .find(|(h, _)| h["type"] == "event")
            .map(|(_, p)| p)
    }
}

/// A Sentry envelope receiver.
#[derive(Clone)]
pub struct SentryReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    envelopes: Arc<Mutex<Vec<Envelope>>>,
}

/// Parses the envelope format: a header line, then items of a header line and a payload
/// (`length` bytes when given, else up to the next newline).
pub fn parse_envelope(
    raw: &[u8],
) -> Option<(
    serde_json::Value,
    Vec<(serde_json::Value, serde_json::Value)>,
)> {
    let mut rest = raw;
    let line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let l = rest[..end].to_vec();
        *rest = if end < rest.len() {
            &rest[end + 1..]
        } else {
            &[]
        };
        Some(l)
    };
    let header: serde_json::Value = serde_json::from_slice(&line(&mut rest)?).ok()?;
    let mut items = Vec::new();
    while let Some(h) = line(&mut rest) {
        if h.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item_header: serde_json::Value = serde_json::from_slice(&h).ok()?;
        let payload = match item_header
            .get("length")
            .and_then(serde_json::Value::as_u64)
        {
            Some(n) => {
                let n = usize::try_from(n).ok()?.min(rest.len());
                let p = rest[..n].to_vec();
                rest = &rest[n..];
                if rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                }
                p
            }
            None => line(&mut rest).unwrap_or_default(),
        };
        let payload = serde_json::from_slice(&payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&payload).into())
        });
        items.push((item_header, payload));
    }
    Some((header, items))
}

async fn envelope(
    State(store): State<Arc<Mutex<Vec<Envelope>>>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(raw) = body_bytes(&headers, body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some((header, items)) = parse_envelope(&raw) else {
        return StatusCode::BAD_REQUEST;
    };
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    store.lock().unwrap().push(Envelope {
        project,
        auth,
        header,
        items,
    });
    StatusCode::OK
}

impl SentryReceiver {
    /// Starts a receiver on `127.0.0.1:0` on the current Tokio runtime.
    pub async fn start() -> Self {
        let envelopes = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/{project}/envelope/", post(envelope))
            .with_state(envelopes.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, envelopes }
    }

    /// The DSN to give `SENTRY_DSN` (project 42).
    pub fn dsn(&self) -> String {
        format!("http://publickey@{}/42", self.addr)
    }

    /// Every envelope received so far.
    pub fn envelopes(&self) -> Vec<Envelope> {
        self.envelopes.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the envelopes received, or `timeout`.
    pub async fn wait(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.envelopes();
            if pred(&e) || Instant::now() >= deadline {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
