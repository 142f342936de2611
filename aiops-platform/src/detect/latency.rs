//! [`LatencyJudge`]: a service's latency judged against its own robust baseline, online, by
//! the same [`anomaly`](crate::anomaly) detector `aiops detect --detector robust-online` runs.
//!
//! Each completed second with requests gives one point, its mean latency: the detector scores
//! it, and a second that is not slow joins the baseline (the last 60 such seconds; their
//! median is the baseline). The limit is `latency_factor` × the median and at least
//! `latency_min_ms` more (so a quiet service's 2 ms → 4 ms is no incident).
//!
//! The step itself is judged by quarter-second (250 ms): a quarter is slow when its mean
//! passes the limit. A run of slow quarters — broken by a quarter with requests under the
//! limit, or by 5 s without any request — opens the judgement once it spans 1.5 s with two
//! slow quarters and a slow completed second scored at least `latency_score`, or 2 s with three
//! slow quarters whatever the score (a noisy baseline widens the detector's scale). One slow
//! second alone (a stalled machine) opens nothing. Quarters let a step that starts late in a
//! second count from its start instead of waiting for two whole slow seconds (measured: whole
//! seconds gave 2.42 s p50 and missed the 3 s target, see docs/platform.md).
//!
//! While open it stops learning (a sustained step must not become the new normal) and it
//! closes after three good seconds in a row. The failure start is the first request slower
//! than the limit in the run's first slow quarter (its own time; for scraped or pushed
//! histograms, the first request of that quarter); the recovery, the first request of the
//! first good second.

use std::collections::VecDeque;

use serde::Serialize;

use crate::anomaly::{Detector, DetectorKind};
use crate::config::DetectionConfig;
use crate::store::{Bucket, Quarter};

const NS: u64 = 1_000_000_000;
/// Seconds of per-second means kept for the baseline median.
const BASELINE_SECS: usize = 60;
/// Fewest baseline seconds before the judge can open.
const MIN_BASELINE: usize = 10;
/// Good seconds in a row that close an open judgement.
const GOOD_TO_CLOSE: u32 = 3;
/// Quarters a run of slow quarters must span to open with the detector's score (1.5 s).
const SCORED_SPAN: u64 = 6;
/// Quarters it must span to open whatever the score (2 s).
const UNSCORED_SPAN: u64 = 8;
/// Slow quarters (with requests) a run needs: two with the score, three without it, so a
/// sparse source (one scrape a second) opens on observations, not on the clock alone.
const SCORED_SLOW: u32 = 2;
const UNSCORED_SLOW: u32 = 3;
/// Quarters without requests that end a run (5 s).
const MAX_SILENT: u64 = 20;

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
    /// First slow request of the run that opened it (ns), while active.
    pub since: u64,
    /// First request of the first good second after the bad ones (ns).
    pub recovered_at: u64,
}

/// A run of slow quarters not yet judged an incident.
#[derive(Debug, Clone, Copy)]
struct SlowRun {
    /// Its first quarter (epoch quarter index).
    first: u64,
    /// Its last slow quarter.
    last_slow: u64,
    /// Slow quarters with requests.
    slow: u32,
    /// The first slow request's own time (ns).
    since: u64,
    /// Whether a completed second of the run scored at least `latency_score`.
    scored: bool,
}

