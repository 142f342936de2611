//! Root-cause ranking over a call graph (no I/O in the scorer).
//!
//! Given per-node metric series ([`MetricSeries`]), the call graph ([`CallGraph`], `caller →
//! callee`) and the node where an incident shows (the *target*), [`rank`] orders the target
//! and everything it depends on, most likely root cause first. The same function serves the
//! offline `aiops rca` (series and edges read from CSV by [`input`]) and the online platform
//! (series from scraped metrics, edges from spans).
//!
//! # Method
//!
//! 1. **Per series, a change.** For each metric of each candidate: the onset is a rank-based
//!    CUSUM change point in the metric's bad direction (up for latency, errors, CPU; down for
//!    availability; either for traffic and unknown names); its size is the robust z-score
//!    (median shift over 1.4826 · MAD) of the anomalous segment against the baseline before
//!    it. With `since`, the baseline is everything before `since` and onsets are searched after.
//! 2. **Per node, an anomaly** `A ∈ [0, 1)`: `1 − exp(−max(z − z₀, 0) / s)` of its strongest
//!    metric, weighted by how well that metric's kind can explain the target metric's kind
//!    ([`MetricKind::explains`]); its onset is the earliest among its metrics at least half
//!    as anomalous.
//! 3. **Per candidate, a score** = `A · lead · (1 − w_v · victim) · (1 − w_e · (1 − explained))`,
//!    where *victim* is the strongest anomalous dependency that started no later than it
//!    (within a tolerance, default two sampling steps), weighted by kind compatibility — its
//!    own anomaly is then probably inherited — and *explained* is the anomaly-weighted share of
//!    its anomalous dependents (the callers up to the target) that started no earlier than it.
//!    A dependency that degraded first and explains its callers ranks above them. *lead*
//!    discounts a change that started long before the target's own (more than 30 sampling
//!    steps, decaying with that scale): an old change rarely explains a new incident.
//!
//! Candidates are the target and its transitive callees; nodes elsewhere are never ranked.
//! Ties are broken by node name, so the output is deterministic.
//!
//! ```
//! use aiops_platform::rca::{self, CallGraph, MetricSeries, RankOptions};
//! let mut graph = CallGraph::new();
//! graph.add_edge("web", "db");
//! let mut metrics = MetricSeries::new();
//! for i in 0..60 {
//!     let t = f64::from(i) * 10.0;
//!     let jitter = f64::from(i % 3);
//!     let slow = if i >= 40 { 50.0 } else { 0.0 };
//!     metrics.push("db", "latency", t, 5.0 + jitter + slow);
//!     metrics.push("web", "latency", t, 20.0 + jitter + if i >= 41 { slow } else { 0.0 });
//! }
//! let ranked = rca::rank(&metrics, &graph, "web", &RankOptions::default())?;
//! assert_eq!(ranked[0].node, "db");
//! # Ok::<(), rca::RcaError>(())
//! ```

mod anomaly;
pub mod bench;
mod graph;
pub mod input;
mod score;
mod series;

pub use graph::CallGraph;
pub use series::{MetricKind, MetricSeries, Point};

/// Errors of [`rank`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RcaError {
    /// The target is neither in the graph nor in the metrics.
    #[error("unknown target `{0}`: it is neither in the call graph nor in the metrics")]
    UnknownTarget(String),
    /// The target has no series of the requested target metric.
    #[error("target `{target}` has no metric `{metric}` (it has: {})", known.join(", "))]
    UnknownTargetMetric {
        /// The target node.
        target: String,
        /// The requested metric.
        metric: String,
        /// The metrics the target does have.
        known: Vec<String>,
    },
}

/// Settings of [`rank`]; the defaults are the documented, tuned ones.
#[derive(Debug, Clone, PartialEq)]
pub struct RankOptions {
    /// The metric the incident shows on the target (`latency`, `error_rate`, ...): anomalies
    /// of kinds that cannot explain it weigh less. `None`: every kind weighs the same.
    pub target_metric: Option<String>,
    /// Start of the incident window (epoch seconds): the baseline is before it, onsets are
    /// searched after it. `None`: every series finds its own change point.
    pub since: Option<f64>,
    /// How much later than another an onset may be and still count as "no later", in
    /// seconds. `None`: `tolerance_steps` times the median sampling step of the candidates.
    pub onset_tolerance: Option<f64>,
    /// The onset tolerance in sampling steps, when `onset_tolerance` is `None`.
    pub tolerance_steps: f64,
    /// A candidate whose anomaly started more than this many sampling steps before the
    /// target's is discounted, exponentially with the same scale.
    pub lead_window_steps: f64,
    /// Robust z-scores up to this are no anomaly at all.
    pub z_threshold: f64,
    /// Robust z-score units over the threshold for the anomaly to reach `1 − 1/e`.
    pub z_scale: f64,
    /// How much an earlier anomalous dependency discounts a node (`w_v`).
    pub victim_weight: f64,
    /// How much anomalous dependents that started before a node discount it (`w_e`).
    pub explain_weight: f64,
}

impl Default for RankOptions {
    fn default() -> Self {
        Self {
            target_metric: None,
            since: None,
            onset_tolerance: None,
            tolerance_steps: 2.0,
            lead_window_steps: 30.0,
            z_threshold: 3.0,
            z_scale: 4.0,
            victim_weight: 0.9,
            explain_weight: 0.5,
        }
    }
}

impl RankOptions {
    /// Sets the target metric.
    #[must_use]
    pub fn with_target_metric(mut self, metric: impl Into<String>) -> Self {
        self.target_metric = Some(metric.into());
        self
    }

    /// Sets the start of the incident window.
    #[must_use]
    pub fn with_since(mut self, since: f64) -> Self {
        self.since = Some(since);
        self
    }
}

/// Why a node scored as it did: its strongest metric's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The metric whose change weighed most.
    pub metric: String,
    /// When the node's anomaly started (epoch seconds).
    pub onset: f64,
    /// That metric's robust z-score in its bad direction.
    pub z: f64,
}

/// One ranked candidate root cause.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedCause {
    /// 1-based rank, best first.
    pub rank: usize,
    /// The node.
    pub node: String,
    /// Score in `[0, 1)`: higher is more likely the root cause; 0 for a node with no anomaly
    /// or no data.
    pub score: f64,
    /// The node's strongest change, when it has data.
    pub evidence: Option<Evidence>,
}

impl RankedCause {
    fn new(node: &str, score: f64, evidence: Option<Evidence>) -> Self {
        Self {
            rank: 0,
            node: node.to_owned(),
            score,
            evidence,
        }
    }
}

/// Ranks the candidate root causes of an incident at `target`: the target and its transitive
/// callees in `graph`, best first, every candidate listed once (see the module docs for the
/// method). Errors when the target is unknown or lacks `options.target_metric`.
pub fn rank(
    metrics: &MetricSeries,
    graph: &CallGraph,
    target: &str,
    options: &RankOptions,
) -> Result<Vec<RankedCause>, RcaError> {
    score::rank(metrics, graph, target, options)
}

#[cfg(test)]
mod tests;
