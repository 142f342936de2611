//! Published baselines, re-implemented faithfully, to score beside our detectors.

use super::Detector;
use super::stats::normal_tail;

/// NAB's "windowed Gaussian" baseline (`nab/detectors/gaussian/windowedGaussian_detector.py`):
/// the score is `1 - P(tail beyond |x - mean|)` under a normal fitted to the last 6,400 values,
/// refitted every 100 points once the window is full. It is the 39.6 entry of NAB's scoreboard.
/// Not constant-memory-friendly (51 KB per series): a baseline, not for online use.
#[derive(Debug, Clone)]
pub struct WindowedGaussian {
    window: Vec<f64>,
    step: Vec<f64>,
    mean: f64,
    m2: f64,
    sd: f64,
}

impl WindowedGaussian {
    const WINDOW: usize = 6400;
    const STEP: usize = 100;

    /// A fresh detector.
    pub fn new() -> Self {
        Self {
            window: Vec::new(),
            step: Vec::new(),
            mean: 0.0,
            m2: 0.0,
            sd: 1.0,
        }
    }

    fn refit(&mut self) {
        let n = self.window.len() as f64;
        self.mean = self.window.iter().sum::<f64>() / n;
        let var = self
            .window
            .iter()
            .map(|v| (v - self.mean).powi(2))
            .sum::<f64>()
            / n;
        self.sd = if var > 0.0 { var.sqrt() } else { 1e-6 };
    }
}

impl Default for WindowedGaussian {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector for WindowedGaussian {
    fn update(&mut self, _ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let score = if self.window.is_empty() {
            0.0
        } else {
            1.0 - normal_tail((value - self.mean).abs() / self.sd)
        };
        if self.window.len() < Self::WINDOW {
            // Growing: the same mean and population sd as a refit, updated incrementally
            // (Welford) instead of recomputed over the whole window.
            self.window.push(value);
            let n = self.window.len() as f64;
            let d = value - self.mean;
            self.mean += d / n;
            self.m2 += d * (value - self.mean);
            let var = self.m2 / n;
            self.sd = if var > 0.0 { var.sqrt() } else { 1e-6 };
        } else {
            self.step.push(value);
            if self.step.len() == Self::STEP {
                self.window.drain(..Self::STEP);
                self.window.append(&mut self.step);
                self.refit();
            }
        }
        score.clamp(0.0, 1.0)
    }

    fn name(&self) -> &'static str {
        "windowed-gaussian"
    }
}
