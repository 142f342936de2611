//! End-to-end scaling under `aiops up`: a hung instance of a replicated service is replaced
//! (a new instance is started and ready before the hung one is killed) while the service keeps
//! answering through the gateway; slow requests saturate a service, which is scaled out, then
//! scaled back in when the load is gone.
#![allow(clippy::unwrap_used, missing_docs)]

mod platform_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use platform_support::*;

/// Sends `GET /restaurants` through the gateway in a loop until `stop`; counts (ok, failed).
fn traffic(
    p: &PlatformProcess,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let url = format!("{}/restaurants", p.gateway);
    let (o, f) = (ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => o.fetch_add(1, Ordering::Relaxed),
                _ => f.fetch_add(1, Ordering::Relaxed),
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (ok, failed, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_is_replaced_before_it_is_killed() {
    let p = PlatformProcess::start(&food_service("kitchen", "replicas = 2"));
    p.wait_all_ready(Duration::from_secs(30)).await;
    let hung = p.instance("kitchen#0").await;
    let url = hung["url"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, task) = traffic(&p, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_fault(p.client(), &url, serde_json::json!({"hang": true})).await;

    // The replacement is ready while the hung instance is still there.
    p.wait_for(
        "kitchen#2 ready while kitchen#0 still exists",
        Duration::from_secs(20),
        || async {
            let all = p.instances().await;
            let new_ready = all
                .iter()
                .any(|i| i["id"] == "kitchen#2" && i["status"] == "ready");
            let old_there = all.iter().any(|i| i["id"] == "kitchen#0");
            (new_ready && old_there).then_some(())
        },
    )
    .await;
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
    let action = inc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["what"] == "replace")
        .cloned()
        .unwrap_or_else(|| panic!("no replace action: {inc:#}"));
    assert_eq!(action["status"], "executed", "{inc:#}");
    assert_eq!(action["who"], "aiops");
    assert_eq!(action["instance"], "kitchen#0");
    assert!(
        action["result"]
            .as_str()
            .unwrap()
            .contains("kitchen#2 ready"),
        "{action:#}"
    );
    // The hung instance is gone; two ready replicas remain.
    p.wait_for("kitchen#0 forgotten", Duration::from_secs(10), || async {
        let all = p.instances().await;
        (all.len() == 2
            && all.iter().all(|i| i["status"] == "ready")
            && all.iter().all(|i| i["id"] != "kitchen#0"))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    // At most the request caught by the hang before detection fails.
    assert!(ok >= 10 && failed <= 2, "ok {ok}, failed {failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_scales_out_and_quiet_scales_back_in() {
    let scale = "[service.scale]\nmax_replicas = 2\nout_when_inflight_per_instance = 2\n\
                 out_for_ms = 500\nin_after_ms = 1500\ncooldown_ms = 1000\n";
    let p = PlatformProcess::start(&food_service("kitchen", scale));
    p.wait_all_ready(Duration::from_secs(30)).await;
    let first = p.instance("kitchen#0").await;
    let url = first["url"].as_str().unwrap().to_owned();
    set_fault(p.client(), &url, serde_json::json!({"latency_ms": 400})).await;

    // Eight concurrent clients of slow requests: ~8 in flight on one instance.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..8 {
        let (ok, failed, task) = traffic(&p, stop.clone());
        load.push(task);
        counters.push((ok, failed));
    }
    let inc = p
        .wait_for("a scale_out action", Duration::from_secs(15), || async {
            p.incidents("kitchen").await.into_iter().find(|i| {
                i["actions"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|a| a["what"] == "scale_out" && a["status"] != "scheduled")
                })
            })
        })
        .await;
    let out = inc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["what"] == "scale_out")
        .cloned()
        .unwrap();
    assert_eq!(out["status"], "executed", "{inc:#}");
    assert_eq!(out["instance"], "kitchen#1");
    assert!(
        out["why"].as_str().unwrap().contains("in-flight"),
        "{out:#}"
    );
    p.wait_for("kitchen#1 ready", Duration::from_secs(15), || async {
        (p.instance("kitchen#1").await["status"] == "ready").then_some(())
    })
    .await;
    // The scaled-out instance is scraped, like the first.
    let new_metrics = format!(
        "{}/metrics",
        p.instance("kitchen#1").await["url"].as_str().unwrap()
    );
    p.wait_for("kitchen#1 scraped", Duration::from_secs(10), || async {
        let health = p.api("health").await;
        health["scrape_targets"]
            .as_array()
            .is_some_and(|t| {
                t.iter()
                    .any(|t| t["url"] == new_metrics.as_str() && t["up"] == true)
            })
            .then_some(())
    })
    .await;
    // Never more than max_replicas.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(p.instances().await.len() <= 2);

    // Load stops: back to one instance, scale_in audited on the same incident.
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let failed: u64 = counters
        .iter()
        .map(|(_, f)| f.load(Ordering::Relaxed))
        .sum();
    let ok: u64 = counters
        .iter()
        .map(|(o, _)| o.load(Ordering::Relaxed))
        .sum();
    assert!(ok > 0 && failed == 0, "ok {ok}, failed {failed}");
    let inc = p
        .wait_for("a scale_in action", Duration::from_secs(15), || async {
            p.api(&format!("incidents/{}", inc["id"].as_str().unwrap()))
                .await
                .as_object()
                .cloned()
                .filter(|i| {
                    i["actions"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|a| a["what"] == "scale_in"))
                })
        })
        .await;
    let scale_in = inc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["what"] == "scale_in")
        .cloned()
        .unwrap();
    assert_eq!(scale_in["instance"], "kitchen#1", "{scale_in:#}");
    assert_eq!(scale_in["status"], "executed");
    p.wait_for("back to one instance", Duration::from_secs(15), || async {
        let all = p.instances().await;
        (all.len() == 1 && all[0]["id"] == "kitchen#0" && all[0]["status"] == "ready").then_some(())
    })
    .await;
    // The retired instance is no longer a scrape target.
    p.wait_for(
        "kitchen#1 no longer scraped",
        Duration::from_secs(5),
        || async {
            let health = p.api("health").await;
            let targets = health["scrape_targets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (!targets.iter().any(|t| t["url"] == new_metrics.as_str())).then_some(())
        },
    )
    .await;
}
