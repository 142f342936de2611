//! Sentry-compatible ingest: `POST /api/{project_id}/envelope/` and `/api/{project_id}/store/`.
//!
//! Error events become exception groups (by fingerprint, per service); transactions become
//! spans. Other envelope items (sessions, attachments, client reports) are counted and ignored.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::IngestError;
use super::Receivers;
use super::body::{BodyReader, decode_body, first_line, read_body};
use crate::common::time::now_nanos;
use crate::store::{ExceptionEvent, SpanRecord, SpanStatus, Stats};

/// The receivers' state, shared.
type AppState = std::sync::Arc<Receivers>;
use axum::body::Body;

/// A parsed envelope: its header and items.
#[derive(Debug)]
pub struct Envelope {
    /// The envelope header (may carry `event_id`, `dsn`, `sent_at`).
    pub header: Value,
    /// Items in order.
    pub items: Vec<EnvelopeItem>,
}

/// One envelope item.
#[derive(Debug)]
pub struct EnvelopeItem {
    /// Its header (`type`, optional `length`...).
    pub header: Value,
    /// Its payload bytes.
    pub payload: Bytes,
}

impl EnvelopeItem {
    /// The item type (`event`, `transaction`, `session`...).
    pub fn kind(&self) -> &str {
        self.header
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn line_end(data: &[u8], from: usize) -> usize {
    data[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(data.len(), |p| from + p)
}

/// Parses the envelope format: a header line, then items of a header line and a payload
/// (of `length` bytes when given, else up to the next newline).
pub fn parse_envelope(data: &Bytes) -> Result<Envelope, String> {
    let end = line_end(data, 0);
    let header: Value = if data[..end].iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&data[..end]).map_err(|e| format!("invalid envelope header: {e}"))?
    };
    if !header.is_object() {
        return Err("envelope header must be a JSON object".into());
    }
    let mut items = Vec::new();
    let mut pos = (end + 1).min(data.len());
    while pos < data.len() {
        let end = line_end(data, pos);
        let line = &data[pos..end];
        if line.iter().all(u8::is_ascii_whitespace) {
            pos = end + 1;
            continue;
        }
        let item_header: Value = serde_json::from_slice(line)
            .map_err(|e| format!("invalid envelope item header {}: {e}", items.len() + 1))?;
        if !item_header.is_object() {
            return Err(format!(
                "envelope item header {} must be a JSON object",
                items.len() + 1
            ));
        }
        pos = end + 1;
        let payload = match item_header.get("length").and_then(Value::as_u64) {
            Some(len) => {
                let len = usize::try_from(len).map_err(|_| "item length too large".to_string())?;
                let stop = pos
                    .checked_add(len)
                    .filter(|s| *s <= data.len())
                    .ok_or_else(|| {
                        format!(
                            "envelope item {} is shorter than its length {len}",
                            items.len() + 1
                        )
                    })?;
                let p = data.slice(pos..stop);
                pos = stop;
                if data.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
                p
            }
            None if pos >= data.len() => Bytes::new(),
            None => {
                let stop = line_end(data, pos);
                let p = data.slice(pos..stop);
                pos = stop + 1;
                p
            }
        };
        items.push(EnvelopeItem {
            header: item_header,
            payload,
        });
    }
    Ok(Envelope { header, items })
}

/// The `sentry_key` from `X-Sentry-Auth` (or `Authorization: Sentry …`), or the query string.
pub fn sentry_key(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    let from_header = ["x-sentry-auth", "authorization"].iter().find_map(|name| {
        let v = headers.get(*name)?.to_str().ok()?;
        let v = v
            .trim()
            .strip_prefix("Sentry")
            .or_else(|| v.trim().strip_prefix("sentry"))?;
        v.split(',').find_map(|kv| {
            let (k, val) = kv.trim().split_once('=')?;
            (k.trim() == "sentry_key").then(|| val.trim().trim_matches('"').to_string())
        })
    });
    from_header.or_else(|| query.get("sentry_key").cloned())
}

/// The public key of a DSN (`https://KEY@host/PROJECT`).
fn dsn_key(dsn: &str) -> Option<String> {
    let rest = dsn.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    Some(userinfo.split(':').next().unwrap_or(userinfo).to_string())
}

fn check_project(state: &AppState, project: &str) -> Result<(), IngestError> {
    let id: u64 = project
        .parse()
        .map_err(|_| IngestError::BadRequest(format!("project id {project:?} is not a number")))?;
    if !state.sentry_projects.contains(&id) {
        return Err(IngestError::NotFound(format!(
            "unknown Sentry project {id}"
        )));
    }
    Ok(())
}

/// Whether any key is required (`sentry_keys` or `ingest_keys` set).
fn keys_required(state: &AppState) -> bool {
    !(state.sentry_keys.is_empty() && state.ingest_keys.is_empty())
}

fn check_key(state: &AppState, key: Option<&str>) -> Result<(), IngestError> {
    if !keys_required(state) {
        return Ok(());
    }
    let accepted = |k: &str| {
        state
            .sentry_keys
            .iter()
            .chain(&state.ingest_keys)
            .any(|c| crate::common::token::secret_eq(c, k))
    };
    match key {
        None | Some("") => Err(IngestError::Unauthorized(
            "missing sentry_key (X-Sentry-Auth header or sentry_key query parameter)".into(),
        )),
        Some(k) if accepted(k) => Ok(()),
        Some(_) => Err(IngestError::Unauthorized("unknown sentry_key".into())),
    }
}

/// Most bytes read (and decompressed) to find an envelope header's `dsn` when the request
/// names no key in its headers.
const ENVELOPE_HEADER_MAX: usize = 64 * 1024;
/// Longest wait for that first line.
const ENVELOPE_HEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The key of the envelope header's `dsn`, read from the first line of the body only (at
/// most [`ENVELOPE_HEADER_MAX`] bytes, within [`ENVELOPE_HEADER_WAIT`]).
async fn envelope_dsn_key(
    state: &AppState,
    headers: &HeaderMap,
    reader: &mut BodyReader,
) -> Result<Option<String>, IngestError> {
    let max = ENVELOPE_HEADER_MAX.min(state.max_body_bytes);
    let search = async {
        // Decompressing the prefix again is cheap, but not once per one-byte frame.
        let mut tried = None;
        loop {
            let more = reader.read_more().await?;
            let have = reader.buffered().len();
            if !more || have >= max || tried.is_none_or(|t| have >= t + 1024) {
                tried = Some(have);
                if let Some(line) = first_line(headers, reader.buffered(), max) {
                    return Ok::<_, IngestError>(Some(line));
                }
            }
            if !more || have >= max {
                return Ok(None);
            }
        }
    };
    let line = tokio::time::timeout(ENVELOPE_HEADER_WAIT, search)
        .await
        .unwrap_or(Ok(None))?;
    Ok(line
        .and_then(|l| serde_json::from_slice::<Value>(&l).ok())
        .and_then(|h| h.get("dsn").and_then(Value::as_str).and_then(dsn_key)))
}

fn refused(state: &AppState, e: IngestError) -> Response {
    Stats::add(&state.sink.stats().requests_refused, 1);
    tracing::debug!(error = %e, "sentry request refused");
    e.into_response()
}

/// `POST /api/{project_id}/envelope/`.
pub async fn envelope(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Project and key first, from the headers: a forged request is refused unread. Only
    // when the headers name no key is the envelope header's `dsn` read, and no further.
    if let Err(e) = check_project(&state, &project) {
        return refused(&state, e);
    }
    let mut reader = BodyReader::new(body, state.max_body_bytes);
    let key = match sentry_key(&headers, &query) {
        Some(k) => Some(k),
        None if keys_required(&state) => {
            match envelope_dsn_key(&state, &headers, &mut reader).await {
                Ok(k) => k,
                Err(e) => return refused(&state, e),
            }
        }
        None => None,
    };
    if let Err(e) = check_key(&state, key.as_deref()) {
        return refused(&state, e);
    }
    let body = match reader.finish().await {
        Ok(b) => b,
        Err(e) => return refused(&state, e),
    };
    let body = match decode_body(&headers, body, state.max_decompressed_bytes) {
        Ok(b) => b,
        Err(e) => return refused(&state, e),
    };
    let envelope = match parse_envelope(&body) {
        Ok(e) => e,
        Err(m) => return refused(&state, IngestError::BadRequest(m)),
    };
    // Decode every item first so a bad envelope stores nothing.
    let mut events = Vec::new();
    for (i, item) in envelope.items.iter().enumerate() {
        match item.kind() {
            kind @ ("event" | "transaction") => {
                match serde_json::from_slice::<Value>(&item.payload) {
                    Ok(v) if v.is_object() => events.push((kind == "transaction", v)),
                    Ok(_) => {
                        return refused(
                            &state,
                            IngestError::BadRequest(format!(
                                "item {}: event must be a JSON object",
                                i + 1
                            )),
                        );
                    }
                    Err(e) => {
                        return refused(
                            &state,
                            IngestError::BadRequest(format!(
                                "item {}: invalid event JSON: {e}",
                                i + 1
                            )),
                        );
                    }
                }
            }
            _ => Stats::add(&state.sink.stats().sentry_items_ignored, 1),
        }
    }
    let mut id = envelope
        .header
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    for (is_transaction, event) in events {
        if id.is_none() {
            id = event
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        ingest_event(&state, event, is_transaction);
    }
    Json(serde_json::json!({ "id": id })).into_response()
}

/// `POST /api/{project_id}/store/`: one JSON event (old SDKs).
pub async fn store(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = check_project(&state, &project) {
        return refused(&state, e);
    }
    if let Err(e) = check_key(&state, sentry_key(&headers, &query).as_deref()) {
        return refused(&state, e);
    }
    let body = match read_body(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refused(&state, e),
    };
    let body = match decode_body(&headers, body, state.max_decompressed_bytes) {
        Ok(b) => b,
        Err(e) => return refused(&state, e),
    };
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return refused(
                &state,
                IngestError::BadRequest("event must be a JSON object".into()),
            );
        }
        Err(e) => {
            return refused(
                &state,
                IngestError::BadRequest(format!("invalid event JSON: {e}")),
            );
        }
    };
    let id = event
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let is_transaction = event.get("type").and_then(Value::as_str) == Some("transaction");
    ingest_event(&state, event, is_transaction);
    Json(serde_json::json!({ "id": id })).into_response()
}

