//! Fault injection: off by default, token-guarded, and each fault does what it says.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Service, client};

const TOKEN: &str = "s3cret";

fn with_faults() -> Service {
    Service::start(&[
        ("AIODS_FAULTS__ENABLED", "true"),
        ("AIODS_FAULTS__TOKEN", TOKEN),
    ])
}

#[tokio::test]
async fn fault_injection_is_off_unless_enabled_and_needs_its_token() {
    let svc = Service::start(&[]);
    let res = client()
        .post(svc.url("/admin/faults"))
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let svc = with_faults();
    let res = client()
        .post(svc.url("/admin/faults"))
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth("wrong")
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .json(&json!({"error_rate": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "out of range");

    let out = std::process::Command::new(support::example_path("probe_service"))
        .env("AIODS_PORT", "0")
        .env("AIODS_FAULTS__ENABLED", "true")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "enabled without a token is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("faults.token"));
}

#[tokio::test]
async fn error_rate_and_latency_apply_to_the_service_routes_and_clear() {
    let svc = with_faults();
    let http = client();
    let res = http
        .post(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .json(&json!({"error_rate": 1.0, "latency_ms": 150}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let res = http.get(svc.url("/hello/x")).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // Probes are not failed by an error rate: the process is healthy, its answers are not.
    assert_eq!(
        http.get(svc.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        svc.wait_for_log(
            |v| v["message"] == "fault injection changed",
            Duration::from_secs(5)
        )
        .is_some()
    );

    let res = http
        .delete(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        http.get(svc.url("/hello/x")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn hang_stops_liveness_from_answering() {
    let svc = with_faults();
    let http = client();
    http.post(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .json(&json!({"hang": true}))
        .send()
        .await
        .unwrap();
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let res = probe.get(svc.url("/health/live")).send().await;
    assert!(res.is_err_and(|e| e.is_timeout()), "liveness hangs");
    let res = http
        .delete(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        http.get(svc.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn crash_makes_the_process_exit_abnormally() {
    let mut svc = with_faults();
    let res = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth(TOKEN)
        .json(&json!({"crash": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let status = svc
        .wait_exit(Duration::from_secs(10))
        .expect("the process exits");
    assert!(!status.success());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(6), "SIGABRT");
}
