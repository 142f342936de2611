//! W3C trace context without an OTLP exporter: an inbound `traceparent` is carried into log
//! lines and forwarded by the chassis client, as the OpenTelemetry API does without an SDK.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiods::axum::{Router, http::HeaderMap, routing::get};
use support::{Service, client};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(10);

/// A real upstream that records the headers of every request it gets.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = Router::new().route(
        "/hello/{name}",
        get(move |headers: HeaderMap| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(headers);
                "hello from-upstream"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = aiods::axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_exporter_an_inbound_traceparent_reaches_logs_and_the_next_service() {
    let (upstream, seen) = recording_upstream().await;
    let svc = Service::start(&[
        ("AIODS_UPSTREAMS__REC", &upstream),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let http = client();

    let res = http
        .get(svc.url("/log"))
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-trace-id"], TRACE);
    let line = svc
        .wait_for_log(|v| v["marker"] == "inside", WAIT)
        .expect("the log line inside the request");
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["span_id"], PARENT);
    let access = svc
        .wait_for_log(
            |v| v["message"] == "request completed" && v["route"] == "/log",
            WAIT,
        )
        .expect("the access log line");
    assert_eq!(access["trace_id"], TRACE);

    let res = http
        .get(svc.url("/call/rec"))
        .header("traceparent", &traceparent)
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from-upstream");
    let headers = seen.lock().unwrap().clone();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0]["traceparent"], traceparent.as_str());
    assert_eq!(headers[0]["tracestate"], "vendor=abc");

    // Without an inbound context nothing is made up.
    let res = http.get(svc.url("/call/rec")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-trace-id").is_none());
    let headers = seen.lock().unwrap().clone();
    assert!(headers[1].get("traceparent").is_none());
}
