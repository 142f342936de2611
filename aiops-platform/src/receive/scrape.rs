//! Prometheus scraping: each target's `/metrics` on an interval, parsed with [`crate::common::exposition`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;

use crate::common::time::{now_nanos, rfc3339};
use crate::store::{MetricSample, Signal, Stats, Store, Temporality};

/// Errors of one scrape.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The request failed.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The target answered with a non-2xx status.
    #[error("status {0}")]
    Status(u16),
    /// The body was larger than allowed.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The exposition text did not parse.
    #[error("invalid exposition text: {0}")]
    Parse(String),
}

/// One scrape target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The service its series are attributed to.
    pub service: String,
    /// Full URL of the metrics endpoint.
    pub url: String,
}

/// The state of one target, for `health`.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeStatus {
    /// Service.
    pub service: String,
    /// URL.
    pub url: String,
    /// Whether the last scrape worked.
    pub up: bool,
    /// Last attempt (RFC 3339).
    pub last_scrape: Option<String>,
    /// Last error, if the last scrape failed.
    pub last_error: Option<String>,
    /// Samples in the last successful scrape.
    pub samples: usize,
    /// Duration of the last scrape in milliseconds.
    pub duration_ms: f64,
}

/// The set of targets (changeable at run time, e.g. by a supervisor) and their status.
#[derive(Debug, Default)]
pub struct Scraper {
    targets: RwLock<Vec<ScrapeTarget>>,
    status: RwLock<HashMap<String, ScrapeStatus>>,
}

/// Largest exposition body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

impl Scraper {
    /// A scraper with initial targets.
    pub fn new(targets: Vec<ScrapeTarget>) -> Self {
        Self {
            targets: RwLock::new(targets),
            status: RwLock::default(),
        }
    }

    /// Replaces the targets.
    pub fn set_targets(&self, targets: Vec<ScrapeTarget>) {
        *self.targets.write() = targets;
    }

    /// Status of every target.
    pub fn statuses(&self) -> Vec<ScrapeStatus> {
        let targets = self.targets.read().clone();
        let status = self.status.read();
        targets
            .into_iter()
            .map(|t| {
                status.get(&t.url).cloned().unwrap_or(ScrapeStatus {
                    service: t.service,
                    url: t.url,
                    up: false,
                    last_scrape: None,
                    last_error: None,
                    samples: 0,
                    duration_ms: 0.0,
                })
            })
            .collect()
    }

    /// Scrapes every target once, concurrently.
    pub async fn scrape_all(
        self: &Arc<Self>,
        client: &reqwest::Client,
        store: &Arc<Store>,
        timeout: Duration,
    ) {
        let targets = self.targets.read().clone();
        let mut set = tokio::task::JoinSet::new();
        for target in targets {
            let (client, store, me) = (client.clone(), store.clone(), self.clone());
            set.spawn(async move {
                let started = Instant::now();
                let result = scrape_one(&client, &target, timeout).await;
                let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                let now = now_nanos();
                let up = result.is_ok();
                let (mut samples, last_error) = match result {
                    Ok(s) => {
                        Stats::add(&store.stats.scrapes_ok, 1);
                        (s, None)
                    }
                    Err(e) => {
                        Stats::add(&store.stats.scrapes_failed, 1);
                        tracing::debug!(url = %target.url, error = %e, "scrape failed");
                        (Vec::new(), Some(e.to_string()))
                    }
                };
                let n = samples.len();
                samples.push(MetricSample {
                    service: target.service.clone(),
                    name: "up".into(),
                    labels: BTreeMap::from([("instance".to_string(), instance(&target.url))]),
                    kind: "gauge",
                    unit: String::new(),
                    source: "scrape",
                    time_unix_nano: now,
                    value: if up { 1.0 } else { 0.0 },
                    temporality: Temporality::Cumulative,
                });
                if up {
                    store.insert_samples(samples, Signal::Scrape);
                } else {
                    // A failed scrape still records `up 0`, without marking the service as seen.
                    let outcome = store.metrics.write().insert(samples, now);
                    Stats::add(&store.stats.points_dropped, outcome.dropped_points);
                }
                me.status.write().insert(
                    target.url.clone(),
                    ScrapeStatus {
                        service: target.service,
                        url: target.url,
                        up,
                        last_scrape: Some(rfc3339(now)),
                        last_error,
                        samples: n,
                        duration_ms,
                    },
                );
            });
        }
        while set.join_next().await.is_some() {}
    }
}

