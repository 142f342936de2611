//! Synthetic-series evaluation of the detectors: precision/recall per anomaly kind, a
//! NAB-style comparison of the ensemble against its components, and no-look-ahead checks.

use super::*;

/// Tiny deterministic PRNG (xorshift64*) with Gaussian samples, so tests need no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Spike,
    LevelShift,
    VarianceChange,
    TrendBreak,
    Seasonal,
    SeasonalAnomaly,
}

const KINDS: [Kind; 6] = [
    Kind::Spike,
    Kind::LevelShift,
    Kind::VarianceChange,
    Kind::TrendBreak,
    Kind::Seasonal,
    Kind::SeasonalAnomaly,
];

/// A labelled series: values and the indices where anomalies start.
struct Series {
    values: Vec<f64>,
    starts: Vec<usize>,
}

const LEN: usize = 4000;

fn generate(kind: Kind, seed: u64) -> Series {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let base = 50.0 + 20.0 * rng.uniform();
    let sd = 1.0 + 2.0 * rng.uniform();
    let period = 48.0 + (rng.uniform() * 96.0).floor();
    let seasonal = matches!(kind, Kind::Seasonal | Kind::SeasonalAnomaly);
    let starts: Vec<usize> = if kind == Kind::Seasonal {
        vec![]
    } else {
        vec![900, 1700, 2500, 3300]
    };
    let mut values = Vec::with_capacity(LEN);
    let mut level = base;
    let mut slope = 0.0;
    let mut noise = sd;
    for i in 0..LEN {
        let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        let mut extra = 0.0;
        if let Some(k) = starts.iter().position(|&s| s == i) {
            match kind {
                Kind::LevelShift => level += sign * sd * (5.0 + 3.0 * rng.uniform()),
                Kind::VarianceChange => noise = sd * if k % 2 == 0 { 5.0 } else { 1.0 },
                Kind::TrendBreak => slope = sign * sd * 0.08,
                Kind::Spike | Kind::SeasonalAnomaly | Kind::Seasonal => {}
            }
        }
        if kind == Kind::TrendBreak && starts.iter().any(|&s| i == s + 100) {
            slope = 0.0;
        }
        if kind == Kind::VarianceChange && starts.iter().any(|&s| i == s + 150) {
            noise = sd;
        }
        level += slope;
        if let Some(_k) = starts.iter().position(|&s| s == i)
            && matches!(kind, Kind::Spike | Kind::SeasonalAnomaly)
        {
            extra = sign * sd * (7.0 + 5.0 * rng.uniform());
        }
        let season = if seasonal {
            10.0 * sd * (2.0 * std::f64::consts::PI * i as f64 / period).sin()
        } else {
            0.0
        };
        values.push(level + season + noise * rng.normal() + extra);
    }
    Series { values, starts }
}

fn score(kind: DetectorKind, values: &[f64]) -> Vec<f64> {
    let mut d = kind.build();
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| d.update(i as i64 * 60, v))
        .collect()
}

/// Event-level precision/recall at `threshold` with hysteresis alerting: an alert opened within
/// `tol` points after an anomaly start is a true positive for it; any other alert is false.
fn precision_recall(scores: &[f64], starts: &[usize], threshold: f64) -> (usize, usize, usize) {
    let tol = 60;
    let mut alerter = Alerter::new(threshold, threshold * 0.5, 20);
    let mut hit = vec![false; starts.len()];
    let (mut tp, mut fp) = (0, 0);
    for (i, &s) in scores.iter().enumerate() {
        if let Some(AlertEvent::Opened { .. }) = alerter.update(i as i64, s) {
            match starts.iter().position(|&a| i >= a && i < a + tol) {
                Some(k) if !hit[k] => {
                    hit[k] = true;
                    tp += 1;
                }
                Some(_) => {}
                None => fp += 1,
            }
        }
    }
    (tp, fp, starts.len())
}

