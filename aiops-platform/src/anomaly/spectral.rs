//! Streaming spectral residual (Ren et al., "Time-Series Anomaly Detection Service at
//! Microsoft", KDD 2019), evaluated over a sliding window that ends at the current point.

use std::collections::VecDeque;

use super::Detector;
use super::stats::{Complex, Fft, Likelihood};

/// Spectral-residual detector.
///
/// For each new point the last `window - EXTEND` values (the current one included) are extended
/// with `EXTEND` extrapolated points, transformed with an FFT, the log-amplitude spectrum has its
/// local average removed (the "spectral residual"), and the inverse transform gives a saliency
/// map. The raw score is how much the current point's saliency exceeds the mean saliency of the
/// preceding points; it is calibrated by the anomaly likelihood.
#[derive(Debug, Clone)]
pub struct SpectralDetector {
    values: VecDeque<f64>,
    fft: Fft,
    buf: Vec<Complex>,
    amp: Vec<f64>,
    lik: Likelihood,
}

const EXTEND: usize = 5;
const AVG_FILTER: usize = 3;
const LOCAL: usize = 21;

impl SpectralDetector {
    /// Default transform length (points, power of two), including the extrapolated tail.
    pub const WINDOW: usize = 64;

    /// A detector with the default window and warm-up.
    pub fn new() -> Self {
        Self::with_params(Self::WINDOW, super::WARMUP)
    }

    /// A detector with a custom transform length (rounded up to a power of two, at least 32)
    /// and warm-up.
    pub fn with_params(window: usize, warmup: u64) -> Self {
        let fft = Fft::new(window.max(32));
        let n = fft.len();
        Self {
            values: VecDeque::with_capacity(n),
            buf: vec![Complex::default(); n],
            amp: vec![0.0; n],
            fft,
            lik: Likelihood::new(4, warmup),
        }
    }

    fn hist_len(&self) -> usize {
        self.fft.len() - EXTEND
    }

    /// Raw saliency ratio of the newest value (already pushed).
    fn raw(&mut self) -> f64 {
        let h = self.values.len();
        let n = self.fft.len();
        if h < self.hist_len() {
            return 0.0;
        }
        let mean = self.values.iter().sum::<f64>() / h as f64;
        for (slot, v) in self.buf.iter_mut().zip(self.values.iter()) {
            *slot = Complex {
                re: v - mean,
                im: 0.0,
            };
        }
        // Extrapolate: next = x[h-m] + mean gradient * m (SR paper, eq. 8-9).
        let last = self.values[h - 1] - mean;
        let grad = (1..=EXTEND)
            .map(|i| (last - (self.values[h - 1 - i] - mean)) / i as f64)
            .sum::<f64>()
            / EXTEND as f64;
        let ext = self.values[h - EXTEND] - mean + grad * EXTEND as f64;
        for slot in &mut self.buf[h..n] {
            *slot = Complex { re: ext, im: 0.0 };
        }
        self.fft.run(&mut self.buf, false);
        for (a, c) in self.amp.iter_mut().zip(&self.buf) {
            *a = (c.re * c.re + c.im * c.im).sqrt();
        }
        let scale = self.amp.iter().cloned().fold(0.0_f64, f64::max);
        if scale <= 1e-12 * (1.0 + mean.abs()) {
            return 0.0; // constant window: nothing salient
        }
        let eps = scale * 1e-8;
        let log_amp: Vec<f64> = self.amp.iter().map(|a| (a + eps).ln()).collect();
        for k in 0..n {
            // circular moving average of the log amplitude
            let mut s = 0.0;
            for d in 0..AVG_FILTER {
                s += log_amp[(k + n + d - AVG_FILTER / 2) % n];
            }
            let residual = log_amp[k] - s / AVG_FILTER as f64;
            let c = self.buf[k];
            let a = self.amp[k];
            let (cos, sin) = if a > 0.0 {
                (c.re / a, c.im / a)
            } else {
                (1.0, 0.0)
            };
            let m = residual.exp();
            self.buf[k] = Complex {
                re: m * cos,
                im: m * sin,
            };
        }
        self.fft.run(&mut self.buf, true);
        let sal = |i: usize| {
            let c = self.buf[i];
            (c.re * c.re + c.im * c.im).sqrt()
        };
        let cur = sal(h - 1);
        let local = (h - 1 - LOCAL..h - 1).map(sal).sum::<f64>() / LOCAL as f64;
        if local <= 0.0 || !cur.is_finite() {
            return 0.0;
        }
        cur / local
    }
}

impl Default for SpectralDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector for SpectralDetector {
    fn update(&mut self, _ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.values.len() == self.hist_len() {
            self.values.pop_front();
        }
        self.values.push_back(value);
        let raw = self.raw();
        self.lik.update(raw)
    }

    fn name(&self) -> &'static str {
        "spectral"
    }
}