fn instance(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or(url)
        .to_string()
}

async fn scrape_one(
    client: &reqwest::Client,
    target: &ScrapeTarget,
    timeout: Duration,
) -> Result<Vec<MetricSample>, ScrapeError> {
    let mut response = client
        .get(&target.url)
        .header("accept", "text/plain;version=0.0.4")
        .timeout(timeout)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(ScrapeError::TooLarge(MAX_BODY));
        }
    }
    let text = String::from_utf8_lossy(&body);
    parse_exposition(&text, &target.service, &instance(&target.url), now_nanos())
}

/// Samples of a Prometheus text exposition, attributed to `service` with an `instance` label.
pub fn parse_exposition(
    text: &str,
    service: &str,
    instance: &str,
    now: u64,
) -> Result<Vec<MetricSample>, ScrapeError> {
    let samples =
        crate::common::exposition::parse(text).map_err(|e| ScrapeError::Parse(e.to_string()))?;
    Ok(samples
        .into_iter()
        .map(|s| {
            let mut labels = s.labels;
            if let Some(le) = labels.get_mut("le") {
                // One spelling for the infinite bound, whatever the exporter wrote.
                if matches!(le.as_str(), "+Inf" | "Inf" | "inf" | "+inf") {
                    *le = "+Inf".into();
                }
            }
            labels.insert("instance".into(), instance.to_string());
            MetricSample {
                service: service.to_string(),
                name: s.name,
                labels,
                kind: s.kind,
                unit: String::new(),
                source: "scrape",
                time_unix_nano: now,
                value: s.value,
                temporality: Temporality::Cumulative,
            }
        })
        .collect())
}

/// Scrapes all targets every `interval` until the task is aborted.
pub fn spawn(
    scraper: Arc<Scraper>,
    store: Arc<Store>,
    interval: Duration,
    timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().build() {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "cannot build the scrape client; scraping disabled");
                return;
            }
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            scraper.scrape_all(&client, &store, timeout).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_histograms_and_labels() {
        let text = "# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",code=\"200\"} 7\n\
                    # TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 0.5\nlat_count 3\n";
        let samples = parse_exposition(text, "svc", "h:1", 5).expect("valid");
        let c = samples
            .iter()
            .find(|s| s.name == "http_requests_total")
            .expect("counter");
        assert_eq!(c.value, 7.0);
        assert_eq!(c.labels.get("method").map(String::as_str), Some("GET"));
        assert_eq!(c.labels.get("instance").map(String::as_str), Some("h:1"));
        assert!(
            samples.iter().any(|s| s.name == "lat_bucket"
                && s.labels.get("le").map(String::as_str) == Some("+Inf"))
        );
        assert_eq!(instance("http://127.0.0.1:9/metrics"), "127.0.0.1:9");
    }
}

#[cfg(test)]
mod route_label_tests {
    use super::*;

    #[test]
    fn route_templates_with_braces_keep_their_labels() {
        let text = "# TYPE http_server_request_duration_seconds histogram\n\
http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/orders/{id}\",http_response_status_code=\"200\",le=\"0.1\"} 3\n\
http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/orders/{id}\",http_response_status_code=\"200\",le=\"+Inf\"} 4\n\
http_server_request_duration_seconds_sum{http_request_method=\"GET\",http_route=\"/orders/{id}\",http_response_status_code=\"200\"} 0.2\n\
http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/orders/{id}\",http_response_status_code=\"200\"} 4\n";
        let samples = parse_exposition(text, "order", "i1", 1).expect("parses");
        let inf = samples
            .iter()
            .find(|s| {
                s.name == "http_server_request_duration_seconds_bucket"
                    && s.labels.get("le").map(String::as_str) == Some("+Inf")
            })
            .expect("the +Inf bucket");
        assert_eq!(
            inf.labels.get("http_route").map(String::as_str),
            Some("/orders/{id}")
        );
        assert_eq!(
            inf.labels
                .get("http_response_status_code")
                .map(String::as_str),
            Some("200")
        );
        assert_eq!(inf.value, 4.0);
    }
}
