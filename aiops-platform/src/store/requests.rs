//! [`RequestAccounting`]: what each service's requests did, per second, from every telemetry
//! source that reports them — the gateway (what its clients saw), server spans, the scraped
//! OTel-semconv HTTP histogram and the same histogram pushed over OTLP.
//!
//! Each source keeps its own per-second buckets, so a fact reported by two sources is never
//! added twice; detection reads one source per service by [`RequestSource`] precedence (see
//! [`RequestAccounting::preferred_source`]). Cumulative counters (scraped or pushed) become
//! per-interval deltas here, keyed by instance and label set. State is bounded: a fixed number
//! of seconds per series, and capped numbers of services and cumulative series (refusals are
//! counted).

use std::collections::{HashMap, HashSet, VecDeque};

use parking_lot::Mutex;
use serde::Serialize;

use super::SpanRecord;
use super::metrics::{MetricSample, Temporality};

const NS: u64 = 1_000_000_000;
/// Seconds of history kept per service and source (the longest default burn window, 5 min,
/// plus its short window).
pub const HORIZON_SECS: u64 = 330;

/// Upper bounds (ms) of the per-second latency histogram of per-request sources; the last
/// bucket is unbounded.
pub const LATENCY_BOUNDS_MS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0,
    30_000.0,
];

/// The first histogram bucket whose requests are all slower than `ms` (the one after the
/// first bound at or above it).
fn slow_index(ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| *b >= ms)
        .map_or(LATENCY_BOUNDS_MS.len(), |i| i + 1)
}

/// Where a request fact came from. The order is the precedence: the first source with data
/// in the window is the one detection reads for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestSource {
    /// The platform's gateway: what clients saw, including failures the service never saw
    /// (refused connections, no ready instance).
    Gateway,
    /// Server spans: one per request, with its own end time, status and duration.
    Spans,
    /// The scraped `http_server_request_duration_seconds` histogram (per scrape interval).
    Scrape,
    /// The same histogram pushed as OTLP metrics (per export interval).
    Push,
}

impl RequestSource {
    /// Every source, in precedence order.
    pub const ALL: [Self; 4] = [Self::Gateway, Self::Spans, Self::Scrape, Self::Push];
}

/// One second of one service's requests from one source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// The epoch second.
    pub second: u64,
    /// Requests.
    pub total: u64,
    /// Of which failed (5xx, or an error status).
    pub errors: u64,
    /// Sum of latencies (ms) of the requests whose latency is known.
    pub latency_sum_ms: f64,
    /// How many requests that sum covers.
    pub latency_n: u64,
    /// Time of the first observation in this second (ns).
    pub first_at: u64,
    /// Time of the last observation in this second (ns).
    pub last_at: u64,
    /// Time of the first failed request (ns, 0 when none).
    pub first_error_at: u64,
    /// Time of the last failed request (ns, 0 when none).
    pub last_error_at: u64,
    /// Time of the first success after the last failure in this second (ns, 0 when none).
    pub ok_after_error_at: u64,
    /// Requests per latency bucket ([`LATENCY_BOUNDS_MS`], then the rest), for sources that
    /// see each request.
    pub latency_hist: [u32; 16],
    /// Per histogram bucket, the first request's offset into the second (ns; `u32::MAX`
    /// when none): the first slow request's own time.
    pub latency_first: [u32; 16],
    /// The second's latency per quarter (250 ms), so that a step is judged before the
    /// second ends.
    pub quarters: [Quarter; 4],
}

/// A quarter of a second of one service's requests from one source: their latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quarter {
    /// Requests whose latency is known.
    pub n: u32,
    /// The sum of their latencies (ms).
    pub sum_ms: f64,
    /// The first one's offset into the second (ns; `u32::MAX` when none).
    pub first_offset: u32,
}

impl Default for Quarter {
    fn default() -> Self {
        Self {
            n: 0,
            sum_ms: 0.0,
            first_offset: u32::MAX,
        }
    }
}

impl Quarter {
    /// Nanoseconds in a quarter.
    pub const NS: u64 = NS / 4;

