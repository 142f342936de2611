//! [`LatencyJudge`]: a service's latency judged against its own robust baseline, online, by
//! the same [`anomaly`](crate::anomaly) detector `aiops detect --detector robust-online` runs.
//!
//! Each completed second with requests gives one point, its mean latency. The detector scores
//! it against the recent seconds; the judge opens when the second is at least
//! `latency_factor` × the baseline median and `latency_min_ms` slower (so a quiet service's
//! 2 ms → 4 ms is no incident), for two seconds in a row with the score reaching
//! `latency_score`, or for three whatever the score (a noisy baseline widens the detector's
//! scale). While open it stops learning (a
//! sustained step must not become the new normal) and it closes after three good seconds in a
//! row. The failure start is the first request slower than the limit in the first slow second
//! (its own time; for scraped or pushed histograms, the first request of that second); the recovery, the
//! first request of the first good second.

use std::collections::VecDeque;

use serde::Serialize;

use crate::anomaly::{Detector, DetectorKind};
use crate::config::DetectionConfig;
use crate::store::Bucket;

const NS: u64 = 1_000_000_000;
/// Seconds of per-second means kept for the baseline median.
const BASELINE_SECS: usize = 60;
/// Fewest baseline seconds before the judge can open.
const MIN_BASELINE: usize = 10;
/// Good seconds in a row that close an open judgement.
const GOOD_TO_CLOSE: u32 = 3;
/// Slow seconds in a row that open it even when the detector's score stays low (a noisy
/// baseline widens its scale; three seconds at 3 × the median and 50 ms slower are enough).
const SLOW_TO_OPEN: u32 = 3;
/// Slow seconds in a row that open it with the detector's score: one slow second alone (a
/// stalled machine) is not an incident.
const SLOW_SCORED_TO_OPEN: u32 = 2;

/// The judge's state after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyReading {
    /// Whether latency is degraded now.
    pub active: bool,
    /// The last completed second's mean latency (ms).
    pub current_ms: Option<f64>,
    /// The baseline median (ms).
    pub baseline_ms: Option<f64>,
    /// The detector's score of the last completed second.
    pub score: f64,
    /// The limit the current second had to exceed (ms).
    pub limit_ms: Option<f64>,
    /// First request of the first bad second (ns), while active.
    pub since: u64,
    /// First request of the first good second after the bad ones (ns).
    pub recovered_at: u64,
}

/// Online latency judgement of one service.
pub struct LatencyJudge {
    detector: Box<dyn Detector>,
    baseline: VecDeque<f64>,
    last_second: u64,
    reading: LatencyReading,
    good_run: u32,
    /// Slow seconds in a row (not yet open), and the first request of the first of them.
    slow_run: (u32, u64),
    /// Scores of every point fed, in order (kept only in tests, to compare with offline).
    #[cfg(test)]
    scores: Vec<f64>,
}

impl std::fmt::Debug for LatencyJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyJudge")
            .field("reading", &self.reading)
            .finish_non_exhaustive()
    }
}

impl Default for LatencyJudge {
    fn default() -> Self {
        Self {
            detector: DetectorKind::RobustOnline.build(),
            baseline: VecDeque::with_capacity(BASELINE_SECS),
            last_second: 0,
            reading: LatencyReading {
                active: false,
                current_ms: None,
                baseline_ms: None,
                score: 0.0,
                limit_ms: None,
                since: 0,
                recovered_at: 0,
            },
            good_run: 0,
            slow_run: (0, 0),
            #[cfg(test)]
            scores: Vec::new(),
        }
    }
}

