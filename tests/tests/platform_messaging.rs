//! End-to-end: `aiops up` supervising the five food-delivery services in the event-driven
//! variant (`AIODS_SAGA__MODE=events`) over a real `nats-server` with JetStream. The platform
//! judges their consumers from the messaging metrics it scrapes: a kitchen instance whose
//! consumers stall (fault `consumer_stall`) is killed and restarted and the orders waiting for
//! it settle; a burst of malformed events dead-lettered by the kitchen opens a poison-message
//! incident, with no restart (a restart cures no poison message).
#![allow(clippy::unwrap_used, missing_docs)]

mod platform_support;

use std::time::Duration;

use aiods::messaging::async_nats::HeaderMap;
use aiods::messaging::{Messaging, MessagingConfig};
use aiods_test::NatsServer;
use platform_support::*;
use serde_json::Value;

/// The five services in events mode on `nats`; consumers judged stalled after 2 s.
fn topology(nats: &NatsServer) -> String {
    let url = nats.url();
    let env = [
        ("AIODS_SAGA__MODE", "events"),
        ("AIODS_MESSAGING__URL", url.as_str()),
        ("AIODS_MESSAGING__BACKOFF_MS", "50,100,200"),
    ];
    ["consumer", "kitchen", "accounting", "notification", "order"]
        .iter()
        .map(|n| food_service_with(n, "[service.detection]\nconsumer_stall_ms = 2000\n", &env))
        .collect()
}

/// Places an order through the gateway; answers its id.
async fn place(p: &PlatformProcess) -> i64 {
    let r = p.post_order().await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        (200..300).contains(&status),
        "order answered {status}: {body}"
    );
    body["id"].as_i64().unwrap()
}

async fn state(p: &PlatformProcess, id: i64) -> String {
    let r = p
        .client()
        .get(format!("{}/orders/{id}", p.gateway))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap_or_default();
    body["state"].as_str().unwrap_or_default().to_owned()
}

async fn wait_settled(p: &PlatformProcess, ids: &[i64], timeout: Duration) {
    p.wait_for("every order approved", timeout, || async {
        for id in ids {
            if state(p, *id).await != "APPROVED" {
                return None;
            }
        }
        Some(())
    })
    .await;
}

fn kitchen_incident_with(incidents: &[Value], signal: &str) -> Option<Value> {
    incidents
        .iter()
        .find(|i| {
            i["signals"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == signal))
        })
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_is_killed_and_restarted_and_the_waiting_orders_settle() {
    let nats = NatsServer::start_new();
    let p = PlatformProcess::start(&topology(&nats));
    p.wait_all_ready(Duration::from_secs(60)).await;
    let first = place(&p).await;
    wait_settled(&p, &[first], Duration::from_secs(20)).await;

    let kitchen = p.instance("kitchen#0").await;
    let url = kitchen["url"].as_str().unwrap().to_owned();
    let pid = kitchen["pid"].clone();
    set_fault(
        p.client(),
        &url,
        serde_json::json!({"consumer_stall": true}),
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(place(&p).await);
    }

    let incident = p
        .wait_for(
            "a resolved consumer-stall incident of the kitchen",
            Duration::from_secs(40),
            || async {
                kitchen_incident_with(&p.incidents("kitchen").await, "consumer_stalled")
                    .filter(|i| i["status"] == "resolved")
            },
        )
        .await;
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .contains("kitchen#0: consumer"),
        "{incident:#}"
    );
    let action = &incident["actions"][0];
    assert_eq!(action["what"], "kill_and_restart", "{incident:#}");
    assert_eq!(action["status"], "executed", "{incident:#}");
    let after = p.instance("kitchen#0").await;
    assert_ne!(after["pid"], pid, "a new kitchen process");
    // The restarted kitchen (no fault) takes the waiting orders through.
    wait_settled(&p, &waiting, Duration::from_secs(30)).await;
    let mttd = incident["mttd_ms"].as_f64().unwrap();
    assert!(
        (0.0..10_000.0).contains(&mttd),
        "stall detected within 2 s of threshold plus scrapes: {mttd} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_dead_lettered_by_a_consumer_open_a_poison_incident_without_restart() {
    let nats = NatsServer::start_new();
    let p = PlatformProcess::start(&topology(&nats));
    p.wait_all_ready(Duration::from_secs(60)).await;
    // The streams exist once an order went through.
    let first = place(&p).await;
    wait_settled(&p, &[first], Duration::from_secs(20)).await;
    let pid = p.instance("kitchen#0").await["pid"].clone();

    let client = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    for n in 0..4 {
        client
            .publish_bytes(
                "consumers.verified",
                &format!("poison-{n}"),
                "{not json".into(),
                HeaderMap::new(),
            )
            .await
            .unwrap();
    }

    let incident = p
        .wait_for(
            "a poison-message incident of the kitchen",
            Duration::from_secs(30),
            || async { kitchen_incident_with(&p.incidents("kitchen").await, "poison_messages") },
        )
        .await;
    assert!(
        incident["title"].as_str().unwrap().contains("poison"),
        "{incident:#}"
    );
    assert_eq!(
        incident["actions"].as_array().map(Vec::len),
        Some(0),
        "no restart for poison: {incident:#}"
    );
    assert_eq!(p.instance("kitchen#0").await["pid"], pid, "not restarted");
    // Orders still flow past the poison.
    let next = place(&p).await;
    wait_settled(&p, &[next], Duration::from_secs(20)).await;
}
