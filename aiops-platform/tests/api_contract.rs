//! The management API honours the contract the platform asks of services: an OpenAPI 3.1
//! document at `/openapi.json` describing every `/api/v1` route; and what a person sees: the
//! printed dashboard link signs in by itself, the trace list shows requests, not probes.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Platform, TOKEN, items};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

/// The routes the management API has, as the platform's own router declares them.
fn routed_paths() -> BTreeSet<String> {
    let (_, doc) = aiops_platform::web::api_router();
    doc.paths.paths.keys().cloned().collect()
}

fn fill(path: &str) -> String {
    path.replace("{trace_id}", &"ab".repeat(16))
        .replace("{id}", "no-such-incident")
}

#[test]
fn the_platform_serves_an_openapi_document_of_every_api_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "", "");
    let (status, api) = p.get_with("/openapi.json", None);
    assert_eq!(status, 200, "{api}");
    assert!(
        api["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        api["openapi"]
    );
    let served: BTreeSet<String> = api["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        served,
        routed_paths(),
        "the served document is the router's"
    );
    // Both ways against what a client of the API knows: no route missing, none invented.
    let known: BTreeSet<String> = [
        "/api/v1/services",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/logs",
        "/api/v1/exceptions",
        "/api/v1/metrics",
        "/api/v1/health",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/approve",
        "/api/v1/report",
        "/api/v1/instances",
        "/api/v1/dashboard/requests",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(served, known);
    assert_eq!(
        api["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{:#}",
        api["components"]
    );

    let client = reqwest::blocking::Client::new();
    for (path, item) in api["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let what = format!("{method} {path}");
            assert!(
                op["security"].to_string().contains("bearer"),
                "{what} takes the bearer token: {op:#}"
            );
            for status in ["401", "500"] {
                assert!(
                    op["responses"][status]["content"]
                        .get("application/problem+json")
                        .is_some(),
                    "{what} documents its {status} problem: {:#}",
                    op["responses"]
                );
            }
            // The route exists with that method: an answer of the route itself, not the
            // router's "no route", and a 401 without the token.
            let url = format!("{}{}", p.url, fill(path));
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let anonymous = client.request(m.clone(), &url).send().expect("send");
            assert_eq!(anonymous.status().as_u16(), 401, "{what} without a token");
            let answer = client
                .request(m, &url)
                .bearer_auth(TOKEN)
                .send()
                .expect("send");
            let status = answer.status().as_u16();
            let body = answer.text().unwrap_or_default();
            assert!(
                status != 405 && !body.contains("no route"),
                "{what}: {status} {body}"
            );
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{what} answered {status}, which it does not document: {body}"
            );
            // The query parameters documented are those the handler takes: an unknown one is
            // refused with the list the handler allows.
            let documented: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query")
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if !documented.is_empty() {
                let (status, problem) = p.get(&format!("{}?no_such_parameter=1", fill(path)));
                assert_eq!(status, 400, "{what}: {problem}");
                let allowed: BTreeSet<String> = problem["detail"]
                    .as_str()
                    .and_then(|d| d.split("allowed: ").nth(1))
                    .map(|l| l.split(", ").map(str::to_owned).collect())
                    .unwrap_or_default();
                assert_eq!(allowed, documented, "{what}: {problem}");
            }
        }
    }
}

fn span_of(service: &str, trace_byte: u8, name: &str) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![trace_byte; 16],
                span_id: vec![trace_byte; 8],
                name: name.into(),
                kind: 2,
                start_time_unix_nano: 1_000_000_000,
                end_time_unix_nano: 1_002_000_000,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn the_trace_list_shows_requests_not_probes_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "", "");
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            span_of("svc", 1, "GET /orders/{id}"),
            span_of("svc", 2, "GET /health/ready"),
            span_of("svc", 3, "GET /metrics"),
            span_of("svc", 4, "POST /orders"),
            span_of("svc", 5, "GET /health"),
        ],
    };
    let (status, _, body) = p.post(
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        request.encode_to_vec(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let names = |path: &str| -> Vec<String> {
        let (status, page) = p.get(path);
        assert_eq!(status, 200, "{page}");
        let mut names: Vec<String> = items(&page)
            .iter()
            .filter_map(|t| t["root_name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("/api/v1/traces?service=svc"),
        ["GET /orders/{id}", "POST /orders"]
    );
    assert_eq!(
        names("/api/v1/traces?service=svc&include_probes=true").len(),
        5
    );
    // A page of one is still full of requests, and its cursor leads on past the probes.
    let (_, first) = p.get("/api/v1/traces?limit=1");
    assert_eq!(items(&first).len(), 1, "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = p.get(&format!("/api/v1/traces?limit=1&cursor={cursor}"));
    let both: Vec<&str> = items(&first)
        .iter()
        .chain(items(&second).iter())
        .filter_map(|t| t["root_name"].as_str())
        .map(|s| if s.starts_with("GET") { "get" } else { "post" })
        .collect();
    assert_eq!(both.len(), 2, "{first} {second}");
    let (status, problem) = p.get("/api/v1/traces?include_probes=maybe");
    assert_eq!(status, 400, "{problem}");
}

#[test]
fn aiops_up_prints_a_dashboard_link_that_signs_in_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aiods.toml");
    std::fs::write(
        &config,
        format!(
            "[platform]\ndata_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["up", "-c"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("AIOPS_API_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aiops");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut token, mut url, mut link) = (None, None, None);
    while link.is_none() || url.is_none() || token.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("a line");
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        match v["event"].as_str() {
            Some("api_token") => token = v["token"].as_str().map(str::to_owned),
            Some("listening") => url = v["url"].as_str().map(str::to_owned),
            Some("dashboard") => link = v["url"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (token, url, link) = (
        token.expect("token"),
        url.expect("url"),
        link.expect("link"),
    );
    assert_eq!(link, format!("{url}/#token={token}"));
}
