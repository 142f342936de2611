//! Output of supervised instances: stdout JSON lines (and stderr) become log records in the
//! store; error-level lines go through the log template miner, whose new or jumping
//! templates are evidence for the service's incident.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::actuator::LineSink;
use super::{Event, InstanceId};
use crate::logmine::{Evidence as LogEvidence, Level, Miner, RateTracker};
use crate::store::{LogRecord, Severity, Store, now_nanos, rfc3339};

/// Sends instance output to the store and the log miner.
#[derive(Debug)]
pub struct LogCapture {
    store: Arc<Store>,
    events: mpsc::UnboundedSender<Event>,
    miners: Mutex<HashMap<String, (Miner, RateTracker)>>,
}

impl LogCapture {
    /// A capture into `store`, reporting log evidence to `events`.
    pub fn new(store: Arc<Store>, events: mpsc::UnboundedSender<Event>) -> Self {
        Self {
            store,
            events,
            miners: Mutex::default(),
        }
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
        let record = to_record(id, stderr, &line);
        if record.level >= Severity::Error {
            let ts = i64::try_from(record.time_unix_nano / 1_000_000_000).unwrap_or(0);
            let mut miners = self.miners.lock();
            let (miner, rate) = miners
                .entry(id.service.clone())
                .or_insert_with(|| (Miner::new(), RateTracker::new(10)));
            let obs = miner.observe(&record.message);
            if let Some(ev) = rate.observe(ts, &obs, Some(Level::Error)) {
                let template = miner.template(obs.id);
                let detail = match ev {
                    LogEvidence::NewTemplate { .. } => {
                        serde_json::json!({"kind": "new_error_template", "template": template})
                    }
                    LogEvidence::RateJump {
                        count, baseline, ..
                    } => serde_json::json!({
                        "kind": "error_template_rate_jump", "template": template,
                        "count": count, "baseline_per_10s": baseline
                    }),
                };
                let _ = self.events.send(Event::Evidence {
                    service: id.service.clone(),
                    signal: crate::incident::Signal::LogTemplate,
                    instance: Some(id.clone()),
                    detail,
                });
            }
        }
        self.store.insert_logs(vec![record]);
    }
}
