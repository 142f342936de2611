//! Prometheus scraping of a tiny axum server serving the text exposition format.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Platform, eventually, items};

/// Starts an axum server on a free port in its own runtime; returns its address.
fn start_exporter(hits: Arc<AtomicU64>) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send addr");
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        format!(
                            "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
                             http_requests_total{{method=\"GET\",code=\"200\"}} {n}\n\
                             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e+07\n\
                             # TYPE lat histogram\nlat_bucket{{le=\"0.1\"}} 1\nlat_bucket{{le=\"+Inf\"}} 2\nlat_sum 0.3\nlat_count 2\n"
                        )
                    }
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("exporter started")
}

#[test]
fn configured_targets_are_scraped_on_an_interval() {
    let hits = Arc::new(AtomicU64::new(0));
    let addr = start_exporter(hits.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let services = format!(
        "[[service]]\nname = \"inventory\"\nurl = \"http://{addr}\"\n\n[[service]]\nname = \"gone\"\nscrape = [\"http://127.0.0.1:1/metrics\"]\n"
    );
    let p = Platform::start(dir.path(), "", &services);

    let series = eventually(Duration::from_secs(10), || {
        let (_, v) = p.get("/api/v1/metrics?service=inventory&name=http_requests_total");
        let s = items(&v);
        (s.first()
            .and_then(|s| s["points"].as_array())
            .is_some_and(|p| p.len() >= 3))
        .then_some(s)
    });
    let s = &series[0];
    assert_eq!(s["source"], "scrape");
    assert_eq!(s["kind"], "counter");
    assert_eq!(s["labels"]["method"], "GET");
    assert_eq!(s["labels"]["instance"], addr.to_string());
    let values: Vec<f64> = s["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(
        values.windows(2).all(|w| w[1] > w[0]),
        "counter increases per scrape: {values:?}"
    );

    let (_, gauge) = p.get("/api/v1/metrics?service=inventory&name=process_resident_memory_bytes");
    assert_eq!(items(&gauge)[0]["last_value"], 1.5e7);
    let (_, buckets) = p.get("/api/v1/metrics?service=inventory&name=lat_bucket");
    assert_eq!(items(&buckets).len(), 2);
    let (_, up) = p.get("/api/v1/metrics?name=up");
    let up = items(&up);
    assert!(
        up.iter()
            .any(|s| s["service"] == "inventory" && s["last_value"] == 1.0)
    );
    assert!(
        up.iter()
            .any(|s| s["service"] == "gone" && s["last_value"] == 0.0)
    );

    let (_, health) = p.get("/api/v1/health");
    let targets = health["scrape_targets"].as_array().expect("targets");
    let gone = targets
        .iter()
        .find(|t| t["service"] == "gone")
        .expect("gone target");
    assert_eq!(gone["up"], false);
    assert!(gone["last_error"].is_string());
    let (_, services) = p.get("/api/v1/services");
    assert!(
        items(&services)
            .iter()
            .any(|s| s["name"] == "inventory" && s["last_seen_by_signal"]["scrape"].is_string())
    );
    assert!(hits.load(Ordering::SeqCst) >= 3);
}
