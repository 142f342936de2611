//! Every chassis endpoint over a real socket.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Service, client, promtool_check};

#[tokio::test]
async fn health_info_openapi_and_docs_answer_per_the_contract() {
    let svc = Service::start(&[]);
    let http = client();

    let live = http.get(svc.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(
        live.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "UP"})
    );

    let ready = http.get(svc.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "UP");

    let health: Value = http
        .get(svc.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["components"]["liveness"]["status"], "UP");
    assert_eq!(health["components"]["readiness"]["status"], "UP");

    let info: Value = http
        .get(svc.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "probe", "the attribute's name override");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["instance_id"].as_str().is_some_and(|s| !s.is_empty()));
    time::OffsetDateTime::parse(
        info["start_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    let api: Value = http
        .get(svc.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(api["info"]["title"], "probe");
    for path in [
        "/hello/{name}",
        "/items",
        "/health/ready",
        "/metrics",
        "/info",
    ] {
        assert!(
            api["paths"].get(path).is_some(),
            "{path} missing from {api}"
        );
    }
    assert!(api["components"]["schemas"].get("Item").is_some());

    let docs = http.get(svc.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger"), "a docs page");
    // Its assets are served by the service itself, not a CDN.
    assert!(!page.contains("cdn."), "no CDN in the docs page");
    let asset = http
        .get(svc.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
}

#[tokio::test]
async fn metrics_follow_the_opentelemetry_http_conventions() {
    let svc = Service::start(&[]);
    let http = client();
    for name in ["ann", "bob", "cy"] {
        let r = http
            .get(svc.url(&format!("/hello/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), format!("hello {name}"));
    }
    let _ = http
        .get(svc.url("/users/not-a-number"))
        .send()
        .await
        .unwrap();

    let text = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = support::parse_exposition(&text);
    let count = |route: &str, status: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == "http_server_request_duration_seconds_count")
            .filter(|s| s.label("http_route") == Some(route))
            .filter(|s| s.label("http_response_status_code") == Some(status))
            .filter(|s| s.label("http_request_method") == Some("GET"))
            .map(|s| s.value)
            .sum()
    };
    // Labelled with the route template, not the raw path: bounded cardinality.
    assert_eq!(count("/hello/{name}", "200"), 3.0, "{text}");
    assert_eq!(count("/users/{id}", "400"), 1.0, "{text}");
    assert!(!text.contains("/hello/ann"));
    for family in [
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(samples.iter().any(|s| s.name == family), "{family} missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exposition_passes_promtool_with_every_family_in_use() {
    let upstream = Service::start(&[]);
    let up_url = upstream.url("");
    let svc = Service::start(&[("AIODS_UPSTREAMS__UP", &up_url)]);
    let http = client();
    // Every family the chassis exports gets a sample: server and client requests, an
    // exception, the drop counters and the process metrics.
    for path in ["/hello/ann", "/users/x", "/fail", "/panic", "/call/up"] {
        http.get(svc.url(path)).send().await.unwrap();
    }
    let text = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "http_server_request_duration_seconds",
        "http_server_active_requests",
        "http_client_request_duration_seconds",
        "aiods_exceptions_total",
        "aiods_telemetry_dropped_total",
        "process_cpu_seconds_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}: {text}"
        );
    }
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool: {said}\n{text}");
}
