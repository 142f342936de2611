//! HTTP server metrics: request duration and in-flight requests per the OpenTelemetry HTTP
//! semantic conventions.

use std::time::Duration;

use metrics::SharedString;

use crate::telemetry::labels::status_label;
use crate::telemetry::{HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION};

/// A request in flight: counted in `http_server_active_requests` until it is
/// [finished](Self::finish) or dropped (a client gone before the answer).
pub(crate) struct InFlight {
    method: SharedString,
    active: Option<metrics::Gauge>,
}

impl InFlight {
    /// Counts a request with method label `method` as active.
    pub(crate) fn start(method: SharedString) -> Self {
        let active = active_gauge(&method);
        active.increment(1.0);
        Self {
            method,
            active: Some(active),
        }
    }

    /// Records the request's duration (`http_server_request_duration_seconds`, and the OTLP
    /// histogram when metrics are pushed) and ends its count as active.
    pub(crate) fn finish(mut self, route: Option<&str>, status: u16, elapsed: Duration) {
        if let Some(active) = self.active.take() {
            active.decrement(1.0);
        }
        let elapsed = elapsed.as_secs_f64();
        if let Some(otlp) = crate::otel::http_server_duration() {
            let mut attrs = vec![
                opentelemetry::KeyValue::new("http.request.method", self.method.to_string()),
                opentelemetry::KeyValue::new("http.response.status_code", i64::from(status)),
            ];
            if let Some(route) = route {
                attrs.push(opentelemetry::KeyValue::new("http.route", route.to_owned()));
            }
            otlp.record(elapsed, &attrs);
        }
        duration_histogram(&self.method, route, status).record(elapsed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            active.decrement(1.0);
        }
    }
}

thread_local! {
    /// In-flight gauge handles by method label (at most ten): registering the labelled gauge
    /// per request showed up in the profile.
    static ACTIVE: std::cell::RefCell<Vec<(SharedString, metrics::Gauge)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The in-flight gauge of `method`.
fn active_gauge(method: &SharedString) -> metrics::Gauge {
    let cached = ACTIVE.with(|cache| {
        cache
            .borrow()
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, g)| g.clone())
    });
    if let Some(gauge) = cached {
        return gauge;
    }
    let gauge = metrics::gauge!(HTTP_SERVER_ACTIVE, "http_request_method" => method.clone());
    ACTIVE.with(|cache| cache.borrow_mut().push((method.clone(), gauge.clone())));
    gauge
}

type SeriesKey = (SharedString, Option<Box<str>>, u16);

/// Histogram handles by [`series_hash`], a bucket per hash.
type HistogramCache = std::collections::HashMap<
    u64,
    Vec<(SeriesKey, metrics::Histogram)>,
    std::hash::BuildHasherDefault<PassThrough>,
>;

thread_local! {
    /// Histogram handles by (method, route, status), so that a request costs one hash of
    /// three short values instead of building a labelled key and looking it up in the registry.
    static HISTOGRAMS: std::cell::RefCell<HistogramCache> =
        std::cell::RefCell::new(HistogramCache::default());
}

/// The cache's keys are already hashes ([`series_hash`]): used as they are.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Bounds the per-thread cache; routes are templates, so real services stay far below.
const MAX_CACHED_SERIES: usize = 4096;

/// FNV-1a over the three values: the cache is per thread and holds only the service's own
/// route templates, so a keyed hash (SipHash, ~3× the cost here) buys nothing; a collision
/// only lengthens a bucket, whose entries are compared in full.
fn series_hash(method: &str, route: Option<&str>, status: u16) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    method.bytes().for_each(&mut eat);
    eat(0xff);
    if let Some(route) = route {
        route.bytes().for_each(&mut eat);
    }
    eat(0xfe);
    status.to_le_bytes().into_iter().for_each(&mut eat);
    h
}

fn duration_histogram(
    method: &SharedString,
    route: Option<&str>,
    status: u16,
) -> metrics::Histogram {
    let hash = series_hash(method, route, status);
    let cached = HISTOGRAMS.with(|cache| {
        cache.borrow().get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|((m, r, s), _)| *s == status && m == method && r.as_deref() == route)
                .map(|(_, h)| h.clone())
        })
    });
    if let Some(h) = cached {
        return h;
    }
    let status_str = SharedString::from(status_label(status));
    let histogram = match route {
        Some(route) => metrics::histogram!(
            HTTP_SERVER_DURATION,
            "http_request_method" => method.clone(),
            "http_route" => route.to_owned(),
            "http_response_status_code" => status_str,
        ),
        None => metrics::histogram!(
            HTTP_SERVER_DURATION,
            "http_request_method" => method.clone(),
            "http_response_status_code" => status_str,
        ),
    };
    HISTOGRAMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < MAX_CACHED_SERIES {
            cache.entry(hash).or_default().push((
                (method.clone(), route.map(Box::from), status),
                histogram.clone(),
            ));
        }
    });
    histogram
}
