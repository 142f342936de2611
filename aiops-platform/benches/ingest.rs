//! Ingest throughput of a real `aiops up` process over loopback.
//!
//! `cargo bench -p aiops-platform --bench ingest` — starts the release `aiops` binary, then for
//! each signal sends pre-encoded OTLP/HTTP protobuf batches from `SENDERS` threads for
//! `SECONDS` seconds, and reports accepted items/s (from the platform's own counters), the
//! platform's CPU (from /proc/<pid>/stat) and its RSS (from /proc/<pid>/status).
//! Environment: `AIOPS_BENCH_SECONDS` (default 5), `AIOPS_BENCH_SENDERS` (default 2).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

const TOKEN: &str = "bench-token";

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", "bench")],
        ..Default::default()
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(0))
        .unwrap_or(0)
}

fn metrics_batch(points: usize, seed: u64) -> Vec<u8> {
    let t = now_nanos();
    let data_points = (0..points)
        .map(|i| NumberDataPoint {
            attributes: vec![
                kv("route", &format!("/r/{}", i % 100)),
                kv("instance", &format!("i{}", i / 100)),
            ],
            time_unix_nano: t,
            #[allow(clippy::cast_precision_loss)]
            value: Some(number_data_point::Value::AsDouble((seed + i as u64) as f64)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.active_requests".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn spans_batch(n: usize, seed: u64) -> Vec<u8> {
    let t = now_nanos();
    let spans = (0..n)
        .map(|i| {
            let trace = seed
                .wrapping_mul(1_000_003)
                .wrapping_add((i / 8) as u64 + 1);
            let mut trace_id = trace.to_be_bytes().to_vec();
            trace_id.extend_from_slice(&[7; 8]);
            Span {
                trace_id,
                span_id: ((seed << 20) + i as u64 + 1).to_be_bytes().to_vec(),
                name: "GET /orders/{id}".into(),
                kind: 2,
                start_time_unix_nano: t,
                end_time_unix_nano: t + 1_000_000,
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/orders/{id}"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs_batch(n: usize) -> Vec<u8> {
    let t = now_nanos();
    let log_records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: t,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "order {i} accepted for delivery"
                ))),
            }),
            attributes: vec![kv("code.function", "create_order")],
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (utime + stime) seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / clock_ticks()
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn counter(client: &reqwest::blocking::Client, url: &str, name: &str) -> u64 {
    client
        .get(format!("{url}/api/v1/health"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json::<serde_json::Value>())
        .map(|v| v["counters"][name].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

struct Run {
    signal: &'static str,
    path: &'static str,
    counter: &'static str,
    batch: usize,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = std::env::var("AIOPS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let senders: usize = std::env::var("AIOPS_BENCH_SENDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let dir = std::env::temp_dir().join(format!("aiops-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let config = dir.join("aiods.toml");
    let _ = std::fs::write(
        &config,
        format!(
            "[platform]\ndata_dir = {:?}\n",
            dir.join("data").display().to_string()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["up", "-c"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("AIOPS_API_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start aiops");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut addr = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["event"] == "listening"
        {
            addr = v["addr"].as_str().unwrap_or_default().to_string();
            break;
        }
    }
    let url = format!("http://{addr}");
    let client = reqwest::blocking::Client::new();

    println!(
        "aiops ingest benchmark: {senders} sender threads x {seconds} s per signal, OTLP/HTTP protobuf over loopback, same machine"
    );
    println!(
        "{:<8} {:>6} {:>14} {:>10} {:>12} {:>10} {:>10}",
        "signal", "batch", "items/s", "requests", "platform CPU", "RSS MiB", "peak MiB"
    );
    let runs = [
        Run {
            signal: "metrics",
            path: "/v1/metrics",
            counter: "points_accepted",
            batch: 1000,
        },
        Run {
            signal: "spans",
            path: "/v1/traces",
            counter: "spans_accepted",
            batch: 512,
        },
        Run {
            signal: "logs",
            path: "/v1/logs",
            counter: "logs_accepted",
            batch: 512,
        },
    ];
    for run in runs {
        // Pre-encode a few distinct bodies so encoding cost stays out of the measurement.
        let bodies: Vec<Vec<u8>> = (0..16u64)
            .map(|s| match run.signal {
                "metrics" => metrics_batch(run.batch, s),
                "spans" => spans_batch(run.batch, s),
                _ => logs_batch(run.batch),
            })
            .collect();
        let before = counter(&client, &url, run.counter);
        let cpu_before = cpu_seconds(pid);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        let requests: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..senders)
                .map(|_| {
                    let (bodies, url) = (&bodies, &url);
                    s.spawn(move || {
                        let client = reqwest::blocking::Client::new();
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let body =
                                bodies[usize::try_from(n).unwrap_or(0) % bodies.len()].clone();
                            let ok = client
                                .post(format!("{url}{}", run.path))
                                .header("content-type", "application/x-protobuf")
                                .body(body)
                                .send()
                                .is_ok_and(|r| r.status().is_success());
                            assert!(ok, "request failed");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu_before;
        let accepted = counter(&client, &url, run.counter) - before;
        let (rss, hwm) = rss_mib(pid);
        #[allow(clippy::cast_precision_loss)]
        let rate = accepted as f64 / elapsed;
        println!(
            "{:<8} {:>6} {:>14.0} {:>10} {:>11.0}% {:>10.1} {:>10.1}",
            run.signal,
            run.batch,
            rate,
            requests,
            100.0 * cpu / elapsed,
            rss,
            hwm
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
