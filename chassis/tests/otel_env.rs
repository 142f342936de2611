//! The standard OpenTelemetry variables, honoured as the specification defines them, checked
//! against the real receivers of `aiods-test`: `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use aiods_test::OtlpReceiver;
use support::{Service, client};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn otlp_headers_reach_the_receiver_on_every_signal() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        // Values are percent-encoded, as in W3C baggage.
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=s3cret,x-tenant=team%20a",
        ),
    ]);
    client().get(svc.url("/log")).send().await.unwrap();
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let requests = otlp.requests();
    for path in ["/v1/traces", "/v1/logs", "/v1/metrics"] {
        assert!(
            requests.iter().any(|r| r.path == path),
            "nothing on {path}: {requests:?}"
        );
    }
    for r in &requests {
        assert_eq!(r.headers["x-api-key"], "s3cret", "{}", r.path);
        assert_eq!(r.headers["x-tenant"], "team a", "{}", r.path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sampler_always_off_exports_no_span_but_logs_still_flow() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_TRACES_SAMPLER", "always_off"),
    ]);
    for _ in 0..20 {
        let res = client().get(svc.url("/log")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    assert!(
        otlp.logs()
            .iter()
            .any(|l| l.body().contains("inside the request")),
        "logs are exported"
    );
    assert_eq!(otlp.spans().len(), 0, "always_off samples nothing");
}

/// A trace id whose lower half starts with `low`: the ratio sampler decides on the lower 63
/// bits, so with a ratio of 0.5 a lower half below `8000…` is sampled and one above is not.
fn trace_id(n: u8, low: char) -> String {
    format!("{n:032x}")
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 16 { low } else { c })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sampler_traceidratio_keeps_the_traces_below_the_ratio_whatever_the_parent_says() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
    ]);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for n in 1..=10u8 {
        // Every parent says "sampled"; traceidratio (not parentbased_) ignores it.
        let (id, list) = if n % 2 == 0 {
            (trace_id(n, '3'), &mut kept)
        } else {
            (trace_id(n, 'c'), &mut dropped)
        };
        let res = client()
            .get(svc.url("/hello/ratio"))
            .header("traceparent", format!("00-{id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        list.push(id);
    }
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let mut received: Vec<String> = otlp
        .spans()
        .iter()
        .filter(|s| s.span.name == "GET /hello/{name}")
        .map(|s| s.trace_id())
        .collect();
    received.sort();
    kept.sort();
    assert_eq!(received, kept, "dropped ids: {dropped:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_disabled_sends_nothing_but_the_service_serves_and_logs() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_SDK_DISABLED", "TRUE"),
    ]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for _ in 0..5 {
        let res = client()
            .get(svc.url("/log"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-trace-id"], trace, "context still carried");
    }
    let line = svc
        .wait_for_log(|v| v["marker"] == "inside", WAIT)
        .expect("stdout logs go on");
    assert_eq!(line["trace_id"], trace);
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    assert!(
        svc.json_lines()
            .iter()
            .any(|l| l["message"] == "request completed"),
        "access logs go on"
    );
    let requests = otlp.requests();
    assert!(
        requests.is_empty(),
        "sent despite OTEL_SDK_DISABLED: {requests:?}"
    );
}
