//! End-to-end: `aiops up` supervising the five food-delivery services (real processes). A
//! kill -9 opens an incident, the instance is restarted on the same port, orders succeed again
//! through the gateway, and the incident carries MTTD and MTTR.
#![allow(clippy::unwrap_used, missing_docs)]

mod platform_support;

use std::time::Duration;

use platform_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_opens_an_incident_restarts_and_orders_flow_again() {
    let p = PlatformProcess::start(&food_delivery(""));
    p.wait_all_ready(Duration::from_secs(60)).await;

    let place = || p.post_order();
    let r = place().await;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());

    let before = p.instance("kitchen#0").await;
    let (pid, port) = (before["pid"].as_u64().unwrap(), before["addr"].clone());
    signal(pid, "KILL");

    let incident = p
        .wait_for(
            "a resolved kitchen incident",
            Duration::from_secs(20),
            || async {
                p.incidents("kitchen")
                    .await
                    .into_iter()
                    .find(|i| i["status"] == "resolved")
            },
        )
        .await;
    assert!(
        incident["title"].as_str().unwrap().contains("SIGKILL"),
        "{incident:#}"
    );
    assert_eq!(incident["signals"][0], "process_exit");
    let mttd = incident["mttd_ms"].as_f64().unwrap();
    let mttr = incident["mttr_ms"].as_f64().unwrap();
    let downtime = incident["downtime_ms"].as_f64().unwrap();
    assert!((0.0..500.0).contains(&mttd), "MTTD {mttd} ms");
    assert!((0.0..2000.0).contains(&mttr), "MTTR {mttr} ms");
    assert!((downtime - (mttd + mttr)).abs() < 1.0, "{incident:#}");
    assert_eq!(incident["restarts"], 1);
    let action = &incident["actions"][0];
    assert_eq!(action["what"], "restart");
    assert_eq!(action["who"], "aiops");
    assert_eq!(action["status"], "executed");

    let after = p.instance("kitchen#0").await;
    assert_eq!(after["addr"], port, "restarted on the same port");
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(after["restarts"], 1);

    // Orders go through again (through the gateway, which the order service uses too).
    let r = place().await;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());

    // The incident is durable and listed, the report counts it.
    let one = p
        .api(&format!("incidents/{}", incident["id"].as_str().unwrap()))
        .await;
    assert_eq!(one["id"], incident["id"]);
    let report = p.api("report").await;
    let row = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "kitchen")
        .cloned()
        .unwrap();
    assert_eq!(row["incidents"], 1);
    assert_eq!(row["restarts"], 1);
    assert!(row["mttr"]["p95_ms"].as_f64().is_some(), "{report:#}");

    // The CLI lists it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args([
            "incidents",
            "--service",
            "kitchen",
            "--url",
            &p.url,
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.starts_with("ID") && table.contains(incident["id"].as_str().unwrap()),
        "{table}"
    );
}
