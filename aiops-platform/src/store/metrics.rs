//! Metric series with their recent points, from OTLP pushes and Prometheus scrapes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use super::rfc3339;

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
}

/// What an insert did.
#[derive(Debug, Default, Clone, Copy)]
pub struct InsertOutcome {
    /// Old points dropped from full series.
    pub dropped_points: u64,
    /// Samples refused because the series limit was reached.
    pub refused: u64,
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
    series: HashMap<String, Series>,
}

fn series_key(s: &MetricSample) -> String {
    let mut key = String::with_capacity(s.service.len() + s.name.len() + 32);
    key.push_str(s.source);
    key.push('\u{1f}');
    key.push_str(&s.service);
    key.push('\u{1f}');
    key.push_str(&s.name);
    for (k, v) in &s.labels {
        key.push('\u{1f}');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

impl MetricStore {
    /// An empty store.
    pub fn new(max_series: usize, max_points: usize) -> Self {
        Self {
            max_series: max_series.max(1),
            max_points: max_points.max(1),
            series: HashMap::new(),
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
                    self.series.entry(key).or_insert(Series {
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
            }
        }
        out
    }

    /// Drops points received before `cutoff` and series left empty; returns (points, series).
    pub fn prune_before(&mut self, cutoff: u64) -> (u64, u64) {
        let mut points = 0;
        let mut series = 0;
        self.series.retain(|_, s| {
            while s.points.front().is_some_and(|(t, _)| *t < cutoff) {
                s.points.pop_front();
                points += 1;
            }
            let keep = !s.points.is_empty();
            if !keep {
                series += 1;
            }
            keep
        });
        (points, series)
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
        let mut m = MetricStore::new(1, 2);
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
}
