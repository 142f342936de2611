//! `aiods-lab experiment`: a short run (4 users, 9 s, kill -9 every 3 s) of the built-in
//! topology (the five services as `aiods-lab serve <name>` children), then the report's
//! numbers are checked against what the platform recorded: requests counted by its gateway
//! equal requests sent, one incident per injected kill on the killed service, every MTTD/MTTR
//! positive and in order with the fault timeline, and no service process left behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn serve_processes(exe: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    let exe = exe.to_string_lossy().to_string();
    for entry in dir.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        if args.first().is_some_and(|a| *a == exe) && args.get(1).is_some_and(|a| a == "serve") {
            found.push(args.join(" "));
        }
    }
    found
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn a_short_experiment_reports_what_the_platform_recorded() {
    let exe = Path::new(env!("CARGO_BIN_EXE_aiods-lab"));
    let out = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let output = Command::new(exe)
        .args([
            "experiment",
            "--users",
            "4",
            "--duration",
            "9s",
            "--crash-every",
            "3s",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .env("RUST_LOG", "off")
        .output()
        .expect("run aiods-lab experiment");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "aiods-lab experiment failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(stdout.contains("## Load (the seed's Table 4)"), "{stdout}");
    assert!(
        stdout.contains("## Services (the seed's Table 5)"),
        "{stdout}"
    );

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let md = std::fs::read_to_string(out.path().join("report.md")).expect("report.md");
    assert!(md.contains("| parallel users |"));
    let svg = std::fs::read_to_string(out.path().join("latency.svg")).expect("latency.svg");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );

    // Table 4: every request is counted once, and the platform's gateway saw each of them.
    let requests = report["requests"].as_u64().expect("requests");
    let ok = report["ok"].as_u64().expect("ok");
    let rejected = report["rejected_as_expected"].as_u64().expect("rejected");
    let errors = report["errors"].as_u64().expect("errors");
    assert!(requests > 50, "too few requests: {requests}");
    assert_eq!(requests, ok + rejected + errors);
    assert_eq!(
        report["gateway"]["requests"].as_u64(),
        Some(requests),
        "the gateway counted a different number of requests: {}",
        report["gateway"]
    );
    assert!(rejected > 0, "invalid orders were sent and rejected");
    assert!(
        (f(&report, "error_rate") - errors as f64 / requests as f64).abs() < 1e-12,
        "error_rate"
    );
    assert!(
        errors * 100 <= requests,
        "more than 1 % failed: {errors} of {requests}: {}",
        report["failures"]
    );

    // Faults: kills at 3 s and 6 s, each matched to one incident of the killed service.
    let faults = report["faults"].as_array().expect("faults");
    let kills: Vec<&Value> = faults.iter().filter(|x| x["kind"] == "kill").collect();
    assert_eq!(kills.len(), 2, "{faults:?}");
    assert!(kills.iter().all(|k| k["ok"] == true), "{kills:?}");
    let incidents = report["incidents"].as_array().expect("incidents");
    assert_eq!(
        report["unmatched_faults"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert_eq!(
        incidents.len(),
        kills.len(),
        "one incident per kill: {incidents:?}"
    );
    for inc in incidents {
        let fi = inc["fault"].as_u64().expect("matched to a fault") as usize;
        let fault = &faults[fi];
        assert_eq!(inc["service"], fault["service"]);
        assert_eq!(inc["status"], "resolved", "{inc}");
        let at = f(fault, "at_ms");
        let (start, detected, recovered) = (
            f(inc, "failure_start_ms"),
            f(inc, "detected_ms"),
            f(inc, "recovered_ms"),
        );
        let (mttd, mttr, down) = (f(inc, "mttd_ms"), f(inc, "mttr_ms"), f(inc, "downtime_ms"));
        assert!(mttd > 0.0 && mttr > 0.0 && down > 0.0, "{inc}");
        // The process exit follows the kill (the fault's time is taken just before it).
        assert!(
            start >= at - 5.0 && start <= at + 1000.0,
            "failure at {start} ms, kill at {at} ms"
        );
        assert!(start <= detected && detected < recovered, "{inc}");
        assert!((detected - start - mttd).abs() < 1.0, "{inc}");
        assert!((recovered - detected - mttr).abs() < 1.0, "{inc}");
        assert!((mttd + mttr - down).abs() < 1.0, "{inc}");
        assert!(mttd < 500.0 && mttr < 5000.0, "{inc}");
    }

    // Times from the fault: one figure per kill, with its incident's times.
    assert!(
        md.contains("## Time to detect and repair, from the fault"),
        "{md}"
    );
    let figures = report["fault_figures"].as_array().expect("fault_figures");
    assert_eq!(figures.len(), kills.len(), "{figures:?}");
    for fig in figures {
        assert_eq!(fig["kind"], "kill");
        let inc = incidents
            .iter()
            .find(|i| i["id"] == fig["incident"])
            .unwrap_or_else(|| panic!("no incident for {fig}"));
        assert_eq!(fig["service"], inc["service"]);
        let (mttd, from_fault) = (f(fig, "mttd_ms"), f(fig, "mttd_from_fault_ms"));
        let (down, down_from_fault) = (f(fig, "downtime_ms"), f(fig, "downtime_from_fault_ms"));
        assert!((mttd - f(inc, "mttd_ms")).abs() < 0.01, "{fig} {inc}");
        assert!(
            (f(fig, "mttr_ms") - f(inc, "mttr_ms")).abs() < 0.01,
            "{fig}"
        );
        // The kill's time is taken just before the signal: the exit follows it.
        assert!(from_fault >= mttd - 0.5, "{fig}");
        assert!(
            down_from_fault >= down - 0.5 && down_from_fault >= 0.0,
            "{fig}"
        );
        assert!(
            (f(fig, "t0_ms") + from_fault - f(fig, "detected_ms")).abs() < 0.01,
            "{fig}"
        );
        assert!(from_fault < 500.0, "{fig}");
    }
    let by_kind = report["figures_by_kind"]
        .as_array()
        .expect("figures_by_kind");
    assert_eq!(by_kind.len(), 1, "{by_kind:?}");
    assert_eq!(by_kind[0]["name"], "kill");
    assert_eq!(by_kind[0]["faults"].as_u64(), Some(2));
    assert_eq!(by_kind[0]["matched"].as_u64(), Some(2));
    let p = &by_kind[0]["mttd_from_fault_ms"];
    assert_eq!(p["n"].as_u64(), Some(2));
    assert_eq!(p["p95_label"], "max (n<20)", "{p}");
    assert_eq!(p["p95_is_max"], true);
    assert!(md.contains("max (n<20)"), "{md}");
    assert!(
        report["conditions"]
            .as_str()
            .is_some_and(|c| c.contains("probes every 200 ms") && c.contains("scrapes every")),
        "{}",
        report["conditions"]
    );
    assert!(
        stderr.contains("kill: 2 faults, 2 matched; MTTD from fault p50"),
        "{stderr}"
    );

    // Table 5: per service, incidents and instances created (replica + one per restart).
    let services = report["services"].as_array().expect("services");
    assert_eq!(services.len(), 5);
    let total: u64 = services
        .iter()
        .map(|s| s["incidents"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 2);
    for s in services {
        let name = s["name"].as_str().expect("name");
        let hits = kills.iter().filter(|k| k["service"] == name).count() as u64;
        assert_eq!(s["incidents"].as_u64(), Some(hits), "{s}");
        assert_eq!(s["instances_created"].as_u64(), Some(1 + hits), "{s}");
        for key in ["mttd_ms", "mttr_ms", "downtime_ms"] {
            let stat = &s[key];
            for k in ["mean", "p50", "p95"] {
                assert!(stat.get(k).is_some(), "{name}.{key}.{k} missing");
                if hits > 0 {
                    assert!(stat[k].as_f64().is_some_and(|v| v > 0.0), "{s}");
                }
            }
        }
    }

    // Nothing left running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serve_processes(exe).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(serve_processes(exe), Vec::<String>::new());
}
