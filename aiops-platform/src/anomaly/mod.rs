//! Streaming metric anomaly detection (no I/O).
//!
//! Every detector implements [`Detector`]: it is fed one point at a time with
//! [`Detector::update`] and returns that point's anomaly score, computed from the past and the
//! point itself only (never from later points), in constant memory per series. The first
//! [`WARMUP`] points of a series score 0 while the detector learns.
//!
//! # Meaning of a score
//!
//! Scores are in `[0, 1]` and are *log tail probabilities*: a score `s` says that, under the
//! behaviour the detector has learned for this series, a point at least this surprising has a
//! probability of about `10^(-10 s)`. So 0.3 ≈ 1 in 1,000, 0.5 ≈ 1 in 100,000 and 1.0 ≈ 1 in
//! 10^10 or rarer. Raw per-detector surprises are calibrated with an "anomaly likelihood" in the
//! style of Numenta HTM: the long-run distribution of raw scores (of the point itself and of a
//! short moving average) is tracked per series and each new raw score is judged by its tail
//! probability under it. The default [`ResidualDetector`] additionally reports *new evidence*:
//! after a peak, repeated high scores of the same episode are damped (see its docs), so a
//! threshold on its output fires once per anomaly.
//!
//! # Detectors
//!
//! | name       | type                 | idea                                                   |
//! |------------|----------------------|--------------------------------------------------------|
//! | `robust`   | [`RobustDetector`]   | distance from sliding median in robust (IQR) units      |
//! | `spectral` | [`SpectralDetector`] | spectral residual saliency over a sliding window        |
//! | `novelty`  | [`NoveltyDetector`]  | rarity of the quantised level and level transition      |
//! | `ensemble` | [`EnsembleDetector`] | the three combined, de-duplicated (previous default)    |
//! | `residual` | [`ResidualDetector`] | level, diff, seasonal, drift, variance and stuck streams, each calibrated, de-duplicated (default) |
//! | `windowed-gaussian` | [`WindowedGaussian`] | NAB's published baseline, for comparison      |
//!
//! [`corpus`] generates the labelled development corpus and [`nab`] scores detectors on it as
//! NAB does (`cargo run --release -p aiops-platform --example anomaly_quality`).
//!
//! Turn scores into alerts with [`Alerter`], which applies a threshold with hysteresis.

mod baseline;
pub mod corpus;
mod ensemble;
pub mod nab;
mod novelty;
mod residual;
mod robust;
mod spectral;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use baseline::WindowedGaussian;
pub use ensemble::EnsembleDetector;
pub use novelty::NoveltyDetector;
pub use residual::{ResidualConfig, ResidualDetector};
pub use robust::RobustDetector;
pub use spectral::SpectralDetector;

/// Number of initial points per series that always score 0 while detectors learn.
pub const WARMUP: u64 = 128;

/// Errors of the anomaly module.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AnomalyError {
    /// The detector name is not one of [`DetectorKind::NAMES`].
    #[error(
        "unknown detector {0:?} (expected one of: residual, ensemble, robust, spectral, novelty, robust-online, windowed-gaussian)"
    )]
    UnknownDetector(String),
}

/// A streaming anomaly detector for one series.
pub trait Detector: Send {
    /// Scores the point `(ts, value)` (`ts` in epoch seconds, non-decreasing) in `[0, 1]`,
    /// then learns from it. Non-finite values score 0 and are not learned.
    fn update(&mut self, ts: i64, value: f64) -> f64;

    /// The detector's name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
}

/// The available detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectorKind {
    /// [`RobustDetector`].
    Robust,
    /// [`SpectralDetector`].
    Spectral,
    /// [`NoveltyDetector`].
    Novelty,
    /// [`EnsembleDetector`] (the default before the residual detector).
    Ensemble,
    /// [`RobustDetector`] with the platform's online latency settings
    /// ([`ONLINE_WINDOW`] seconds, [`ONLINE_WARMUP`] points of warm-up): what judges each
    /// service's per-second mean latency against its own baseline.
    RobustOnline,
    /// [`ResidualDetector`] (the default of `aiops detect`).
    #[default]
    Residual,
    /// [`WindowedGaussian`], NAB's published baseline (not constant-memory: for comparison).
    WindowedGaussian,
}

/// Window (points) of the online latency detector: one point per second.
pub const ONLINE_WINDOW: usize = 60;
/// Warm-up (points) of the online latency detector.
pub const ONLINE_WARMUP: u64 = 30;

