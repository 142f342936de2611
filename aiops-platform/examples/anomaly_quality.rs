//! Detection quality on the generated development corpus, and the online cost of the detectors.
//!
//! ```text
//! cargo run --release -p aiops-platform --example anomaly_quality            # quality + cost
//! cargo run --release -p aiops-platform --example anomaly_quality -- quality [seeds]
//! cargo run --release -p aiops-platform --example anomaly_quality -- cost
//! cargo run --release -p aiops-platform --example anomaly_quality -- ablate [seeds]
//! ```
//!
//! Quality: every detector (the current and previous defaults, their components, and NAB's
//! windowed-Gaussian baseline) scores the same series in the same run; NAB's three profiles with
//! each detector's own best threshold, on the tuning families and, separately, on the held-out
//! families; then precision and recall per anomaly kind at the standard-profile threshold.
//! Cost: µs per point (1,000 series × 3,000 points, interleaved as the platform feeds them) and
//! bytes of state per series (resident-memory growth over 20,000 detectors, divided).

use std::hint::black_box;
use std::time::Instant;

use aiops_platform::anomaly::corpus::{self, AnomalyKind, Family, LabelledSeries};
use aiops_platform::anomaly::nab::{self, Profile, ScoredSeries};
use aiops_platform::anomaly::{Detector, DetectorKind, ResidualConfig, ResidualDetector};

type Build = fn() -> Box<dyn Detector>;

fn contenders() -> Vec<(&'static str, Build)> {
    let mut v: Vec<(&'static str, Build)> = Vec::new();
    for kind in DetectorKind::ALL {
        v.push((kind.name(), kind.builder()));
    }
    v
}

fn run(build: impl Fn() -> Box<dyn Detector>, s: &LabelledSeries) -> Vec<f64> {
    s.scores(build().as_mut())
}

fn quality(seeds: u64) {
    let sets = [
        ("tuning families", corpus::corpus(&Family::TUNING, seeds)),
        (
            "held-out families",
            corpus::corpus(&Family::HELD_OUT, seeds),
        ),
    ];
    for (label, series) in &sets {
        let points: usize = series.iter().map(|s| s.values.len()).sum();
        let windows: usize = series.iter().map(|s| s.windows.len()).sum();
        println!(
            "\n## {label}: {} series, {points} points, {windows} labelled windows",
            series.len()
        );
        println!(
            "\n| detector | NAB standard | low FP | low FN | threshold | TP | FP | FN |\n|---|---|---|---|---|---|---|---|"
        );
        let mut per_kind: Vec<(String, Vec<String>)> = Vec::new();
        for (name, build) in contenders() {
            let scores: Vec<Vec<f64>> = series.iter().map(|s| run(build, s)).collect();
            let scored: Vec<ScoredSeries<'_>> = series
                .iter()
                .zip(&scores)
                .map(|(s, sc)| s.scored(sc))
                .collect();
            let r: Vec<_> = Profile::ALL
                .iter()
                .map(|p| nab::optimise(&scored, *p))
                .collect();
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {:.3} | {} | {} | {} |",
                r[0].score,
                r[1].score,
                r[2].score,
                r[0].threshold,
                r[0].tally.tp,
                r[0].tally.fp,
                r[0].tally.fn_
            );
            let th = r[0].threshold;
            let mut cells = Vec::new();
            for kind in AnomalyKind::ALL.map(Some).into_iter().chain([None]) {
                let sub: Vec<ScoredSeries<'_>> = series
                    .iter()
                    .zip(&scored)
                    .filter(|(s, _)| s.kind == kind)
                    .map(|(_, sc)| sc.clone())
                    .collect();
                let t = nab::score_corpus(&sub, th, Profile::STANDARD);
                cells.push(match kind {
                    Some(_) => {
                        let p = t.tp as f64 / (t.tp + t.fp).max(1) as f64;
                        let rc = t.tp as f64 / (t.tp + t.fn_).max(1) as f64;
                        format!("{p:.2} / {rc:.2}")
                    }
                    None => {
                        let pts: usize = sub.iter().map(|s| s.scores.len()).sum();
                        format!("{:.1}", t.fp as f64 * 10_000.0 / pts.max(1) as f64)
                    }
                });
            }
            per_kind.push((name.to_string(), cells));
        }
        println!(
            "\nPrecision / recall per anomaly kind at each detector's standard threshold \
             (precision = detected windows / (detected windows + detections outside windows)); \
             last column: false detections per 10,000 points on series without anomalies.\n"
        );
        let head: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.name()).collect();
        println!("| detector | {} | none: FP/10k |", head.join(" | "));
        println!("|---|{}---|", "---|".repeat(head.len()));
        for (name, cells) in per_kind {
            println!("| {name} | {} |", cells.join(" | "));
        }
    }
}

