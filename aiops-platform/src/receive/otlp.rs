//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics`, protobuf or JSON, gzip.
//!
//! Responses follow the OTLP/HTTP spec: 200 with an `Export*ServiceResponse` (with
//! `partial_success` when some items were rejected) in the request's encoding, and on failure
//! a 4xx with a `google.rpc.Status` in the request's encoding (JSON when it is unknown).

use crate::common::token::hex;
use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::IngestError;
use super::Receivers;
use super::body::{decode_body, read_body};
use crate::common::time::{now_nanos, rfc3339};
use crate::store::{
    LogRecord, MetricSample, Severity, Signal, SpanEvent, SpanRecord, SpanStatus, Stats,
    Temporality,
};

/// The receivers' state, shared.
type AppState = std::sync::Arc<Receivers>;
use axum::body::Body;

/// The wire encoding of an OTLP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// From the `Content-Type` header.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, IngestError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            "" => Err(IngestError::UnsupportedMediaType(
                "missing Content-Type; use application/x-protobuf or application/json".into(),
            )),
            other => Err(IngestError::UnsupportedMediaType(format!(
                "unsupported Content-Type {other:?}; use application/x-protobuf or application/json"
            ))),
        }
    }
}

/// `google.rpc.Status`, the OTLP error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error_response(err: IngestError, encoding: Option<Encoding>) -> Response {
    let status = err.status();
    // gRPC codes: INVALID_ARGUMENT 3, UNAUTHENTICATED 16, RESOURCE_EXHAUSTED 8, UNIMPLEMENTED 12.
    let code = match status {
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => 12,
        _ => 3,
    };
    let message = err.to_string();
    tracing::debug!(%status, %message, "otlp request refused");
    match encoding {
        Some(Encoding::Protobuf) => {
            let body = RpcStatus { code, message }.encode_to_vec();
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                )],
                body,
            )
                .into_response()
        }
        _ => {
            let body = serde_json::json!({ "code": code, "message": message }).to_string();
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
    }
}

/// What a conversion accepted and rejected.
#[derive(Debug)]
pub struct Converted<T> {
    /// Accepted items.
    pub items: Vec<T>,
    /// Number of rejected items.
    pub rejected: u64,
    /// Why (first reason), when any were rejected.
    pub reason: Option<String>,
}

impl<T> Default for Converted<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            rejected: 0,
            reason: None,
        }
    }
}

impl<T> Converted<T> {
    fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.reason.is_none() {
            self.reason = Some(reason());
        }
    }
}

/// The rejected count and reason of a response, with the items the store did not keep.
fn with_not_stored(
    rejected: u64,
    reason: Option<String>,
    not_stored: u64,
) -> (u64, Option<String>) {
    let reason = reason.or_else(|| {
        (not_stored > 0).then(|| {
            format!(
                "{not_stored} items not stored: a new service past the discovered-services \
                 cap, or an item larger than max_item_bytes"
            )
        })
    });
    (rejected + not_stored, reason)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether an OTLP request carries an accepted ingest key (`ingest_keys` as a bearer token,
/// or the older `otlp_ingest_header`); open when neither is configured. Headers only: this
/// runs before the body is read.
fn check_ingest_key(state: &AppState, headers: &HeaderMap) -> Result<(), IngestError> {
    let legacy = state.otlp_ingest_key.as_ref();
    if state.ingest_keys.is_empty() && legacy.is_none() {
        return Ok(());
    }
    let token = bearer(headers).filter(|t| !t.is_empty());
    if let Some(t) = token
        && state
            .ingest_keys
            .iter()
            .any(|k| crate::common::token::secret_eq(k, t))
    {
        return Ok(());
    }
    let given = legacy.and_then(|(name, key)| {
        let v = headers.get(name.as_str())?.to_str().ok()?;
        Some((v, key)).filter(|(v, _)| !v.is_empty())
    });
    if let Some((v, key)) = given
        && crate::common::token::secret_eq(v, key)
    {
        return Ok(());
    }
    if token.is_none() && given.is_none() {
        let also = legacy.map_or(String::new(), |(name, _)| format!(" or header {name}"));
        return Err(IngestError::Unauthorized(format!(
            "missing ingest key: send Authorization: Bearer <key>{also}"
        )));
    }
    Err(IngestError::Unauthorized("wrong ingest key".into()))
}

/// Decodes one OTLP message of `encoding` from an already decompressed body.
pub fn decode_message<M: Message + Default + serde::de::DeserializeOwned>(
    encoding: Encoding,
    body: Bytes,
) -> Result<M, IngestError> {
    match encoding {
        Encoding::Protobuf => M::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}")),
        Encoding::Json => {
            serde_json::from_slice(&body).map_err(|e| format!("invalid OTLP JSON: {e}"))
        }
    }
    .map_err(IngestError::BadRequest)
}

/// Checks the ingest key from the headers, then reads, decompresses and decodes the body: a
/// request without a valid key is refused without reading (or decompressing) what it sends.
/// A refusal is counted and answered in the request's encoding when it has one.
async fn receive<M: Message + Default + serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(M, Encoding), Response> {
    let decoded = async {
        check_ingest_key(state, headers)?;
        let body = read_body(body, state.max_body_bytes).await?;
        let encoding = Encoding::from_headers(headers)?;
        let body = decode_body(headers, body, state.max_decompressed_bytes)?;
        Ok((decode_message(encoding, body)?, encoding))
    }
    .await;
    decoded.map_err(|e: IngestError| {
        Stats::add(&state.sink.stats().requests_refused, 1);
        error_response(e, Encoding::from_headers(headers).ok())
    })
}

fn ok_response(
    encoding: Encoding,
    proto: Vec<u8>,
    rejected_field: &str,
    rejected: u64,
    reason: Option<String>,
) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            proto,
        )
            .into_response(),
        Encoding::Json => {
            let body = if rejected == 0 {
                "{}".to_string()
            } else {
                let mut partial = serde_json::Map::new();
                // proto3 JSON renders int64 as a decimal string.
                partial.insert(
                    rejected_field.into(),
                    serde_json::Value::String(rejected.to_string()),
                );
                partial.insert(
                    "errorMessage".into(),
                    serde_json::Value::String(reason.unwrap_or_default()),
                );
                serde_json::json!({ "partialSuccess": partial }).to_string()
            };
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
    }
}

