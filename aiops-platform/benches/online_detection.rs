//! Cost of online detection: 1,000 services (request series) with five minutes of history,
//! judged every 250 ms as the platform does — error-budget burn alerts, the latency judge and
//! exception bursts — by the real `detect::ServiceDetection` over the real `Store`.
//!
//! Prints the share of one core detection takes at the platform's tick rate (target: under
//! 5 %), the cost per recorded request, and the memory per series.
//!
//! `cargo bench -p aiops-platform --bench online_detection`

use std::hint::black_box;
use std::time::Instant;

use aiops_platform::config::RetentionConfig;
use aiops_platform::detect::{ServiceDetection, Watch};
use aiops_platform::store::{Bucket, HORIZON_SECS, RequestSource, Store};

const SERVICES: usize = 1_000;
const RPS: u64 = 20;
const NS: u64 = 1_000_000_000;
/// Detection ticks per second in the platform (every 250 ms).
const TICKS_PER_SEC: f64 = 4.0;

fn main() {
    let retention = RetentionConfig {
        max_discovered_services: SERVICES,
        ..RetentionConfig::default()
    };
    let store = Store::new(retention, None);
    let names: Vec<String> = (0..SERVICES).map(|i| format!("svc-{i:04}")).collect();
    let t0 = 1_800_000_000 * NS;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut recorded = 0u64;
    let started = Instant::now();
    for s in 0..HORIZON_SECS {
        for name in &names {
            for i in 0..RPS {
                let at = t0 + s * NS + i * (NS / RPS);
                let failed = rand() < 0.001;
                let latency = 20.0 + 5.0 * rand();
                store.requests.record_request(
                    name,
                    RequestSource::Spans,
                    at,
                    failed,
                    Some(latency),
                );
                recorded += 1;
            }
        }
    }
    let ingest = started.elapsed().as_secs_f64();
    {
        let mut services = store.services.write();
        for name in &names {
            services.declare(name, t0);
        }
    }

    let watch = Watch::default();
    let mut detections: Vec<ServiceDetection> =
        (0..SERVICES).map(|_| ServiceDetection::default()).collect();
    // Warm the latency judges over the history (one tick per second of it).
    for s in 1..HORIZON_SECS {
        let now = t0 + s * NS;
        for (name, d) in names.iter().zip(&mut detections) {
            black_box(d.evaluate(name, &watch, &store, now));
        }
    }
    let ticks = 40u64;
    let mut best = f64::MAX;
    for round in 0..3 {
        let started = Instant::now();
        for k in 0..ticks {
            let now = t0 + HORIZON_SECS * NS + (round * ticks + k) * NS / 4;
            for (name, d) in names.iter().zip(&mut detections) {
                black_box(d.evaluate(name, &watch, &store, now));
            }
        }
        best = best.min(started.elapsed().as_secs_f64() / ticks as f64);
    }
    let share = best * TICKS_PER_SEC * 100.0;
    let bucket_bytes = std::mem::size_of::<Bucket>() * HORIZON_SECS as usize;
    let judge_bytes = std::mem::size_of::<ServiceDetection>();
    println!("series (services): {SERVICES}, {RPS} requests/s each, {HORIZON_SECS} s of history");
    println!(
        "detection: {:.2} ms per tick of all series, {:.2} % of one core at 4 ticks/s (target < 5 %)",
        best * 1e3,
        share
    );
    println!(
        "           {:.2} µs per series per tick",
        best * 1e6 / SERVICES as f64
    );
    println!(
        "recording: {:.0} ns per request ({recorded} requests)",
        ingest * 1e9 / recorded as f64
    );
    println!(
        "memory per series: {bucket_bytes} B of per-second buckets (per source) + {judge_bytes} B of detector state (plus the latency judge's 60-point windows)"
    );
}
