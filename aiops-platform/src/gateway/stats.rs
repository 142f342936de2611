//! What clients see through the gateway, per service: per-second buckets of requests, 5xx and
//! latencies (for the error-rate and latency detectors), and counters for `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Seconds of buckets kept.
const KEEP_SECS: u64 = 300;
/// Latency samples kept per bucket.
const SAMPLES_PER_BUCKET: usize = 256;

#[derive(Debug, Default, Clone)]
struct Bucket {
    sec: u64,
    total: u64,
    errors: u64,
    latencies_ms: Vec<f64>,
}

/// One service's observations.
#[derive(Debug, Default)]
struct ServiceWindow {
    buckets: VecDeque<Bucket>,
    /// First 5xx of the current burst (after at least `quiet` without one).
    burst_start: Option<u64>,
    last_error: Option<u64>,
    first_ok_after_error: Option<u64>,
    by_class: BTreeMap<&'static str, u64>,
    duration_sum_secs: f64,
    retries: u64,
    no_instance: u64,
}

/// A window summary for the detectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowSummary {
    /// Requests.
    pub total: u64,
    /// 5xx answers (and gateway failures).
    pub errors: u64,
}

impl WindowSummary {
    /// The 5xx share.
    pub fn error_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64
        }
    }
}

/// Error-burst times for the detector.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorTimes {
    /// First 5xx of the current burst.
    pub burst_start: Option<u64>,
    /// Last 5xx.
    pub last_error: Option<u64>,
    /// First success after the last 5xx.
    pub first_ok_after_error: Option<u64>,
}

