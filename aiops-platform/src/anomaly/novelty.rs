//! Value-quantisation novelty: how rarely has the series been at this level, and how rarely
//! has it moved from the previous level to this one (a light-weight cousin of HTM / CAD OSE).

use std::collections::HashMap;

use super::Detector;
use super::stats::{Likelihood, SortedWindow};

/// Quantised-novelty detector.
///
/// After `LEARN` points the value range seen so far fixes a bin width (`range / BINS`). Each
/// point falls into a bin; the raw score is the surprise `-ln p` of the bin (smoothed over its
/// neighbours) plus the surprise of the transition from the previous point's bin. Counts are
/// halved whenever they reach a cap and near-empty bins are dropped, so memory stays bounded and
/// old behaviour is slowly forgotten. The raw score is calibrated by the anomaly likelihood.
#[derive(Debug, Clone)]
pub struct NoveltyDetector {
    learn: SortedWindow,
    width: Option<f64>,
    counts: HashMap<i64, f64>,
    total: f64,
    trans: HashMap<(i64, i64), f64>,
    from: HashMap<i64, f64>,
    prev: Option<i64>,
    lik: Likelihood,
}

const LEARN: usize = 64;
const BINS: f64 = 24.0;
const CAP: f64 = 4096.0;

impl NoveltyDetector {
    /// A detector with the default warm-up.
    pub fn new() -> Self {
        Self::with_warmup(super::WARMUP)
    }

    /// A detector with a custom warm-up.
    pub fn with_warmup(warmup: u64) -> Self {
        Self {
            learn: SortedWindow::new(LEARN),
            width: None,
            counts: HashMap::new(),
            total: 0.0,
            trans: HashMap::new(),
            from: HashMap::new(),
            prev: None,
            lik: Likelihood::new(6, warmup),
        }
    }

    fn bin(&self, width: f64, value: f64) -> i64 {
        (value / width).floor().clamp(-1e15, 1e15) as i64
    }

    fn halve(&mut self) {
        self.counts.retain(|_, c| {
            *c *= 0.5;
            *c >= 0.1
        });
        self.trans.retain(|_, c| {
            *c *= 0.5;
            *c >= 0.1
        });
        self.from.retain(|_, c| {
            *c *= 0.5;
            *c >= 0.1
        });
        self.total *= 0.5;
    }

    fn raw_and_learn(&mut self, value: f64) -> f64 {
        let width = match self.width {
            Some(w) => w,
            None => {
                self.learn.push(value);
                if self.learn.len() < LEARN {
                    return 0.0;
                }
                let lo = self.learn.quantile(0.0).unwrap_or(0.0);
                let hi = self.learn.quantile(1.0).unwrap_or(0.0);
                let w = ((hi - lo) / BINS)
                    .max(lo.abs().max(hi.abs()) * 1e-4)
                    .max(1e-9);
                self.width = Some(w);
                self.learn = SortedWindow::new(1);
                w
            }
        };
        let b = self.bin(width, value);
        let c = |m: &HashMap<i64, f64>, k: i64| m.get(&k).copied().unwrap_or(0.0);
        let raw = if self.total > 0.0 {
            let sc = c(&self.counts, b) + 0.5 * (c(&self.counts, b - 1) + c(&self.counts, b + 1));
            let pv = (sc + 0.05) / (2.0 * self.total + 1.0);
            let mut r = -pv.ln();
            if let Some(pb) = self.prev {
                let t = |k: i64| self.trans.get(&(pb, k)).copied().unwrap_or(0.0);
                let st = t(b) + 0.5 * (t(b - 1) + t(b + 1));
                let from = c(&self.from, pb);
                let pt = (st + 0.05) / (2.0 * from + 1.0);
                r += -pt.ln();
            }
            r
        } else {
            0.0
        };
        *self.counts.entry(b).or_insert(0.0) += 1.0;
        self.total += 1.0;
        if let Some(pb) = self.prev {
            *self.trans.entry((pb, b)).or_insert(0.0) += 1.0;
            *self.from.entry(pb).or_insert(0.0) += 1.0;
        }
        self.prev = Some(b);
        if self.total >= CAP {
            self.halve();
        }
        raw
    }
}

impl Default for NoveltyDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector for NoveltyDetector {
    fn update(&mut self, _ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let raw = self.raw_and_learn(value);
        self.lik.update(raw)
    }

    fn name(&self) -> &'static str {
        "novelty"
    }
}