    /// The mean latency (ms), when there were requests.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum_ms / f64::from(self.n))
    }
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            second: 0,
            total: 0,
            errors: 0,
            latency_sum_ms: 0.0,
            latency_n: 0,
            first_at: 0,
            last_at: 0,
            first_error_at: 0,
            last_error_at: 0,
            ok_after_error_at: 0,
            latency_hist: [0; 16],
            latency_first: [u32::MAX; 16],
            quarters: [Quarter::default(); 4],
        }
    }
}

impl Bucket {
    /// Requests slower than `ms`, rounded up to the histogram's next bound (requests above
    /// that bound), when the source reports single requests.
    pub fn slower_than(&self, ms: f64) -> u64 {
        self.latency_hist[slow_index(ms)..]
            .iter()
            .map(|n| u64::from(*n))
            .sum()
    }

    /// The first request slower than `ms` (rounded up to the histogram's next bound) in this
    /// second, by its own time, when the source reports single requests.
    pub fn first_slower_than(&self, ms: f64) -> Option<u64> {
        self.latency_first[slow_index(ms)..]
            .iter()
            .filter(|o| **o != u32::MAX)
            .min()
            .map(|o| self.second * NS + u64::from(*o))
    }

    /// Mean latency of the second, when known.
    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.latency_n > 0).then(|| self.latency_sum_ms / self.latency_n as f64)
    }
}

/// Requests, failures and latency over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowCounts {
    /// Requests.
    pub total: u64,
    /// Failed requests.
    pub errors: u64,
    /// Latency sum (ms) of the requests whose latency is known.
    pub latency_sum_ms: f64,
    /// How many requests that sum covers.
    pub latency_n: u64,
    /// Requests slower than the latency objective (per-request sources only).
    pub slow: u64,
}

impl WindowCounts {
    /// Failed share, 0 without requests.
    pub fn error_ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64
        }
    }

    /// Mean latency, when known.
    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.latency_n > 0).then(|| self.latency_sum_ms / self.latency_n as f64)
    }
}

/// Per-second buckets of one service from one source, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    buckets: VecDeque<Bucket>,
    /// Buckets with a failure among those kept (most have none: no scan for them).
    error_seconds: usize,
}

