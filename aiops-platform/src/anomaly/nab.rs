//! NAB's scoring, re-implemented (Lavin & Ahmad, "Evaluating Real-time Anomaly Detection
//! Algorithms — the Numenta Anomaly Benchmark", 2015; `nab/sweeper.py`).
//!
//! Per series: the first 15 % of points (at most 750) are a probation period and are not scored.
//! A point whose score reaches the threshold is a *detection*. Inside a label window, only the
//! first detection counts, weighted by the scaled sigmoid of its position (most at the window's
//! start, about 0 at its end) times the profile's TP weight; a window without a detection costs
//! the FN weight. Every detection outside a window costs the FP weight times the scaled sigmoid
//! of its distance past the previous window (-1 far away or before any window). The corpus
//! total is normalised to 100 for perfect detection and 0 for no detection at all, and the
//! threshold is the one that maximises that total for the detector (NAB's optimiser).

/// Weights of a NAB application profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: &'static str,
    /// Weight of a true positive.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a false negative (a missed window).
    pub fn_: f64,
}

impl Profile {
    /// NAB's standard profile.
    pub const STANDARD: Profile = Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };
    /// NAB's reward-low-false-positives profile.
    pub const LOW_FP: Profile = Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    };
    /// NAB's reward-low-false-negatives profile.
    pub const LOW_FN: Profile = Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    };
    /// The three profiles.
    pub const ALL: [Profile; 3] = [Self::STANDARD, Self::LOW_FP, Self::LOW_FN];
}

/// NAB's scaled sigmoid: 2 / (1 + e^(5y)) - 1, and -1 beyond y = 3.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// NAB's probation length for a series of `len` points: `min(floor(0.15 len), 0.15 * 5000)`.
pub fn probation(len: usize) -> usize {
    ((len as f64 * 0.15).floor() as usize).min(750)
}

/// One scored series: the detector's scores and the label windows (inclusive index ranges,
/// ordered, disjoint).
#[derive(Debug, Clone)]
pub struct ScoredSeries<'a> {
    /// Scores, one per point.
    pub scores: &'a [f64],
    /// Label windows.
    pub windows: &'a [(usize, usize)],
}

/// Counts and raw score of one series at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Windows with at least one detection.
    pub tp: usize,
    /// Windows without a detection.
    pub fn_: usize,
    /// Detections outside every window (after probation).
    pub fp: usize,
    /// Raw weighted score.
    pub score: f64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.tp += o.tp;
        self.fn_ += o.fn_;
        self.fp += o.fp;
        self.score += o.score;
    }
}

/// Scores one series at `threshold` under `profile`.
pub fn score_series(s: &ScoredSeries<'_>, threshold: f64, profile: Profile) -> Tally {
    let n = s.scores.len();
    let prob = probation(n);
    let max_tp = scaled_sigmoid(-1.0);
    let mut t = Tally::default();
    let mut win = 0usize; // index of the next window not yet passed
    let mut detected = vec![false; s.windows.len()];
    let mut prev: Option<(usize, usize)> = None;
    for (i, &score) in s.scores.iter().enumerate() {
        while win < s.windows.len() && s.windows[win].1 < i {
            prev = Some(s.windows[win]);
            win += 1;
        }
        if i < prob || score < threshold {
            continue;
        }
        match s.windows.get(win) {
            Some(&(ws, we)) if ws <= i => {
                if !detected[win] {
                    detected[win] = true;
                    let len = (we - ws + 1) as f64;
                    let pos = -((we - i + 1) as f64) / len;
                    t.tp += 1;
                    t.score += scaled_sigmoid(pos) * profile.tp / max_tp;
                }
            }
            _ => {
                t.fp += 1;
                let unweighted = match prev {
                    Some((ps, pe)) => {
                        let width = (pe - ps + 1) as f64;
                        scaled_sigmoid((i - pe) as f64 / (width - 1.0).max(1.0))
                    }
                    None => -1.0,
                };
                t.score += unweighted * profile.fp;
            }
        }
    }
    let missed = detected.iter().filter(|d| !**d).count();
    t.fn_ = missed;
    t.score -= missed as f64 * profile.fn_;
    t
}

/// The result of optimising the threshold over a corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NabResult {
    /// The best threshold.
    pub threshold: f64,
    /// The normalised score (100 perfect, 0 no detections).
    pub score: f64,
    /// Totals at that threshold.
    pub tally: Tally,
}

/// Totals over the corpus at one threshold.
pub fn score_corpus(corpus: &[ScoredSeries<'_>], threshold: f64, profile: Profile) -> Tally {
    let mut total = Tally::default();
    for s in corpus {
        total.add(score_series(s, threshold, profile));
    }
    total
}

/// Normalises a raw corpus score: 100 × (raw − null) / (perfect − null).
pub fn normalise(corpus: &[ScoredSeries<'_>], raw: f64, profile: Profile) -> f64 {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let null = -(windows as f64) * profile.fn_;
    let perfect = windows as f64 * profile.tp;
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// NAB's optimiser: the threshold in [0, 1] that maximises the corpus score (a grid of 0.005
/// steps refined to 0.0005 around the best), and the normalised score there.
pub fn optimise(corpus: &[ScoredSeries<'_>], profile: Profile) -> NabResult {
    let eval = |th: f64| {
        let t = score_corpus(corpus, th, profile);
        (normalise(corpus, t.score, profile), t)
    };
    let mut best = (f64::NEG_INFINITY, 1.0, Tally::default());
    for k in 0..=200 {
        let th = k as f64 * 0.005;
        let (s, t) = eval(th);
        if s > best.0 {
            best = (s, th, t);
        }
    }
    let centre = best.1;
    for k in -10..=10 {
        let th = (centre + k as f64 * 0.0005).clamp(0.0, 1.0);
        let (s, t) = eval(th);
        if s > best.0 {
            best = (s, th, t);
        }
    }
    NabResult {
        threshold: best.1,
        score: best.0,
        tally: best.2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_3).abs() < 1e-6);
        assert!(scaled_sigmoid(0.0).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn early_detection_beats_late_and_fp_costs() {
        let windows = [(200, 299)];
        let mut early = vec![0.0; 1000];
        early[200] = 1.0;
        let mut late = vec![0.0; 1000];
        late[290] = 1.0;
        let s = |v: &[f64]| {
            score_series(
                &ScoredSeries {
                    scores: v,
                    windows: &windows,
                },
                0.5,
                Profile::STANDARD,
            )
        };
        assert!((s(&early).score - 1.0).abs() < 1e-9);
        // Position -0.1 of the window: scaled_sigmoid(-0.1) / max ≈ 0.248.
        assert!((s(&late).score - 0.248).abs() < 0.01, "{}", s(&late).score);
        let mut fp = early.clone();
        fp[900] = 1.0;
        assert!((s(&fp).score - (1.0 - 0.11)).abs() < 1e-6);
        // Detections in probation are ignored; a missed window costs the FN weight.
        let mut prob = vec![0.0; 1000];
        prob[10] = 1.0;
        assert_eq!(s(&prob).score, -1.0);
        assert_eq!(s(&prob).fp, 0);
        let corpus = [ScoredSeries {
            scores: &early,
            windows: &windows,
        }];
        let r = optimise(&corpus, Profile::STANDARD);
        assert!((r.score - 100.0).abs() < 1e-6);
    }
}
