//! Throughput of the streaming anomaly detectors (points/s), plain `main` timing.
//!
//! `cargo bench -p aiops-platform --bench detectors`

use std::hint::black_box;
use std::time::Instant;

use aiops_platform::anomaly::DetectorKind;

fn main() {
    let n = 200_000usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f64> = (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64;
            let spike = if i % 5000 == 4999 { 30.0 } else { 0.0 };
            50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + 3.0 * noise + spike
        })
        .collect();
    println!("{:<10} {:>14} {:>12}", "detector", "points/s", "ns/point");
    for kind in [
        DetectorKind::Robust,
        DetectorKind::Spectral,
        DetectorKind::Novelty,
        DetectorKind::Ensemble,
    ] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let mut d = kind.build();
            let t = Instant::now();
            let mut acc = 0.0;
            for (i, &v) in values.iter().enumerate() {
                acc += d.update(i as i64 * 300, v);
            }
            black_box(acc);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{:<10} {:>14.0} {:>12.1}",
            kind.name(),
            n as f64 / best,
            best * 1e9 / n as f64
        );
    }
}
