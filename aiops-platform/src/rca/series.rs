//! Per-node metric series held in memory: the scorer's input, whoever fills it (a CSV file,
//! scraped metrics, spans).

use std::collections::BTreeMap;

/// One point of a series: epoch seconds (fractions allowed) and a finite value.
pub type Point = (f64, f64);

/// What a metric measures, guessed from its name; it decides which direction is bad and which
/// anomalies can explain which (see [`MetricKind::explains`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// Latency or duration: up is bad.
    Latency,
    /// Errors or failures: up is bad.
    Errors,
    /// Availability or success ratio: down is bad (the same fact as errors, inverted).
    Availability,
    /// Request, call or message rate: a change either way is suspicious, but weak evidence.
    Traffic,
    /// CPU, memory, saturation, queue or pool usage: up is bad.
    Resource,
    /// Anything else: a change either way.
    Other,
}

impl MetricKind {
    /// Classifies a metric name (`latency`, `p99_ms`, `error_rate`, `availability`,
    /// `requests`, `cpu`, ...), case-insensitively.
    #[must_use]
    pub fn of(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
        if has(&["avail", "success", "uptime", "ok_ratio"]) {
            Self::Availability
        } else if has(&["error", "err_", "fail", "5xx", "exception", "fault"]) {
            Self::Errors
        } else if has(&[
            "latency", "duration", "time", "p50", "p90", "p95", "p99", "response", "delay",
        ]) {
            Self::Latency
        } else if has(&[
            "cpu",
            "mem",
            "saturation",
            "util",
            "queue",
            "pool",
            "gc",
            "thread",
            "disk",
            "load",
            "lag",
            "inflight",
            "in_flight",
        ]) {
            Self::Resource
        } else if has(&[
            "request",
            "rps",
            "qps",
            "throughput",
            "calls",
            "count",
            "rate",
            "traffic",
        ]) {
            Self::Traffic
        } else {
            Self::Other
        }
    }

    /// `+1` when up is bad, `-1` when down is bad, `0` when either is.
    #[must_use]
    pub fn bad_direction(self) -> i8 {
        match self {
            Self::Latency | Self::Errors | Self::Resource => 1,
            Self::Availability => -1,
            Self::Traffic | Self::Other => 0,
        }
    }

    /// How much an anomaly of this kind at a callee can explain one of kind `effect` at its
    /// caller, in `[0, 1]`: slow callees make slow callers, failing callees failing ones, a
    /// saturated callee both; a traffic change travels the other way (callers drive it).
    #[must_use]
    pub fn explains(self, effect: Self) -> f64 {
        use MetricKind::{Availability, Errors, Latency, Other, Resource, Traffic};
        let failure = |k| matches!(k, Errors | Availability);
        match (self, effect) {
            (a, b) if a == b => 1.0,
            (a, b) if failure(a) && failure(b) => 1.0,
            (Latency, b) if failure(b) => 0.7,
            (a, Latency) if failure(a) => 0.5,
            (Resource, Latency | Errors | Availability | Traffic) => 0.8,
            (Latency | Errors | Availability, Resource | Traffic) => 0.5,
            (Traffic, _) => 0.3,
            (Other, _) | (_, Other) => 0.6,
            _ => 0.5,
        }
    }
}

/// Metric series keyed by node and metric name, each sorted by time when read.
///
/// ```
/// use aiops_platform::rca::MetricSeries;
/// let mut m = MetricSeries::new();
/// m.push("db", "latency", 10.0, 4.2);
/// m.push("db", "latency", 0.0, 4.0);
/// assert_eq!(m.points("db", "latency").map(<[_]>::len), Some(2));
/// ```
#[derive(Debug, Clone, Default)]
pub struct MetricSeries {
    series: BTreeMap<String, BTreeMap<String, Vec<Point>>>,
    series_count: usize,
    len: usize,
    sorted: bool,
}

impl MetricSeries {
    /// An empty set of series.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one point; non-finite timestamps or values are ignored (a gap).
    pub fn push(&mut self, node: &str, metric: &str, ts: f64, value: f64) {
        if !ts.is_finite() || !value.is_finite() {
            return;
        }
        // Look up by reference first: most rows extend an existing series.
        let metrics = match self.series.get_mut(node) {
            Some(m) => m,
            None => self.series.entry(node.to_owned()).or_default(),
        };
        match metrics.get_mut(metric) {
            Some(points) => points.push((ts, value)),
            None => {
                metrics.insert(metric.to_owned(), vec![(ts, value)]);
                self.series_count += 1;
            }
        }
        self.len += 1;
        self.sorted = false;
    }

    /// Sorts every series by time (stable, so equal timestamps keep their input order).
    pub fn sort(&mut self) {
        if self.sorted {
            return;
        }
        for points in self.series.values_mut().flat_map(BTreeMap::values_mut) {
            if !points.is_sorted_by(|a, b| a.0 <= b.0) {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
        self.sorted = true;
    }

    /// Number of points over all series.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no point at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct `(node, metric)` series.
    #[must_use]
    pub fn series_count(&self) -> usize {
        self.series_count
    }

    /// The points of one series (sorted once [`MetricSeries::sort`] has run).
    #[must_use]
    pub fn points(&self, node: &str, metric: &str) -> Option<&[Point]> {
        self.series.get(node)?.get(metric).map(Vec::as_slice)
    }

    /// Whether any series belongs to `node`.
    #[must_use]
    pub fn has_node(&self, node: &str) -> bool {
        self.metrics_of(node).next().is_some()
    }

    /// The metric names of `node` with their points, in name order.
    pub fn metrics_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = (&'a str, &'a [Point])> {
        self.series
            .get(node)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, p)| (k.as_str(), p.as_slice())))
    }

    /// Every node that has at least one series, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(MetricKind::of("latency"), MetricKind::Latency);
        assert_eq!(MetricKind::of("p99_ms"), MetricKind::Latency);
        assert_eq!(MetricKind::of("error_rate"), MetricKind::Errors);
        assert_eq!(MetricKind::of("availability"), MetricKind::Availability);
        assert_eq!(MetricKind::of("requests"), MetricKind::Traffic);
        assert_eq!(MetricKind::of("cpu"), MetricKind::Resource);
        assert_eq!(MetricKind::of("zzz"), MetricKind::Other);
        assert_eq!(MetricKind::Availability.bad_direction(), -1);
        assert!(MetricKind::Errors.explains(MetricKind::Availability) > 0.9);
    }

    #[test]
    fn sorts_and_lists_per_node() {
        let mut m = MetricSeries::new();
        m.push("b", "x", 2.0, 1.0);
        m.push("a", "y", 1.0, 1.0);
        m.push("a", "x", 3.0, 1.0);
        m.push("a", "x", 1.0, 2.0);
        m.push("a", "x", f64::NAN, 2.0);
        m.sort();
        assert_eq!(m.len(), 4);
        assert_eq!(m.points("a", "x"), Some(&[(1.0, 2.0), (3.0, 1.0)][..]));
        let metrics: Vec<&str> = m.metrics_of("a").map(|(k, _)| k).collect();
        assert_eq!(metrics, ["x", "y"]);
        assert_eq!(m.nodes().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!m.has_node("c"));
    }
}
