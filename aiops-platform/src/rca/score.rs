//! Ranking candidate root causes: anomaly, onset order and explanation along the call graph.

use std::collections::BTreeMap;

use super::anomaly::{SeriesChange, change_of};
use super::graph::CallGraph;
use super::series::{MetricKind, MetricSeries, Point};
use super::{Evidence, RankOptions, RankedCause, RcaError};

/// At most this many anomalous candidates take part in the pairwise (victim / explanation)
/// terms, so that a huge graph costs `O(k · (V + E))` at worst; the rest keep their anomaly.
const MAX_PAIRWISE: usize = 256;

/// Per node: its strongest anomaly, already weighted.
#[derive(Debug, Clone)]
struct NodeAnomaly {
    strength: f64,
    onset: f64,
    kind: MetricKind,
    metric: String,
    z: f64,
}

/// Turns a robust z-score into an anomaly strength in `[0, 1)`.
fn strength(z: f64, options: &RankOptions) -> f64 {
    let excess = (z - options.z_threshold).max(0.0);
    1.0 - (-excess / options.z_scale).exp()
}

/// The weight of "`earlier` started no later than `later`" given a tolerance: 1 within one
/// tolerance, falling to 0 at three.
fn no_later(earlier: f64, later: f64, tolerance: f64) -> f64 {
    let gap = earlier - later;
    if gap <= tolerance {
        1.0
    } else {
        (1.0 - (gap - tolerance) / (2.0 * tolerance)).max(0.0)
    }
}

/// How plausible a cause is that started `lead` seconds before the incident: 1 up to `window`,
/// then decaying exponentially with the same scale (an old change rarely explains a new
/// incident).
fn lead_relevance(lead: f64, window: f64) -> f64 {
    if lead <= window || window <= 0.0 {
        1.0
    } else {
        (-(lead - window) / window).exp()
    }
}

/// Median spacing of the timestamps of the given series, the default onset tolerance unit.
fn typical_step<'a>(series: impl Iterator<Item = &'a [Point]>) -> f64 {
    let mut steps: Vec<f64> = Vec::new();
    for points in series {
        let stride = (points.len() / 64).max(1);
        steps.extend(
            points
                .windows(2)
                .step_by(stride)
                .map(|w| w[1].0 - w[0].0)
                .filter(|d| *d > 0.0),
        );
    }
    if steps.is_empty() {
        return 1.0;
    }
    steps.sort_by(f64::total_cmp);
    steps[steps.len() / 2]
}

fn sorted(points: &[Point]) -> std::borrow::Cow<'_, [Point]> {
    if points.is_sorted_by(|a, b| a.0 <= b.0) {
        std::borrow::Cow::Borrowed(points)
    } else {
        let mut v = points.to_vec();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        std::borrow::Cow::Owned(v)
    }
}