fn ingest_event(state: &AppState, event: Value, is_transaction: bool) {
    if is_transaction {
        let (spans, rejected) = transaction_spans(&event);
        Stats::add(&state.sink.stats().spans_rejected, rejected);
        Stats::add(&state.sink.stats().transactions_accepted, 1);
        state.sink.insert_spans(spans);
    } else {
        state.sink.record_exception(exception_event(event));
    }
}

fn tag(event: &Value, name: &str) -> Option<String> {
    match event.get("tags")? {
        Value::Object(m) => m.get(name).and_then(Value::as_str).map(str::to_string),
        Value::Array(pairs) => pairs.iter().find_map(|p| {
            let p = p.as_array()?;
            (p.first()?.as_str()? == name).then(|| p.get(1)?.as_str().map(str::to_string))?
        }),
        _ => None,
    }
}

/// The service an event belongs to: its `service` tag, else `server_name`.
pub fn event_service(event: &Value) -> String {
    tag(event, "service")
        .or_else(|| {
            event
                .get("server_name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".into())
}

fn timestamp_nanos(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (secs.is_finite() && secs >= 0.0).then_some((secs * 1e9) as u64)
        }
        Value::String(s) => {
            let s = if s.ends_with('Z') || s.contains('+') {
                s.clone()
            } else {
                format!("{s}Z")
            };
            let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .ok()?;
            u64::try_from(t.unix_timestamp_nanos()).ok()
        }
        _ => None,
    }
}

