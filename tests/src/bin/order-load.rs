//! Load check of the food-delivery saga: starts the five services (the binaries beside this
//! one), places orders from `--concurrency` clients for `--seconds`, and reports orders per
//! second and latency percentiles.
//!
//! ```text
//! cargo build --release -p aiods-e2e
//! target/release/order-load --seconds 20 --concurrency 32
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aiods_e2e::{Binaries, FoodDelivery, http_client};
use serde_json::json;

struct Options {
    seconds: u64,
    concurrency: usize,
}

fn options() -> Result<Options, String> {
    let mut opts = Options {
        seconds: 10,
        concurrency: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => opts.seconds = value("--seconds")?,
            "--concurrency" => opts.concurrency = value("--concurrency")?.max(1) as usize,
            "-h" | "--help" => {
                return Err("usage: order-load [--seconds N] [--concurrency C]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(opts)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    approved: u64,
    failed: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let bins = match Binaries::beside_current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot locate the service binaries: {e}");
            return ExitCode::FAILURE;
        }
    };
    let services = match FoodDelivery::start(
        &bins,
        &[("AIODS_ACCESS_LOG", "false"), ("RUST_LOG", "info")],
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("{}/orders", services.order_url());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.seconds);
    let tally = runtime.block_on(async move {
        let client = http_client();
        let workers: Vec<_> = (0..opts.concurrency)
            .map(|w| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        n += 1;
                        // Customers 1 and 2, both restaurants' available items.
                        let (restaurant, item) = if (w as u64 + n).is_multiple_of(2) {
                            (1, 11)
                        } else {
                            (2, 21)
                        };
                        let body = json!({
                            "consumer_id": 1 + (n % 2),
                            "restaurant_id": restaurant,
                            "lines": [{"menu_item_id": item, "quantity": 1 + n % 3}],
                        });
                        let t = Instant::now();
                        let res = client.post(&url).json(&body).send().await;
                        let ok = match res {
                            Ok(r) => r.status().as_u16() == 201 && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        tally.latencies_us.push(t.elapsed().as_micros() as u64);
                        if ok {
                            tally.approved += 1;
                        } else {
                            tally.failed += 1;
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for w in workers {
            if let Ok(t) = w.await {
                total.latencies_us.extend(t.latencies_us);
                total.approved += t.approved;
                total.failed += t.failed;
            }
        }
        total
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = tally.latencies_us;
    lat.sort_unstable();
    let n = lat.len() as f64;
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / n / 1000.0
    };
    let report = json!({
        "seconds": elapsed,
        "concurrency": opts.concurrency,
        "orders": lat.len(),
        "approved": tally.approved,
        "failed": tally.failed,
        "orders_per_second": tally.approved as f64 / elapsed,
        "latency_ms": {
            "mean": mean,
            "p50": percentile(&lat, 50.0),
            "p95": percentile(&lat, 95.0),
            "p99": percentile(&lat, 99.0),
            "max": percentile(&lat, 100.0),
        },
    });
    println!(
        "{} orders in {:.1}s from {} clients: {:.1} approved orders/s, {} failed; latency ms mean {:.1} p50 {:.1} p95 {:.1} p99 {:.1}",
        lat.len(),
        elapsed,
        opts.concurrency,
        tally.approved as f64 / elapsed,
        tally.failed,
        mean,
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
    );
    println!("{report}");
    drop(services);
    if tally.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