/// Observations of all services.
#[derive(Debug, Default)]
pub struct RequestStats {
    services: Mutex<BTreeMap<String, ServiceWindow>>,
    /// What the gateway's listener did (connections accepted, refused, timed out).
    pub listener: std::sync::Arc<aiods_serve::ListenerStats>,
    /// Requests answered 503 at once: `max_concurrent_requests` were in flight.
    shed: AtomicU64,
    /// Requests answered 408: the body did not arrive within `body_read_timeout_ms`.
    body_timeouts: AtomicU64,
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl RequestStats {
    /// Records one answer (`status` as the client saw it) at `at` (ns since the epoch).
    pub fn record(&self, service: &str, status: u16, latency_ms: f64, at: u64, quiet_ns: u64) {
        let mut all = self.services.lock();
        let w = all.entry(service.to_owned()).or_default();
        let sec = at / 1_000_000_000;
        if w.buckets.back().is_none_or(|b| b.sec < sec) {
            w.buckets.push_back(Bucket {
                sec,
                ..Bucket::default()
            });
            while w.buckets.front().is_some_and(|b| b.sec + KEEP_SECS < sec) {
                w.buckets.pop_front();
            }
        }
        let error = status >= 500;
        if let Some(b) = w.buckets.back_mut() {
            b.total += 1;
            if error {
                b.errors += 1;
            } else if b.latencies_ms.len() < SAMPLES_PER_BUCKET {
                b.latencies_ms.push(latency_ms);
            }
        }
        if error {
            if w.last_error.is_none_or(|l| at.saturating_sub(l) > quiet_ns) {
                w.burst_start = Some(at);
            }
            w.last_error = Some(at);
            w.first_ok_after_error = None;
        } else if w.last_error.is_some() && w.first_ok_after_error.is_none() {
            w.first_ok_after_error = Some(at);
        }
        *w.by_class.entry(class(status)).or_default() += 1;
        w.duration_sum_secs += latency_ms / 1000.0;
    }

    /// Counts a retry on another attempt.
    pub fn retried(&self, service: &str) {
        self.services
            .lock()
            .entry(service.to_owned())
            .or_default()
            .retries += 1;
    }

    /// Counts a request that found no ready instance within the hold time.
    pub fn no_instance(&self, service: &str) {
        self.services
            .lock()
            .entry(service.to_owned())
            .or_default()
            .no_instance += 1;
    }

    /// Services with observations.
    pub fn services(&self) -> Vec<String> {
        self.services.lock().keys().cloned().collect()
    }

    /// Requests and errors over the last `secs` seconds before `now`.
    pub fn window(&self, service: &str, now: u64, secs: u64) -> WindowSummary {
        let all = self.services.lock();
        let Some(w) = all.get(service) else {
            return WindowSummary::default();
        };
        let from = (now / 1_000_000_000).saturating_sub(secs);
        let mut s = WindowSummary::default();
        for b in w.buckets.iter().rev().take_while(|b| b.sec > from) {
            s.total += b.total;
            s.errors += b.errors;
        }
        s
    }

    /// Error burst times.
    pub fn error_times(&self, service: &str) -> ErrorTimes {
        let all = self.services.lock();
        all.get(service)
            .map(|w| ErrorTimes {
                burst_start: w.burst_start,
                last_error: w.last_error,
                first_ok_after_error: w.first_ok_after_error,
            })
            .unwrap_or_default()
    }

    /// Successful-request latencies: those of the last `recent_secs`, and per-second medians
    /// of the `baseline_secs` before them.
    pub fn latencies(
        &self,
        service: &str,
        now: u64,
        recent_secs: u64,
        baseline_secs: u64,
    ) -> (Vec<f64>, Vec<f64>) {
        let all = self.services.lock();
        let Some(w) = all.get(service) else {
            return (Vec::new(), Vec::new());
        };
        let sec = now / 1_000_000_000;
        let split = sec.saturating_sub(recent_secs);
        let oldest = split.saturating_sub(baseline_secs);
        let mut recent = Vec::new();
        let mut medians = Vec::new();
        for b in &w.buckets {
            if b.sec > split {
                recent.extend_from_slice(&b.latencies_ms);
            } else if b.sec > oldest && !b.latencies_ms.is_empty() {
                medians.push(median(b.latencies_ms.clone()));
            }
        }
        (recent, medians)
    }

    /// Counts a request shed by the concurrency cap.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request whose body did not arrive in time.
    pub fn body_timed_out(&self) {
        self.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text of the gateway counters.
    pub fn render(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "aiops_gateway_shed_total",
                "requests answered 503 at once: max_concurrent_requests were in flight",
                &self.shed,
            ),
            (
                "aiops_gateway_body_timeouts_total",
                "requests answered 408: the body did not arrive within body_read_timeout_ms",
                &self.body_timeouts,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let all = self.services.lock();
        use crate::common::exposition::write_family;
        write_family(
            out,
            "aiops_gateway_requests_total",
            "counter",
            "Requests answered through the gateway, by service and status class.",
        );
        for (service, w) in all.iter() {
            for (class, n) in &w.by_class {
                let _ = writeln!(
                    out,
                    "aiops_gateway_requests_total{{service=\"{service}\",status_class=\"{class}\"}} {n}"
                );
            }
        }
        // A counter of seconds (like `process_cpu_seconds_total`): `_sum` belongs to histograms.
        write_family(
            out,
            "aiops_gateway_request_duration_seconds_total",
            "counter",
            "Seconds spent answering requests through the gateway, by service.",
        );
        for (service, w) in all.iter() {
            let _ = writeln!(
                out,
                "aiops_gateway_request_duration_seconds_total{{service=\"{service}\"}} {}",
                w.duration_sum_secs
            );
        }
        write_family(
            out,
            "aiops_gateway_retries_total",
            "counter",
            "Requests the gateway retried on another attempt, by service.",
        );
        for (service, w) in all.iter() {
            let _ = writeln!(
                out,
                "aiops_gateway_retries_total{{service=\"{service}\"}} {}",
                w.retries
            );
        }
        write_family(
            out,
            "aiops_gateway_no_instance_total",
            "counter",
            "Requests that found no ready instance within the hold time, by service.",
        );
        for (service, w) in all.iter() {
            let _ = writeln!(
                out,
                "aiops_gateway_no_instance_total{{service=\"{service}\"}} {}",
                w.no_instance
            );
        }
    }
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_error_times() {
        let s = RequestStats::default();
        let t = 1_000 * 1_000_000_000u64;
        let q = 2_000_000_000;
        for i in 0..10 {
            s.record(
                "a",
                if i % 5 == 0 { 500 } else { 200 },
                1.0,
                t + i * 1000,
                q,
            );
        }
        let w = s.window("a", t, 5);
        assert_eq!((w.total, w.errors), (10, 2));
        let e = s.error_times("a");
        assert_eq!(e.burst_start, Some(t));
        assert_eq!(e.last_error, Some(t + 5000));
        assert_eq!(e.first_ok_after_error, Some(t + 6000));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
