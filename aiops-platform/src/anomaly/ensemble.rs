//! The default detector: robust baseline + spectral residual + quantised novelty, combined and
//! de-duplicated so one anomaly produces one high score.

use super::Detector;
use super::novelty::NoveltyDetector;
use super::robust::RobustDetector;
use super::spectral::SpectralDetector;

/// Ensemble of [`RobustDetector`], [`SpectralDetector`] and [`NoveltyDetector`].
///
/// The calibrated component scores are combined as the mean of their average and their maximum
/// (so one very confident component can raise an alarm, but agreement counts most). The combined
/// score is then reported as *new evidence*: within `REST` points of a reported peak, a score is
/// reported in full only if it beats that peak by a margin; otherwise it is damped to a fifth.
/// A sustained anomaly therefore yields one high score at its start rather than a plateau.
#[derive(Debug, Clone)]
pub struct EnsembleDetector {
    robust: RobustDetector,
    spectral: SpectralDetector,
    novelty: NoveltyDetector,
    peak: f64,
    age: u64,
}

const REST: u64 = 200;
const MARGIN: f64 = 0.1;
const DAMP: f64 = 0.2;

impl EnsembleDetector {
    /// A detector with default components.
    pub fn new() -> Self {
        Self {
            robust: RobustDetector::new(),
            spectral: SpectralDetector::new(),
            novelty: NoveltyDetector::new(),
            peak: 0.0,
            age: u64::MAX,
        }
    }

    /// The combined score before de-duplication.
    pub fn combined(&mut self, ts: i64, value: f64) -> f64 {
        let s = [
            self.robust.update(ts, value),
            self.spectral.update(ts, value),
            self.novelty.update(ts, value),
        ];
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        let max = s.iter().cloned().fold(0.0, f64::max);
        (0.5 * (mean + max)).max(s[0]).clamp(0.0, 1.0)
    }
}

impl Default for EnsembleDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector for EnsembleDetector {
    fn update(&mut self, ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let s = self.combined(ts, value);
        self.age = self.age.saturating_add(1);
        let active = self.age <= REST;
        if !active || s > self.peak + MARGIN {
            if s >= 0.2 {
                self.peak = s;
                self.age = 0;
            }
            s
        } else {
            s * DAMP
        }
    }

    fn name(&self) -> &'static str {
        "ensemble"
    }
}
