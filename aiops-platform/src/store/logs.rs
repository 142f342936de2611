//! Log records in arrival order, oldest dropped first.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

/// Normalised log severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// TRACE (OTLP 1–4).
    Trace,
    /// DEBUG (5–8).
    Debug,
    /// INFO (9–12), also the default.
    Info,
    /// WARN (13–16).
    Warn,
    /// ERROR (17–20).
    Error,
    /// FATAL (21–24).
    Fatal,
}

impl Severity {
    /// From an OTLP severity number, falling back to the text.
    pub fn from_otlp(number: i32, text: &str) -> Self {
        match number {
            1..=4 => Self::Trace,
            5..=8 => Self::Debug,
            9..=12 => Self::Info,
            13..=16 => Self::Warn,
            17..=20 => Self::Error,
            21..=24 => Self::Fatal,
            _ => Self::parse(text).unwrap_or(Self::Info),
        }
    }

    /// From a name such as `warn`, `WARNING`, `error` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Some(Self::Trace),
            "debug" => Some(Self::Debug),
            "info" | "information" | "notice" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" | "err" => Some(Self::Error),
            "fatal" | "critical" | "crit" | "panic" => Some(Self::Fatal),
            _ => None,
        }
    }
}

/// One stored log record.
#[derive(Debug, Clone, Serialize)]
pub struct LogRecord {
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// When it happened, nanoseconds since the epoch (observed time when the event time is 0).
    pub time_unix_nano: u64,
    /// Normalised level.
    pub level: Severity,
    /// The severity text as sent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub severity_text: String,
    /// The body as text.
    pub message: String,
    /// The service that produced it.
    pub service: String,
    /// Instrumentation scope (logger / target).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Trace id, when inside a trace.
    pub trace_id: Option<String>,
    /// Span id, when inside a span.
    pub span_id: Option<String>,
    /// Its attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Position for pagination (higher is newer).
    pub seq: u64,
}

impl LogRecord {
    /// Estimated bytes held for this record (what `max_log_bytes` counts).
    pub fn approx_bytes(&self) -> usize {
        super::size::RECORD_OVERHEAD
            + self.timestamp.len()
            + self.severity_text.len()
            + self.message.len()
            + self.service.len()
            + self.target.len()
            + self.trace_id.as_ref().map_or(0, String::len)
            + self.span_id.as_ref().map_or(0, String::len)
            + super::size::map_bytes(&self.attributes)
    }
}

/// What an insert of log records did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogInsert {
    /// Old records dropped by the count limit.
    pub dropped: u64,
    /// Old records evicted by the byte budget.
    pub evicted: u64,
}

/// A log query.
#[derive(Debug, Default, Clone)]
pub struct LogQuery<'a> {
    /// Only this service.
    pub service: Option<&'a str>,
    /// Only this trace.
    pub trace_id: Option<&'a str>,
    /// Only this level or more severe.
    pub min_level: Option<Severity>,
    /// Only records older than this position.
    pub before: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

/// Log records, oldest first.
#[derive(Debug)]
pub struct LogStore {
    max: usize,
    max_bytes: usize,
    bytes: usize,
    /// (received at, estimated bytes, record), oldest first.
    records: VecDeque<(u64, usize, Arc<LogRecord>)>,
    next_seq: u64,
}