impl Buckets {
    fn bucket(&mut self, at: u64) -> Option<&mut Bucket> {
        let second = at / NS;
        let newest = self.buckets.back().map_or(0, |b| b.second);
        if second + HORIZON_SECS <= newest {
            return None; // older than anything kept
        }
        let pos = self
            .buckets
            .iter()
            .rposition(|b| b.second <= second)
            .map_or(0, |p| p + 1);
        if pos == 0 || self.buckets[pos - 1].second != second {
            self.buckets.insert(
                pos,
                Bucket {
                    second,
                    first_at: at,
                    ..Bucket::default()
                },
            );
        }
        let newest = self.buckets.back().map_or(second, |b| b.second);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.second + HORIZON_SECS <= newest)
        {
            if self.buckets.pop_front().is_some_and(|b| b.errors > 0) {
                self.error_seconds -= 1;
            }
        }
        let idx = self.buckets.iter().rposition(|b| b.second == second)?;
        self.buckets.get_mut(idx)
    }

    /// Records `total` requests at `at`, `errors` of them failed, with a latency sum over
    /// `latency_n` of them.
    pub fn record(
        &mut self,
        at: u64,
        total: u64,
        errors: u64,
        latency_sum_ms: f64,
        latency_n: u64,
    ) {
        let Some(b) = self.bucket(at) else {
            return;
        };
        let first_error = b.errors == 0 && errors > 0;
        b.total += total;
        b.errors += errors;
        b.latency_sum_ms += latency_sum_ms;
        b.latency_n += latency_n;
        if latency_n > 0 {
            let offset = at.saturating_sub(b.second * NS);
            let q = &mut b.quarters[usize::try_from(offset / Quarter::NS).unwrap_or(3).min(3)];
            q.n =
                q.n.saturating_add(u32::try_from(latency_n).unwrap_or(u32::MAX));
            q.sum_ms += latency_sum_ms;
            q.first_offset = q
                .first_offset
                .min(u32::try_from(offset).unwrap_or(u32::MAX - 1));
        }
        b.first_at = b.first_at.min(at);
        b.last_at = b.last_at.max(at);
        if errors > 0 {
            if b.first_error_at == 0 || at < b.first_error_at {
                b.first_error_at = at;
            }
            if at >= b.last_error_at {
                b.last_error_at = at;
                if b.ok_after_error_at <= at {
                    b.ok_after_error_at = 0;
                }
            }
        }
        let ok = total > errors;
        if ok && at > b.last_error_at && (b.ok_after_error_at == 0 || at < b.ok_after_error_at) {
            b.ok_after_error_at = at;
        }
        if first_error {
            self.error_seconds += 1;
        }
    }

    /// Counts one request's latency in its second's histogram.
    pub fn record_latency(&mut self, at: u64, ms: f64) {
        if let Some(b) = self.bucket(at) {
            let i = LATENCY_BOUNDS_MS
                .iter()
                .position(|bound| ms <= *bound)
                .unwrap_or(LATENCY_BOUNDS_MS.len());
            b.latency_hist[i] = b.latency_hist[i].saturating_add(1);
            let offset = u32::try_from(at.saturating_sub(b.second * NS)).unwrap_or(u32::MAX - 1);
            b.latency_first[i] = b.latency_first[i].min(offset);
        }
    }

    /// Like [`Buckets::window`], counting requests slower than `slow_ms` too.
    pub fn window_with_slow(&self, now: u64, secs: u64, slow_ms: f64) -> WindowCounts {
        self.sum(now, secs, Some(slow_ms))
    }

    /// Sums the seconds in `(now − secs, now]`.
    pub fn window(&self, now: u64, secs: u64) -> WindowCounts {
        self.sum(now, secs, None)
    }

    fn sum(&self, now: u64, secs: u64, slow_ms: Option<f64>) -> WindowCounts {
        let now_s = now / NS;
        let mut w = WindowCounts::default();
        for b in self
            .buckets
            .iter()
            .rev()
            .take_while(|b| b.second + secs > now_s)
        {
            w.total += b.total;
            w.errors += b.errors;
            w.latency_sum_ms += b.latency_sum_ms;
            w.latency_n += b.latency_n;
            w.slow += slow_ms.map_or(0, |ms| b.slower_than(ms));
        }
        w
    }

    /// The buckets, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bucket> {
        self.buckets.iter()
    }

    /// The first failed request of the current error episode: the first failure after the
    /// last stretch of at least `quiet_secs` without one.
    pub fn episode_start(&self, quiet_secs: u64) -> Option<u64> {
        if self.error_seconds == 0 {
            return None;
        }
        let mut start = None;
        let mut last_error_second: Option<u64> = None;
        for b in self.buckets.iter().filter(|b| b.errors > 0) {
            let fresh = last_error_second.is_none_or(|l| b.second > l + quiet_secs);
            if fresh {
                start = Some(b.first_error_at);
            }
            last_error_second = Some(b.second);
        }
        start
    }

    /// The newest observation's own time (ns): how far the source has reported.
    pub fn latest_observation(&self) -> Option<u64> {
        self.buckets.back().map(|b| b.last_at)
    }

    /// The last failure and the first success after it (ns), if any.
    pub fn last_error(&self) -> Option<(u64, Option<u64>)> {
        if self.error_seconds == 0 {
            return None;
        }
        let (idx, b) = self
            .buckets
            .iter()
            .enumerate()
            .rev()
            .find(|(_, b)| b.errors > 0)?;
        let ok = (b.ok_after_error_at > 0)
            .then_some(b.ok_after_error_at)
            .or_else(|| {
                self.buckets
                    .iter()
                    .skip(idx + 1)
                    .find(|n| n.total > n.errors)
                    .map(|n| n.first_at)
            });
        Some((b.last_error_at, ok))
    }
}

/// Limits of the accounting.
#[derive(Debug, Clone, Copy)]
pub struct AccountingLimits {
    /// Most services tracked.
    pub max_services: usize,
    /// Most cumulative series (instance × label set) tracked for deltas.
    pub max_cumulative_series: usize,
}

impl Default for AccountingLimits {
    fn default() -> Self {
        Self {
            max_services: 1000,
            max_cumulative_series: 50_000,
        }
    }
}