/// Variants of the residual detector's configuration, each on the tuning and held-out sets.
fn ablate(seeds: u64) {
    let d = ResidualConfig::DEFAULT;
    let variants: Vec<(String, ResidualConfig)> = vec![
        ("default".into(), d),
        (
            "no seasonal".into(),
            ResidualConfig {
                seasonal: false,
                ..d
            },
        ),
        ("no drift".into(), ResidualConfig { drift: false, ..d }),
        (
            "no variance".into(),
            ResidualConfig {
                variance: false,
                ..d
            },
        ),
        ("no stuck".into(), ResidualConfig { stuck: false, ..d }),
        ("rest 0".into(), ResidualConfig { rest: 0, ..d }),
        ("rest 100".into(), ResidualConfig { rest: 100, ..d }),
        ("rest 400".into(), ResidualConfig { rest: 400, ..d }),
        ("rest 800".into(), ResidualConfig { rest: 800, ..d }),
        ("damp 0.1".into(), ResidualConfig { damp: 0.1, ..d }),
        ("damp 0.5".into(), ResidualConfig { damp: 0.5, ..d }),
        ("window 64".into(), ResidualConfig { window: 64, ..d }),
        ("window 256".into(), ResidualConfig { window: 256, ..d }),
        ("average 1".into(), ResidualConfig { average: 1, ..d }),
        ("average 12".into(), ResidualConfig { average: 12, ..d }),
    ];
    let sets = [
        ("tuning", corpus::corpus(&Family::TUNING, seeds)),
        ("held-out", corpus::corpus(&Family::HELD_OUT, seeds)),
    ];
    println!(
        "\n| residual variant | tuning std | tuning low FP | held-out std | held-out low FP |\n|---|---|---|---|---|"
    );
    for (name, cfg) in variants {
        let mut cells = Vec::new();
        for (_, series) in &sets {
            let scores: Vec<Vec<f64>> = series
                .iter()
                .map(|s| run(|| Box::new(ResidualDetector::with_config(cfg)), s))
                .collect();
            let scored: Vec<ScoredSeries<'_>> = series
                .iter()
                .zip(&scores)
                .map(|(s, sc)| s.scored(sc))
                .collect();
            for p in [Profile::STANDARD, Profile::LOW_FP] {
                cells.push(format!("{:.1}", nab::optimise(&scored, p).score));
            }
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn cost() {
    println!(
        "\n## cost: µs per point (1,000 series × 3,000 points, round-robin) and state per series\n"
    );
    println!("| detector | µs/point | bytes/series |\n|---|---|---|");
    let series = 1000usize;
    let points = 3000usize;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let noise: Vec<f64> = (0..4096).map(|_| next()).collect();
    for (name, build) in contenders() {
        let mut ds: Vec<Box<dyn Detector>> = (0..series).map(|_| build()).collect();
        let t0 = Instant::now();
        let mut acc = 0.0;
        for p in 0..points {
            for (i, d) in ds.iter_mut().enumerate() {
                let v = 100.0
                    + 10.0 * ((p as f64 + i as f64) * std::f64::consts::TAU / 1440.0).sin()
                    + 5.0 * noise[(p * 7 + i) % noise.len()];
                acc += d.update(1_700_000_000 + p as i64, v);
            }
        }
        black_box(acc);
        let us = t0.elapsed().as_secs_f64() * 1e6 / (series * points) as f64;
        drop(ds);
        // State: resident growth over many warmed-up detectors (heap included), measured in a
        // fresh process so memory freed by earlier runs cannot hide it.
        let bytes = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                std::process::Command::new(exe)
                    .args(["state", name])
                    .output()
                    .ok()
            })
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        println!("| {name} | {us:.2} | {bytes} |");
    }
}

/// Prints the resident bytes per detector of `name` over 20,000 warmed-up detectors.
fn state(name: &str) {
    let Some((_, build)) = contenders().into_iter().find(|(n, _)| *n == name) else {
        return;
    };
    let noise: Vec<f64> = (0..4096u64)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64) / (1u64 << 53) as f64)
        .collect();
    let many = 20_000usize;
    let before = rss_bytes().unwrap_or(0);
    let mut ds: Vec<Box<dyn Detector>> = (0..many).map(|_| build()).collect();
    for p in 0..600 {
        for (i, d) in ds.iter_mut().enumerate() {
            d.update(p as i64 * 300, 100.0 + noise[(p * 13 + i) % noise.len()]);
        }
    }
    let after = rss_bytes().unwrap_or(0);
    black_box(&ds);
    println!("{}", after.saturating_sub(before) / many);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("state") {
        state(args.get(1).map(String::as_str).unwrap_or(""));
        return;
    }
    let what = args.first().map(String::as_str).unwrap_or("all");
    let seeds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    if what == "quality" || what == "all" {
        quality(seeds);
    }
    if what == "ablate" {
        ablate(seeds);
    }
    if what == "cost" || what == "all" {
        cost();
    }
}