impl LogStore {
    /// An empty store keeping at most `max` records and `max_bytes` estimated bytes.
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            max: max.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            records: VecDeque::new(),
            next_seq: 1,
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn pop_front(&mut self) {
        if let Some((_, b, _)) = self.records.pop_front() {
            self.bytes -= b;
        }
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Up to `max` records stored after sequence number `seq`, oldest first (records dropped
    /// in between are skipped: their sequence numbers are gone).
    pub fn since(&self, seq: u64, max: usize) -> Vec<Arc<LogRecord>> {
        let start = self.records.partition_point(|(_, _, r)| r.seq <= seq);
        self.records
            .iter()
            .skip(start)
            .take(max)
            .map(|(_, _, r)| r.clone())
            .collect()
    }

    /// Appends records (each no larger than the byte budget: the caller refuses larger
    /// ones); drops the oldest past the count limit and evicts the oldest past the byte budget.
    pub fn insert(&mut self, logs: Vec<LogRecord>, now: u64) -> LogInsert {
        let mut out = LogInsert::default();
        for mut log in logs {
            log.seq = self.next_seq;
            self.next_seq += 1;
            let bytes = log.approx_bytes();
            self.bytes += bytes;
            self.records.push_back((now, bytes, Arc::new(log)));
            while self.records.len() > self.max {
                self.pop_front();
                out.dropped += 1;
            }
            while self.bytes > self.max_bytes && self.records.len() > 1 {
                self.pop_front();
                out.evicted += 1;
            }
        }
        out
    }

    /// Drops records received before `cutoff`.
    pub fn prune_before(&mut self, cutoff: u64) -> u64 {
        let mut dropped = 0;
        while self.records.front().is_some_and(|(t, _, _)| *t < cutoff) {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Matching records, newest first: at most `q.limit`, and no more than `max_bytes`
    /// estimated bytes (the first record always, so a page is never empty while any
    /// match); the flag says whether the byte cap cut the page short.
    pub fn query(&self, q: &LogQuery<'_>, max_bytes: usize) -> (Vec<Arc<LogRecord>>, bool) {
        let mut bytes = 0usize;
        let mut out = Vec::new();
        let matching = self
            .records
            .iter()
            .rev()
            .filter(|(_, _, r)| q.before.is_none_or(|b| r.seq < b))
            .filter(|(_, _, r)| q.service.is_none_or(|s| r.service == s))
            .filter(|(_, _, r)| q.trace_id.is_none_or(|t| r.trace_id.as_deref() == Some(t)))
            .filter(|(_, _, r)| q.min_level.is_none_or(|l| r.level >= l));
        for (_, b, r) in matching {
            if out.len() >= q.limit {
                break;
            }
            if !out.is_empty() && bytes + b > max_bytes {
                return (out, true);
            }
            bytes += b;
            out.push(r.clone());
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(service: &str, level: Severity) -> LogRecord {
        LogRecord {
            timestamp: String::new(),
            time_unix_nano: 0,
            level,
            severity_text: String::new(),
            message: "m".into(),
            service: service.into(),
            target: String::new(),
            trace_id: None,
            span_id: None,
            attributes: Default::default(),
            seq: 0,
        }
    }

    #[test]
    fn bounded_and_filtered() {
        let mut s = LogStore::new(2, usize::MAX);
        let dropped = s.insert(
            vec![
                log("a", Severity::Info),
                log("a", Severity::Error),
                log("b", Severity::Warn),
            ],
            5,
        );
        assert_eq!(dropped.dropped, 1);
        let q = LogQuery {
            min_level: Some(Severity::Warn),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(s.query(&q, usize::MAX).0.len(), 2);
        let q = LogQuery {
            service: Some("b"),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(s.query(&q, usize::MAX).0.len(), 1);
        assert_eq!(s.prune_before(6), 2);
        assert_eq!(Severity::from_otlp(0, "WARNING"), Severity::Warn);
    }

    #[test]
    fn bytes_are_bounded_oldest_evicted_first_and_pages_capped() {
        let big = |n: usize| LogRecord {
            message: "x".repeat(n),
            ..log("a", Severity::Info)
        };
        let mut s = LogStore::new(1_000_000, 100_000);
        let mut evicted = 0;
        for _ in 0..20 {
            evicted += s.insert(vec![big(30_000)], 1).evicted;
        }
        assert!(s.bytes() <= 100_000, "{} bytes held", s.bytes());
        assert_eq!(s.len(), 3);
        assert_eq!(evicted, 17);
        // The newest are kept.
        assert_eq!(s.since(0, 10)[0].seq, 18);
        let q = LogQuery {
            limit: 20,
            ..Default::default()
        };
        let (page, cut) = s.query(&q, 70_000);
        assert_eq!(page.len(), 2);
        assert!(cut);
        assert_eq!(page[0].seq, 20);
        // One record larger than the cap still makes a page of one.
        let (page, cut) = s.query(&q, 10);
        assert_eq!((page.len(), cut), (1, true));
    }
}