/// See [`super::rank`].
pub(crate) fn rank(
    metrics: &MetricSeries,
    graph: &CallGraph,
    target: &str,
    options: &RankOptions,
) -> Result<Vec<RankedCause>, RcaError> {
    if !graph.contains(target) && !metrics.has_node(target) {
        return Err(RcaError::UnknownTarget(target.to_owned()));
    }
    let target_kind = match &options.target_metric {
        Some(m) if metrics.points(target, m).is_none() => {
            return Err(RcaError::UnknownTargetMetric {
                target: target.to_owned(),
                metric: m.clone(),
                known: metrics
                    .metrics_of(target)
                    .map(|(k, _)| k.to_owned())
                    .collect(),
            });
        }
        Some(m) => Some(MetricKind::of(m)),
        None => None,
    };
    let mut candidates: Vec<&str> = graph.dependencies_of(target);
    candidates.push(target);
    candidates.sort_unstable();
    candidates.dedup();

    let step = typical_step(
        candidates
            .iter()
            .flat_map(|c| metrics.metrics_of(c).map(|(_, p)| p)),
    );
    let tolerance = options
        .onset_tolerance
        .unwrap_or(options.tolerance_steps * step);
    let lead_window = options.lead_window_steps * step;

    let mut anomalies: BTreeMap<&str, NodeAnomaly> = BTreeMap::new();
    for &node in &candidates {
        if let Some(a) = node_anomaly(metrics, node, target_kind, options) {
            anomalies.insert(node, a);
        }
    }

    // The incident's own start, when the target shows it: a cause starts shortly before.
    let incident_onset = anomalies
        .get(target)
        .filter(|a| a.strength > 0.0)
        .map(|a| a.onset);

    // The strongest anomalous candidates take part in the pairwise terms.
    let mut anomalous: Vec<(&str, f64)> = anomalies
        .iter()
        .filter(|(_, a)| a.strength > 0.0)
        .map(|(n, a)| (*n, a.strength))
        .collect();
    anomalous.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    anomalous.truncate(MAX_PAIRWISE);

    let mut scored: Vec<RankedCause> = candidates
        .iter()
        .map(|&node| {
            let Some(a) = anomalies.get(node) else {
                return RankedCause::new(node, 0.0, None);
            };
            let mut victim: f64 = 0.0;
            let mut above = 0.0;
            let mut above_later = 0.0;
            if a.strength > 0.0 && anomalous.iter().any(|(n, _)| *n == node) {
                for dep in graph.dependencies_of(node) {
                    if let Some(d) = anomalies.get(dep).filter(|d| d.strength > 0.0) {
                        let v = d.strength
                            * d.kind.explains(a.kind)
                            * no_later(d.onset, a.onset, tolerance);
                        victim = victim.max(v);
                    }
                }
                for up in graph.dependents_of(node) {
                    if let Some(u) = anomalies.get(up).filter(|u| u.strength > 0.0) {
                        above += u.strength;
                        above_later += u.strength
                            * a.kind.explains(u.kind)
                            * no_later(a.onset, u.onset, tolerance);
                    }
                }
            }
            let explained = if above > 0.0 {
                above_later / above
            } else {
                1.0
            };
            let relevance =
                incident_onset.map_or(1.0, |t| lead_relevance(t - a.onset, lead_window));
            let score = a.strength
                * relevance
                * (1.0 - options.victim_weight * victim)
                * (1.0 - options.explain_weight * (1.0 - explained));
            RankedCause::new(
                node,
                score.max(0.0),
                Some(Evidence {
                    metric: a.metric.clone(),
                    onset: a.onset,
                    z: a.z,
                }),
            )
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.node.cmp(&b.node))
    });
    for (i, c) in scored.iter_mut().enumerate() {
        c.rank = i + 1;
    }
    Ok(scored)
}

/// The node's strongest weighted anomaly; its onset is the earliest among its metrics that are
/// at least half as anomalous.
fn node_anomaly(
    metrics: &MetricSeries,
    node: &str,
    target_kind: Option<MetricKind>,
    options: &RankOptions,
) -> Option<NodeAnomaly> {
    let mut found: Vec<(f64, SeriesChange, MetricKind, &str)> = Vec::new();
    for (metric, points) in metrics.metrics_of(node) {
        let kind = MetricKind::of(metric);
        let Some(change) = change_of(&sorted(points), kind, options.since) else {
            continue;
        };
        let weight = target_kind.map_or(1.0, |t| kind.explains(t));
        found.push((strength(change.z, options) * weight, change, kind, metric));
    }
    let best = found
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.3.cmp(a.3)))?;
    let earliest = found
        .iter()
        .filter(|f| f.0 > 0.0 && f.0 >= 0.5 * best.0)
        .map(|f| f.1.onset)
        .fold(best.1.onset, f64::min);
    Some(NodeAnomaly {
        strength: best.0,
        onset: earliest,
        kind: best.2,
        metric: best.3.to_owned(),
        z: best.1.z,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onset_weights() {
        assert_eq!(no_later(10.0, 20.0, 5.0), 1.0);
        assert_eq!(no_later(24.0, 20.0, 5.0), 1.0);
        assert!((no_later(30.0, 20.0, 5.0) - 0.5).abs() < 1e-9);
        assert_eq!(no_later(40.0, 20.0, 5.0), 0.0);
        assert_eq!(lead_relevance(-50.0, 100.0), 1.0);
        assert!((lead_relevance(200.0, 100.0) - (-1.0f64).exp()).abs() < 1e-12);
        let steps = [(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)];
        assert_eq!(typical_step([&steps[..]].into_iter()), 10.0);
    }
}
