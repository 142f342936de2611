//! The gateway drains on shutdown: a request in flight when the platform stops still gets its
//! answer, and no new connection is accepted after.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_platform::config::Topology;
use aiops_platform::store::Store;
use aiops_platform::supervisor::Supervision;
use axum::Router;
use axum::routing::get;

/// How long the upstream takes to answer `/slow`.
const SLOW: Duration = Duration::from_millis(800);

async fn slow_upstream() -> SocketAddr {
    let app = Router::new()
        .route("/health/live", get(|| async { "{\"status\":\"UP\"}" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "done"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_finishes_when_the_platform_stops() {
    aiops_platform::common::install_crypto_provider();
    let upstream = slow_upstream().await;
    let topology: Topology = toml::from_str(&format!(
        r#"
        [gateway]
        listen = "127.0.0.1:0"

        [[service]]
        name = "slow"
        url = "http://{upstream}"
        routes = ["/slow"]
        health = {{ ready = "" }}
        "#
    ))
    .unwrap_or_else(|e| panic!("topology: {e}"));
    let store = Arc::new(Store::new(topology.platform.retention.clone(), None));
    let platform_addr: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}"));
    let sup = Supervision::new(&topology, store.clone(), None, platform_addr)
        .await
        .unwrap_or_else(|e| panic!("supervision: {e}"));
    sup.start(store, &topology)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let gateway = sup.gateway_url().unwrap_or_else(|| panic!("no gateway"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sup.routes.endpoints("slow").iter().any(|e| e.is_ready()) {
        assert!(Instant::now() < deadline, "the upstream never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), format!("{gateway}/slow"));
        async move { client.get(url).send().await?.text().await }
    });
    // The request is at the upstream when the platform starts to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    sup.shutdown().await;
    let stopped_after = stopping.elapsed();

    let answer = in_flight
        .await
        .unwrap_or_else(|e| panic!("join: {e}"))
        .unwrap_or_else(|e| panic!("the in-flight request failed: {e}"));
    assert_eq!(answer, "done");
    assert!(
        stopped_after >= SLOW / 2,
        "shutdown returned after {stopped_after:?}, before the request could finish"
    );
    let after = client
        .get(format!("{gateway}/slow"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        after.is_err(),
        "a new request was served after shutdown: {after:?}"
    );
}
