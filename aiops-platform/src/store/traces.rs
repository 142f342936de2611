//! Spans grouped by trace, oldest span dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::common::time::rfc3339;

/// A span event.
#[derive(Debug, Clone, Serialize)]
pub struct SpanEvent {
    /// Event name (e.g. `exception`).
    pub name: String,
    /// When, in nanoseconds since the epoch.
    pub time_unix_nano: u64,
    /// Its attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A span's status.
#[derive(Debug, Clone, Serialize)]
pub struct SpanStatus {
    /// `unset`, `ok` or `error`.
    pub code: &'static str,
    /// The message, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One stored span.
#[derive(Debug, Clone, Serialize)]
pub struct SpanRecord {
    /// Trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Parent span id, if any.
    pub parent_span_id: Option<String>,
    /// The service that produced it.
    pub service: String,
    /// Span name.
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    /// Start, nanoseconds since the epoch.
    pub start_unix_nano: u64,
    /// End, nanoseconds since the epoch.
    pub end_unix_nano: u64,
    /// Its status.
    pub status: SpanStatus,
    /// Its attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Its events.
    pub events: Vec<SpanEvent>,
    /// Where it came from: `otlp` or `sentry`.
    pub source: &'static str,
}

impl SpanRecord {
    /// Estimated bytes held for this span (what `max_span_bytes` counts).
    pub fn approx_bytes(&self) -> usize {
        use super::size::{RECORD_OVERHEAD, map_bytes};
        RECORD_OVERHEAD
            + self.trace_id.len()
            + self.span_id.len()
            + self.parent_span_id.as_ref().map_or(0, String::len)
            + self.service.len()
            + self.name.len()
            + self.status.message.len()
            + map_bytes(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| 64 + e.name.len() + map_bytes(&e.attributes))
                .sum::<usize>()
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }
}

/// One trace in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// Trace id.
    pub trace_id: String,
    /// Name of the root span (or the earliest span when the root is missing).
    pub root_name: String,
    /// Service of that span.
    pub root_service: String,
    /// Every service in the trace.
    pub services: Vec<String>,
    /// Number of spans.
    pub span_count: usize,
    /// Spans with error status.
    pub error_count: usize,
    /// Earliest start.
    pub start_time: String,
    /// Earliest start, nanoseconds since the epoch.
    pub start_unix_nano: u64,
    /// From earliest start to latest end.
    pub duration_ms: f64,
    /// Position for pagination (higher is newer).
    #[serde(skip)]
    pub seq: u64,
}

/// A span with its children.
#[derive(Debug, Clone, Serialize)]
pub struct TraceTreeNode {
    /// The span.
    #[serde(flatten)]
    pub span: SpanRecord,
    /// Start as RFC 3339.
    pub start_time: String,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Child spans, by start time.
    pub children: Vec<TraceTreeNode>,
}

#[derive(Debug, Default)]
struct TraceEntry {
    spans: VecDeque<Arc<SpanRecord>>,
    last_seq: u64,
}

/// What an insert of spans did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanInsert {
    /// Old spans dropped by the count limit.
    pub dropped: u64,
    /// Old spans evicted by the byte budget.
    pub evicted: u64,
}

/// Spans by trace with a global insertion order for retention.
#[derive(Debug)]
pub struct TraceStore {
    max_spans: usize,
    max_bytes: usize,
    bytes: usize,
    traces: HashMap<String, TraceEntry>,
    /// (received at, estimated bytes, trace id) per span, oldest first.
    order: VecDeque<(u64, usize, Arc<str>)>,
    next_seq: u64,
}

