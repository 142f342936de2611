//! Ingest keys with a real OpenTelemetry SDK: the Python SDK sends the key the standard way
//! (`OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<key>`) and is accepted; the same SDK
//! without it is refused and counted.
#![allow(clippy::unwrap_used)]

mod platform_support;

use std::time::{Duration, Instant};

use platform_support::PlatformProcess;
use platform_support::python::PythonApp;

const KEY: &str = "k-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otel_sdk_sends_its_ingest_key_as_otel_exporter_otlp_headers() {
    let p = PlatformProcess::start(&format!("ingest_keys = [\"{KEY}\"]\n"));
    let keyed = PythonApp::start(
        &["--no-metrics-endpoint"],
        &[
            ("OTEL_SERVICE_NAME", "py-keyed".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", p.url.clone()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("authorization=Bearer%20{KEY}"),
            ),
        ],
    );
    let unkeyed = PythonApp::start(
        &["--no-metrics-endpoint"],
        &[
            ("OTEL_SERVICE_NAME", "py-unkeyed".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", p.url.clone()),
        ],
    );
    let traces = |service: &'static str| {
        let p = &p;
        async move {
            p.api(&format!("traces?service={service}")).await["items"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while traces("py-keyed").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no span of the keyed SDK arrived: {}",
            p.output()
        );
        for app in [&keyed, &unkeyed] {
            let _ = p.client().get(format!("{}/work", app.url)).send().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The unkeyed SDK exported as often (its batches are refused with 401).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(traces("py-unkeyed").await, 0);
    let metrics = p.metrics_text().await;
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("aiops_requests_refused_total ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "{metrics}");
}

/// The platform's own children send the key it requires: a supervised chassis service's
/// spans (OTLP, bearer key) and its exceptions (Sentry DSN key) are accepted, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_children_send_the_ingest_key_the_platform_requires() {
    let p = PlatformProcess::start(&format!(
        "ingest_keys = [\"{KEY}\"]\n{}",
        platform_support::food_service("kitchen", "")
    ));
    p.wait_all_ready(Duration::from_secs(60)).await;
    let kitchen = p.instance("kitchen#0").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    platform_support::set_fault(p.client(), &kitchen, serde_json::json!({"error_rate": 1.0})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = p
            .client()
            .get(format!("{}/restaurants", p.gateway))
            .send()
            .await;
        let spans = p.api("traces?service=kitchen").await["items"]
            .as_array()
            .map_or(0, Vec::len);
        let exceptions = p.api("exceptions?service=kitchen").await["items"]
            .as_array()
            .map_or(0, Vec::len);
        if spans > 0 && exceptions > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans {spans}, exception groups {exceptions}: {}",
            p.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = p.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "aiops_requests_refused_total 0"),
        "{metrics}"
    );
}
