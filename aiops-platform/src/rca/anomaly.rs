//! One series' anomaly: where it changed (its onset) and by how much, in robust units.
//!
//! The onset is a rank-based CUSUM change point (the split that best separates lower from
//! higher ranks, in the metric's bad direction); the anomalous segment runs from the onset to
//! the end that maximises a scan statistic (so a burst that is over is not diluted by the
//! healthy points after it); the size is the robust z-score of the segment's median against
//! the baseline's median, in units of the baseline's MAD (its mean absolute deviation when the
//! MAD is 0).

use super::series::{MetricKind, Point};

/// Series shorter than this are not judged.
pub(crate) const MIN_POINTS: usize = 12;
/// A baseline needs at least this many points (and a tenth of the series): a MAD from
/// fewer is too unsure to measure a change with.
const MIN_BASELINE: usize = 8;
/// An anomalous segment needs at least this many points (a few spikes are not a change).
const MIN_SEGMENT: usize = 6;

/// The change found in one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SeriesChange {
    /// Time of the first anomalous point.
    pub(crate) onset: f64,
    /// Robust z-score of the change in the bad direction (negative: it got better).
    pub(crate) z: f64,
}

/// Finds the change of `points` (sorted by time). With `since`, the baseline is every point
/// before it and the onset is searched at or after it; without, both come from the change
/// point. `None` when the series is too short to judge.
pub(crate) fn change_of(
    points: &[Point],
    kind: MetricKind,
    since: Option<f64>,
) -> Option<SeriesChange> {
    let n = points.len();
    if n < MIN_POINTS {
        return None;
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let ranks = ranks(&values);
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for r in &ranks {
        prefix.push(prefix[prefix.len() - 1] + r);
    }
    let dir = f64::from(kind.bad_direction());
    let sign = |x: f64| if dir == 0.0 { x.abs() } else { dir * x };
    let since_split = since
        .map(|s| points.partition_point(|p| p.0 < s))
        .filter(|&k| k >= MIN_BASELINE && k < n);
    // The onset: the split with the largest signed (mean after − mean before) rank difference,
    // weighted as CUSUM weights it.
    let (lo, hi) = match since_split {
        Some(k) => (k, n.saturating_sub(MIN_SEGMENT).max(k)),
        None => (MIN_BASELINE.max(n / 10), n - MIN_SEGMENT.max(n / 40)),
    };
    let total = prefix[n];
    let mut onset_at = lo;
    let mut best = f64::NEG_INFINITY;
    for (k, &below) in prefix.iter().enumerate().take(hi + 1).skip(lo) {
        if k == 0 || k >= n {
            continue;
        }
        let (kf, nf) = (k as f64, n as f64);
        let before = below / kf;
        let after = (total - below) / (nf - kf);
        let stat = sign(after - before) * (kf * (nf - kf) / nf).sqrt();
        if stat > best {
            best = stat;
            onset_at = k;
        }
    }
    // The anomalous segment: a scan statistic (sum of ranks over the baseline's mean rank,
    // over √length) picks its end, then refines its start, so that a burst that is over is
    // neither diluted by the healthy points after it nor misplaced by them.
    let scan = |from: usize, to: usize, centre: f64| {
        let len = (to - from) as f64;
        sign(prefix[to] - prefix[from] - centre * len) / len.sqrt()
    };
    let centre_of = |end: usize| prefix[end] / end.max(1) as f64;
    let centre = centre_of(since_split.unwrap_or(onset_at));
    let mut end = n;
    let mut best_scan = f64::NEG_INFINITY;
    for e in (onset_at + MIN_SEGMENT).min(n)..=n {
        let s = scan(onset_at, e, centre);
        if s > best_scan {
            best_scan = s;
            end = e;
        }
    }
    let mut best_scan = f64::NEG_INFINITY;
    for start in lo..=end.saturating_sub(MIN_SEGMENT).max(lo).min(n - 1) {
        let s = scan(start, end, centre);
        if s > best_scan {
            best_scan = s;
            onset_at = start;
        }
    }
    let base_end = since_split.unwrap_or(onset_at);
    let mut base = values[..base_end].to_vec();
    let mut segment = values[onset_at..end.max(onset_at + 1)].to_vec();
    let base_median = median(&mut base);
    let segment_median = median(&mut segment);
    let mut deviations: Vec<f64> = base.iter().map(|v| (v - base_median).abs()).collect();
    let mad = median(&mut deviations);
    // MAD is 0 when most of the baseline sits on one value (an error rate that is mostly 0):
    // then the mean absolute deviation stands in, as in the usual modified z-score.
    let spread = if mad > 0.0 {
        1.4826 * mad
    } else {
        1.2533 * deviations.iter().sum::<f64>() / deviations.len().max(1) as f64
    };
    let scale = spread.max(1e-3 * base_median.abs()).max(1e-9);
    let z = sign(segment_median - base_median) / scale;
    Some(SeriesChange {
        onset: points[onset_at].0,
        z,
    })
}

/// Ranks (1-based, ties averaged), so that the change point is scale-free and outliers weigh
/// no more than any other high point.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            out[o] = rank;
        }
        i = j + 1;
    }
    out
}

/// Median (sorts `v` in place); 0 for an empty slice.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64 * 10.0, v))
            .collect()
    }

    fn noisy(n: usize, level: f64, step_at: usize, step: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
                level + noise + if i >= step_at { step } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn finds_a_step_and_its_onset() {
        let p = series(&noisy(100, 10.0, 60, 5.0));
        let c = change_of(&p, MetricKind::Latency, None).expect("judged");
        assert_eq!(c.onset, 600.0);
        assert!(c.z > 5.0, "{c:?}");
    }

    #[test]
    fn a_drop_in_latency_is_not_bad_but_a_drop_in_availability_is() {
        let p = series(&noisy(100, 10.0, 60, -5.0));
        let c = change_of(&p, MetricKind::Latency, None).expect("judged");
        assert!(c.z < 2.0, "{c:?}");
        let c = change_of(&p, MetricKind::Availability, None).expect("judged");
        assert!(c.z > 5.0 && c.onset == 600.0, "{c:?}");
    }

    #[test]
    fn a_burst_that_ended_is_not_diluted() {
        let mut v = noisy(200, 1.0, 100, 0.0);
        for x in &mut v[100..120] {
            *x += 4.0;
        }
        let c = change_of(&series(&v), MetricKind::Errors, None).expect("judged");
        assert_eq!(c.onset, 1000.0);
        assert!(c.z > 5.0, "{c:?}");
    }

    #[test]
    fn since_sets_the_baseline_and_bounds_the_onset() {
        let p = series(&noisy(100, 10.0, 70, 5.0));
        let c = change_of(&p, MetricKind::Latency, Some(500.0)).expect("judged");
        assert_eq!(c.onset, 700.0);
        assert!(c.z > 5.0, "{c:?}");
        let c = change_of(&p, MetricKind::Latency, Some(800.0)).expect("judged");
        assert!(c.onset >= 800.0, "{c:?}");
        let flat = series(&[3.0; 50]);
        let c = change_of(&flat, MetricKind::Other, None).expect("judged");
        assert_eq!(c.z, 0.0);
        assert!(change_of(&flat[..10], MetricKind::Other, None).is_none());
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }
}