/// `POST /v1/traces`.
pub async fn traces(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (request, encoding) =
        match receive::<ExportTraceServiceRequest>(&state, &headers, body).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
    let converted = convert_spans(request);
    Stats::add(&state.sink.stats().spans_rejected, converted.rejected);
    let not_stored = state.sink.insert_spans(converted.items);
    let (rejected, reason) = with_not_stored(converted.rejected, converted.reason, not_stored);
    let partial = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: reason.clone().unwrap_or_default(),
    });
    let proto = ExportTraceServiceResponse {
        partial_success: partial,
    }
    .encode_to_vec();
    ok_response(encoding, proto, "rejectedSpans", rejected, reason)
}

/// `POST /v1/logs`.
pub async fn logs(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (request, encoding) =
        match receive::<ExportLogsServiceRequest>(&state, &headers, body).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
    let converted = convert_logs(request);
    Stats::add(&state.sink.stats().logs_rejected, converted.rejected);
    let not_stored = state.sink.insert_logs(converted.items);
    let (rejected, reason) = with_not_stored(converted.rejected, converted.reason, not_stored);
    let partial = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: reason.clone().unwrap_or_default(),
    });
    let proto = ExportLogsServiceResponse {
        partial_success: partial,
    }
    .encode_to_vec();
    ok_response(encoding, proto, "rejectedLogRecords", rejected, reason)
}

/// `POST /v1/metrics`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (request, encoding) =
        match receive::<ExportMetricsServiceRequest>(&state, &headers, body).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
    let converted = convert_metrics(request);
    Stats::add(&state.sink.stats().points_rejected, converted.rejected);
    let not_stored = state.sink.insert_samples(converted.items, Signal::Metrics);
    let (rejected, reason) = with_not_stored(converted.rejected, converted.reason, not_stored);
    let partial = (rejected > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: reason.clone().unwrap_or_default(),
    });
    let proto = ExportMetricsServiceResponse {
        partial_success: partial,
    }
    .encode_to_vec();
    ok_response(encoding, proto, "rejectedDataPoints", rejected, reason)
}

fn valid_id(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().any(|b| *b != 0)
}

/// An OTLP value as JSON.
pub fn any_value_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(any_value_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(attributes_json(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => J::String(hex(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
    }
}

/// OTLP attributes as a JSON object.
pub fn attributes_json(kvs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .as_ref()
                    .map_or(serde_json::Value::Null, any_value_json),
            )
        })
        .collect()
}

fn any_value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => any_value_json(v).to_string(),
    }
}

/// The text of a value, moved out when it is a string (a log body can be large: it is not
/// copied).
fn any_value_into_text(v: AnyValue) -> String {
    match v.value {
        Some(any_value::Value::StringValue(s)) => s,
        value => any_value_json(&AnyValue { value }).to_string(),
    }
}

/// `service.name` of a resource, else `unknown_service`.
pub fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".to_string())
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