/// Last cumulative values of one histogram series.
#[derive(Debug, Clone, Copy, Default)]
struct Cumulative {
    count: Option<f64>,
    sum: Option<f64>,
}

#[derive(Debug, Default)]
struct Inner {
    series: HashMap<(String, RequestSource), Buckets>,
    services: HashSet<String>,
    cumulative: HashMap<String, Cumulative>,
    refused_services: u64,
    refused_series: u64,
}

/// Per-second request buckets of every service, per source.
#[derive(Debug, Default)]
pub struct RequestAccounting {
    inner: Mutex<Inner>,
    limits: AccountingLimits,
}

/// The refusal counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountingRefusals {
    /// Facts of services past the service cap.
    pub services: u64,
    /// Cumulative series past their cap.
    pub series: u64,
}

impl RequestAccounting {
    /// An accounting with these limits.
    pub fn new(limits: AccountingLimits) -> Self {
        Self {
            inner: Mutex::default(),
            limits,
        }
    }

    /// Records one request seen at `at` (ns).
    pub fn record_request(
        &self,
        service: &str,
        source: RequestSource,
        at: u64,
        failed: bool,
        latency_ms: Option<f64>,
    ) {
        let mut inner = self.inner.lock();
        if let Some(b) = inner.buckets(service, source, self.limits) {
            b.record(
                at,
                1,
                u64::from(failed),
                latency_ms.unwrap_or(0.0),
                u64::from(latency_ms.is_some()),
            );
            if let Some(ms) = latency_ms {
                b.record_latency(at, ms);
            }
        }
    }

    /// Records server spans (others are ignored): failed when the HTTP status is 5xx or,
    /// without one, when the span status is an error.
    pub fn record_spans(&self, spans: &[SpanRecord]) {
        for s in spans.iter().filter(|s| s.kind == "server") {
            let status = ["http.response.status_code", "http.status_code"]
                .iter()
                .find_map(|k| s.attributes.get(*k))
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            let failed = match status {
                Some(code) => code >= 500,
                None => s.status.code == "error",
            };
            self.record_request(
                &s.service,
                RequestSource::Spans,
                s.end_unix_nano,
                failed,
                Some(s.duration_ms()),
            );
        }
    }

    /// Records the HTTP server histogram among scraped or pushed samples: deltas of its
    /// `_count` and `_sum` per instance and label set, at the sample's time.
    pub fn record_samples(&self, samples: &[MetricSample], source: RequestSource) {
        let mut pairs: HashMap<String, (&MetricSample, Option<f64>, Option<f64>)> = HashMap::new();
        for s in samples {
            let Some((base, part)) = http_histogram_part(&s.name) else {
                continue;
            };
            let key = series_key(s, base);
            let entry = pairs.entry(key).or_insert((s, None, None));
            match part {
                Part::Count => entry.1 = Some(s.value),
                Part::Sum => entry.2 = Some(s.value),
            }
        }
        let mut inner = self.inner.lock();
        for (key, (sample, count, sum)) in pairs {
            // Delta points are already the change since the previous report.
            let change = match sample.temporality {
                Temporality::Delta => count.map(|c| (c, sum)),
                Temporality::Cumulative => inner.delta(&key, count, sum, self.limits),
            };
            let Some((delta_count, delta_sum)) = change else {
                continue;
            };
            if delta_count <= 0.0 {
                continue;
            }
            let failed = status_code(sample).is_some_and(|c| c >= 500);
            let unit_ms = if sample.name.contains("seconds") || sample.unit == "s" {
                1000.0
            } else {
                1.0
            };
            let total = delta_count.round() as u64;
            let (latency_sum, latency_n) = match delta_sum {
                Some(s) if s >= 0.0 => (s * unit_ms, total),
                _ => (0.0, 0),
            };
            if let Some(b) = inner.buckets(&sample.service, source, self.limits) {
                let errors = if failed { total } else { 0 };
                b.record(sample.time_unix_nano, total, errors, latency_sum, latency_n);
            }
        }
    }