/// A NAB-style score (standard profile weights) summed over a set of series at one threshold:
/// windows of 10% of the length / anomaly count centred on each start, the first detection in a
/// window earns a sigmoid reward for earliness, detections outside windows cost 0.11, missed
/// windows cost 1. Normalised to 0 (no detections) .. 100 (perfect).
fn nab_like(all: &[(Vec<f64>, Vec<usize>)], threshold: f64) -> f64 {
    let sigma = |y: f64| 2.0 / (1.0 + (5.0 * y).exp()) - 1.0;
    let (mut raw, mut null, mut perfect) = (0.0, 0.0, 0.0);
    for (scores, starts) in all {
        let n = scores.len();
        let probation = n * 15 / 100;
        let width = if starts.is_empty() {
            0
        } else {
            n / 10 / starts.len()
        };
        let windows: Vec<(usize, usize)> = starts
            .iter()
            .map(|&s| (s.saturating_sub(width / 2), (s + width / 2).min(n - 1)))
            .collect();
        let mut hit = vec![false; windows.len()];
        for (i, &s) in scores.iter().enumerate() {
            if i < probation || s < threshold {
                continue;
            }
            if let Some(k) = windows.iter().position(|&(a, b)| i >= a && i <= b) {
                if !hit[k] {
                    hit[k] = true;
                    let (a, b) = windows[k];
                    let y = (i as f64 - b as f64) / (b - a + 1) as f64;
                    raw += sigma(y);
                }
            } else {
                let prev = windows.iter().rev().find(|&&(_, b)| b < i);
                raw -= 0.11
                    * match prev {
                        Some(&(a, b)) => -sigma((i - b) as f64 / (b - a + 1) as f64),
                        None => 1.0,
                    };
            }
        }
        raw -= hit.iter().filter(|h| !**h).count() as f64;
        null -= windows.len() as f64;
        perfect += windows.len() as f64 * sigma(-1.0);
    }
    if perfect == null {
        100.0
    } else {
        100.0 * (raw - null) / (perfect - null)
    }
}

