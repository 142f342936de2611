//! The chassis client: upstream failures named in problem+json, retries, circuit breaker.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Service, client};

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_is_named_and_the_breaker_opens() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}")
    };
    let svc = Service::start(&[
        ("AIODS_UPSTREAMS__KITCHEN", &closed),
        ("AIODS_CLIENT__BREAKER_FAILURES", "3"),
        ("AIODS_CLIENT__BREAKER_COOLDOWN", "30s"),
    ]);
    let http = client();
    let res = http.get(svc.url("/call/kitchen")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["upstream"], "kitchen");
    assert!(body["detail"].as_str().unwrap().contains("kitchen"));

    // The first call already made 3 attempts (1 + 2 retries on connection failure): open.
    let res = http.get(svc.url("/call/kitchen")).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("circuit breaker open"),
        "{body}"
    );

    let res = http.get(svc.url("/call/unknown")).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("AIODS_UPSTREAMS__UNKNOWN"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_problem_is_carried_through() {
    let down = Service::start(&[
        ("AIODS_FAULTS__ENABLED", "true"),
        ("AIODS_FAULTS__TOKEN", "t"),
    ]);
    let url = down.url("");
    let up = Service::start(&[
        ("AIODS_UPSTREAMS__DOWN", &url),
        ("AIODS_CLIENT__RETRIES", "0"),
    ]);
    let http = client();
    http.post(down.url("/admin/faults"))
        .bearer_auth("t")
        .json(&serde_json::json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    let res = http.get(up.url("/call/down")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["upstream_problem"]["status"], 500);
}