impl TraceStore {
    /// An empty store keeping at most `max_spans` spans and `max_bytes` estimated bytes.
    pub fn new(max_spans: usize, max_bytes: usize) -> Self {
        Self {
            max_spans: max_spans.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            traces: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 1,
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of spans held.
    pub fn span_count(&self) -> usize {
        self.order.len()
    }

    /// Number of traces held.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// Appends spans (each no larger than the byte budget: the caller refuses larger ones);
    /// drops the oldest past the count limit and evicts the oldest past the byte budget.
    pub fn insert(&mut self, spans: Vec<SpanRecord>, now: u64) -> SpanInsert {
        let mut out = SpanInsert::default();
        for span in spans {
            let seq = self.next_seq;
            self.next_seq += 1;
            let bytes = span.approx_bytes();
            let id: Arc<str> = Arc::from(span.trace_id.as_str());
            let entry = self.traces.entry(span.trace_id.clone()).or_default();
            entry.spans.push_back(Arc::new(span));
            entry.last_seq = seq;
            self.order.push_back((now, bytes, id));
            self.bytes += bytes;
            while self.order.len() > self.max_spans {
                self.pop_oldest();
                out.dropped += 1;
            }
            while self.bytes > self.max_bytes && self.order.len() > 1 {
                self.pop_oldest();
                out.evicted += 1;
            }
        }
        out
    }

    fn pop_oldest(&mut self) {
        if let Some((_, bytes, id)) = self.order.pop_front() {
            self.bytes -= bytes;
            self.drop_front_of(&id);
        }
    }

    fn drop_front_of(&mut self, id: &str) {
        if let Some(entry) = self.traces.get_mut(id) {
            entry.spans.pop_front();
            if entry.spans.is_empty() {
                self.traces.remove(id);
            }
        }
    }

    /// Drops spans received before `cutoff`; returns how many.
    pub fn prune_before(&mut self, cutoff: u64) -> u64 {
        let mut dropped = 0;
        while self.order.front().is_some_and(|(t, _, _)| *t < cutoff) {
            self.pop_oldest();
            dropped += 1;
        }
        dropped
    }

    /// Trace summaries, newest first, optionally only those touching `service`, only those
    /// older than `before` (a cursor), at most `limit`.
    pub fn list(
        &self,
        service: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Vec<TraceSummary> {
        let mut entries: Vec<(&String, &TraceEntry)> = self
            .traces
            .iter()
            .filter(|(_, e)| before.is_none_or(|b| e.last_seq < b))
            .filter(|(_, e)| service.is_none_or(|s| e.spans.iter().any(|sp| sp.service == s)))
            .collect();
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.1.last_seq));
        entries
            .into_iter()
            .take(limit)
            .map(|(id, e)| summarize(id, e))
            .collect()
    }

    /// Runs `f` on the spans of a trace (no copy).
    pub fn with_trace(&self, trace_id: &str, f: impl FnOnce(&[&SpanRecord])) {
        if let Some(e) = self.traces.get(trace_id) {
            let spans: Vec<&SpanRecord> = e.spans.iter().map(|s| &**s).collect();
            f(&spans);
        }
    }

    /// The spans of a trace, cloned, earliest received first, up to `max_bytes` estimated
    /// bytes (the first always), with the trace's span count.
    pub fn spans_within(
        &self,
        trace_id: &str,
        max_bytes: usize,
    ) -> Option<(Vec<SpanRecord>, usize)> {
        let e = self.traces.get(trace_id)?;
        let mut used = 0usize;
        let mut out = Vec::new();
        for s in &e.spans {
            let b = s.approx_bytes();
            if !out.is_empty() && used + b > max_bytes {
                break;
            }
            used += b;
            out.push((**s).clone());
        }
        Some((out, e.spans.len()))
    }

    /// All spans of a trace, cloned.
    pub fn spans(&self, trace_id: &str) -> Option<Vec<SpanRecord>> {
        self.traces
            .get(trace_id)
            .map(|e| e.spans.iter().map(|s| (**s).clone()).collect())
    }
}

fn summarize(id: &str, e: &TraceEntry) -> TraceSummary {
    let ids: std::collections::HashSet<&str> = e.spans.iter().map(|s| s.span_id.as_str()).collect();
    let is_root = |s: &SpanRecord| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p));
    let root = e
        .spans
        .iter()
        .filter(|s| is_root(s))
        .min_by_key(|s| (s.parent_span_id.is_some(), s.start_unix_nano))
        .or_else(|| e.spans.front());
    let start = e.spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let end = e
        .spans
        .iter()
        .map(|s| s.end_unix_nano)
        .max()
        .unwrap_or(start);
    let mut services: Vec<String> = Vec::new();
    for s in &e.spans {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
    }
    TraceSummary {
        trace_id: id.to_string(),
        root_name: root.map(|r| r.name.clone()).unwrap_or_default(),
        root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
        services,
        span_count: e.spans.len(),
        error_count: e.spans.iter().filter(|s| s.status.code == "error").count(),
        start_time: rfc3339(start),
        start_unix_nano: start,
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        seq: e.last_seq,
    }
}

