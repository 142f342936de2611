//! Bad input: each a clear 4xx, the platform unharmed, nothing previously stored lost.

mod common;

use std::io::Write as _;

use common::{Platform, TOKEN, items};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

/// `google.rpc.Status`, the OTLP error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

const PB: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn trace_request(trace_byte: u8, names: &[&str]) -> ExportTraceServiceRequest {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, n)| Span {
            trace_id: vec![trace_byte; 16],
            span_id: vec![u8::try_from(i + 1).unwrap_or(1); 8],
            name: (*n).to_string(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("in memory");
    enc.finish().expect("in memory")
}

fn detail(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["detail"]
        .as_str()
        .or(v["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn stored_spans(p: &Platform) -> u64 {
    let (_, h) = p.get("/api/v1/health");
    h["stored"]["spans"].as_u64().unwrap_or(0)
}

#[test]
fn every_bad_input_is_a_clear_4xx_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Platform::start(
        dir.path(),
        "max_body_bytes = 1048576\nmax_decompressed_bytes = 4194304\nsentry_keys = [\"goodkey\"]",
        "",
    );

    // Good data first.
    let good = trace_request(7, &["kept-a", "kept-b"]).encode_to_vec();
    let (status, ct, body) = p.post("/v1/traces", &[PB], good.clone());
    assert_eq!((status, ct.as_str()), (200, "application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(&body[..])
            .expect("response")
            .partial_success,
        None
    );
    let (status, _, body) = p.post(
        "/v1/traces",
        &[PB, ("content-encoding", "gzip")],
        gzip(&trace_request(8, &["kept-gz"]).encode_to_vec()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let envelope =
        b"{}\n{\"type\":\"event\"}\n{\"message\":\"kept event\",\"tags\":{\"service\":\"s\"}}\n"
            .to_vec();
    let (status, _, _) = p.post(
        "/api/1/envelope/",
        &[(
            "x-sentry-auth",
            "Sentry sentry_key=goodkey, sentry_version=7",
        )],
        envelope.clone(),
    );
    assert_eq!(status, 200);
    assert_eq!(stored_spans(&p), 3);

    // Partial success: one span with a bad trace id, in protobuf and JSON.
    let mut partial = trace_request(9, &["ok"]);
    partial.resource_spans[0].scope_spans[0].spans.push(Span {
        trace_id: vec![1, 2],
        span_id: vec![1; 8],
        name: "short-id".into(),
        ..Default::default()
    });
    let (status, _, body) = p.post("/v1/traces", &[PB], partial.encode_to_vec());
    assert_eq!(status, 200);
    let ps = ExportTraceServiceResponse::decode(&body[..])
        .expect("response")
        .partial_success
        .expect("partial");
    assert_eq!(ps.rejected_spans, 1);
    assert!(ps.error_message.contains("short-id"));
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","spanId":"0101010101010101","name":"j"},{"traceId":"","spanId":"0101010101010101","name":"no-trace"}]}]}]}"#;
    let (status, _, body) = p.post("/v1/traces", &[JSON], json.as_bytes().to_vec());
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    let (_, _, body) = p.post("/v1/traces", &[JSON], br#"{"resourceSpans":[]}"#.to_vec());
    assert_eq!(body, b"{}");
    let before = stored_spans(&p);

    // Truncated protobuf.
    let (status, ct, body) = p.post("/v1/traces", &[PB], good[..good.len() - 5].to_vec());
    assert_eq!(status, 400);
    assert_eq!(ct, "application/x-protobuf");
    assert!(
        RpcStatus::decode(&body[..])
            .expect("status")
            .message
            .contains("invalid OTLP protobuf")
    );

    // Invalid JSON.
    let (status, _, body) = p.post("/v1/logs", &[JSON], b"{\"resourceLogs\": [".to_vec());
    assert_eq!(status, 400);
    assert!(
        detail(&body).contains("invalid OTLP JSON"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Wrong and missing content type.
    let (status, _, body) = p.post(
        "/v1/metrics",
        &[("content-type", "text/plain")],
        b"x".to_vec(),
    );
    assert_eq!(status, 415);
    assert!(detail(&body).contains("text/plain"));
    let (status, _, _) = p.post("/v1/metrics", &[], b"x".to_vec());
    assert_eq!(status, 415);
    let (status, _, _) = p.post(
        "/v1/traces",
        &[PB, ("content-encoding", "br")],
        good.clone(),
    );
    assert_eq!(status, 415);

    // Huge body (just over the 1 MiB limit, so the client has written it all into the socket
    // by the time the platform answers 413 without reading it).
    for _ in 0..3 {
        let (status, _, _) = p.post("/v1/traces", &[PB], vec![0u8; 1024 * 1024 + 64 * 1024]);
        assert_eq!(status, 413);
    }

    // Gzip bomb: 64 MiB of zeros compresses to ~64 KiB, under the sent limit.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let (status, _, body) = p.post(
        "/v1/traces",
        &[PB, ("content-encoding", "gzip")],
        bomb.clone(),
    );
    assert_eq!(status, 413);
    assert!(
        RpcStatus::decode(&body[..])
            .expect("status")
            .message
            .contains("after decompression")
    );
    let (status, _, _) = p.post(
        "/api/1/envelope/",
        &[
            ("x-sentry-auth", "Sentry sentry_key=goodkey"),
            ("content-encoding", "gzip"),
        ],
        bomb,
    );
    assert_eq!(status, 413);

    // Sentry: unknown project, bad project id, wrong key, missing key, bad envelope.
    let auth = (
        "x-sentry-auth",
        "Sentry sentry_key=goodkey, sentry_version=7",
    );
    let (status, _, body) = p.post("/api/42/envelope/", &[auth], envelope.clone());
    assert_eq!(status, 404);
    assert!(detail(&body).contains("unknown Sentry project 42"));
    let (status, _, _) = p.post("/api/abc/store/", &[auth], b"{}".to_vec());
    assert_eq!(status, 400);
    let (status, _, body) = p.post(
        "/api/1/envelope/",
        &[("x-sentry-auth", "Sentry sentry_key=wrong")],
        envelope.clone(),
    );
    assert_eq!(status, 401);
    assert!(detail(&body).contains("unknown sentry_key"));
    let (status, _, _) = p.post("/api/1/envelope/", &[], envelope.clone());
    assert_eq!(status, 401);
    let (status, _, _) = p.post(
        "/api/1/store/?sentry_key=goodkey",
        &[],
        b"{not json".to_vec(),
    );
    assert_eq!(status, 400);
    let (status, _, _) = p.post(
        "/api/1/envelope/",
        &[auth],
        b"{}\n{\"type\":\"event\",\"length\":500}\n{}".to_vec(),
    );
    assert_eq!(status, 400);

    // API: missing and wrong token, bad parameters, unknown trace.
    let (status, v) = p.get_with("/api/v1/services", None);
    assert_eq!((status, v["status"].as_u64()), (401, Some(401)));
    let (status, _) = p.get_with("/api/v1/services", Some("nope"));
    assert_eq!(status, 401);
    for bad in [
        "/api/v1/logs?level=loud",
        "/api/v1/traces?limit=0",
        "/api/v1/traces?limit=x",
        "/api/v1/logs?bogus=1",
        "/api/v1/traces/xyz",
        "/api/v1/logs?trace_id=12",
    ] {
        let (status, v) = p.get(bad);
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(
            v["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{bad}: {v}"
        );
    }
    let (status, _) = p.get(&format!("/api/v1/traces/{}", "ab".repeat(16)));
    assert_eq!(status, 404);

    // Unharmed, nothing lost.
    assert!(p.alive());
    assert_eq!(stored_spans(&p), before);
    let (_, t) = p.get(&format!("/api/v1/traces/{}", "07".repeat(16)));
    assert_eq!(t["span_count"], 2);
    let (_, ex) = p.get("/api/v1/exceptions?service=s");
    assert_eq!(items(&ex)[0]["count"], 1);
    let (status, _, _) = p.post("/v1/traces", &[PB], good);
    assert_eq!(status, 200);
    let (_, h) = p.get("/api/v1/health");
    assert!(h["counters"]["requests_refused"].as_u64().unwrap_or(0) >= 12);
    let _ = TOKEN;
}

#[test]
fn otlp_ingest_key_and_non_loopback_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(
        dir.path(),
        "otlp_ingest_header = \"x-aiops-key\"\notlp_ingest_key = \"s3cret\"",
        "",
    );
    let body = trace_request(3, &["a"]).encode_to_vec();
    let (status, _, _) = p.post("/v1/traces", &[PB], body.clone());
    assert_eq!(status, 401);
    let (status, _, _) = p.post("/v1/traces", &[PB, ("x-aiops-key", "wrong")], body.clone());
    assert_eq!(status, 401);
    let (status, _, _) = p.post("/v1/traces", &[PB, ("x-aiops-key", "s3cret")], body);
    assert_eq!(status, 200);

    // Without any token, a non-loopback listener is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["up", "--listen", "0.0.0.0:0"])
        .env_remove("AIOPS_API_TOKEN")
        .current_dir(dir.path())
        .output()
        .expect("run aiops");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen on non-loopback"));

    // An unknown key in the topology is reported by name.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[platform]\nlisten_addr = \"127.0.0.1:0\"\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["up", "-c"])
        .arg(&bad)
        .output()
        .expect("run aiops");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
}
