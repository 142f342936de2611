//! The fault kinds of `aiods-lab experiment` beyond a supervised kill, each matched to its
//! incident with the times from the fault: a kill -9 of a *watched* service (the lab runs
//! kitchen itself, the platform only has its url; the lab restarts it), detected by probes;
//! and a 30 % error burst, detected from the telemetry.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn experiment(out: &Path, args: &[&str]) -> (Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aiods-lab"))
        .arg("experiment")
        .args(args)
        .args(["--users", "4", "--quiet", "--out"])
        .arg(out)
        .env("RUST_LOG", "off")
        .output()
        .expect("run aiods-lab experiment");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "aiods-lab experiment failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    (report, stdout)
}

/// Checks one figure against its incident: the times are in order and the five figures add up.
fn consistent(fig: &Value, report: &Value) {
    let inc = report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .find(|i| i["id"] == fig["incident"])
        .unwrap_or_else(|| panic!("no incident for {fig}: {report:#}"));
    assert_eq!(inc["service"], fig["service"]);
    assert_eq!(inc["status"], "resolved", "{inc}");
    let (t0, fs, d, r) = (
        f(fig, "t0_ms"),
        f(fig, "failure_start_ms"),
        f(fig, "detected_ms"),
        f(fig, "recovered_ms"),
    );
    assert!(fs <= d && d < r, "{fig}");
    assert!((f(fig, "mttd_ms") - (d - fs)).abs() < 0.01, "{fig}");
    assert!((f(fig, "mttr_ms") - (r - d)).abs() < 0.01, "{fig}");
    assert!((f(fig, "downtime_ms") - (r - fs)).abs() < 0.01, "{fig}");
    assert!(
        (f(fig, "mttd_from_fault_ms") - (d - t0)).abs() < 0.01,
        "{fig}"
    );
    assert!(
        (f(fig, "downtime_from_fault_ms") - (r - t0)).abs() < 0.01,
        "{fig}"
    );
    assert!(f(fig, "downtime_from_fault_ms") >= 0.0, "{fig}");
}

#[test]
fn a_watched_service_killed_by_the_lab_is_found_by_its_probes() {
    let out = tempfile::tempdir().expect("tempdir");
    let (report, md) = experiment(
        out.path(),
        &[
            "--watched",
            "kitchen",
            "--target",
            "kitchen",
            "--crash-every",
            "3s",
            "--watched-restart-after",
            "500ms",
            "--faults",
            "2",
            "--duration",
            "20s",
        ],
    );
    assert!(
        report["conditions"]
            .as_str()
            .is_some_and(|c| c.contains("watched"))
    );
    let figures = report["fault_figures"].as_array().expect("fault_figures");
    assert_eq!(figures.len(), 2, "{figures:?}");
    for fig in figures {
        assert_eq!(fig["kind"], "kill_watched", "{fig}");
        assert_eq!(fig["service"], "kitchen");
        consistent(fig, &report);
        let signals: Vec<&str> = fig["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            signals.contains(&"readiness") || signals.contains(&"liveness"),
            "probes found it: {fig}"
        );
        assert!(
            !signals.contains(&"process_exit"),
            "the platform did not run it: {fig}"
        );
        // Down until the lab restarts it.
        assert!(f(fig, "downtime_from_fault_ms") >= 500.0, "{fig}");
    }
    assert!(md.contains("kill_watched"), "{md}");
    let kitchen = report["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == "kitchen")
        .expect("kitchen has a row");
    assert_eq!(kitchen["incidents"].as_u64(), Some(2), "{kitchen}");
}

#[test]
fn an_error_burst_is_found_in_the_telemetry_and_resolves() {
    let out = tempfile::tempdir().expect("tempdir");
    let (report, _) = experiment(
        out.path(),
        &[
            "--target",
            "kitchen",
            "--error-rate",
            "0.3",
            "--soft-for",
            "3s",
            "--soft-every",
            "4s",
            "--faults",
            "1",
            "--duration",
            "30s",
        ],
    );
    let figures = report["fault_figures"].as_array().expect("fault_figures");
    assert_eq!(figures.len(), 1, "{figures:?}");
    let fig = &figures[0];
    assert_eq!(fig["kind"], "error_rate");
    assert_eq!(fig["service"], "kitchen");
    consistent(fig, &report);
    assert!(
        fig["signals"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "error_rate")),
        "{fig}"
    );
    // The failure start is a failed request, after the fault was set.
    assert!(
        f(fig, "mttd_from_fault_ms") >= f(fig, "mttd_ms") - 1.0,
        "{fig}"
    );
    assert!(f(fig, "mttd_from_fault_ms") < 3000.0, "{fig}");
    let kind = &report["figures_by_kind"][0];
    assert_eq!(kind["name"], "error_rate");
    assert_eq!(kind["matched"].as_u64(), Some(1));
}
