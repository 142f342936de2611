//! JSON log lines on stdout, per the telemetry contract.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{Service, client};

#[tokio::test]
async fn every_line_is_json_with_the_contract_fields_and_requests_are_logged() {
    let svc = Service::start(&[]);
    let http = client();
    http.get(svc.url("/hello/ann")).send().await.unwrap();
    http.get(svc.url("/nowhere")).send().await.unwrap();
    let access = svc
        .wait_for_log(
            |v| v["message"] == "request completed" && v["route"] == "/hello/{name}",
            Duration::from_secs(5),
        )
        .expect("an access log event");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert!(access["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    assert_eq!(access["target"], "aiods::access");
    let unmatched = svc
        .wait_for_log(|v| v["path"] == "/nowhere", Duration::from_secs(5))
        .expect("unmatched requests are logged with their path");
    assert_eq!(unmatched["status"], 404);

    let started = svc
        .wait_for_log(
            |v| v["message"] == "service started",
            Duration::from_secs(1),
        )
        .unwrap();
    assert!(
        started["address"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", svc.port))
    );

    for line in svc.json_lines() {
        for key in ["timestamp", "level", "message", "target", "service"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(line["service"], "probe");
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z'), "UTC: {ts}");
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).unwrap();
    }
}

#[tokio::test]
async fn rust_log_filters_and_otel_service_name_renames() {
    let svc = Service::start(&[
        ("RUST_LOG", "warn,aiods::service=info"),
        ("OTEL_SERVICE_NAME", "renamed"),
    ]);
    let http = client();
    http.get(svc.url("/hello/ann")).send().await.unwrap();
    let info: serde_json::Value = http
        .get(svc.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "renamed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        svc.json_lines()
            .iter()
            .all(|l| l["level"] != "INFO" || l["target"] == "aiods::service"),
        "RUST_LOG=warn hides INFO lines"
    );
}

#[tokio::test]
async fn rust_log_turns_the_access_log_off_by_its_target() {
    let svc = Service::start(&[("RUST_LOG", "info,aiods::access=off")]);
    let http = client();
    http.get(svc.url("/hello/ann")).send().await.unwrap();
    svc.wait_for_log(
        |v| v["message"] == "service started",
        Duration::from_secs(5),
    )
    .expect("other INFO lines stay");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        svc.json_lines()
            .iter()
            .all(|l| l["target"] != "aiods::access"),
        "aiods::access=off hides the access lines"
    );
}
