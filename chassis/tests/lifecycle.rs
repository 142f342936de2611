//! Readiness checks, configuration errors and graceful shutdown on real signals.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Service, client};

#[tokio::test]
async fn readiness_follows_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("down");
    let flag_str = flag.to_str().unwrap().to_owned();
    let svc = Service::start(&[
        ("AIODS_PROBE__DOWN_FILE", &flag_str),
        ("AIODS_HEALTH_CACHE", "0ms"),
    ]);
    let http = client();
    assert_eq!(
        http.get(svc.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    std::fs::write(&flag, "down").unwrap();
    let res = http.get(svc.url("/health/ready")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "DOWN");
    let check = &body["checks"][0];
    assert_eq!(check["name"], "flag-file");
    assert_eq!(check["status"], "DOWN");
    assert!(check["error"].as_str().unwrap().contains("present"));
    assert!(check["duration_ms"].as_f64().is_some());
    // Liveness is not readiness.
    assert_eq!(
        http.get(svc.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(svc.url("/health")).send().await.unwrap().status(),
        503
    );

    std::fs::remove_file(&flag).unwrap();
    assert_eq!(
        http.get(svc.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn sigterm_turns_readiness_down_and_drains_in_flight_requests() {
    let mut svc = Service::start(&[("AIODS_SHUTDOWN_DELAY", "600ms")]);
    let http = client();
    let slow = {
        let http = http.clone();
        let url = svc.url("/slow?ms=1200");
        tokio::spawn(async move { http.get(url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    svc.signal("TERM");
    tokio::time::sleep(Duration::from_millis(150)).await;

    // During the shutdown delay the service still answers, but is not ready.
    let ready = http.get(svc.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "shutdown")
    );

    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "slept 1200ms");

    let status = svc
        .wait_exit(Duration::from_secs(10))
        .expect("the service exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        svc.json_lines()
            .iter()
            .any(|l| l["message"] == "service stopped"),
        "the last log lines are flushed"
    );
}

#[tokio::test]
async fn sigint_with_no_traffic_exits_promptly() {
    let mut svc = Service::start(&[]);
    let started = Instant::now();
    svc.signal("INT");
    let status = svc.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn an_invalid_configuration_stops_the_start_naming_the_key() {
    let out = std::process::Command::new(support::example_path("probe_service"))
        .env("AIODS_PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("port"), "names the key: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("service started"), "nothing was bound");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/default.toml"),
        "shutdown_grace = \"forever\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::example_path("probe_service"))
        .current_dir(dir.path())
        .env("AIODS_PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shutdown_grace"), "{stderr}");
}

#[tokio::test]
async fn config_layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    // Three keys: one only the defaults set, one the environment's file overrides, one the
    // variable overrides over both files. Chassis keys (port, instance id) and a service's own
    // section (`probe.layers`) alike.
    std::fs::write(
        config.join("default.toml"),
        "port = 1\ninstance_id = \"from-default\"\nenv_label = \"default\"\n\
         [probe.layers]\nonly_default = \"default\"\nfile_wins = \"default\"\nvar_wins = \"default\"\n",
    )
    .unwrap();
    std::fs::write(
        config.join("staging.toml"),
        "port = 2\ninstance_id = \"from-staging\"\n\
         [probe.layers]\nfile_wins = \"staging\"\nvar_wins = \"staging\"\n",
    )
    .unwrap();
    // Another environment's file must not apply.
    std::fs::write(
        config.join("production.toml"),
        "instance_id = \"from-production\"\n[probe.layers]\nonly_default = \"production\"\n",
    )
    .unwrap();
    let svc = Service::start(&[
        ("AIODS_CONFIG_DIR", config.to_str().unwrap()),
        ("AIODS_ENV", "staging"),
        ("AIODS_PROBE__LAYERS__VAR_WINS", "variable"),
    ]);
    let http = client();
    let layers: Value = http
        .get(svc.url("/layers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        layers,
        serde_json::json!({
            "only_default": "default",
            "file_wins": "staging",
            "var_wins": "variable",
        })
    );
    let info: Value = http
        .get(svc.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["env"], "staging");
    assert_eq!(
        info["instance_id"], "from-staging",
        "staging.toml over default.toml"
    );
    // AIODS_PORT=0 (set by the harness) over both files' ports.
    assert_ne!(svc.port, 1);
    assert_ne!(svc.port, 2);

    // And the variable over both files for a chassis key too.
    let svc = Service::start(&[
        ("AIODS_CONFIG_DIR", config.to_str().unwrap()),
        ("AIODS_ENV", "staging"),
        ("AIODS_INSTANCE_ID", "from-variable"),
    ]);
    let info: Value = http
        .get(svc.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["instance_id"], "from-variable");
}
