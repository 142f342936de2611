//! The platform's own `/metrics` passes `promtool check metrics` (Debian's `prometheus`
//! package; `.ci/run` installs it). Missing promtool fails the test: it never skips.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use aiops_platform::gateway::RequestStats;
use common::Platform;

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is required (Debian package `prometheus`, installed by .ci/run): {e}")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_platform_exposition_passes_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "", "");
    let text = reqwest::blocking::get(format!("{}/metrics", p.url))
        .expect("GET /metrics")
        .text()
        .expect("text");
    assert!(text.contains("aiops_spans_accepted_total"), "{text}");
    assert!(
        !text.contains("Undocumented"),
        "a counter without its help: {text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool: {said}\n{text}");
}

#[test]
fn the_gateway_counters_pass_promtool() {
    let stats = RequestStats::default();
    let now = 1_700_000_000_000_000_000u64;
    stats.record("order", 200, 12.0, now, 1_000_000_000);
    stats.record("order", 503, 3.0, now, 1_000_000_000);
    stats.retried("order");
    stats.no_instance("kitchen");
    let mut text = String::new();
    stats.render(&mut text);
    assert!(
        text.contains("aiops_gateway_request_duration_seconds_total{service=\"order\"} 0.015"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool: {said}\n{text}");
}
