//! Bad input and failures come out as RFC 7807 problem+json; panics leave the process alive.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Service, client};

async fn problem(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    (status, body)
}

#[tokio::test]
async fn bad_input_gets_problem_json() {
    let svc = Service::start(&[]);
    let http = client();

    let res = http
        .post(svc.url("/items"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("json")
    );

    let res = http
        .post(svc.url("/items"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, 415, "missing content type");

    let res = http
        .post(svc.url("/items"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, 422, "missing field");

    let res = http
        .post(svc.url("/items"))
        .json(&serde_json::json!({"name": "x", "quantity": 0}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"], "quantity must be positive");

    let res = http.get(svc.url("/users/abc")).send().await.unwrap();
    assert_eq!(problem(res).await.0, 400, "bad path parameter");

    let res = http.get(svc.url("/no/such/route")).send().await.unwrap();
    assert_eq!(problem(res).await.0, 404);

    let res = http.delete(svc.url("/items")).send().await.unwrap();
    assert_eq!(problem(res).await.0, 405);

    let big = "x".repeat(3 * 1024 * 1024);
    let res = http
        .post(svc.url("/items"))
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{big}\",\"quantity\":1}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, 413, "body over the limit");
}

#[tokio::test]
async fn a_configured_body_limit_replaces_the_default() {
    let svc = Service::start(&[("AIODS_BODY_LIMIT", "1024")]);
    let http = client();
    let post = |name: String| {
        http.post(svc.url("/items"))
            .header("content-type", "application/json")
            .body(format!("{{\"name\":\"{name}\",\"quantity\":1}}"))
            .send()
    };
    let res = post("x".repeat(2048)).await.unwrap();
    assert_eq!(problem(res).await.0, 413, "body over the configured limit");
    let res = post("x".repeat(100)).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

#[tokio::test]
async fn a_panicking_handler_gives_500_and_the_process_keeps_serving() {
    let mut svc = Service::start(&[]);
    let http = client();
    for _ in 0..3 {
        let res = http.get(svc.url("/panic")).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!(status, 500);
        assert!(!body["detail"].as_str().unwrap().contains("on purpose"));
    }
    assert!(svc.is_running());
    let res = http.get(svc.url("/hello/still-here")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "hello still-here");
    let panic_line = svc
        .wait_for_log(
            |v| v["target"] == "aiods::panic",
            std::time::Duration::from_secs(5),
        )
        .expect("the panic is logged as JSON");
    assert_eq!(panic_line["level"], "ERROR");
    assert!(
        panic_line["panic_message"]
            .as_str()
            .unwrap()
            .contains("on purpose")
    );

    let metrics = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exceptions: f64 = support::parse_exposition(&metrics)
        .iter()
        .filter(|s| s.name == "aiods_exceptions_total" && s.label("type") == Some("panic"))
        .map(|s| s.value)
        .sum();
    assert_eq!(exceptions, 3.0);
}

#[tokio::test]
async fn internal_errors_do_not_leak_details() {
    let svc = Service::start(&[]);
    let res = client().get(svc.url("/fail")).send().await.unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 500);
    assert!(!body.to_string().contains("password"));
    let logged = svc
        .wait_for_log(
            |v| v["message"] == "request failed",
            std::time::Duration::from_secs(5),
        )
        .expect("the error is logged");
    assert!(
        logged["error"]
            .as_str()
            .unwrap()
            .contains("password rejected")
    );
}
