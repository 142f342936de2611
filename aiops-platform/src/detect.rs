//! Request-level detectors, run every 250 ms per service, each sending its state to the
//! supervisor's controller (which opens, extends or clears the service's incident):
//!
//! - **error-rate burn**: the 5xx share the gateway's clients saw over a short window (default
//!   5 s) is at least the threshold (10 %) and over a long window (30 s) at least half of it,
//!   with enough requests; it ends after `quiet_ms` without a 5xx, recovered at the first
//!   success after the last 5xx;
//! - **latency degradation** against the service's own baseline: the median of the short window
//!   exceeds the median of the previous minute's per-second medians by `latency_mads` robust
//!   deviations (1.4826 × MAD), by `latency_factor` times and by `latency_min_ms`;
//! - **exception burst**: at least `exception_burst` events of one group (Sentry ingest) in
//!   10 s; a group first seen in the last minute is marked new.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{DetectionConfig, Topology};
use crate::gateway::{RequestStats, median};
use crate::incident::Signal;
use crate::store::{Store, now_nanos};
use crate::supervisor::{DetectorState, Event};

const TICK: Duration = Duration::from_millis(250);
const NS: u64 = 1_000_000_000;
const BURST_WINDOW_NS: u64 = 10 * NS;

#[derive(Debug, Default)]
struct ServiceDetectors {
    error_active: bool,
    latency_active: bool,
    latency_ok_ticks: u32,
    exception_active: bool,
    exception_counts: HashMap<String, u64>,
    exception_deltas: VecDeque<(u64, String, u64)>,
    primed: bool,
}

/// Starts the detector task.
pub fn spawn(
    topology: &Topology,
    store: Arc<Store>,
    stats: Arc<RequestStats>,
    events: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    let services: Vec<(String, DetectionConfig)> = topology
        .services
        .iter()
        .map(|s| (s.name.clone(), s.detection.clone()))
        .collect();
    tokio::spawn(async move {
        let mut state: HashMap<String, ServiceDetectors> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let now = now_nanos();
            for (service, cfg) in &services {
                let st = state.entry(service.clone()).or_default();
                for s in [
                    error_rate(service, cfg, st, &stats, now),
                    latency(service, cfg, st, &stats, now),
                    exceptions(service, cfg, st, &store, now),
                ]
                .into_iter()
                .flatten()
                {
                    if events.send(Event::Detector(s)).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

fn error_rate(
    service: &str,
    cfg: &DetectionConfig,
    st: &mut ServiceDetectors,
    stats: &RequestStats,
    now: u64,
) -> Option<DetectorState> {
    let short = stats.window(service, now, cfg.short_window_secs);
    let long = stats.window(service, now, cfg.long_window_secs);
    let times = stats.error_times(service);
    let burning = short.total >= cfg.min_requests
        && short.error_share() >= cfg.error_rate_threshold
        && long.error_share() >= cfg.error_rate_threshold / 2.0;
    let quiet_ns = cfg.quiet_ms.saturating_mul(1_000_000);
    let quiet = times
        .last_error
        .is_none_or(|l| now.saturating_sub(l) >= quiet_ns);
    if burning && !st.error_active {
        st.error_active = true;
    } else if st.error_active && quiet && !burning {
        st.error_active = false;
    }
    Some(DetectorState {
        service: service.to_owned(),
        signal: Signal::ErrorRate,
        active: st.error_active,
        since: times.burst_start.unwrap_or(now),
        recovered_at: times.first_ok_after_error.unwrap_or(now),
        detail: serde_json::json!({
            "short_window_secs": cfg.short_window_secs,
            "short_requests": short.total, "short_errors": short.errors,
            "short_error_share": short.error_share(),
            "long_window_secs": cfg.long_window_secs,
            "long_requests": long.total, "long_errors": long.errors,
            "long_error_share": long.error_share(),
            "threshold": cfg.error_rate_threshold,
        }),
    })
}

fn latency(
    service: &str,
    cfg: &DetectionConfig,
    st: &mut ServiceDetectors,
    stats: &RequestStats,
    now: u64,
) -> Option<DetectorState> {
    let (recent, medians) = stats.latencies(service, now, cfg.short_window_secs, 60);
    let enough = medians.len() >= 10 && recent.len() as u64 >= cfg.min_requests;
    let base = median(medians.clone());
    let mad = median(medians.iter().map(|m| (m - base).abs()).collect());
    let current = median(recent);
    let limit = (base + cfg.latency_mads * 1.4826 * mad)
        .max(base * cfg.latency_factor)
        .max(base + cfg.latency_min_ms);
    let degraded = enough && current > limit;
    if degraded {
        st.latency_active = true;
        st.latency_ok_ticks = 0;
    } else if st.latency_active {
        st.latency_ok_ticks += 1;
        if st.latency_ok_ticks >= 4 {
            st.latency_active = false;
        }
    }
    Some(DetectorState {
        service: service.to_owned(),
        signal: Signal::Latency,
        active: st.latency_active,
        since: now.saturating_sub(cfg.short_window_secs * NS / 2),
        recovered_at: now,
        detail: serde_json::json!({
            "current_median_ms": current, "baseline_median_ms": base,
            "baseline_mad_ms": mad, "limit_ms": limit,
        }),
    })
}

fn exceptions(
    service: &str,
    cfg: &DetectionConfig,
    st: &mut ServiceDetectors,
    store: &Store,
    now: u64,
) -> Option<DetectorState> {
    let groups = store.exceptions.read().list(Some(service));
    for g in &groups {
        let prev = st.exception_counts.insert(g.fingerprint.clone(), g.count);
        // The first look only learns the counts (groups restored from SQLite are old news).
        let delta = match prev {
            Some(p) => g.count.saturating_sub(p),
            None if st.primed => g.count,
            None => 0,
        };
        if delta > 0 {
            st.exception_deltas
                .push_back((now, g.fingerprint.clone(), delta));
        }
    }
    st.primed = true;
    while st
        .exception_deltas
        .front()
        .is_some_and(|(t, _, _)| now.saturating_sub(*t) > BURST_WINDOW_NS)
    {
        st.exception_deltas.pop_front();
    }
    let mut per_group: HashMap<&str, u64> = HashMap::new();
    for (_, fp, d) in &st.exception_deltas {
        *per_group.entry(fp.as_str()).or_default() += d;
    }
    let top = per_group.iter().max_by_key(|(_, n)| **n);
    let burst = top.is_some_and(|(_, n)| *n >= cfg.exception_burst);
    if burst {
        st.exception_active = true;
    } else if st.exception_deltas.is_empty() {
        st.exception_active = false;
    }
    let detail = match top {
        Some((fp, n)) => {
            let g = groups.iter().find(|g| g.fingerprint == *fp);
            serde_json::json!({
                "fingerprint": fp, "events_in_10s": n,
                "title": g.map(|g| g.title.clone()),
                "new_group": g.is_some_and(|g| now.saturating_sub(g.first_seen_unix_nano) < 60 * NS),
            })
        }
        None => serde_json::Value::Null,
    };
    let since = st.exception_deltas.front().map_or(now, |(t, _, _)| *t);
    Some(DetectorState {
        service: service.to_owned(),
        signal: Signal::ExceptionBurst,
        active: st.exception_active,
        since,
        recovered_at: now,
        detail,
    })
}
