//! Multiwindow, multi-burn-rate alerts (the SRE workbook's shape) over a service's per-second
//! request buckets: pure functions, unit-tested alone.

use serde::Serialize;

use crate::config::{BurnAlert, SloConfig};
use crate::store::{Buckets, WindowCounts};

/// Which objective's budget burns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Requests that did not fail (not 5xx).
    Availability,
    /// Requests faster than `slo.latency_ms`.
    Latency,
}

/// One alert's reading now: the two windows and their burn rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlertReading {
    /// The alert.
    pub alert: BurnAlert,
    /// Requests over the long window.
    pub long: WindowCounts,
    /// Requests over the short window.
    pub short: WindowCounts,
    /// Burn rate over the long window (bad ratio ÷ budget).
    pub long_burn: f64,
    /// Burn rate over the short window.
    pub short_burn: f64,
    /// Both windows burn at least `factor` times too fast, with enough requests.
    pub firing: bool,
}

/// The least evidence an alert needs in its short window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinEvidence {
    /// Requests.
    pub requests: u64,
    /// Bad requests.
    pub bad: u64,
}

impl MinEvidence {
    /// From a service's detection settings.
    pub fn of(cfg: &crate::config::DetectionConfig) -> Self {
        Self {
            requests: cfg.min_requests,
            bad: cfg.min_bad,
        }
    }
}

/// Reads every burn alert of `slo` for `objective` at `now`. `None` for the latency
/// objective when the SLO sets no `latency_ms`.
pub fn read_alerts(
    buckets: &Buckets,
    now: u64,
    slo: &SloConfig,
    objective: Objective,
    min: MinEvidence,
) -> Option<Vec<AlertReading>> {
    let (budget, slow_ms) = match objective {
        Objective::Availability => (1.0 - slo.availability, None),
        Objective::Latency => (1.0 - slo.latency_target, Some(slo.latency_ms?)),
    };
    let bad = |w: &WindowCounts| match slow_ms {
        Some(_) => w.slow,
        None => w.errors,
    };
    let bad_ratio = |w: &WindowCounts| {
        if w.total == 0 {
            0.0
        } else {
            bad(w) as f64 / w.total as f64
        }
    };
    let window = |secs| match slow_ms {
        Some(ms) => buckets.window_with_slow(now, secs, ms),
        None => buckets.window(now, secs),
    };
    let readings = slo
        .burn_alerts
        .iter()
        .map(|alert| {
            let (long, short) = (window(alert.long_secs), window(alert.short_secs));
            let long_burn = bad_ratio(&long) / budget;
            let short_burn = bad_ratio(&short) / budget;
            AlertReading {
                alert: *alert,
                long,
                short,
                long_burn,
                short_burn,
                firing: short.total >= min.requests
                    && bad(&short) >= min.bad
                    && long_burn >= alert.factor
                    && short_burn >= alert.factor,
            }
        })
        .collect();
    Some(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MIN: MinEvidence = MinEvidence {
        requests: 10,
        bad: 3,
    };

    /// `rps` requests per second from `from` to `to` (seconds), `bad` of them failed.
    fn traffic(b: &mut Buckets, from: u64, to: u64, rps: u64, bad: u64) {
        for s in from..to {
            for i in 0..rps {
                let failed = i < bad;
                b.record(s * S + i, 1, u64::from(failed), 10.0, 1);
                b.record_latency(s * S + i, if failed { 900.0 } else { 10.0 });
            }
        }
    }

    fn firing(b: &Buckets, now_s: u64, objective: Objective, slo: &SloConfig) -> bool {
        read_alerts(b, now_s * S, slo, objective, MIN)
            .unwrap_or_default()
            .iter()
            .any(|r| r.firing)
    }

    #[test]
    fn a_short_burst_the_long_window_does_not_confirm_opens_nothing() {
        let slo = SloConfig::default();
        let mut b = Buckets::default();
        traffic(&mut b, 0, 100, 20, 0);
        // One second at 30 % errors: 6 of 600 over 30 s is 1 %, under 14.4 × 0.1 %.
        traffic(&mut b, 100, 101, 20, 6);
        traffic(&mut b, 101, 104, 20, 0);
        for now in 100..104 {
            assert!(!firing(&b, now, Objective::Availability, &slo), "at {now}");
        }
    }

    #[test]
    fn a_sustained_burst_fires_within_the_short_window() {
        let slo = SloConfig::default();
        let mut b = Buckets::default();
        traffic(&mut b, 0, 100, 20, 0);
        traffic(&mut b, 100, 110, 20, 6);
        let first = (100..110).find(|now| firing(&b, *now, Objective::Availability, &slo));
        assert!(
            first.is_some_and(|s| s - 100 < 5),
            "fired at {first:?}, not within the 5 s short window"
        );
        // Too few requests: nothing to judge.
        let mut thin = Buckets::default();
        traffic(&mut thin, 0, 8, 1, 1);
        assert!(!firing(&thin, 7, Objective::Availability, &slo));
    }

    #[test]
    fn latency_burns_only_with_a_latency_objective() {
        let mut slo = SloConfig::default();
        let mut b = Buckets::default();
        traffic(&mut b, 0, 10, 20, 6);
        assert!(read_alerts(&b, 9 * S, &slo, Objective::Latency, MIN).is_none());
        slo.latency_ms = Some(300.0);
        assert!(firing(&b, 9, Objective::Latency, &slo));
        let mut fast = Buckets::default();
        traffic(&mut fast, 0, 10, 20, 0);
        assert!(!firing(&fast, 9, Objective::Latency, &slo));
    }
}
