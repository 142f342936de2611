//! Telemetry out, with the real clients (the chassis's `opentelemetry-otlp` exporter and
//! `sentry` client) talking to real receivers started by the test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aiods_test::{OtlpReceiver, SentryReceiver};
use support::{Service, client};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_one_server_span_with_http_attributes_and_resource() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("AIODS_INSTANCE_ID", "probe-1"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=delivery"),
    ]);
    let res = client().get(svc.url("/hello/ann")).send().await.unwrap();
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(trace_id.len(), 32);
    assert!(
        res.headers()["traceresponse"]
            .to_str()
            .unwrap()
            .contains(&trace_id)
    );

    let spans = otlp
        .wait_spans(WAIT, |s| s.iter().any(|s| s.trace_id() == trace_id))
        .await;
    let span = spans
        .iter()
        .find(|s| s.trace_id() == trace_id)
        .expect("the server span");
    assert_eq!(span.span.name, "GET /hello/{name}");
    assert_eq!(span.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(span.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(span.attr("http.route").as_deref(), Some("/hello/{name}"));
    assert_eq!(span.attr("url.path").as_deref(), Some("/hello/ann"));
    assert_eq!(
        span.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(span.service, "probe");
    assert_eq!(
        span.resource_attr("service.instance.id").as_deref(),
        Some("probe-1")
    );
    assert_eq!(span.resource_attr("team").as_deref(), Some("delivery"));
    assert!(span.parent_span_id().is_empty(), "a root span");

    // Log lines inside the request carry the ids, on stdout and over OTLP.
    let res = client().get(svc.url("/log")).send().await.unwrap();
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let line = svc
        .wait_for_log(|v| v["marker"] == "inside", WAIT)
        .expect("the log line");
    assert_eq!(line["trace_id"], trace_id.as_str());
    assert_eq!(line["span_id"].as_str().unwrap().len(), 16);
    let access = svc
        .wait_for_log(
            |v| v["route"] == "/log" && v["message"] == "request completed",
            WAIT,
        )
        .unwrap();
    assert_eq!(
        access["trace_id"],
        trace_id.as_str(),
        "the access log is inside the span"
    );
    let logs = otlp
        .wait_logs(WAIT, |l| {
            l.iter().any(|l| l.body().contains("inside the request"))
        })
        .await;
    let record = logs
        .iter()
        .find(|l| l.body().contains("inside the request"))
        .unwrap();
    assert_eq!(record.trace_id(), trace_id);
    assert_eq!(record.span_id(), line["span_id"].as_str().unwrap());
    assert_eq!(record.service, "probe");
    // With OTLP logs on, the access line goes through `tracing` and reaches them too (it is
    // written straight to stdout only when nothing else takes it).
    let access_of_this_request = |l: &aiods_test::ReceivedLog| {
        l.body().contains("request completed") && l.trace_id() == trace_id
    };
    let logs = otlp
        .wait_logs(WAIT, |l| l.iter().any(access_of_this_request))
        .await;
    assert!(logs.iter().any(access_of_this_request));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_traceparent_is_continued_and_a_5xx_marks_the_span() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let svc = Service::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    client()
        .get(svc.url("/fail"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    let spans = otlp
        .wait_spans(WAIT, |s| s.iter().any(|s| s.trace_id() == trace))
        .await;
    let span = spans
        .iter()
        .find(|s| s.trace_id() == trace)
        .expect("same trace id");
    assert_eq!(span.parent_span_id(), parent);
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );
    let exception = span
        .span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("exception event");
    let attr = |k: &str| {
        exception
            .attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
    };
    assert!(attr("exception.type").is_some());
    assert!(attr("exception.message").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_through_the_client_is_one_trace_across_two_processes() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let downstream = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_SERVICE_NAME", "downstream"),
    ]);
    let down_url = downstream.url("");
    let upstream = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_SERVICE_NAME", "upstream"),
        ("AIODS_UPSTREAMS__DOWN", &down_url),
    ]);
    let res = client()
        .get(upstream.url("/call/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(res.text().await.unwrap(), "hello from-probe");

    let spans = otlp
        .wait_spans(WAIT, |s| {
            s.iter().filter(|s| s.trace_id() == trace_id).count() >= 3
        })
        .await;
    let trace: Vec<_> = spans.iter().filter(|s| s.trace_id() == trace_id).collect();
    let server_a = trace
        .iter()
        .find(|s| s.service == "upstream" && s.span.kind == 2)
        .expect("upstream server span");
    let client_a = trace
        .iter()
        .find(|s| s.service == "upstream" && s.span.kind == 3)
        .expect("upstream client span");
    let server_b = trace
        .iter()
        .find(|s| s.service == "downstream" && s.span.kind == 2)
        .expect("downstream server span");
    assert_eq!(client_a.parent_span_id(), server_a.span_id());
    assert_eq!(server_b.parent_span_id(), client_a.span_id());
    assert_eq!(client_a.attr("peer.service").as_deref(), Some("down"));
    assert_eq!(server_b.span.name, "GET /hello/{name}");

    let metrics = client()
        .get(upstream.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        support::parse_exposition(&metrics).iter().any(|s| {
            s.name == "http_client_request_duration_seconds_count"
                && s.label("server_address") == Some("down")
                && s.value >= 1.0
        }),
        "client metrics: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_a_sentry_event_with_service_and_trace_and_the_service_survives() {
    let sentry = SentryReceiver::start().await;
    let dsn = sentry.dsn();
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("SENTRY_DSN", &dsn),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
    ]);
    let res = client().get(svc.url("/panic")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    // A 4xx is not an exception.
    client().get(svc.url("/users/abc")).send().await.unwrap();

    let envelopes = sentry
        .wait(WAIT, |e| e.iter().any(|e| e.event().is_some()))
        .await;
    let events: Vec<_> = envelopes.iter().filter_map(|e| e.event()).collect();
    assert_eq!(events.len(), 1, "only the panic: {events:?}");
    let event = events[0];
    assert_eq!(event["tags"]["service"], "probe");
    assert_eq!(event["tags"]["trace_id"], trace_id.as_str());
    assert_eq!(event["tags"]["route"], "/panic");
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "panic");
    assert!(exception["value"].as_str().unwrap().contains("on purpose"));
    let frames = exception["stacktrace"]["frames"]
        .as_array()
        .expect("a stack trace");
    assert!(!frames.is_empty());
    assert!(
        event["fingerprint"]
            .as_array()
            .is_some_and(|f| f.len() == 2)
    );
    assert!(
        envelopes[0]
            .auth
            .as_deref()
            .unwrap_or("")
            .contains("sentry_key=publickey")
    );

    assert!(svc.is_running());
    let ok = client().get(svc.url("/hello/after")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_flushes_pending_spans() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let res = client().get(svc.url("/hello/flush")).send().await.unwrap();
        ids.push(res.headers()["x-trace-id"].to_str().unwrap().to_owned());
    }
    // Straight away, before the batch delay: only the shutdown flush can deliver them.
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let spans = otlp.spans();
    for id in ids {
        assert!(
            spans.iter().any(|s| s.trace_id() == id),
            "span {id} flushed at shutdown"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_or_hanging_backends_never_slow_requests_and_drops_are_counted() {
    // A port that accepts connections and never answers: an export would wait for its timeout.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = format!("http://{}", blackhole.local_addr().unwrap());
    // A closed port: connection refused at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        a
    };
    let dsn = format!("http://key@{closed}/1");
    let svc = Service::start(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("{hang}/v1/traces"),
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            &format!("http://{closed}/v1/logs"),
        ),
        ("SENTRY_DSN", &dsn),
    ]);
    let http = client();
    let mut slowest = Duration::ZERO;
    for i in 0..300 {
        let path = if i % 50 == 0 { "/panic" } else { "/hello/x" };
        let started = Instant::now();
        let res = http.get(svc.url(path)).send().await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert!(res.status() == 200 || path == "/panic");
    }
    // A blocked request would take the exporter's 5 s timeout.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest request {slowest:?}"
    );

    let deadline = Instant::now() + WAIT;
    loop {
        let text = http
            .get(svc.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let samples = support::parse_exposition(&text);
        let dropped = |signal: &str| {
            samples
                .iter()
                .find(|s| {
                    s.name == "aiods_telemetry_dropped_total" && s.label("signal") == Some(signal)
                })
                .map(|s| s.value)
                .unwrap_or(0.0)
        };
        // Spans wait for the hanging collector's 5 s timeout, then their batch is counted.
        if dropped("spans") > 0.0 && dropped("otlp_logs") > 0.0 && dropped("exceptions") >= 6.0 {
            // Six panics, six events, each refused by the closed port: counted once each.
            assert_eq!(dropped("exceptions"), 6.0, "{text}");
            // No more spans than requests (plus these scrapes) can be dropped.
            assert!(dropped("spans") <= 300.0 + 100.0, "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drops not counted (spans, otlp_logs, 6 exceptions): {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(blackhole);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_also_be_pushed_over_otlp() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ]);
    for _ in 0..3 {
        client().get(svc.url("/hello/push")).send().await.unwrap();
    }
    // The periodic reader exports at shutdown at the latest.
    svc.signal("TERM");
    assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let names: Vec<String> = otlp
        .metrics()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect();
    assert!(
        names.iter().any(|n| n == "http.server.request.duration"),
        "pushed metrics: {names:?}"
    );
    assert!(otlp.spans().is_empty(), "traces were turned off");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instance_id_of_otel_resource_attributes_wins_over_a_random_one() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let sentry = SentryReceiver::start().await;
    let dsn = sentry.dsn();
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("SENTRY_DSN", &dsn),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.instance.id=pod-7,team=delivery",
        ),
    ]);
    let info: serde_json::Value = client()
        .get(svc.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["instance_id"], "pod-7");
    let started = svc
        .wait_for_log(|v| v["message"] == "service started", WAIT)
        .unwrap();
    assert_eq!(started["instance_id"], "pod-7");

    let res = client().get(svc.url("/panic")).send().await.unwrap();
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let spans = otlp
        .wait_spans(WAIT, |s| s.iter().any(|s| s.trace_id() == trace_id))
        .await;
    let span = spans.iter().find(|s| s.trace_id() == trace_id).unwrap();
    assert_eq!(
        span.resource_attr("service.instance.id").as_deref(),
        Some("pod-7")
    );
    assert_eq!(span.resource_attr("team").as_deref(), Some("delivery"));
    let envelopes = sentry
        .wait(WAIT, |e| e.iter().any(|e| e.event().is_some()))
        .await;
    let event = envelopes.iter().find_map(|e| e.event()).expect("an event");
    assert_eq!(event["tags"]["instance"], "pod-7");
    assert_eq!(event["server_name"], "pod-7");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_error_is_a_sentry_event_with_its_trace_id_and_the_client_sees_no_detail() {
    let sentry = SentryReceiver::start().await;
    let dsn = sentry.dsn();
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let svc = Service::start(&[
        ("SENTRY_DSN", &dsn),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
    ]);
    let res = client().get(svc.url("/fail")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    assert!(!body.contains("password"), "no detail leaks: {body}");

    let envelopes = sentry
        .wait(WAIT, |e| e.iter().any(|e| e.event().is_some()))
        .await;
    let events: Vec<_> = envelopes.iter().filter_map(|e| e.event()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events[0];
    assert_eq!(event["tags"]["trace_id"], trace_id.as_str());
    assert_eq!(event["tags"]["span_id"].as_str().map(str::len), Some(16));
    assert_eq!(event["tags"]["service"], "probe");
    assert_eq!(event["tags"]["route"], "/fail");
    assert_eq!(event["transaction"], "/fail");
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "aiods::Error::Internal");
    assert!(
        exception["value"]
            .as_str()
            .unwrap()
            .contains("secret database password rejected"),
        "the report has the cause: {exception}"
    );
    assert!(
        exception["stacktrace"]["frames"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "a stack trace"
    );
    assert_eq!(
        event["fingerprint"],
        serde_json::json!(["aiods::Error::Internal", "/fail"])
    );
    // The span of the same request carries the exception too.
    let spans = otlp
        .wait_spans(WAIT, |s| s.iter().any(|s| s.trace_id() == trace_id))
        .await;
    let span = spans.iter().find(|s| s.trace_id() == trace_id).unwrap();
    assert!(span.span.events.iter().any(|e| e.name == "exception"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_exporter_a_5xx_event_carries_the_inbound_trace_id() {
    let sentry = SentryReceiver::start().await;
    let dsn = sentry.dsn();
    let svc = Service::start(&[("SENTRY_DSN", &dsn)]);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let res = client()
        .get(svc.url("/fail"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let envelopes = sentry
        .wait(WAIT, |e| e.iter().any(|e| e.event().is_some()))
        .await;
    let event = envelopes
        .iter()
        .find_map(|e| e.event())
        .expect("the 5xx is an event");
    assert_eq!(event["tags"]["trace_id"], trace);
    assert_eq!(event["tags"]["span_id"], "b7ad6b7169203331");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_scrapes_are_not_traced_unless_asked() {
    for (trace_probes, expected) in [
        ("false", vec!["GET /hello/{name}"]),
        (
            "true",
            vec![
                "GET /health",
                "GET /health/live",
                "GET /health/ready",
                "GET /hello/{name}",
                "GET /metrics",
            ],
        ),
    ] {
        let otlp = OtlpReceiver::start().await;
        let endpoint = otlp.endpoint();
        let mut svc = Service::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("AIODS_TRACE_PROBES", trace_probes),
        ]);
        for path in [
            "/health/live",
            "/health/ready",
            "/health",
            "/metrics",
            "/hello/ann",
        ] {
            let res = client().get(svc.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        svc.signal("TERM");
        assert_eq!(svc.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
        let mut names: Vec<String> = otlp.spans().iter().map(|s| s.span.name.clone()).collect();
        names.sort();
        assert_eq!(names, expected, "AIODS_TRACE_PROBES={trace_probes}");
    }
}