fn best_nab(all: &[(Vec<f64>, Vec<usize>)]) -> (f64, f64) {
    (1..=40)
        .map(|k| k as f64 * 0.025)
        .map(|t| (nab_like(all, t), t))
        .fold((f64::MIN, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

fn corpus(kind: DetectorKind) -> Vec<(Vec<f64>, Vec<usize>)> {
    let mut all = Vec::new();
    for (ki, &k) in KINDS.iter().enumerate() {
        for seed in 0..3u64 {
            let s = generate(k, seed * 31 + ki as u64);
            all.push((score(kind, &s.values), s.starts));
        }
    }
    all
}

#[test]
fn precision_recall_per_kind() {
    // (kind, minimum recall, minimum precision) for the default ensemble at the default alert
    // threshold (0.3), over 4 seeds x 4 anomalies each.
    let minimums = [
        (Kind::Spike, 0.9, 0.6),
        (Kind::LevelShift, 0.9, 0.7),
        (Kind::VarianceChange, 0.4, 0.6),
        (Kind::TrendBreak, 0.3, 0.5),
        (Kind::Seasonal, 1.0, 0.0),
        (Kind::SeasonalAnomaly, 0.8, 0.6),
    ];
    for (kind, min_recall, min_precision) in minimums {
        let (mut tp, mut fp, mut total) = (0, 0, 0);
        for seed in 100..104u64 {
            let s = generate(kind, seed);
            let scores = score(DetectorKind::Ensemble, &s.values);
            let (a, b, c) = precision_recall(&scores, &s.starts, 0.3);
            tp += a;
            fp += b;
            total += c;
        }
        let recall = if total == 0 {
            1.0
        } else {
            tp as f64 / total as f64
        };
        let precision = if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        };
        eprintln!(
            "{kind:?}: precision {precision:.2} recall {recall:.2} (tp {tp} fp {fp} events {total})"
        );
        assert!(
            recall >= min_recall,
            "{kind:?} recall {recall} < {min_recall}"
        );
        assert!(
            kind == Kind::Seasonal || precision >= min_precision,
            "{kind:?} precision {precision} < {min_precision}"
        );
        if kind == Kind::Seasonal {
            assert!(
                fp <= 8,
                "seasonal series without anomalies raised {fp} alerts"
            );
        }
    }
}

#[test]
fn ensemble_beats_each_component() {
    let mut results = Vec::new();
    for kind in [
        DetectorKind::Robust,
        DetectorKind::Spectral,
        DetectorKind::Novelty,
        DetectorKind::Ensemble,
    ] {
        let (nab, t) = best_nab(&corpus(kind));
        eprintln!("{kind}: NAB-like score {nab:.1} at threshold {t:.3}");
        results.push((kind, nab));
    }
    let ensemble = results[3].1;
    for &(kind, nab) in &results[..3] {
        assert!(
            ensemble > nab,
            "ensemble {ensemble:.1} does not beat {kind} {nab:.1}"
        );
    }
}

#[test]
fn scores_never_look_ahead() {
    for kind in DetectorKind::NAMES {
        let s = generate(Kind::SeasonalAnomaly, 7);
        let full = score(kind.parse().expect("name"), &s.values);
        for cut in [150, 901, 2000] {
            let prefix = score(kind.parse().expect("name"), &s.values[..cut]);
            assert_eq!(prefix[..], full[..cut], "{kind} looked ahead at {cut}");
        }
    }
}

#[test]
fn scores_in_unit_interval_and_warmup_is_zero() {
    for kind in DetectorKind::NAMES {
        for k in KINDS {
            let s = generate(k, 3);
            let scores = score(kind.parse().expect("name"), &s.values);
            assert!(
                scores.iter().all(|x| (0.0..=1.0).contains(x)),
                "{kind} out of range"
            );
            let warmup = match kind {
                "robust-online" => super::ONLINE_WARMUP,
                // NAB's baseline, faithfully, scores from the second point on.
                "windowed-gaussian" => 1,
                _ => WARMUP,
            };
            assert!(scores[..warmup as usize].iter().all(|x| *x == 0.0));
        }
    }
}

#[test]
fn flat_and_step_series() {
    // A flat line never alarms; one step in it alarms once.
    let mut values = vec![5.0; 1000];
    let flat = score(DetectorKind::Ensemble, &values);
    assert!(flat.iter().all(|&s| s < 0.1));
    for v in &mut values[600..] {
        *v = 6.0;
    }
    let step = score(DetectorKind::Ensemble, &values);
    let alerts = step.iter().filter(|&&s| s >= Alerter::DEFAULT_OPEN).count();
    assert!(
        step[600] >= Alerter::DEFAULT_OPEN,
        "step not detected: {}",
        step[600]
    );
    assert_eq!(alerts, 1, "one step should be one high score");
}

#[test]
fn alerter_hysteresis() {
    let mut a = Alerter::new(0.5, 0.2, 3);
    let scores = [0.1, 0.6, 0.3, 0.7, 0.1, 0.6, 0.1, 0.1, 0.1, 0.9];
    let events: Vec<_> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| a.update(i as i64, s))
        .collect();
    assert_eq!(
        events,
        vec![
            AlertEvent::Opened { ts: 1, score: 0.6 },
            AlertEvent::Closed { ts: 8, peak: 0.7 },
            AlertEvent::Opened { ts: 9, score: 0.9 },
        ]
    );
}

#[test]
fn unknown_name_is_an_error() {
    assert!(by_name("nope").is_err());
    assert_eq!(by_name("ensemble").map(|d| d.name()).ok(), Some("ensemble"));
    assert!(by_name("NaN-proof").is_err());
    let mut d = EnsembleDetector::new();
    assert_eq!(d.update(0, f64::NAN), 0.0);
}

/// On series no other test uses — seeds 50 to 52 of every kind —
/// the default ensemble keeps its quality: a NAB-like score per kind above a floor, and no
/// score of 0.5 or more outside an anomaly window. The series are deterministic, so the floors
/// are margins below today's scores (in brackets) for later tuning, not noise allowances.
#[test]
fn the_ensemble_generalises_to_held_out_series() {
    let floors = [
        (Kind::Spike, 85.0),           // [93]
        (Kind::LevelShift, 85.0),      // [93]
        (Kind::VarianceChange, 45.0),  // [54]
        (Kind::TrendBreak, 45.0),      // [55]
        (Kind::Seasonal, 95.0),        // [100]
        (Kind::SeasonalAnomaly, 85.0), // [93]
    ];
    for (k, floor) in floors {
        let all: Vec<_> = (50..53u64)
            .map(|seed| {
                let s = generate(k, seed);
                (score(DetectorKind::Ensemble, &s.values), s.starts)
            })
            .collect();
        let high_outside: usize = all
            .iter()
            .map(|(scores, starts)| {
                scores
                    .iter()
                    .enumerate()
                    .filter(|(i, x)| **x >= 0.5 && !starts.iter().any(|a| *i >= *a && *i < a + 60))
                    .count()
            })
            .sum();
        let (nab, threshold) = best_nab(&all);
        eprintln!("{k:?}: NAB-like {nab:.0} at {threshold:.2}, {high_outside} high scores outside");
        assert!(nab >= floor, "{k:?}: NAB-like {nab:.1} < {floor}");
        assert_eq!(high_outside, 0, "{k:?}: scores >= 0.5 outside anomalies");
    }
}
