//! Root causes of a service's incident, online: the call graph learned from spans (edges seen
//! in the last ten minutes) plus the topology's `depends_on`, and each candidate's per-second
//! latency, error ratio and request rate from the same request accounting detection reads, go
//! through [`rca::rank`] — the same code as the offline `aiops rca`.

use crate::incident::RootCause;
use crate::rca::{self, CallGraph, MetricSeries, RankOptions};
use crate::store::{HORIZON_SECS, Store};

const NS: u64 = 1_000_000_000;
/// Call edges older than this are forgotten for ranking.
const EDGE_MEMORY_NS: u64 = 600 * NS;

/// Ranks the candidate root causes of `service`'s incident on `metric` (`latency` or
/// `error_rate`). `None` when the service has no dependency to weigh it against, or no
/// series of that metric.
pub fn rank_causes(
    store: &Store,
    declared: &[(String, String)],
    service: &str,
    metric: &str,
    now: u64,
) -> Option<Vec<RootCause>> {
    let mut graph = CallGraph::new();
    graph.add_node(service);
    for (caller, callee) in store
        .calls
        .read()
        .edges_since(now.saturating_sub(EDGE_MEMORY_NS))
        .iter()
        .chain(declared)
    {
        graph.add_edge(caller, callee);
    }
    let mut candidates: Vec<String> = graph
        .dependencies_of(service)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    candidates.push(service.to_owned());
    let mut series = MetricSeries::new();
    for node in &candidates {
        add_series(store, node, now, &mut series);
    }
    series.sort();
    let options = RankOptions::default().with_target_metric(metric);
    let ranked = rca::rank(&series, &graph, service, &options).ok()?;
    Some(
        ranked
            .into_iter()
            .map(|r| RootCause {
                rank: r.rank,
                node: r.node,
                score: r.score,
                metric: r.evidence.as_ref().map(|e| e.metric.clone()),
                onset: r.evidence.as_ref().map(|e| e.onset),
            })
            .collect(),
    )
}

/// The node's per-second series over the accounting's horizon, from its preferred source.
fn add_series(store: &Store, node: &str, now: u64, series: &mut MetricSeries) {
    let Some(source) = store.requests.preferred_source(node, now, HORIZON_SECS) else {
        return;
    };
    store.requests.with_buckets(node, source, |b| {
        for x in b.iter().filter(|x| x.total > 0 && x.second < now / NS) {
            let t = x.second as f64;
            if let Some(ms) = x.mean_latency_ms() {
                series.push(node, "latency", t, ms);
            }
            series.push(node, "error_rate", t, x.errors as f64 / x.total as f64);
            series.push(node, "requests", t, x.total as f64);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetentionConfig;
    use crate::store::RequestSource;

    #[test]
    fn a_slow_dependency_ranks_above_its_caller() {
        let store = Store::new(RetentionConfig::default(), None);
        store.calls.write().add("web", "db", 1_000 * NS);
        let t0 = 1_000;
        for s in 0..120u64 {
            let at = (t0 + s) * NS;
            let slow = if s >= 100 { 300.0 } else { 0.0 };
            for i in 0..10 {
                let jitter = (i % 3) as f64;
                store.requests.record_request(
                    "db",
                    RequestSource::Spans,
                    at + i,
                    false,
                    Some(5.0 + jitter + slow),
                );
                store.requests.record_request(
                    "web",
                    RequestSource::Spans,
                    at + i,
                    false,
                    Some(20.0 + jitter + slow),
                );
            }
        }
        let ranked = rank_causes(&store, &[], "web", "latency", (t0 + 121) * NS)
            .unwrap_or_else(|| panic!("no ranking"));
        assert_eq!(ranked[0].node, "db", "{ranked:?}");
        assert_eq!(ranked.len(), 2);
        assert!(
            rank_causes(&store, &[], "db", "latency", (t0 + 121) * NS).is_none(),
            "db calls nothing"
        );
    }
}