    /// The source detection reads for `service`: the first, in precedence order, with
    /// requests in the last `secs` seconds.
    pub fn preferred_source(&self, service: &str, now: u64, secs: u64) -> Option<RequestSource> {
        let inner = self.inner.lock();
        let now_s = now / NS;
        RequestSource::ALL.into_iter().find(|source| {
            inner
                .series
                .get(&(service.to_owned(), *source))
                .is_some_and(|b| {
                    b.buckets
                        .iter()
                        .rev()
                        .find(|x| x.total > 0)
                        .is_some_and(|x| x.second + secs > now_s)
                })
        })
    }

    /// Runs `f` on the buckets of `service` from `source`, under the lock (no copy).
    pub fn with_buckets<R>(
        &self,
        service: &str,
        source: RequestSource,
        f: impl FnOnce(&Buckets) -> R,
    ) -> Option<R> {
        self.inner
            .lock()
            .series
            .get(&(service.to_owned(), source))
            .map(f)
    }

    /// Forgets everything about these services (the registry forgot them): their buckets,
    /// their cumulative series, their place under the service cap.
    pub fn forget(&self, services: &[String]) {
        let gone: HashSet<&str> = services.iter().map(String::as_str).collect();
        let mut inner = self.inner.lock();
        inner.services.retain(|s| !gone.contains(s.as_str()));
        inner.series.retain(|(s, _), _| !gone.contains(s.as_str()));
        let prefixes: Vec<String> = services
            .iter()
            .map(|s| super::unambiguous_key([s.as_str()]))
            .collect();
        inner
            .cumulative
            .retain(|key, _| !prefixes.iter().any(|p| key.starts_with(p.as_str())));
    }

    /// What was refused so far.
    pub fn refusals(&self) -> AccountingRefusals {
        let inner = self.inner.lock();
        AccountingRefusals {
            services: inner.refused_services,
            series: inner.refused_series,
        }
    }
}

impl Inner {
    fn buckets(
        &mut self,
        service: &str,
        source: RequestSource,
        limits: AccountingLimits,
    ) -> Option<&mut Buckets> {
        if !self.services.contains(service) {
            if self.services.len() >= limits.max_services {
                self.refused_services += 1;
                return None;
            }
            self.services.insert(service.to_owned());
        }
        Some(self.series.entry((service.to_owned(), source)).or_default())
    }

    /// The increase of a cumulative count and sum since the last sample (a reset counts
    /// from zero); `None` for the first sample of a series.
    fn delta(
        &mut self,
        key: &str,
        count: Option<f64>,
        sum: Option<f64>,
        limits: AccountingLimits,
    ) -> Option<(f64, Option<f64>)> {
        if !self.cumulative.contains_key(key)
            && self.cumulative.len() >= limits.max_cumulative_series
        {
            self.refused_series += 1;
            return None;
        }
        let last = self.cumulative.entry(key.to_owned()).or_default();
        let count = count?;
        let previous = last.count.replace(count);
        let previous_sum = last.sum;
        if sum.is_some() {
            last.sum = sum;
        }
        let previous = previous?;
        let reset = count < previous;
        let delta_count = if reset { count } else { count - previous };
        let delta_sum = match (sum, previous_sum) {
            (Some(s), _) if reset => Some(s),
            (Some(s), Some(p)) => Some(s - p),
            _ => None,
        };
        Some((delta_count, delta_sum))
    }
}

enum Part {
    Count,
    Sum,
}

/// The OTel-semconv HTTP server duration histogram, as scraped (`http_server_request_
/// duration_seconds_count`) or pushed (`http.server.request.duration_count`, or the older
/// `http.server.duration` in ms): its base name and which part.
fn http_histogram_part(name: &str) -> Option<(&str, Part)> {
    const BASES: [&str; 4] = [
        "http_server_request_duration_seconds",
        "http.server.request.duration",
        "http.server.duration",
        "http_server_duration_milliseconds",
    ];
    BASES.iter().find_map(|base| {
        let rest = name.strip_prefix(base)?;
        match rest {
            "_count" => Some((*base, Part::Count)),
            "_sum" => Some((*base, Part::Sum)),
            _ => None,
        }
    })
}

fn status_code(s: &MetricSample) -> Option<u64> {
    [
        "http_response_status_code",
        "http.response.status_code",
        "http_status_code",
        "http.status_code",
    ]
    .iter()
    .find_map(|k| s.labels.get(*k))
    .and_then(|v| v.parse().ok())
}

