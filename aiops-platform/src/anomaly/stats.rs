//! Small streaming statistics shared by the detectors: a sorted sliding window, a ring buffer,
//! a radix-2 FFT and the "anomaly likelihood" that turns raw scores into calibrated ones.

use std::collections::VecDeque;

/// A fixed-capacity sliding window that keeps its values both in arrival order and sorted,
/// so order statistics (median, quartiles) are O(1) and each push is O(capacity) memmove.
#[derive(Debug, Clone)]
pub(crate) struct SortedWindow {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    cap: usize,
}

impl SortedWindow {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(cap),
            sorted: Vec::with_capacity(cap),
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    pub(crate) fn push(&mut self, v: f64) {
        if self.order.len() == self.cap
            && let Some(old) = self.order.pop_front()
        {
            let i = self.sorted.partition_point(|x| *x < old);
            if i < self.sorted.len() {
                self.sorted.remove(i);
            }
        }
        self.order.push_back(v);
        let i = self.sorted.partition_point(|x| *x < v);
        self.sorted.insert(i, v);
    }

    /// Linear-interpolated quantile, `q` in [0, 1]. `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let frac = pos - lo as f64;
        Some(self.sorted[lo] * (1.0 - frac) + self.sorted[hi] * frac)
    }
}

/// Upper tail probability of the standard normal, P(Z > z), accurate to ~1e-7 relative and
/// well-behaved far into the tail (uses the complementary error function).
pub(crate) fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes `erfcc`, fractional error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let ans = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// Maps a tail probability to a score in [0, 1]: `-log10(p) / 10`, so a score of 0.5 means the
/// observation is about as surprising as a 1-in-100,000 event under the learned normal behaviour,
/// and 1.0 means 1-in-10^10 or rarer.
pub(crate) fn prob_to_score(p: f64) -> f64 {
    if !p.is_finite() || p <= 0.0 {
        return 1.0;
    }
    (-p.log10() / 10.0).clamp(0.0, 1.0)
}

/// HTM-style anomaly likelihood over a stream of non-negative raw scores.
///
/// Keeps a long-run (exponentially weighted) mean and variance of `ln(1 + raw)` for both the
/// instantaneous value and a short moving average, and scores each new raw value by the normal
/// tail probability of whichever of the two is more surprising (Bonferroni-corrected). The stats
/// are updated after scoring, with outliers clipped so one anomaly does not blind the detector.
#[derive(Debug, Clone)]
pub(crate) struct Likelihood {
    short: VecDeque<f64>,
    short_sum: f64,
    short_len: usize,
    inst: EwStats,
    avg: EwStats,
    n: u64,
    warmup: u64,
}

#[derive(Debug, Clone, Default)]
struct EwStats {
    mean: f64,
    var: f64,
    n: u64,
}

impl EwStats {
    const LONG: f64 = 1000.0;
    const MIN_SD: f64 = 0.03;

    fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt().max(Self::MIN_SD)
    }

    fn tail(&self, x: f64) -> f64 {
        normal_tail((x - self.mean) / self.sd())
    }

    fn update(&mut self, x: f64) {
        self.n += 1;
        // Clip far outliers so an anomaly only moderately inflates the baseline.
        let x = if self.n > 10 {
            x.min(self.mean + 4.0 * self.sd())
        } else {
            x
        };
        let alpha = (1.0 / self.n as f64).max(1.0 / Self::LONG);
        let d = x - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
    }
}

impl Likelihood {
    pub(crate) fn new(short_len: usize, warmup: u64) -> Self {
        Self {
            short: VecDeque::with_capacity(short_len),
            short_sum: 0.0,
            short_len: short_len.max(1),
            inst: EwStats::default(),
            avg: EwStats::default(),
            n: 0,
            warmup,
        }
    }