/// Spans from an export request; spans with invalid ids are rejected.
pub fn convert_spans(request: ExportTraceServiceRequest) -> Converted<SpanRecord> {
    let mut out = Converted::default();
    for rs in request.resource_spans {
        let service = service_name(rs.resource.as_ref());
        for ss in rs.scope_spans {
            for span in ss.spans {
                if !valid_id(&span.trace_id, 16) {
                    out.reject(|| {
                        format!("span {:?}: trace_id must be 16 non-zero bytes", span.name)
                    });
                    continue;
                }
                if !valid_id(&span.span_id, 8) {
                    out.reject(|| {
                        format!("span {:?}: span_id must be 8 non-zero bytes", span.name)
                    });
                    continue;
                }
                let status = span.status.as_ref();
                out.items.push(SpanRecord {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: valid_id(&span.parent_span_id, 8)
                        .then(|| hex(&span.parent_span_id)),
                    service: service.clone(),
                    name: span.name,
                    kind: span_kind(span.kind),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    status: SpanStatus {
                        code: match status.map(|s| s.code) {
                            Some(1) => "ok",
                            Some(2) => "error",
                            _ => "unset",
                        },
                        message: status.map(|s| s.message.clone()).unwrap_or_default(),
                    },
                    attributes: attributes_json(&span.attributes),
                    events: span
                        .events
                        .iter()
                        .map(|e| SpanEvent {
                            name: e.name.clone(),
                            time_unix_nano: e.time_unix_nano,
                            attributes: attributes_json(&e.attributes),
                        })
                        .collect(),
                    source: "otlp",
                });
            }
        }
    }
    out
}

/// Log records from an export request.
pub fn convert_logs(request: ExportLogsServiceRequest) -> Converted<LogRecord> {
    let mut out = Converted::default();
    let now = now_nanos();
    for rl in request.resource_logs {
        let service = service_name(rl.resource.as_ref());
        for sl in rl.scope_logs {
            let target = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for rec in sl.log_records {
                // Some SDKs send only the observed time.
                let t = [rec.time_unix_nano, rec.observed_time_unix_nano, now]
                    .into_iter()
                    .find(|t| *t > 0)
                    .unwrap_or(now);
                out.items.push(LogRecord {
                    timestamp: rfc3339(t),
                    time_unix_nano: t,
                    level: Severity::from_otlp(rec.severity_number, &rec.severity_text),
                    severity_text: rec.severity_text,
                    message: rec.body.map(any_value_into_text).unwrap_or_default(),
                    service: service.clone(),
                    target: target.clone(),
                    trace_id: valid_id(&rec.trace_id, 16).then(|| hex(&rec.trace_id)),
                    span_id: valid_id(&rec.span_id, 8).then(|| hex(&rec.span_id)),
                    attributes: attributes_json(&rec.attributes),
                    seq: 0,
                });
            }
        }
    }
    out
}

/// OTLP's `aggregation_temporality` field: delta, or cumulative (also for unspecified).
fn temporality(field: i32) -> Temporality {
    if field == AggregationTemporality::Delta as i32 {
        Temporality::Delta
    } else {
        Temporality::Cumulative
    }
}

fn labels(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(any_value_text).unwrap_or_default(),
            )
        })
        .collect()
}

