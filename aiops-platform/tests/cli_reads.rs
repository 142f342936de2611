//! The CLI read commands against a running platform: tables by default, `--json` on request.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Platform, TOKEN, eventually, items};

fn aiops(p: &Platform, args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiops"));
    cmd.args(args)
        .args(["--url", &p.url])
        .env_remove("AIOPS_API_TOKEN");
    if let Some(t) = token {
        cmd.env("AIOPS_API_TOKEN", t);
    }
    let out = cmd.output().expect("run aiops");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reads_print_tables_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "", "");
    let logs = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"order"}}]},
        "scopeLogs":[{"logRecords":[{"observedTimeUnixNano":"1700000000000000000","severityNumber":17,"body":{"stringValue":"payment failed"},
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
    let (status, _, _) = p.post(
        "/v1/logs",
        &[("content-type", "application/json")],
        logs.as_bytes().to_vec(),
    );
    assert_eq!(status, 200);
    let trace = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"order"}}]},
        "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"POST /orders","kind":2,
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000005000000"}]}]}]}"#;
    let (status, _, _) = p.post(
        "/v1/traces",
        &[("content-type", "application/json")],
        trace.as_bytes().to_vec(),
    );
    assert_eq!(status, 200);
    eventually(Duration::from_secs(5), || {
        let (_, v) = p.get("/api/v1/services");
        (!items(&v).is_empty()).then_some(())
    });

    let (ok, out, err) = aiops(&p, &["services"], Some(TOKEN));
    assert!(ok, "{err}");
    assert!(out.starts_with("SERVICE"), "{out}");
    assert!(
        out.contains("order") && out.contains("logs,traces"),
        "{out}"
    );

    let (ok, out, _) = aiops(&p, &["logs", "--service", "order"], Some(TOKEN));
    assert!(
        ok && out.contains("payment failed") && out.contains("ERROR"),
        "{out}"
    );
    let (ok, out, _) = aiops(
        &p,
        &["logs", "list", "--service", "order", "--json"],
        Some(TOKEN),
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(
        v["items"][0]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );

    let (ok, out, _) = aiops(&p, &["traces", "--service", "order"], Some(TOKEN));
    assert!(ok && out.contains("POST /orders"), "{out}");
    let (ok, out, _) = aiops(
        &p,
        &["trace", "5b8efff798038103d269b633813fc60c"],
        Some(TOKEN),
    );
    assert!(
        ok && out.contains("POST /orders") && out.contains("order"),
        "{out}"
    );
    let (ok, out, _) = aiops(&p, &["exceptions"], Some(TOKEN));
    assert!(ok && out.starts_with("SERVICE"), "{out}");
    // No topology: detection still watches the services its telemetry names (none failed).
    let (ok, out, err) = aiops(&p, &["incidents", "--json"], Some(TOKEN));
    assert!(ok && out.contains("\"items\": []"), "{out}{err}");
    let (ok, out, _) = aiops(&p, &["health", "--json"], Some(TOKEN));
    assert!(ok && out.contains("\"status\""), "{out}");

    let (ok, _, err) = aiops(&p, &["services"], None);
    assert!(!ok && err.contains("no API token"), "{err}");
    let (ok, _, err) = aiops(&p, &["services"], Some("wrong"));
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = aiops(&p, &["logs", "--level", "loud"], Some(TOKEN));
    assert!(!ok && err.contains("level"), "{err}");
}
