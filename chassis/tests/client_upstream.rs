//! The chassis client never leaves its upstream: an absolute URL or a `//host` path given as
//! the path is refused before anything is sent.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aiods::client::ClientConfig;
use serde_json::Value;

/// A listener counting the connections it gets (and closing them).
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn a_path_cannot_take_a_call_to_another_host() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (upstream, _) = counting_listener();
    let (elsewhere, stolen) = counting_listener();
    let upstreams = BTreeMap::from([("kitchen".to_owned(), format!("http://{upstream}"))]);
    let client =
        aiods::Client::new(&upstreams, Duration::from_secs(2), &ClientConfig::default()).unwrap();
    for path in [
        format!("http://{elsewhere}/steal"),
        format!("//{elsewhere}/steal"),
        format!("\\\\{elsewhere}/steal"),
    ] {
        let err = client
            .get_json::<Value>("kitchen", &path)
            .await
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("would leave the upstream"), "{path}: {text}");
        assert!(text.contains("kitchen"), "{path}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "a call reached another host"
    );
}