/// Service, source, histogram and every label (instance included), so each instance's
/// cumulative series is its own.
/// Unambiguous (length-prefixed parts): crafted labels cannot merge two series.
fn series_key(s: &MetricSample, base: &str) -> String {
    let labels = s.labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    super::unambiguous_key(
        [s.service.as_str(), s.source, base]
            .into_iter()
            .chain(labels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const S: u64 = NS;

    fn copy(a: &RequestAccounting, source: RequestSource) -> Buckets {
        a.with_buckets("svc", source, Clone::clone)
            .unwrap_or_default()
    }

    #[test]
    fn forgotten_services_free_their_place() {
        let a = RequestAccounting::new(AccountingLimits {
            max_services: 1,
            ..AccountingLimits::default()
        });
        a.record_request("old", RequestSource::Spans, S, false, None);
        a.record_request("new", RequestSource::Spans, S, false, None);
        assert_eq!(a.refusals().services, 1);
        a.forget(&["old".to_string()]);
        assert!(
            a.with_buckets("old", RequestSource::Spans, |_| ())
                .is_none()
        );
        a.record_request("new", RequestSource::Spans, S, false, None);
        assert!(
            a.with_buckets("new", RequestSource::Spans, |_| ())
                .is_some()
        );
    }

    #[test]
    fn crafted_labels_do_not_merge_two_histogram_series() {
        let with = |k: &str, v: &str| MetricSample {
            service: "svc".into(),
            name: "http_server_request_duration_seconds_count".into(),
            labels: BTreeMap::from([(k.to_string(), v.to_string())]),
            kind: "counter",
            unit: String::new(),
            source: "scrape",
            time_unix_nano: 0,
            value: 1.0,
            temporality: Temporality::Cumulative,
        };
        // Joined with a separator and `=`, both were `...a=b=c`.
        assert_ne!(
            series_key(&with("a=b", "c"), "h"),
            series_key(&with("a", "b=c"), "h")
        );
        assert_ne!(
            series_key(&with("a", "1\u{1}b=2"), "h"),
            series_key(
                &MetricSample {
                    labels: BTreeMap::from([
                        ("a".to_string(), "1".to_string()),
                        ("b".to_string(), "2".to_string())
                    ]),
                    ..with("a", "1")
                },
                "h"
            )
        );
    }

    #[test]
    fn requests_fall_in_their_second_and_windows_sum_them() {
        let a = RequestAccounting::default();
        for (at, failed) in [
            (10 * S, false),
            (10 * S + 5, true),
            (11 * S, false),
            (14 * S, true),
        ] {
            a.record_request("svc", RequestSource::Spans, at, failed, Some(10.0));
        }
        let b = copy(&a, RequestSource::Spans);
        let w = b.window(14 * S, 5);
        assert_eq!((w.total, w.errors), (4, 2));
        assert_eq!(b.window(14 * S, 1).total, 1);
        assert_eq!(w.mean_latency_ms(), Some(10.0));
        assert_eq!(
            b.episode_start(2),
            Some(14 * S),
            "a gap of 4 s starts a new episode"
        );
        assert_eq!(b.episode_start(10), Some(10 * S + 5));
        assert_eq!(b.last_error(), Some((14 * S, None)));
        assert_eq!(b.window_with_slow(14 * S, 5, 5.0).slow, 4);
        assert_eq!(b.window_with_slow(14 * S, 5, 10.0).slow, 0);
    }

    #[test]
    fn recovery_is_the_first_success_after_the_last_failure() {
        let mut b = Buckets::default();
        b.record(20 * S, 1, 1, 0.0, 0);
        b.record(20 * S + 100, 1, 0, 0.0, 0);
        b.record(20 * S + 50, 1, 1, 0.0, 0); // arrives late, still before the success
        assert_eq!(b.last_error(), Some((20 * S + 50, Some(20 * S + 100))));
        b.record(21 * S, 1, 1, 0.0, 0);
        b.record(22 * S + 7, 1, 0, 0.0, 0);
        assert_eq!(b.last_error(), Some((21 * S, Some(22 * S + 7))));
    }

    #[test]
    fn history_is_bounded() {
        let mut b = Buckets::default();
        for s in 0..1000 {
            b.record(s * S, 1, 0, 0.0, 0);
        }
        assert_eq!(b.iter().count() as u64, HORIZON_SECS);
    }

    fn sample(name: &str, status: &str, instance: &str, t: u64, v: f64) -> MetricSample {
        MetricSample {
            service: "svc".into(),
            name: name.into(),
            labels: BTreeMap::from([
                ("http_response_status_code".to_owned(), status.to_owned()),
                ("instance".to_owned(), instance.to_owned()),
            ]),
            kind: "histogram",
            unit: String::new(),
            source: "scrape",
            time_unix_nano: t,
            value: v,
            temporality: Temporality::Cumulative,
        }
    }

    #[test]
    fn delta_histograms_count_each_report_as_it_is() {
        let a = RequestAccounting::default();
        let delta = |name: &str, status: &str, t: u64, v: f64| MetricSample {
            source: "otlp",
            temporality: Temporality::Delta,
            ..sample(name, status, "a", t, v)
        };
        let c = "http.server.request.duration_count";
        let s = "http.server.request.duration_sum";
        // Every report counts, the first too; equal reports are not a flat counter.
        for t in 1..=3 {
            a.record_samples(
                &[
                    delta(c, "200", t * S, 10.0),
                    delta(s, "200", t * S, 0.5),
                    delta(c, "500", t * S, 2.0),
                ],
                RequestSource::Push,
            );
        }
        let b = copy(&a, RequestSource::Push);
        let w = b.window(3 * S, 10);
        assert_eq!((w.total, w.errors), (36, 6));
    }

    #[test]
    fn cumulative_histograms_become_deltas_per_instance() {
        let a = RequestAccounting::default();
        let c = "http_server_request_duration_seconds_count";
        let s = "http_server_request_duration_seconds_sum";
        // First scrape: a baseline only.
        a.record_samples(
            &[
                sample(c, "200", "a", S, 100.0),
                sample(s, "200", "a", S, 10.0),
            ],
            RequestSource::Scrape,
        );
        assert!(
            a.with_buckets("svc", RequestSource::Scrape, |_| ())
                .is_none()
        );
        a.record_samples(
            &[
                sample(c, "200", "a", 2 * S, 110.0),
                sample(s, "200", "a", 2 * S, 11.0),
                sample(c, "500", "a", 2 * S, 5.0),
                sample(c, "200", "b", 2 * S, 7.0),
            ],
            RequestSource::Scrape,
        );
        a.record_samples(&[sample(c, "500", "a", 3 * S, 9.0)], RequestSource::Scrape);
        let b = copy(&a, RequestSource::Scrape);
        let w = b.window(3 * S, 10);
        assert_eq!(
            (w.total, w.errors),
            (14, 4),
            "10 ok + 4 failed; b's first is a baseline"
        );
        assert_eq!(w.mean_latency_ms(), Some(100.0), "1 s over 10 requests");
        // A counter reset counts from zero.
        a.record_samples(&[sample(c, "200", "a", 4 * S, 3.0)], RequestSource::Scrape);
        let b = copy(&a, RequestSource::Scrape);
        assert_eq!(b.window(4 * S, 1).total, 3);
    }

    #[test]
    fn precedence_picks_one_source_and_caps_hold() {
        let a = RequestAccounting::new(AccountingLimits {
            max_services: 1,
            max_cumulative_series: 10,
        });
        a.record_request("svc", RequestSource::Scrape, 5 * S, false, None);
        assert_eq!(
            a.preferred_source("svc", 5 * S, 30),
            Some(RequestSource::Scrape)
        );
        a.record_request("svc", RequestSource::Spans, 5 * S, false, None);
        assert_eq!(
            a.preferred_source("svc", 5 * S, 30),
            Some(RequestSource::Spans)
        );
        assert_eq!(
            a.preferred_source("svc", 100 * S, 30),
            None,
            "nothing recent"
        );
        a.record_request("other", RequestSource::Spans, 5 * S, false, None);
        assert_eq!(a.refusals().services, 1);
        assert!(
            a.with_buckets("other", RequestSource::Spans, |_| ())
                .is_none()
        );
    }
}
