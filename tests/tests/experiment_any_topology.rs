//! The experiment on a topology that is not food delivery: the jobs example of the lab
//! (`lab/examples/jobs/`: a plain Python program, its topology and its scenario — submit a
//! job, then poll it until it is done). 4 users, 9 s, kill -9 every 3 s; the report's counts
//! are checked against the platform's gateway (requests plus follow-up polls), one incident per
//! kill, and no Python process left behind. Also: a scenario that does not fit the topology,
//! or does not parse, fails with what to change before anything starts, and `aiops` names the
//! verbs that moved to the lab.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn jobs_dir() -> PathBuf {
    repo().join("lab/examples/jobs")
}

/// The committed topology of the example, with its data in `dir` and the script's path made
/// absolute (the file's paths are relative to the repository's root).
fn jobs_topology(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(jobs_dir().join("aiods.toml")).expect("aiods.toml");
    let mut t: toml::Table = text.parse().expect("aiods.toml is TOML");
    t["platform"]["data_dir"] = toml::Value::String(dir.join("data").display().to_string());
    let service = t["service"]
        .as_array_mut()
        .and_then(|a| a.first_mut())
        .expect("one service");
    let command = service["command"].as_array_mut().expect("a command");
    assert_eq!(command[1].as_str(), Some("lab/examples/jobs/jobs.py"));
    command[1] = toml::Value::String(jobs_dir().join("jobs.py").display().to_string());
    let path = dir.join("aiods.toml");
    std::fs::write(&path, toml::to_string(&t).expect("TOML")).expect("write the topology");
    path
}

fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiods-lab"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run aiods-lab")
}

fn python_jobs_processes() -> Vec<String> {
    let script = jobs_dir().join("jobs.py").display().to_string();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&script) {
            found.push(text);
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
fn an_experiment_on_a_python_topology_follows_its_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = jobs_topology(dir.path());
    let scenario = jobs_dir().join("scenario.toml");
    let out = dir.path().join("report");
    let started = Instant::now();
    let output = lab(&[
        "experiment",
        "-c",
        &topology.display().to_string(),
        "--scenario",
        &scenario.display().to_string(),
        "--users",
        "4",
        "--duration",
        "9s",
        "--crash-every",
        "3s",
        "--quiet",
        "--out",
        &out.display().to_string(),
    ]);
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
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    assert_eq!(report["scenario"], "jobs");
    assert_eq!(report["entry_services"], serde_json::json!(["jobs"]));

    // Every request counted once; the gateway saw each request and each poll.
    let requests = report["requests"].as_u64().expect("requests");
    let polls = report["follow_up_requests"].as_u64().expect("polls");
    let ok = report["ok"].as_u64().expect("ok");
    let rejected = report["rejected_as_expected"].as_u64().expect("rejected");
    let errors = report["errors"].as_u64().expect("errors");
    let unsettled = report["unsettled"].as_u64().expect("unsettled");
    assert!(requests > 50, "too few requests: {requests}");
    assert_eq!(requests, ok + rejected + errors + unsettled);
    assert!(rejected > 0, "jobs of size 0 were sent and refused");
    assert!(
        polls >= ok,
        "each finished job was polled at least once: {polls} polls, {ok} ok"
    );
    let gateway = &report["gateway"];
    assert_eq!(
        gateway["requests"].as_u64(),
        Some(requests + polls),
        "the gateway counted a different number of requests and polls: {gateway}"
    );
    assert_eq!(
        gateway["by_class"]["4xx"].as_u64(),
        Some(rejected),
        "the refused jobs are the gateway's 4xx: {gateway}"
    );
    assert!(
        (errors + unsettled) * 100 <= requests,
        "more than 1 % failed or unsettled: {errors} + {unsettled} of {requests}: {}",
        report["failures"]
    );

    // Kills at 3 s and 6 s of the one service, each matched to one incident.
    let faults = report["faults"].as_array().expect("faults");
    let kills: Vec<&Value> = faults.iter().filter(|x| x["kind"] == "kill").collect();
    assert_eq!(kills.len(), 2, "{faults:?}");
    assert!(
        kills
            .iter()
            .all(|k| k["ok"] == true && k["service"] == "jobs"),
        "{kills:?}"
    );
    assert_eq!(
        report["unmatched_faults"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    let incidents = report["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 2, "one incident per kill: {incidents:?}");
    for inc in incidents {
        let fault = &faults[inc["fault"].as_u64().expect("matched to a fault") as usize];
        assert_eq!(inc["service"], "jobs");
        assert_eq!(inc["status"], "resolved", "{inc}");
        let (start, detected, recovered) = (
            f(inc, "failure_start_ms"),
            f(inc, "detected_ms"),
            f(inc, "recovered_ms"),
        );
        let at = f(fault, "at_ms");
        assert!(
            start >= at - 5.0 && start <= at + 1000.0,
            "failure at {start} ms, kill at {at} ms"
        );
        assert!(start <= detected && detected < recovered, "{inc}");
        assert!(
            f(inc, "mttd_ms") < 500.0 && f(inc, "mttr_ms") < 5000.0,
            "{inc}"
        );
    }
    let services = report["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["name"], "jobs");
    assert_eq!(services[0]["incidents"].as_u64(), Some(2));
    assert_eq!(services[0]["instances_created"].as_u64(), Some(3));

    // Nothing left running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !python_jobs_processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(python_jobs_processes(), Vec::<String>::new());
}

#[test]
fn a_scenario_that_does_not_fit_fails_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = jobs_topology(dir.path());
    let topology = topology.display().to_string();

    // The built-in food-delivery scenario: nothing routes /orders here.
    let output = lab(&["experiment", "-c", &topology, "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/orders") && stderr.contains("--scenario") && stderr.contains("/jobs"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("starting"),
        "nothing starts before the scenario fits: {stderr}"
    );

    // A scenario with a mistake: named with its file and place.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[request]]\nname = \"submit\"\npath = \"/jobs/${job}\"\n",
    )
    .expect("write");
    let output = lab(&[
        "experiment",
        "-c",
        &topology,
        "--scenario",
        &bad.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("\"submit\"") && stderr.contains("${job}"),
        "{stderr}"
    );

    // Not TOML at all.
    std::fs::write(&bad, "[[request]\n").expect("write");
    let output = lab(&["load", "--url", "http://127.0.0.1:9", "--scenario"])
        .status
        .code();
    assert_eq!(output, Some(2), "clap refuses a flag without its value");
    let output = lab(&[
        "load",
        "--url",
        "http://127.0.0.1:9",
        "--scenario",
        &bad.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 1"),
        "{stderr}"
    );
}

#[test]
fn aiops_names_the_verbs_that_moved_to_the_lab() {
    for verb in ["demo", "experiment", "serve"] {
        let output = Command::new(env!("CARGO_BIN_EXE_aiops"))
            .arg(verb)
            .output()
            .expect("run aiops");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("aiods-lab -- {verb}")),
            "{verb}: {stderr}"
        );
    }
}
