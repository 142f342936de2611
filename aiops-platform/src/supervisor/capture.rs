//! Output of supervised instances: stdout JSON lines (and stderr) become log records in the
//! store, where detection mines error-level ones for new templates (see
//! `detect::templates`).

use std::sync::Arc;

use super::InstanceId;
use super::actuator::LineSink;
use crate::common::time::{now_nanos, rfc3339};
use crate::logmine::Level;
use crate::store::{LogRecord, Severity, Store};

/// Sends instance output to the store (one log record per line, marked with its `stream`).
#[derive(Debug)]
pub struct LogCapture {
    store: Arc<Store>,
}

impl LogCapture {
    /// A capture into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

fn str_field(v: &serde_json::Map<String, serde_json::Value>, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_owned)
}

/// Turns one output line into a log record.
pub fn to_record(id: &InstanceId, stderr: bool, line: &str) -> LogRecord {
    let now = now_nanos();
    let mut attributes = serde_json::Map::new();
    attributes.insert("instance".into(), id.to_string().into());
    attributes.insert(
        "stream".into(),
        if stderr { "stderr" } else { "stdout" }.into(),
    );
    let default_level = if stderr {
        Severity::Warn
    } else {
        Severity::Info
    };
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            json_record(id, map, line, attributes, default_level, now)
        }
        _ => {
            let level = crate::logmine::detect_level(line).map_or(default_level, |l| match l {
                Level::Error => Severity::Error,
                Level::Warn => Severity::Warn,
            });
            LogRecord {
                timestamp: rfc3339(now),
                time_unix_nano: now,
                level,
                severity_text: String::new(),
                message: line.to_owned(),
                service: id.service.clone(),
                target: String::new(),
                trace_id: None,
                span_id: None,
                attributes,
                seq: 0,
            }
        }
    }
}

/// A JSON log line (the chassis's format): contract fields lifted, the rest as attributes.
fn json_record(
    id: &InstanceId,
    mut map: serde_json::Map<String, serde_json::Value>,
    line: &str,
    mut attributes: serde_json::Map<String, serde_json::Value>,
    default_level: Severity,
    now: u64,
) -> LogRecord {
    let level_text = str_field(&map, "level").unwrap_or_default();
    let message = str_field(&map, "message")
        .or_else(|| str_field(&map, "msg"))
        .unwrap_or_else(|| line.to_owned());
    let time_unix_nano = str_field(&map, "timestamp")
        .and_then(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        })
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos()).ok())
        .unwrap_or(now);
    let target = str_field(&map, "target").unwrap_or_default();
    let trace_id = str_field(&map, "trace_id");
    let span_id = str_field(&map, "span_id");
    for k in [
        "level",
        "message",
        "msg",
        "timestamp",
        "target",
        "trace_id",
        "span_id",
        "service",
    ] {
        map.remove(k);
    }
    attributes.extend(map);
    LogRecord {
        timestamp: rfc3339(time_unix_nano),
        time_unix_nano,
        level: Severity::parse(&level_text).unwrap_or(default_level),
        severity_text: level_text,
        message,
        service: id.service.clone(),
        target,
        trace_id,
        span_id,
        attributes,
        seq: 0,
    }
}

impl LineSink for LogCapture {
    fn line(&self, id: &InstanceId, stderr: bool, line: String) {
        // Mined for new error templates by detection, like OTLP logs.
        self.store.insert_logs(vec![to_record(id, stderr, &line)]);
    }
}