/// Metric samples from an export request; metrics without data and points without a value
/// are rejected. Histograms and summaries become `<name>_count` and `<name>_sum` series.
pub fn convert_metrics(request: ExportMetricsServiceRequest) -> Converted<MetricSample> {
    let mut out = Converted::default();
    let now = now_nanos();
    for rm in request.resource_metrics {
        let service = service_name(rm.resource.as_ref());
        // Each instance's cumulative series stays its own (deltas are taken per instance).
        let instance = rm.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.instance.id")
                .and_then(|kv| kv.value.as_ref())
                .map(any_value_text)
        });
        let labels = |kvs: &[KeyValue]| {
            let mut l = labels(kvs);
            if let Some(i) = &instance {
                l.entry("service.instance.id".to_owned())
                    .or_insert_with(|| i.clone());
            }
            l
        };
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let sample = |name: String,
                              kind: &'static str,
                              labels: BTreeMap<String, String>,
                              t: u64,
                              value: f64| MetricSample {
                    service: service.clone(),
                    name,
                    labels,
                    kind,
                    unit: m.unit.clone(),
                    source: "otlp",
                    time_unix_nano: if t == 0 { now } else { t },
                    value,
                    temporality: Temporality::Cumulative,
                };
                let number_points =
                    |points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
                     kind: &'static str,
                     temporality: Temporality,
                     out: &mut Converted<MetricSample>| {
                        for p in points {
                            let value = match p.value {
                                Some(number_data_point::Value::AsDouble(d)) => d,
                                #[allow(clippy::cast_precision_loss)]
                                Some(number_data_point::Value::AsInt(i)) => i as f64,
                                None => {
                                    out.reject(|| {
                                        format!("metric {:?}: data point without a value", m.name)
                                    });
                                    continue;
                                }
                            };
                            out.items.push(MetricSample {
                                temporality,
                                ..sample(
                                    m.name.clone(),
                                    kind,
                                    labels(&p.attributes),
                                    p.time_unix_nano,
                                    value,
                                )
                            });
                        }
                    };
                // Histograms and summaries are stored as their `_count` and `_sum` series.
                let count_and_sum = |out: &mut Converted<MetricSample>,
                                     kind: &'static str,
                                     temporality: Temporality,
                                     l: BTreeMap<String, String>,
                                     t: u64,
                                     count: u64,
                                     sum: Option<f64>| {
                    #[allow(clippy::cast_precision_loss)]
                    let count = count as f64;
                    out.items.push(MetricSample {
                        temporality,
                        ..sample(format!("{}_count", m.name), kind, l.clone(), t, count)
                    });
                    if let Some(sum) = sum {
                        out.items.push(MetricSample {
                            temporality,
                            ..sample(format!("{}_sum", m.name), kind, l, t, sum)
                        });
                    }
                };
                match &m.data {
                    None => out.reject(|| format!("metric {:?} has no data", m.name)),
                    Some(metric::Data::Gauge(g)) => {
                        number_points(&g.data_points, "gauge", Temporality::Cumulative, &mut out)
                    }
                    Some(metric::Data::Sum(s)) => number_points(
                        &s.data_points,
                        if s.is_monotonic { "counter" } else { "gauge" },
                        temporality(s.aggregation_temporality),
                        &mut out,
                    ),
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let l = labels(&p.attributes);
                            count_and_sum(
                                &mut out,
                                "histogram",
                                temporality(h.aggregation_temporality),
                                l,
                                p.time_unix_nano,
                                p.count,
                                p.sum,
                            );
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let l = labels(&p.attributes);
                            count_and_sum(
                                &mut out,
                                "histogram",
                                temporality(h.aggregation_temporality),
                                l,
                                p.time_unix_nano,
                                p.count,
                                p.sum,
                            );
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &s.data_points {
                            let l = labels(&p.attributes);
                            for q in &p.quantile_values {
                                let mut lq = l.clone();
                                lq.insert("quantile".into(), q.quantile.to_string());
                                out.items.push(sample(
                                    m.name.clone(),
                                    "summary",
                                    lq,
                                    p.time_unix_nano,
                                    q.value,
                                ));
                            }
                            count_and_sum(
                                &mut out,
                                "summary",
                                Temporality::Cumulative,
                                l,
                                p.time_unix_nano,
                                p.count,
                                Some(p.sum),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn invalid_ids_are_rejected_with_a_reason() {
        let good = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "ok".into(),
            ..Default::default()
        };
        let bad = Span {
            trace_id: vec![1; 3],
            span_id: vec![2; 8],
            name: "bad".into(),
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good, bad],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let c = convert_spans(req);
        assert_eq!(c.items.len(), 1);
        assert_eq!(c.items[0].trace_id, "01".repeat(16));
        assert_eq!(c.items[0].service, "unknown_service");
        assert_eq!(c.rejected, 1);
        assert!(c.reason.unwrap_or_default().contains("bad"));
    }

    #[test]
    fn histogram_points_keep_their_aggregation_temporality() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
        };
        let histogram = |t: AggregationTemporality| Metric {
            name: "http.server.request.duration".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 4,
                    sum: Some(0.2),
                    time_unix_nano: 7,
                    ..Default::default()
                }],
                aggregation_temporality: t as i32,
            })),
            ..Default::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        histogram(AggregationTemporality::Delta),
                        histogram(AggregationTemporality::Cumulative),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = convert_metrics(req);
        let kinds: Vec<(String, Temporality)> = out
            .items
            .iter()
            .map(|s| (s.name.clone(), s.temporality))
            .collect();
        let c = "http.server.request.duration_count".to_owned();
        let s = "http.server.request.duration_sum".to_owned();
        assert_eq!(
            kinds,
            [
                (c.clone(), Temporality::Delta),
                (s.clone(), Temporality::Delta),
                (c, Temporality::Cumulative),
                (s, Temporality::Cumulative),
            ]
        );
    }

    #[test]
    fn json_uses_hex_ids() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"GET /x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let req: ExportTraceServiceRequest = serde_json::from_str(json).expect("valid OTLP JSON");
        let c = convert_spans(req);
        assert_eq!(c.items[0].trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(c.items[0].service, "svc");
        assert_eq!(c.items[0].kind, "server");
    }
}
