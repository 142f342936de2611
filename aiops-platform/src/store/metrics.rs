//! Metric series with their recent points, from OTLP pushes and Prometheus scrapes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::common::time::rfc3339;

/// One incoming point of one series.
#[derive(Debug, Clone)]
pub struct MetricSample {
    /// Service it belongs to.
    pub service: String,
    /// Metric name (as sent: OTLP dotted names or Prometheus names).
    pub name: String,
    /// Labels / attributes.
    pub labels: BTreeMap<String, String>,
    /// `gauge`, `counter`, `histogram`, `summary`, `untyped`...
    pub kind: &'static str,
    /// Unit, when known.
    pub unit: String,
    /// `otlp` or `scrape`.
    pub source: &'static str,
    /// When, nanoseconds since the epoch.
    pub time_unix_nano: u64,
    /// The value.
    pub value: f64,
    /// Whether a counter or histogram value is the total since its start or the change
    /// since the previous report (OTLP's aggregation temporality; scrapes are cumulative).
    pub temporality: Temporality,
}

/// OTLP's aggregation temporality of a sum or histogram point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    /// The total since the series started (Prometheus counters, OTLP's default).
    #[default]
    Cumulative,
    /// The change since the previous report.
    Delta,
}

/// One stored point.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricPoint {
    /// When, nanoseconds since the epoch.
    pub time_unix_nano: u64,
    /// The value.
    pub value: f64,
}

/// A series as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    /// Service.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// Unit.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// `otlp` or `scrape`.
    pub source: &'static str,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Time of the latest point (RFC 3339).
    pub last_time: String,
    /// Latest value.
    pub last_value: f64,
    /// Recent points, oldest first.
    pub points: Vec<MetricPoint>,
}

#[derive(Debug)]
struct Series {
    service: String,
    name: String,
    kind: &'static str,
    unit: String,
    source: &'static str,
    labels: BTreeMap<String, String>,
    /// (received at, point), oldest first.
    points: VecDeque<(u64, MetricPoint)>,
    last_received: u64,
    /// Estimated bytes of everything but the points.
    fixed_bytes: usize,
}

/// Estimated bytes per stored point (received-at time, point, queue slot).
const POINT_BYTES: usize = std::mem::size_of::<(u64, MetricPoint)>();

impl Series {
    fn bytes(&self) -> usize {
        self.fixed_bytes + self.points.len() * POINT_BYTES
    }
}

impl MetricSample {
    /// Estimated bytes of the series this sample would start, without its points (what
    /// `max_metric_bytes` counts, and `max_item_bytes` bounds).
    pub fn approx_series_bytes(&self) -> usize {
        // The key holds the same strings again.
        super::size::RECORD_OVERHEAD
            + 2 * (self.service.len()
                + self.name.len()
                + self.unit.len()
                + super::size::labels_bytes(&self.labels))
    }
}

/// What an insert did.
#[derive(Debug, Default, Clone, Copy)]
pub struct InsertOutcome {
    /// Old points dropped from full series.
    pub dropped_points: u64,
    /// Samples refused because the series limit was reached.
    pub refused: u64,
    /// Series evicted, least recently updated first, by the byte budget.
    pub evicted_series: u64,
    /// Points those series held.
    pub evicted_points: u64,
}

/// The latest point of one series, for detectors that read a few named metrics.
#[derive(Debug, Clone)]
pub struct LatestSample {
    /// Service.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The latest point.
    pub point: MetricPoint,
}

/// A metric query.
#[derive(Debug, Default, Clone)]
pub struct MetricQuery<'a> {
    /// Only this service.
    pub service: Option<&'a str>,
    /// Only this metric name.
    pub name: Option<&'a str>,
    /// Skip this many series.
    pub offset: usize,
    /// At most this many series.
    pub limit: usize,
    /// At most this many points per series (the latest).
    pub points: usize,
}

/// All series.
#[derive(Debug)]
pub struct MetricStore {
    max_series: usize,
    max_points: usize,
    max_bytes: usize,
    bytes: usize,
    series: HashMap<String, Series>,
}

