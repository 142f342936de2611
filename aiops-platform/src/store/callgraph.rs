//! [`ServiceGraph`]: which service calls which, learned from spans — a span whose parent
//! belongs to another service is a call from the parent's service to its own — and kept
//! current (each edge remembers when it was last seen). Bounded: at most [`MAX_EDGES`] edges
//! (further ones counted, not kept).

use std::collections::BTreeMap;

use super::SpanRecord;

/// Most edges kept.
pub const MAX_EDGES: usize = 10_000;

/// Spans of one trace scanned at most per learned span.
const MAX_TRACE_SCAN: usize = 2_000;

/// Service-level call edges with their last sighting.
#[derive(Debug, Default)]
pub struct ServiceGraph {
    /// (caller, callee) → last seen (ns).
    edges: BTreeMap<(String, String), u64>,
    refused: u64,
}

impl ServiceGraph {
    /// Records the calls between `span` and the other spans of its trace (`trace`, which may
    /// hold it too): its parent calling it, and it calling its children.
    pub fn learn(&mut self, span: &SpanRecord, trace: &[&SpanRecord]) {
        // A runaway trace is not worth a quadratic scan.
        if trace.len() > MAX_TRACE_SCAN {
            return;
        }
        for other in trace {
            if other.service == span.service {
                continue;
            }
            if span.parent_span_id.as_deref() == Some(other.span_id.as_str()) {
                self.add(&other.service, &span.service, span.end_unix_nano);
            } else if other.parent_span_id.as_deref() == Some(span.span_id.as_str()) {
                self.add(&span.service, &other.service, other.end_unix_nano);
            }
        }
    }

    /// Records a call from `caller` to `callee` seen at `at`.
    pub fn add(&mut self, caller: &str, callee: &str, at: u64) {
        let key = (caller.to_owned(), callee.to_owned());
        if let Some(seen) = self.edges.get_mut(&key) {
            *seen = (*seen).max(at);
        } else if self.edges.len() < MAX_EDGES {
            self.edges.insert(key, at);
        } else {
            self.refused += 1;
        }
    }

    /// Edges seen at or after `since` (ns), as (caller, callee).
    pub fn edges_since(&self, since: u64) -> Vec<(String, String)> {
        self.edges
            .iter()
            .filter(|(_, at)| **at >= since)
            .map(|((a, b), _)| (a.clone(), b.clone()))
            .collect()
    }

    /// Edges refused past the cap.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SpanStatus;

    fn span(service: &str, id: &str, parent: Option<&str>, end: u64) -> SpanRecord {
        SpanRecord {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_owned),
            service: service.into(),
            name: "GET /".into(),
            kind: "server",
            start_unix_nano: 0,
            end_unix_nano: end,
            status: SpanStatus {
                code: "unset",
                message: String::new(),
            },
            attributes: serde_json::Map::new(),
            events: Vec::new(),
            source: "otlp",
        }
    }

    #[test]
    fn calls_are_learned_whichever_span_arrives_first() {
        let mut g = ServiceGraph::default();
        let child = span("db", "c", Some("p"), 5);
        let parent = span("web", "p", None, 9);
        // The child ends (and is exported) first: nothing to link yet.
        g.learn(&child, &[&child]);
        assert!(g.edges_since(0).is_empty());
        // The parent arrives: it calls the child.
        g.learn(&parent, &[&child, &parent]);
        assert_eq!(g.edges_since(0), [("web".to_owned(), "db".to_owned())]);
        // Same service: no edge; old edges filtered by time.
        let inner = span("web", "i", Some("p"), 7);
        g.learn(&inner, &[&child, &parent, &inner]);
        assert_eq!(g.edges_since(0).len(), 1);
        assert!(g.edges_since(6).is_empty());
    }
}