fn median(values: &VecDeque<f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

impl LatencyJudge {
    /// Feeds every second completed before `now` not fed yet, and answers the reading.
    pub fn tick<'a>(
        &mut self,
        buckets: impl DoubleEndedIterator<Item = &'a Bucket>,
        now: u64,
        cfg: &DetectionConfig,
    ) -> LatencyReading {
        let now_s = now / NS;
        // Newest first, only as far back as the last second fed.
        let mut fresh: Vec<Bucket> = buckets
            .rev()
            .take_while(|b| b.second > self.last_second)
            .filter(|b| b.second < now_s)
            .copied()
            .collect();
        fresh.reverse();
        for b in fresh {
            self.last_second = b.second;
            if let Some(mean) = b.mean_latency_ms() {
                self.second(&b, mean, cfg);
            }
        }
        self.reading
    }

    fn second(&mut self, b: &Bucket, mean: f64, cfg: &DetectionConfig) {
        let base = median(&self.baseline);
        let limit = base.map(|m| (m * cfg.latency_factor).max(m + cfg.latency_min_ms));
        let slow = limit.is_some_and(|l| mean > l) && self.baseline.len() >= MIN_BASELINE;
        self.reading.current_ms = Some(mean);
        self.reading.baseline_ms = base;
        self.reading.limit_ms = limit;
        if self.reading.active {
            // Frozen while open: the step must not become the baseline.
            if slow {
                self.good_run = 0;
            } else {
                if self.good_run == 0 {
                    self.reading.recovered_at = b.first_at;
                }
                self.good_run += 1;
                if self.good_run >= GOOD_TO_CLOSE {
                    self.reading.active = false;
                    self.good_run = 0;
                }
            }
            return;
        }
        let score = self.learn(b.second, mean);
        self.reading.score = score;
        // The first slow request's own time, when the source reports single requests.
        let first_slow = limit
            .and_then(|l| b.first_slower_than(l))
            .unwrap_or(b.first_at);
        self.slow_run = match (slow, self.slow_run) {
            (false, _) => (0, 0),
            (true, (0, _)) => (1, first_slow),
            (true, (n, since)) => (n + 1, since),
        };
        let scored = score >= cfg.latency_score && self.slow_run.0 >= SLOW_SCORED_TO_OPEN;
        if slow && (scored || self.slow_run.0 >= SLOW_TO_OPEN) {
            self.reading.active = true;
            self.reading.since = self.slow_run.1;
            self.reading.recovered_at = 0;
            self.good_run = 0;
            self.slow_run = (0, 0);
            return;
        }
        if slow {
            // Not learned: a step in progress must not become the baseline.
            return;
        }
        if self.baseline.len() == BASELINE_SECS {
            self.baseline.pop_front();
        }
        self.baseline.push_back(mean);
    }

    fn learn(&mut self, second: u64, mean: f64) -> f64 {
        let score = self
            .detector
            .update(i64::try_from(second).unwrap_or(i64::MAX), mean);
        #[cfg(test)]
        self.scores.push(score);
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Buckets;

    fn second(b: &mut Buckets, s: u64, ms: f64) {
        for i in 0..20 {
            b.record(s * NS + i * 1000, 1, 0, ms, 1);
        }
    }

    /// 10 ms with a little noise, then a step to 400 ms at `step`.
    fn series(step: u64, until: u64) -> Buckets {
        let mut b = Buckets::default();
        for s in 1..until {
            let ms = if s >= step {
                400.0
            } else {
                10.0 + (s % 7) as f64 * 0.3
            };
            second(&mut b, s, ms);
        }
        b
    }

    #[test]
    fn a_step_opens_at_its_first_second_and_closes_after_good_seconds() {
        let cfg = DetectionConfig::default();
        let b = series(100, 140);
        let mut judge = LatencyJudge::default();
        let mut opened = None;
        for now in 1..140 {
            let r = judge.tick(b.iter(), now * NS, &cfg);
            if r.active && opened.is_none() {
                opened = Some((now, r.since));
            }
        }
        let (at, since) = opened.unwrap_or_else(|| panic!("no latency incident"));
        assert!(at <= 103, "opened at {at}, more than 3 s after the step");
        assert_eq!(
            since,
            100 * NS,
            "failure start is the first request of the first bad second"
        );
        assert!(
            judge.tick(b.iter(), 140 * NS, &cfg).active,
            "a sustained step stays open"
        );

        let mut after = series(100, 120);
        for s in 120..130 {
            second(&mut after, s, 10.0);
        }
        let mut judge = LatencyJudge::default();
        let mut closed = None;
        for now in 1..131 {
            let r = judge.tick(after.iter(), now * NS, &cfg);
            if now > 120 && !r.active && closed.is_none() {
                closed = Some(r.recovered_at);
            }
        }
        assert_eq!(closed, Some(120 * NS), "recovered at the first good second");
    }

    #[test]
    fn noise_without_a_step_opens_nothing() {
        let cfg = DetectionConfig::default();
        let b = series(10_000, 400);
        let mut judge = LatencyJudge::default();
        assert!((1..400).all(|now| !judge.tick(b.iter(), now * NS, &cfg).active));
    }

    #[test]
    fn the_online_judge_scores_like_aiops_detect() {
        // The per-second means the judge learns, scored offline through the CLI's code path.
        let cfg = DetectionConfig::default();
        let b = series(10_000, 200);
        let mut judge = LatencyJudge::default();
        for now in 1..200 {
            judge.tick(b.iter(), now * NS, &cfg);
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let input = dir.path().join("in.csv");
        let output = dir.path().join("out.csv");
        let mut csv = String::from("timestamp,value\n");
        for bucket in b.iter().filter(|x| x.second < 199) {
            let mean = bucket.mean_latency_ms().unwrap_or_default();
            csv.push_str(&format!("{},{mean}\n", bucket.second));
        }
        std::fs::write(&input, csv).unwrap_or_else(|e| panic!("{e}"));
        crate::cli_detect::run(&crate::cli_detect::DetectArgs {
            input,
            output: output.clone(),
            detector: "robust-online".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let offline: Vec<f64> = std::fs::read_to_string(output)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.rsplit(',').next()?.parse().ok())
            .collect();
        assert_eq!(offline.len(), judge.scores.len());
        for (i, (a, b)) in offline.iter().zip(&judge.scores).enumerate() {
            assert!((a - b).abs() < 1e-4, "point {i}: offline {a}, online {b}");
        }
    }
}
