//! Robust baseline: distance from the sliding-window median in units of a robust spread.

use super::Detector;
use super::stats::{Likelihood, SortedWindow};

/// Robust baseline detector.
///
/// Raw score: `|x - median| / scale` over the previous `window` points, where `scale` is the
/// inter-quartile range / 1.349 (a robust standard deviation), floored at a small fraction of the
/// range of everything seen so far so flat series and step series behave. The raw score is then
/// turned into a calibrated score by the anomaly likelihood (see the module docs).
#[derive(Debug, Clone)]
pub struct RobustDetector {
    window: SortedWindow,
    diffs: SortedWindow,
    last: Option<f64>,
    lik: Likelihood,
    min: f64,
    max: f64,
    n: u64,
}

impl RobustDetector {
    /// Default sliding window length (points).
    pub const WINDOW: usize = 128;

    /// A detector with the default window and warm-up.
    pub fn new() -> Self {
        Self::with_params(Self::WINDOW, super::WARMUP)
    }

    /// A detector with a custom window length and warm-up (points scored 0 at the start).
    pub fn with_params(window: usize, warmup: u64) -> Self {
        Self {
            window: SortedWindow::new(window.max(8)),
            diffs: SortedWindow::new(window.max(8)),
            last: None,
            lik: Likelihood::new(6, warmup),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            n: 0,
        }
    }

    /// The raw (uncalibrated) deviation of `value` from the current window, before learning it.
    pub(crate) fn raw(&self, value: f64) -> f64 {
        if self.window.len() < 8 {
            return 0.0;
        }
        let (Some(q1), Some(med), Some(q3)) = (
            self.window.quantile(0.25),
            self.window.quantile(0.5),
            self.window.quantile(0.75),
        ) else {
            return 0.0;
        };
        let range = (self.max - self.min).max(0.0);
        let floor = (range * 0.01).max(med.abs() * 1e-6).max(1e-9);
        let scale = ((q3 - q1) / 1.349).max(floor);
        let level = (value - med).abs() / scale;
        // The same on first differences: catches spikes and steps riding on a seasonal swing.
        let diff = match (
            self.last,
            self.diffs.quantile(0.25),
            self.diffs.quantile(0.5),
            self.diffs.quantile(0.75),
        ) {
            (Some(last), Some(d1), Some(dm), Some(d3)) if self.diffs.len() >= 8 => {
                ((value - last) - dm).abs() / ((d3 - d1) / 1.349).max(floor)
            }
            _ => 0.0,
        };
        level.max(diff)
    }

    pub(crate) fn learn(&mut self, value: f64) {
        self.window.push(value);
        if let Some(last) = self.last {
            self.diffs.push(value - last);
        }
        self.last = Some(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.n += 1;
    }
}

impl Default for RobustDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector for RobustDetector {
    fn update(&mut self, _ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let raw = self.raw(value);
        self.learn(value);
        self.lik.update(raw)
    }

    fn name(&self) -> &'static str {
        "robust"
    }
}