/// Online latency judgement of one service.
pub struct LatencyJudge {
    detector: Box<dyn Detector>,
    baseline: VecDeque<f64>,
    /// The baseline median and the limit it gives, recomputed when the baseline changes.
    limit: Option<(f64, f64)>,
    /// The next quarter to judge (epoch quarter index).
    next_quarter: u64,
    reading: LatencyReading,
    good_run: u32,
    run: Option<SlowRun>,
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
            limit: None,
            next_quarter: 0,
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
            run: None,
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
    /// Judges every quarter (and second) completed before `now` not judged yet, and answers
    /// the reading.
    pub fn tick<'a>(
        &mut self,
        buckets: impl DoubleEndedIterator<Item = &'a Bucket>,
        now: u64,
        cfg: &DetectionConfig,
    ) -> LatencyReading {
        let done = now / Quarter::NS; // quarters before this one are complete
        // Newest first, only as far back as the last quarter judged.
        let mut fresh: Vec<&Bucket> = buckets
            .rev()
            .take_while(|b| (b.second + 1) * 4 > self.next_quarter)
            .collect();
        fresh.reverse();
        for b in fresh {
            for (i, q) in (0u64..).zip(&b.quarters) {
                let index = b.second * 4 + i;
                if index < self.next_quarter || index >= done {
                    continue;
                }
                self.next_quarter = index + 1;
                self.quarter(b, index, q);
                if i == 3 {
                    self.second(b, cfg);
                }
            }
        }
        self.reading
    }

    /// Whether `ms` passes the limit of a baseline long enough to judge.
    fn slow(&self, ms: f64) -> bool {
        self.baseline.len() >= MIN_BASELINE && self.limit.is_some_and(|(_, l)| ms > l)
    }

    fn quarter(&mut self, b: &Bucket, index: u64, q: &Quarter) {
        if self.reading.active {
            return;
        }
        if self
            .run
            .is_some_and(|r| index.saturating_sub(r.last_slow) > MAX_SILENT)
        {
            self.run = None;
        }
        match q.mean_ms() {
            None => {}
            Some(mean) if self.slow(mean) => {
                let start = b.second * NS + (index % 4) * Quarter::NS;
                let first = b.second * NS + u64::from(q.first_offset);
                // The first slow request's own time when it falls in this quarter.
                let since = self
                    .limit
                    .and_then(|(_, l)| b.first_slower_than(l))
                    .filter(|t| (start..start + Quarter::NS).contains(t))
                    .unwrap_or(first);
                let run = self.run.get_or_insert(SlowRun {
                    first: index,
                    last_slow: index,
                    slow: 0,
                    since,
                    scored: false,
                });
                run.last_slow = index;
                run.slow += 1;
            }
            Some(_) => self.run = None,
        }
        self.maybe_open(index);
    }

    fn maybe_open(&mut self, index: u64) {
        let Some(run) = self.run else { return };
        let span = index + 1 - run.first;
        let open = (run.scored && span >= SCORED_SPAN && run.slow >= SCORED_SLOW)
            || (span >= UNSCORED_SPAN && run.slow >= UNSCORED_SLOW);
        if open {
            self.reading.active = true;
            self.reading.since = run.since;
            self.reading.recovered_at = 0;
            self.good_run = 0;
            self.run = None;
        }
    }

    /// A completed second: scored and learned, or, while open, counted towards closing.
    fn second(&mut self, b: &Bucket, cfg: &DetectionConfig) {
        let Some(mean) = b.mean_latency_ms() else {
            return;
        };
        let slow = self.slow(mean);
        self.reading.current_ms = Some(mean);
        self.reading.baseline_ms = self.limit.map(|(m, _)| m);
        self.reading.limit_ms = self.limit.map(|(_, l)| l);
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
        if slow {
            // Not learned: a step in progress must not become the baseline.
            if let Some(run) = self.run.as_mut() {
                run.scored |= score >= cfg.latency_score;
            }
            self.maybe_open(b.second * 4 + 3);
            return;
        }
        if self.baseline.len() == BASELINE_SECS {
            self.baseline.pop_front();
        }
        self.baseline.push_back(mean);
        self.limit = median(&self.baseline)
            .map(|m| (m, (m * cfg.latency_factor).max(m + cfg.latency_min_ms)));
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

/// A latency series for tests: one request-rate of 20 a second, 10 ms with a little noise,
/// then a step (shared with the CLI's test that compares online and offline scores).
#[cfg(test)]
pub(crate) mod test_series {
    use super::NS;
    use crate::store::Buckets;

    pub(crate) fn second(b: &mut Buckets, s: u64, ms: f64) {
        for i in 0..20 {
            b.record(s * NS + i * 1000, 1, 0, ms, 1);
        }
    }

    /// 10 ms with a little noise, then a step to 400 ms at `step`.
    pub(crate) fn series(step: u64, until: u64) -> Buckets {
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
}

#[cfg(test)]
impl LatencyJudge {
    /// Scores of every point fed, in order (tests compare them with `aiops detect`'s).
    pub(crate) fn scores(&self) -> &[f64] {
        &self.scores
    }
}

#[cfg(test)]
mod tests {
    use super::test_series::{second, series};
    use super::*;
    use crate::store::Buckets;

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

    /// Requests every 50 ms, 10 ms each with a little noise, `ms(t)` from `step_at` (ns) on.
    fn dense(until_s: u64, step_at: u64, slow: impl Fn(u64) -> bool, ms: f64) -> Buckets {
        let mut b = Buckets::default();
        for k in 0..until_s * 20 {
            let at = NS + k * 50_000_000;
            let v = if at >= step_at && slow(at) {
                ms
            } else {
                10.0 + (k % 7) as f64 * 0.3
            };
            b.record(at, 1, 0, v, 1);
            b.record_latency(at, v);
        }
        b
    }

    /// The first tick (every 250 ms, as the platform's) at which the judge is open.
    fn opened_at(b: &Buckets, until_s: u64) -> Option<(u64, u64)> {
        let cfg = DetectionConfig::default();
        let mut judge = LatencyJudge::default();
        (4..until_s * 4).map(|k| k * NS / 4).find_map(|now| {
            let r = judge.tick(b.iter(), now, &cfg);
            r.active.then_some((now, r.since))
        })
    }

    #[test]
    fn a_step_at_any_phase_of_a_second_opens_within_a_second_and_three_quarters() {
        for phase_ms in [0, 100, 350, 600, 800, 950] {
            let step = 100 * NS + phase_ms * 1_000_000;
            let b = dense(140, step, |_| true, 310.0);
            let (at, since) = opened_at(&b, 140).unwrap_or_else(|| panic!("missed at {phase_ms}"));
            assert!(
                since >= step,
                "failure start {since} before the step {step}"
            );
            assert!(
                since < step + 50_000_000,
                "failure start is the first slow request"
            );
            assert!(
                at - step <= 1_750_000_000,
                "step at +{phase_ms} ms opened {} ms after it",
                (at - step) / 1_000_000
            );
        }
    }

    #[test]
    fn one_slow_second_alone_opens_nothing() {
        // A stalled machine: one second at 20 x the baseline, then normal again.
        let b = dense(140, 100 * NS, |t| t < 101 * NS, 200.0);
        assert_eq!(opened_at(&b, 140), None);
    }

    #[test]
    fn a_sparse_source_opens_on_three_slow_observations() {
        // One scrape a second (all of its requests land in one quarter).
        let b = series(100, 140);
        let (at, since) = opened_at(&b, 140).unwrap_or_else(|| panic!("missed"));
        assert_eq!(since, 100 * NS);
        assert!(at <= 103 * NS, "opened at {} ms", at / 1_000_000);
    }

    #[test]
    fn noise_without_a_step_opens_nothing() {
        let cfg = DetectionConfig::default();
        let b = series(10_000, 400);
        let mut judge = LatencyJudge::default();
        assert!((1..400).all(|now| !judge.tick(b.iter(), now * NS, &cfg).active));
    }
}