/// The identity of a series as one string, unambiguous (length-prefixed parts).
fn series_key(s: &MetricSample) -> String {
    let labels = s.labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    super::unambiguous_key(
        [s.source, s.service.as_str(), s.name.as_str()]
            .into_iter()
            .chain(labels),
    )
}

impl MetricStore {
    /// An empty store: at most `max_series` series of `max_points` points each, and
    /// `max_bytes` estimated bytes in all.
    pub fn new(max_series: usize, max_points: usize, max_bytes: usize) -> Self {
        Self {
            max_series: max_series.max(1),
            max_points: max_points.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            series: HashMap::new(),
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Evicts the least recently updated series until the store is 10 % under its budget
    /// (so a store at its budget does not sort on every insert).
    fn evict_over_budget(&mut self, out: &mut InsertOutcome) {
        if self.bytes <= self.max_bytes {
            return;
        }
        let target = self.max_bytes - self.max_bytes / 10;
        let mut by_age: Vec<(u64, &String)> = self
            .series
            .iter()
            .map(|(k, s)| (s.last_received, k))
            .collect();
        by_age.sort_unstable();
        let mut bytes = self.bytes;
        let mut victims = Vec::new();
        for (_, key) in by_age {
            if bytes <= target {
                break;
            }
            if let Some(s) = self.series.get(key) {
                bytes -= s.bytes();
                victims.push(key.clone());
            }
        }
        for key in victims {
            if let Some(s) = self.series.remove(&key) {
                self.bytes -= s.bytes();
                out.evicted_series += 1;
                out.evicted_points += s.points.len() as u64;
            }
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Appends samples to their series.
    pub fn insert(&mut self, samples: Vec<MetricSample>, now: u64) -> InsertOutcome {
        let mut out = InsertOutcome::default();
        for sample in samples {
            let key = series_key(&sample);
            let point = MetricPoint {
                time_unix_nano: sample.time_unix_nano,
                value: sample.value,
            };
            let series = match self.series.get_mut(&key) {
                Some(s) => s,
                None => {
                    if self.series.len() >= self.max_series {
                        out.refused += 1;
                        continue;
                    }
                    let fixed_bytes = sample.approx_series_bytes();
                    self.bytes += fixed_bytes;
                    self.series.entry(key).or_insert(Series {
                        fixed_bytes,
                        service: sample.service,
                        name: sample.name,
                        kind: sample.kind,
                        unit: sample.unit,
                        source: sample.source,
                        labels: sample.labels,
                        points: VecDeque::new(),
                        last_received: now,
                    })
                }
            };
            series.points.push_back((now, point));
            series.last_received = now;
            if series.points.len() > self.max_points {
                series.points.pop_front();
                out.dropped_points += 1;
            } else {
                self.bytes += POINT_BYTES;
            }
        }
        self.evict_over_budget(&mut out);
        out
    }

    /// Drops points received before `cutoff` and series left empty; returns (points, series).
    pub fn prune_before(&mut self, cutoff: u64) -> (u64, u64) {
        let mut points = 0;
        let mut series = 0;
        let mut freed = 0;
        self.series.retain(|_, s| {
            while s.points.front().is_some_and(|(t, _)| *t < cutoff) {
                s.points.pop_front();
                points += 1;
                freed += POINT_BYTES;
            }
            let keep = !s.points.is_empty();
            if !keep {
                series += 1;
                freed += s.fixed_bytes;
            }
            keep
        });
        self.bytes -= freed;
        (points, series)
    }

    /// The latest point of every series named one of `names` (one pass over the series).
    pub fn latest_of(&self, names: &[&str]) -> Vec<LatestSample> {
        self.series
            .values()
            .filter(|s| names.contains(&s.name.as_str()))
            .filter_map(|s| {
                s.points.back().map(|(_, p)| LatestSample {
                    service: s.service.clone(),
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    point: *p,
                })
            })
            .collect()
    }

    /// Matching series sorted by service, name and labels, with their latest points.
    pub fn query(&self, q: &MetricQuery<'_>) -> (Vec<SeriesView>, usize) {
        let mut matching: Vec<&Series> = self
            .series
            .values()
            .filter(|s| q.service.is_none_or(|x| s.service == x))
            .filter(|s| q.name.is_none_or(|x| s.name == x))
            .collect();
        let total = matching.len();
        matching.sort_by(|a, b| {
            (&a.service, &a.name, &a.labels, a.source)
                .cmp(&(&b.service, &b.name, &b.labels, b.source))
        });
        let views = matching
            .into_iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|s| {
                let skip = s.points.len().saturating_sub(q.points);
                let points: Vec<MetricPoint> =
                    s.points.iter().skip(skip).map(|(_, p)| *p).collect();
                let last = points.last().copied().unwrap_or(MetricPoint {
                    time_unix_nano: 0,
                    value: f64::NAN,
                });
                SeriesView {
                    service: s.service.clone(),
                    name: s.name.clone(),
                    kind: s.kind,
                    unit: s.unit.clone(),
                    source: s.source,
                    labels: s.labels.clone(),
                    last_time: rfc3339(last.time_unix_nano),
                    last_value: last.value,
                    points,
                }
            })
            .collect();
        (views, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, v: f64) -> MetricSample {
        MetricSample {
            service: "s".into(),
            name: name.into(),
            labels: BTreeMap::from([("a".to_string(), "1".to_string())]),
            kind: "gauge",
            unit: String::new(),
            source: "otlp",
            time_unix_nano: 1,
            value: v,
            temporality: Temporality::Cumulative,
        }
    }

    #[test]
    fn points_and_series_are_bounded() {
        let mut m = MetricStore::new(1, 2, usize::MAX);
        let out = m.insert(
            vec![
                sample("x", 1.0),
                sample("x", 2.0),
                sample("x", 3.0),
                sample("y", 1.0),
            ],
            10,
        );
        assert_eq!(out.dropped_points, 1);
        assert_eq!(out.refused, 1);
        let (views, total) = m.query(&MetricQuery {
            limit: 10,
            points: 10,
            ..Default::default()
        });
        assert_eq!(total, 1);
        assert_eq!(views[0].points.len(), 2);
        assert_eq!(views[0].last_value, 3.0);
        assert_eq!(m.prune_before(11), (2, 1));
    }

    #[test]
    fn crafted_labels_cannot_collide_with_other_label_sets() {
        // Two different label sets that made the same key when parts were joined with a
        // separator and `=`: {"a=b": "c"} and {"a": "b=c"}; and one holding the separator.
        let with = |pairs: &[(&str, &str)]| MetricSample {
            labels: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..sample("x", 1.0)
        };
        let pairs: [(MetricSample, MetricSample); 2] = [
            (with(&[("a=b", "c")]), with(&[("a", "b=c")])),
            (
                with(&[("a", "1\u{1f}b=2")]),
                with(&[("a", "1"), ("b", "2")]),
            ),
        ];
        for (one, other) in pairs {
            assert_ne!(series_key(&one), series_key(&other));
            let mut m = MetricStore::new(10, 10, usize::MAX);
            m.insert(vec![one, other], 1);
            assert_eq!(m.len(), 2, "two label sets are two series");
        }
    }

    #[test]
    fn bytes_are_bounded_least_recently_updated_series_evicted_first() {
        let labelled = |name: &str| MetricSample {
            labels: BTreeMap::from([("big".to_string(), "v".repeat(10_000))]),
            ..sample(name, 1.0)
        };
        let mut m = MetricStore::new(1_000, 10, 50_000);
        let mut evicted = 0;
        for (t, name) in ["a", "b", "c", "d"].iter().enumerate() {
            evicted += m.insert(vec![labelled(name)], t as u64).evicted_series;
        }
        assert!(m.bytes() <= 50_000, "{}", m.bytes());
        assert!(evicted >= 1);
        let (views, _) = m.query(&MetricQuery {
            limit: 10,
            points: 10,
            ..Default::default()
        });
        assert!(views.iter().all(|v| v.name != "a"), "the oldest went first");
        assert!(views.iter().any(|v| v.name == "d"));
        m.prune_before(100);
        assert_eq!(m.bytes(), 0);
    }
}