/// FNV-1a, 64-bit: a stable hash for fingerprints (stored durably, so it must never change).
fn fnv1a(parts: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.as_bytes().iter().chain(std::iter::once(&0x1f)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn exception_values(event: &Value) -> Vec<&Value> {
    match event.get("exception") {
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    }
}

fn message_text(event: &Value) -> Option<String> {
    let from = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("formatted")
                .or_else(|| o.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    };
    event
        .get("logentry")
        .and_then(from)
        .or_else(|| event.get("message").and_then(from))
        .filter(|s| !s.is_empty())
}

/// The grouping components of the default fingerprint: exception type and the function names
/// of the top in-app frames (never line numbers), else the message.
pub fn default_grouping(event: &Value) -> Vec<String> {
    if let Some(exc) = exception_values(event).last() {
        let ty = exc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Error")
            .to_string();
        let frames: Vec<&Value> = exc
            .get("stacktrace")
            .and_then(|s| s.get("frames"))
            .and_then(Value::as_array)
            .map(|f| f.iter().collect())
            .unwrap_or_default();
        let in_app: Vec<&&Value> = frames
            .iter()
            .filter(|f| f.get("in_app").and_then(Value::as_bool) == Some(true))
            .collect();
        let chosen: Vec<&&Value> = if in_app.is_empty() {
            frames.iter().collect()
        } else {
            in_app
        };
        let mut parts = vec![ty];
        // Frames are oldest first: the top of the stack is at the end.
        for f in chosen.iter().rev().take(5) {
            let name = ["function", "module", "filename"]
                .iter()
                .find_map(|k| f.get(*k).and_then(Value::as_str))
                .unwrap_or("?");
            parts.push(name.to_string());
        }
        if parts.len() == 1
            && let Some(v) = exc.get("value").and_then(Value::as_str)
        {
            parts.push(v.to_string());
        }
        return parts;
    }
    vec![message_text(event).unwrap_or_else(|| "<no message>".into())]
}

/// The fingerprint of an event: its own `fingerprint` (with `{{ default }}` expanded), else
/// the default grouping.
pub fn fingerprint(event: &Value) -> String {
    let own: Vec<String> = event
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let is_default = |s: &String| s.trim() == "{{ default }}" || s.trim() == "{{default}}";
    if own.is_empty() || own.iter().all(is_default) {
        return fnv1a(&default_grouping(event));
    }
    let mut parts = Vec::new();
    for p in own {
        if is_default(&p) {
            parts.extend(default_grouping(event));
        } else {
            parts.push(p);
        }
    }
    parts.insert(0, "custom".into());
    fnv1a(&parts)
}

/// An error event as an [`ExceptionEvent`].
pub fn exception_event(event: Value) -> ExceptionEvent {
    let exc = exception_values(&event).last().map(|v| (*v).clone());
    let exception_type = exc
        .as_ref()
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let title = match (
        &exception_type,
        exc.as_ref()
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str),
    ) {
        (Some(t), Some(v)) => format!("{t}: {v}"),
        (Some(t), None) => t.clone(),
        _ => message_text(&event).unwrap_or_else(|| "<no message>".into()),
    };
    let trace_id = tag(&event, "trace_id").or_else(|| {
        event
            .pointer("/contexts/trace/trace_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    ExceptionEvent {
        service: event_service(&event),
        fingerprint: fingerprint(&event),
        title,
        exception_type,
        level: event
            .get("level")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string(),
        time_unix_nano: timestamp_nanos(event.get("timestamp")).unwrap_or_else(now_nanos),
        trace_id,
        event,
    }
}

fn hex_id(v: Option<&Value>, len: usize) -> Option<String> {
    let s = v?.as_str()?.to_ascii_lowercase().replace('-', "");
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0'))
        .then_some(s)
}

fn sentry_status(v: Option<&Value>) -> SpanStatus {
    match v.and_then(Value::as_str) {
        None => SpanStatus {
            code: "unset",
            message: String::new(),
        },
        Some("ok") => SpanStatus {
            code: "ok",
            message: String::new(),
        },
        Some(other) => SpanStatus {
            code: "error",
            message: other.to_string(),
        },
    }
}

/// The spans of a transaction event (the transaction itself and its child spans); returns
/// them with the number rejected for bad ids.
pub fn transaction_spans(event: &Value) -> (Vec<SpanRecord>, u64) {
    let service = event_service(event);
    let mut out = Vec::new();
    let mut rejected = 0;
    let trace = event.pointer("/contexts/trace");
    let trace_id = hex_id(trace.and_then(|t| t.get("trace_id")), 32);
    let root_id = hex_id(trace.and_then(|t| t.get("span_id")), 16);
    let (Some(trace_id), Some(root_id)) = (trace_id, root_id) else {
        return (
            out,
            1 + event
                .get("spans")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len() as u64),
        );
    };
    let start = timestamp_nanos(event.get("start_timestamp")).unwrap_or_else(now_nanos);
    let end = timestamp_nanos(event.get("timestamp"))
        .unwrap_or(start)
        .max(start);
    let mut attributes = serde_json::Map::new();
    if let Some(op) = trace.and_then(|t| t.get("op")) {
        attributes.insert("sentry.op".into(), op.clone());
    }
    out.push(SpanRecord {
        trace_id: trace_id.clone(),
        span_id: root_id,
        parent_span_id: hex_id(trace.and_then(|t| t.get("parent_span_id")), 16),
        service: service.clone(),
        name: event
            .get("transaction")
            .and_then(Value::as_str)
            .unwrap_or("transaction")
            .to_string(),
        kind: "server",
        start_unix_nano: start,
        end_unix_nano: end,
        status: sentry_status(trace.and_then(|t| t.get("status"))),
        attributes,
        events: Vec::new(),
        source: "sentry",
    });
    for span in event
        .get("spans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(span_id) = hex_id(span.get("span_id"), 16) else {
            rejected += 1;
            continue;
        };
        let s = timestamp_nanos(span.get("start_timestamp")).unwrap_or(start);
        let e = timestamp_nanos(span.get("timestamp")).unwrap_or(s).max(s);
        let mut attributes = serde_json::Map::new();
        if let Some(op) = span.get("op") {
            attributes.insert("sentry.op".into(), op.clone());
        }
        out.push(SpanRecord {
            trace_id: hex_id(span.get("trace_id"), 32).unwrap_or_else(|| trace_id.clone()),
            span_id,
            parent_span_id: hex_id(span.get("parent_span_id"), 16),
            service: service.clone(),
            name: span
                .get("description")
                .or_else(|| span.get("op"))
                .and_then(Value::as_str)
                .unwrap_or("span")
                .to_string(),
            kind: "internal",
            start_unix_nano: s,
            end_unix_nano: e,
            status: sentry_status(span.get("status")),
            attributes,
            events: Vec::new(),
            source: "sentry",
        });
    }
    (out, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_with_and_without_length() {
        let raw = Bytes::from_static(
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"attachment\",\"length\":10}\nhello\nwor\n{\"type\":\"event\"}\n{\"message\":\"hi\"}\n",
        );
        let env = parse_envelope(&raw).expect("valid");
        assert_eq!(env.items.len(), 2);
        assert_eq!(&env.items[0].payload[..], b"hello\nwor\n");
        assert_eq!(env.items[1].kind(), "event");
        assert!(
            parse_envelope(&Bytes::from_static(
                b"{}\n{\"type\":\"event\",\"length\":99}\n{}"
            ))
            .is_err()
        );
        assert!(parse_envelope(&Bytes::from_static(b"not json\n")).is_err());
    }

    #[test]
    fn fingerprint_ignores_line_numbers_and_honours_custom() {
        let ev = |line: u64, func: &str| {
            json!({"exception":{"values":[{"type":"PanicError","value":"boom","stacktrace":{"frames":[
                {"function":"std::rt::lang_start","in_app":false,"lineno":1},
                {"function":func,"in_app":true,"lineno":line}]}}]}})
        };
        assert_eq!(
            fingerprint(&ev(10, "order::create")),
            fingerprint(&ev(99, "order::create"))
        );
        assert_ne!(
            fingerprint(&ev(10, "order::create")),
            fingerprint(&ev(10, "order::cancel"))
        );
        let custom = json!({"fingerprint":["db-down"],"message":"x"});
        let custom2 = json!({"fingerprint":["db-down"],"message":"y"});
        assert_eq!(fingerprint(&custom), fingerprint(&custom2));
        let default_fp = json!({"fingerprint":["{{ default }}"],"message":"x"});
        assert_eq!(
            fingerprint(&default_fp),
            fingerprint(&json!({"message":"x"}))
        );
    }

    #[test]
    fn service_from_tag_then_server_name() {
        assert_eq!(
            event_service(&json!({"tags":{"service":"order"},"server_name":"h"})),
            "order"
        );
        assert_eq!(
            event_service(&json!({"tags":[["service","kitchen"]]})),
            "kitchen"
        );
        assert_eq!(event_service(&json!({"server_name":"host1"})), "host1");
    }

    #[test]
    fn auth_header_key() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-sentry-auth",
            "Sentry sentry_version=7, sentry_key=abc, sentry_client=x"
                .parse()
                .expect("valid"),
        );
        assert_eq!(sentry_key(&h, &HashMap::new()).as_deref(), Some("abc"));
        assert_eq!(
            dsn_key("http://pub@127.0.0.1:4318/1").as_deref(),
            Some("pub")
        );
    }
}
