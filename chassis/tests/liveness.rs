//! Liveness: DOWN when the runtime fails to run its heartbeat within the allowed lag.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Service, client};

const WORKERS: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn liveness_is_down_when_every_worker_is_blocked_and_up_again_after() {
    let svc = Service::start(&[
        ("TOKIO_WORKER_THREADS", "2"),
        ("AIODS_HEALTH__MAX_LAG_MS", "500"),
    ]);
    let http = client();
    assert_eq!(
        http.get(svc.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Two blocking requests per worker: every worker sleeps in a handler for about 3 s.
    let blockers: Vec<_> = (0..2 * WORKERS)
        .map(|_| {
            let http = http.clone();
            let url = svc.url("/block?ms=1500");
            tokio::spawn(async move { http.get(url).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A prober with a short timeout gets nothing: the handler cannot run either.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let res = impatient.get(svc.url("/health/live")).send().await;
    assert!(
        res.as_ref().is_err_and(reqwest::Error::is_timeout),
        "no answer while every worker is blocked: {res:?}"
    );
    // A patient one is answered once a worker frees up, and is told DOWN.
    let res = http.get(svc.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "DOWN");
    assert!(
        body["error"].as_str().unwrap().contains("heartbeat"),
        "{body}"
    );

    for b in blockers {
        assert_eq!(b.await.unwrap().unwrap().status(), 200);
    }
    // UP again within a few seconds once nothing blocks.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = http.get(svc.url("/health/live")).send().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "liveness stays DOWN");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stalled = svc
        .wait_for_log(
            |v| v["target"] == "aiods::health" && v["level"] == "ERROR",
            Duration::from_secs(5),
        )
        .expect("the stall is logged");
    assert!(stalled["lag_ms"].as_u64().unwrap() > 500, "{stalled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_but_not_blocking_handler_keeps_liveness_up() {
    let svc = Service::start(&[
        ("TOKIO_WORKER_THREADS", "2"),
        ("AIODS_HEALTH__MAX_LAG_MS", "500"),
    ]);
    let http = client();
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let http = http.clone();
            let url = svc.url("/slow?ms=1500");
            tokio::spawn(async move { http.get(url).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let res = http.get(svc.url("/health/live")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status(), 200);
    }
}