    /// Scores `raw` (>= 0) in [0, 1] and learns from it.
    pub(crate) fn update(&mut self, raw: f64) -> f64 {
        let l = if raw.is_finite() {
            raw.max(0.0).ln_1p()
        } else {
            50.0
        };
        if self.short.len() == self.short_len
            && let Some(old) = self.short.pop_front()
        {
            self.short_sum -= old;
        }
        self.short.push_back(l);
        self.short_sum += l;
        let avg = self.short_sum / self.short.len() as f64;
        self.n += 1;
        let score = if self.n <= self.warmup {
            0.0
        } else {
            let p = (self.inst.tail(l).min(self.avg.tail(avg)) * 2.0).min(1.0);
            prob_to_score(p)
        };
        self.inst.update(l);
        self.avg.update(avg);
        score
    }
}

/// Minimal complex number for the FFT.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Complex {
    pub(crate) re: f64,
    pub(crate) im: f64,
}

/// Precomputed in-place iterative radix-2 FFT of a fixed power-of-two size.
#[derive(Debug, Clone)]
pub(crate) struct Fft {
    n: usize,
    twiddles: Vec<Complex>,
    rev: Vec<usize>,
}

impl Fft {
    /// `n` must be a power of two (rounded up otherwise).
    pub(crate) fn new(n: usize) -> Self {
        let n = n.next_power_of_two().max(2);
        let bits = n.trailing_zeros();
        let rev = (0..n)
            .map(|i| i.reverse_bits() >> (usize::BITS - bits))
            .collect();
        let twiddles = (0..n / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                Complex {
                    re: a.cos(),
                    im: a.sin(),
                }
            })
            .collect();
        Self { n, twiddles, rev }
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Forward (or, with `inverse`, unnormalised inverse) transform of `buf` (length `n`).
    pub(crate) fn run(&self, buf: &mut [Complex], inverse: bool) {
        let n = self.n;
        debug_assert_eq!(buf.len(), n);
        for i in 0..n {
            let j = self.rev[i];
            if i < j {
                buf.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..len / 2 {
                    let mut w = self.twiddles[k * step];
                    if inverse {
                        w.im = -w.im;
                    }
                    let a = buf[start + k];
                    let b = buf[start + k + len / 2];
                    let t = Complex {
                        re: b.re * w.re - b.im * w.im,
                        im: b.re * w.im + b.im * w.re,
                    };
                    buf[start + k] = Complex {
                        re: a.re + t.re,
                        im: a.im + t.im,
                    };
                    buf[start + k + len / 2] = Complex {
                        re: a.re - t.re,
                        im: a.im - t.im,
                    };
                }
            }
            len <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_window_quantiles() {
        let mut w = SortedWindow::new(5);
        for v in [5.0, 1.0, 4.0, 2.0, 3.0, 100.0] {
            w.push(v);
        }
        // 5.0 evicted: window is 1,4,2,3,100
        assert_eq!(w.len(), 5);
        assert_eq!(w.quantile(0.5), Some(3.0));
        assert_eq!(w.quantile(0.0), Some(1.0));
        assert_eq!(w.quantile(1.0), Some(100.0));
    }

    #[test]
    fn normal_tail_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        assert!(normal_tail(10.0) > 0.0);
        assert!((prob_to_score(1e-5) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn fft_matches_dft() {
        let fft = Fft::new(8);
        let xs: Vec<f64> = (0..8).map(|i| (i as f64 * 0.7).sin() + i as f64).collect();
        let mut buf: Vec<Complex> = xs.iter().map(|&re| Complex { re, im: 0.0 }).collect();
        fft.run(&mut buf, false);
        for (k, c) in buf.iter().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, x) in xs.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / 8.0;
                re += x * a.cos();
                im += x * a.sin();
            }
            assert!((c.re - re).abs() < 1e-9 && (c.im - im).abs() < 1e-9);
        }
        fft.run(&mut buf, true);
        for (c, x) in buf.iter().zip(&xs) {
            assert!((c.re / 8.0 - x).abs() < 1e-9);
        }
    }
}
