//! End-to-end detection under `aiops up`: a hung instance (fault injection) is caught by its
//! liveness probes, killed and restarted; injected 30 % errors open an error-rate incident
//! that resolves when the fault is cleared.
#![allow(clippy::unwrap_used, missing_docs)]

mod platform_support;

use std::time::{Duration, Instant};

use platform_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_instance_is_detected_by_liveness_killed_and_restarted() {
    let p = PlatformProcess::start(&food_service("kitchen", ""));
    p.wait_all_ready(Duration::from_secs(30)).await;
    let before = p.instance("kitchen#0").await;
    let url = before["url"].as_str().unwrap().to_owned();
    set_fault(p.client(), &url, serde_json::json!({"hang": true})).await;
    let inc = p
        .wait_for(
            "the hang incident to resolve",
            Duration::from_secs(20),
            || async {
                p.incidents("kitchen")
                    .await
                    .into_iter()
                    .find(|i| i["status"] == "resolved")
            },
        )
        .await;
    let signals = inc["signals"].to_string();
    assert!(signals.contains("liveness"), "{inc:#}");
    let action = inc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["what"] == "kill_and_restart")
        .cloned()
        .unwrap();
    assert_eq!(action["status"], "executed", "{inc:#}");
    let mttd = inc["mttd_ms"].as_f64().unwrap();
    assert!(mttd < 2000.0, "hang MTTD {mttd} ms");
    let after = p.instance("kitchen#0").await;
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(after["status"], "ready");
    // The new process has no fault: it answers.
    let r = p
        .client()
        .get(format!("{url}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_open_an_error_rate_incident_that_resolves_when_cleared() {
    let p = PlatformProcess::start(&food_delivery(""));
    p.wait_all_ready(Duration::from_secs(60)).await;
    let created = p.post_order().await;
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let order = p.instance("order#0").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    set_fault(p.client(), &order, serde_json::json!({"error_rate": 0.3})).await;

    // Steady traffic through the gateway until the incident opens.
    let get = |gw: String, c: reqwest::Client| async move {
        c.get(format!("{gw}/orders/{id}"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = 0;
    let inc = loop {
        for _ in 0..10 {
            if get(p.gateway.clone(), p.client().clone()).await >= 500 {
                failures += 1;
            }
        }
        let open = p
            .incidents("order")
            .await
            .into_iter()
            .find(|i| i["status"] == "open");
        if let Some(i) = open
            && i["signals"].to_string().contains("error_rate")
        {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no error-rate incident\n{}",
            p.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failures > 0);
    assert!(inc["conditions"]["error_rate"].is_object(), "{inc:#}");
    let ev = inc["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["signal"] == "error_rate")
        .cloned()
        .unwrap();
    assert!(
        ev["detail"]["short_error_share"].as_f64().unwrap() >= 0.1,
        "{ev:#}"
    );
    // Default policy: notify only, no restart.
    assert_eq!(inc["restarts"], 0);

    clear_fault(p.client(), &order).await;
    let id_inc = inc["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(40);
    let resolved = loop {
        for _ in 0..5 {
            assert_eq!(get(p.gateway.clone(), p.client().clone()).await, 200);
        }
        let i = p.api(&format!("incidents/{id_inc}")).await;
        if i["status"] == "resolved" {
            break i;
        }
        assert!(Instant::now() < deadline, "not resolved: {i:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(resolved["mttr_ms"].as_f64().is_some());
    assert!(
        resolved["mttd_ms"].as_f64().unwrap() < 15_000.0,
        "{resolved:#}"
    );
    // The gateway's client-side view is on the platform's /metrics.
    let metrics = p.metrics_text().await;
    assert!(
        metrics.contains("aiops_gateway_requests_total{service=\"order\",status_class=\"5xx\"}"),
        "{metrics}"
    );
}
