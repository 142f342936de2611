//! OTLP/HTTP ingest with the real `opentelemetry-otlp` exporters (protobuf and JSON), read back
//! through the management API: spans as a tree, logs with trace ids, metric series.

mod common;

use std::time::Duration;

use common::{Platform, eventually, items};
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_string())
        .build()
}

/// Sends a parent/child trace and a log inside it; returns the trace id.
fn send_trace_and_log(p: &Platform, protocol: Protocol, service: &str) -> String {
    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/traces", p.url))
        .build()
        .expect("span exporter");
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(span_exporter)
        .with_resource(resource(service))
        .build();
    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/logs", p.url))
        .build()
        .expect("log exporter");
    let logger_provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(log_exporter)
        .with_resource(resource(service))
        .build();

    let tracer = tracer_provider.tracer("test");
    let logger = logger_provider.logger("test");
    let trace_id = tracer.in_span("GET /orders/{id}", |cx| {
        let span = cx.span();
        let sc = span.span_context().clone();
        let mut child = tracer.start_with_context("SELECT orders", &cx);
        child.set_attribute(KeyValue::new("db.system", "sqlite"));
        let child_sc = child.span_context().clone();
        let mut rec = logger.create_log_record();
        rec.set_body(AnyValue::from("order not found".to_string()));
        rec.set_severity_number(Severity::Warn);
        rec.set_severity_text("WARN");
        rec.set_trace_context(child_sc.trace_id(), child_sc.span_id(), None);
        logger.emit(rec);
        child.end();
        sc.trace_id().to_string()
    });
    tracer_provider.force_flush().expect("flush spans");
    logger_provider.force_flush().expect("flush logs");
    let _ = tracer_provider.shutdown();
    let _ = logger_provider.shutdown();
    trace_id
}

fn check_trace(p: &Platform, trace_id: &str, service: &str) {
    let trace = eventually(Duration::from_secs(10), || {
        let (status, v) = p.get(&format!("/api/v1/traces/{trace_id}"));
        (status == 200 && v["span_count"] == 2).then_some(v)
    });
    let roots = trace["spans"].as_array().expect("spans");
    assert_eq!(roots.len(), 1, "one root: {trace}");
    assert_eq!(roots[0]["name"], "GET /orders/{id}");
    assert_eq!(roots[0]["service"], service);
    let child = &roots[0]["children"][0];
    assert_eq!(child["name"], "SELECT orders");
    assert_eq!(child["service"], service);
    assert_eq!(child["parent_span_id"], roots[0]["span_id"]);
    assert_eq!(child["attributes"]["db.system"], "sqlite");

    let (_, list) = p.get(&format!("/api/v1/traces?service={service}&limit=5"));
    let list = items(&list);
    assert!(
        list.iter()
            .any(|t| t["trace_id"] == trace_id && t["root_name"] == "GET /orders/{id}")
    );

    let logs = eventually(Duration::from_secs(10), || {
        let (_, v) = p.get(&format!(
            "/api/v1/logs?service={service}&trace_id={trace_id}"
        ));
        let l = items(&v);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(logs[0]["message"], "order not found");
    assert_eq!(logs[0]["level"], "warn");
    assert_eq!(logs[0]["trace_id"], trace_id);
    let (_, errors_only) = p.get(&format!("/api/v1/logs?service={service}&level=error"));
    assert!(items(&errors_only).is_empty());
}

#[test]
fn protobuf_and_json_traces_logs_and_metrics_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "", "");

    let proto_trace = send_trace_and_log(&p, Protocol::HttpBinary, "checkout-proto");
    check_trace(&p, &proto_trace, "checkout-proto");
    let json_trace = send_trace_and_log(&p, Protocol::HttpJson, "checkout-json");
    check_trace(&p, &json_trace, "checkout-json");

    // Metrics, protobuf: a counter and a histogram.
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/metrics", p.url))
        .build()
        .expect("metric exporter");
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build();
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource("kitchen"))
        .build();
    let meter = meter_provider.meter("test");
    let counter = meter.u64_counter("orders.created").build();
    counter.add(3, &[KeyValue::new("region", "eu")]);
    let hist = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    hist.record(0.25, &[KeyValue::new("http.route", "/orders")]);
    meter_provider.force_flush().expect("flush metrics");
    let _ = meter_provider.shutdown();

    let series = eventually(Duration::from_secs(10), || {
        let (_, v) = p.get("/api/v1/metrics?service=kitchen&name=orders.created");
        let s = items(&v);
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(series[0]["last_value"], 3.0);
    assert_eq!(series[0]["labels"]["region"], "eu");
    assert_eq!(series[0]["source"], "otlp");
    let (_, h) = p.get("/api/v1/metrics?service=kitchen&name=http.server.request.duration_count");
    assert_eq!(items(&h)[0]["last_value"], 1.0);

    // Every signal shows up in services.
    let (_, services) = p.get("/api/v1/services");
    let services = items(&services);
    let kitchen = services
        .iter()
        .find(|s| s["name"] == "kitchen")
        .expect("kitchen seen");
    assert!(kitchen["last_seen_by_signal"]["metrics"].is_string());
    let proto = services
        .iter()
        .find(|s| s["name"] == "checkout-proto")
        .expect("seen");
    assert!(proto["last_seen_by_signal"]["traces"].is_string());
    assert!(proto["last_seen_by_signal"]["logs"].is_string());

    let (_, health) = p.get("/api/v1/health");
    assert_eq!(health["counters"]["spans_accepted"], 4);
    assert_eq!(health["counters"]["logs_accepted"], 2);
}