impl DetectorKind {
    /// All detector names.
    pub const NAMES: [&'static str; 7] = [
        "robust",
        "spectral",
        "novelty",
        "ensemble",
        "robust-online",
        "residual",
        "windowed-gaussian",
    ];

    /// All kinds, in the order of [`DetectorKind::NAMES`].
    pub const ALL: [DetectorKind; 7] = [
        Self::Robust,
        Self::Spectral,
        Self::Novelty,
        Self::Ensemble,
        Self::RobustOnline,
        Self::Residual,
        Self::WindowedGaussian,
    ];

    /// A fresh detector of this kind.
    pub fn build(self) -> Box<dyn Detector> {
        (self.builder())()
    }

    /// A constructor of fresh detectors of this kind.
    pub fn builder(self) -> fn() -> Box<dyn Detector> {
        match self {
            Self::Robust => || Box::new(RobustDetector::new()),
            Self::Spectral => || Box::new(SpectralDetector::new()),
            Self::Novelty => || Box::new(NoveltyDetector::new()),
            Self::Ensemble => || Box::new(EnsembleDetector::new()),
            Self::RobustOnline => {
                || Box::new(RobustDetector::with_params(ONLINE_WINDOW, ONLINE_WARMUP))
            }
            Self::Residual => || Box::new(ResidualDetector::new()),
            Self::WindowedGaussian => || Box::new(WindowedGaussian::new()),
        }
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Robust => "robust",
            Self::Spectral => "spectral",
            Self::Novelty => "novelty",
            Self::Ensemble => "ensemble",
            Self::RobustOnline => "robust-online",
            Self::Residual => "residual",
            Self::WindowedGaussian => "windowed-gaussian",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DetectorKind {
    type Err = AnomalyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "robust" => Ok(Self::Robust),
            "spectral" | "sr" => Ok(Self::Spectral),
            "novelty" => Ok(Self::Novelty),
            "robust-online" => Ok(Self::RobustOnline),
            "residual" | "default" => Ok(Self::Residual),
            "windowed-gaussian" | "windowedgaussian" => Ok(Self::WindowedGaussian),
            "ensemble" => Ok(Self::Ensemble),
            _ => Err(AnomalyError::UnknownDetector(s.to_string())),
        }
    }
}

/// Builds a detector by name (`robust`, `spectral`, `novelty`, `ensemble`).
pub fn by_name(name: &str) -> Result<Box<dyn Detector>, AnomalyError> {
    Ok(name.parse::<DetectorKind>()?.build())
}

/// A change of alert state reported by [`Alerter::update`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlertEvent {
    /// The score rose to the threshold: a new alert, with the score that opened it.
    Opened {
        /// Timestamp of the opening point.
        ts: i64,
        /// Score of the opening point.
        score: f64,
    },
    /// The alert cleared after the score stayed below the clear level long enough.
    Closed {
        /// Timestamp of the point that closed the alert.
        ts: i64,
        /// Highest score seen while the alert was open.
        peak: f64,
    },
}

/// Threshold with hysteresis: an alert opens when the score reaches `open_at`, and closes only
/// after `clear_points` consecutive scores below `close_at` (`close_at <= open_at`), so a bad
/// minute of flapping scores is one alert, not sixty.
#[derive(Debug, Clone)]
pub struct Alerter {
    open_at: f64,
    close_at: f64,
    clear_points: u32,
    open: bool,
    below: u32,
    peak: f64,
}

impl Alerter {
    /// Default opening threshold (about a 1-in-100,000 event).
    pub const DEFAULT_OPEN: f64 = 0.5;

    /// A new alerter. `close_at` is clamped to at most `open_at`.
    pub fn new(open_at: f64, close_at: f64, clear_points: u32) -> Self {
        Self {
            open_at,
            close_at: close_at.min(open_at),
            clear_points: clear_points.max(1),
            open: false,
            below: 0,
            peak: 0.0,
        }
    }

    /// Whether an alert is currently open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Feeds one score; returns an event when the alert state changes.
    pub fn update(&mut self, ts: i64, score: f64) -> Option<AlertEvent> {
        if self.open {
            self.peak = self.peak.max(score);
            if score < self.close_at {
                self.below += 1;
                if self.below >= self.clear_points {
                    self.open = false;
                    return Some(AlertEvent::Closed {
                        ts,
                        peak: self.peak,
                    });
                }
            } else {
                self.below = 0;
            }
            None
        } else if score >= self.open_at {
            self.open = true;
            self.below = 0;
            self.peak = score;
            Some(AlertEvent::Opened { ts, score })
        } else {
            None
        }
    }
}

impl Default for Alerter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_OPEN, 0.2, 10)
    }
}