/// Builds the span tree: roots are spans whose parent is absent from the trace.
pub fn build_tree(mut spans: Vec<SpanRecord>) -> Vec<TraceTreeNode> {
    spans.sort_by_key(|s| s.start_unix_nano);
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut children: HashMap<String, Vec<SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id.clone() {
            Some(p) if ids.contains(&p) && p != span.span_id => {
                children.entry(p).or_default().push(span)
            }
            _ => roots.push(span),
        }
    }
    fn attach(
        span: SpanRecord,
        children: &mut HashMap<String, Vec<SpanRecord>>,
        depth: usize,
    ) -> TraceTreeNode {
        let kids = if depth < 256 {
            children.remove(&span.span_id).unwrap_or_default()
        } else {
            Vec::new()
        };
        TraceTreeNode {
            start_time: rfc3339(span.start_unix_nano),
            duration_ms: span.duration_ms(),
            children: kids
                .into_iter()
                .map(|k| attach(k, children, depth + 1))
                .collect(),
            span,
        }
    }
    let mut tree: Vec<TraceTreeNode> = roots
        .into_iter()
        .map(|r| attach(r, &mut children, 0))
        .collect();
    // Cycles (a -> b -> a) leave spans unattached: show them as roots rather than lose them.
    let leftovers: Vec<SpanRecord> = children.into_values().flatten().collect();
    for span in leftovers {
        tree.push(TraceTreeNode {
            start_time: rfc3339(span.start_unix_nano),
            duration_ms: span.duration_ms(),
            children: Vec::new(),
            span,
        });
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: Option<&str>, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            service: "svc".into(),
            name: format!("op-{id}"),
            kind: "server",
            start_unix_nano: start,
            end_unix_nano: start + 10,
            status: SpanStatus {
                code: "unset",
                message: String::new(),
            },
            attributes: Default::default(),
            events: vec![],
            source: "otlp",
        }
    }

    #[test]
    fn retention_drops_oldest_span_first() {
        let mut store = TraceStore::new(3, usize::MAX);
        let dropped = store.insert(
            vec![
                span("t1", "a", None, 1),
                span("t1", "b", Some("a"), 2),
                span("t2", "c", None, 3),
                span("t2", "d", Some("c"), 4),
            ],
            0,
        );
        assert_eq!(dropped.dropped, 1);
        assert_eq!(store.span_count(), 3);
        let t1 = store.spans("t1").expect("t1 kept");
        assert_eq!(t1.len(), 1);
        assert_eq!(t1[0].span_id, "b");
        assert_eq!(store.list(None, None, 10)[0].trace_id, "t2");
    }

    #[test]
    fn bytes_are_bounded_oldest_span_evicted_first() {
        let big = |trace: &str, id: &str| SpanRecord {
            name: "n".repeat(10_000),
            ..span(trace, id, None, 1)
        };
        let mut store = TraceStore::new(1_000, 25_000);
        let out = store.insert(
            vec![
                big("t1", "a"),
                big("t2", "b"),
                big("t2", "c"),
                big("t3", "d"),
            ],
            0,
        );
        assert_eq!(out.evicted, 2);
        assert!(store.bytes() <= 25_000);
        assert!(store.spans("t1").is_none(), "the oldest trace went first");
        assert_eq!(store.spans("t2").map(|s| s.len()), Some(1));
        store.prune_before(1);
        assert_eq!((store.bytes(), store.span_count()), (0, 0));
    }

    #[test]
    fn tree_nests_children_and_survives_cycles() {
        let tree = build_tree(vec![
            span("t", "b", Some("a"), 2),
            span("t", "a", None, 1),
            span("t", "c", Some("b"), 3),
        ]);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].children[0].children[0].span.span_id, "c");
        let tree = build_tree(vec![
            span("t", "x", Some("y"), 1),
            span("t", "y", Some("x"), 2),
        ]);
        assert_eq!(tree.len(), 2);
    }
}
