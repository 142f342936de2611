//! Detection from the telemetry contract alone, over real processes: services the platform
//! neither starts nor routes — a Python program with the official OpenTelemetry SDK and
//! prometheus_client, known from its telemetry only or watched at its URL — and a chassis
//! service behind no gateway. Each gets error-rate and latency incidents whose failure start is
//! at or after the moment the fault was switched on, and which resolve after it stops.

mod platform_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform_support::python::PythonApp;
use platform_support::{FAULT_TOKEN, PlatformProcess, bin_dir, clear_fault, set_fault};
use serde_json::Value;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends `GET url` from two clients, about 60 requests a second, until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    /// When the last 5xx answer came (ns since the epoch).
    last_5xx: Arc<std::sync::atomic::AtomicU64>,
}

impl Load {
    fn start(client: &reqwest::Client, url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let last_5xx = Arc::new(std::sync::atomic::AtomicU64::new(0));
        for _ in 0..2 {
            let (client, url, stop, last) =
                (client.clone(), url.clone(), stop.clone(), last_5xx.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = client.get(&url).send().await
                        && r.status().is_server_error()
                    {
                        last.fetch_max(now_ns(), Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            });
        }
        Self { stop, last_5xx }
    }

    fn last_5xx(&self) -> u64 {
        self.last_5xx.load(Ordering::Relaxed)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits for the open incident of `service` with `signal`.
async fn incident_with(p: &PlatformProcess, service: &str, signal: &str) -> Value {
    p.wait_for(
        &format!("a {signal} incident of {service}"),
        Duration::from_secs(40),
        || async {
            p.incidents(service)
                .await
                .into_iter()
                .find(|i| i["status"] == "open" && i["conditions"].get(signal).is_some())
        },
    )
    .await
}

async fn resolved(p: &PlatformProcess, id: &str) -> Value {
    p.wait_for(
        &format!("incident {id} resolved"),
        Duration::from_secs(40),
        || async {
            let i = p.api(&format!("incidents/{id}")).await;
            (i["status"] == "resolved").then_some(i)
        },
    )
    .await
}

/// The incident started at or after `switched` (the fault's own time) and was detected soon.
fn check_times(inc: &Value, switched: u64, within: Duration) {
    let start = inc["failure_start_unix_nano"]
        .as_u64()
        .expect("failure start");
    let detected = inc["detected_unix_nano"].as_u64().expect("detected");
    assert!(
        start >= switched,
        "failure start {start} is before the fault was switched on at {switched}: {inc:#}"
    );
    let from_fault = Duration::from_nanos(detected - switched);
    assert!(
        from_fault < within,
        "detected {from_fault:?} after the fault: {inc:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_known_only_from_its_otlp_gets_an_error_incident() {
    let p = PlatformProcess::start("");
    let app = PythonApp::start(
        &["--no-metrics-endpoint"],
        &[
            ("OTEL_SERVICE_NAME", "py-otlp".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", p.url.clone()),
        ],
    );
    let load = Load::start(p.client(), format!("{}/work", app.url));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let switched = now_ns();
    app.set_mode(p.client(), 0.3, 0.0).await;
    let inc = incident_with(&p, "py-otlp", "error_rate").await;
    check_times(&inc, switched, Duration::from_secs(5));
    let ev = inc["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["signal"] == "error_rate"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ev["detail"]["source"], "spans", "{ev:#}");

    let services = p.api("services").await;
    let me = services["items"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "py-otlp"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["discovered"], true, "{services:#}");
    let metrics = p
        .client()
        .get(format!("{}/metrics", p.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    for counter in [
        "aiops_services_refused_total 0",
        "aiops_request_series_refused_total 0",
    ] {
        assert!(metrics.contains(counter), "{counter} missing:\n{metrics}");
    }

    let cleared = now_ns();
    app.set_mode(p.client(), 0.0, 0.0).await;
    let done = resolved(&p, inc["id"].as_str().unwrap_or_default()).await;
    let recovered = done["recovered_unix_nano"].as_u64().unwrap_or(0);
    // Recovery is the first success after the last failure: after the last 5xx the load
    // saw (its server-side end comes a little before the client reads it).
    let last_failure = load.last_5xx();
    assert!(
        recovered + 20_000_000 >= last_failure && recovered <= now_ns(),
        "recovered at {recovered}, the last 5xx came at {last_failure}: {done:#}"
    );
    assert!(
        last_failure <= cleared + 1_000_000_000,
        "5xx after the errors were cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_python_service_gets_error_and_latency_incidents() {
    // The app sends OTLP to the platform, and the platform watches the app's URL: pick the
    // app's port first, start the platform, then the app pointed at it.
    let placeholder = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = placeholder.local_addr().expect("addr").port();
    drop(placeholder);
    let p = PlatformProcess::start(&format!(
        "[[service]]\nname = \"py\"\nurl = \"http://127.0.0.1:{port}\"\n"
    ));
    let app = PythonApp::start(
        &[],
        &[
            ("PORT", port.to_string()),
            ("OTEL_SERVICE_NAME", "py".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", p.url.clone()),
        ],
    );
    assert!(app.url.ends_with(&port.to_string()));
    let _load = Load::start(p.client(), format!("{}/work", app.url));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let switched = now_ns();
    app.set_mode(p.client(), 0.3, 0.0).await;
    let inc = incident_with(&p, "py", "error_rate").await;
    check_times(&inc, switched, Duration::from_secs(5));
    app.set_mode(p.client(), 0.0, 0.0).await;
    resolved(&p, inc["id"].as_str().unwrap_or_default()).await;

    // Latency: the judge needs its warm-up of seconds with requests (30) first.
    tokio::time::sleep(Duration::from_secs(32)).await;
    let switched = now_ns();
    app.set_mode(p.client(), 0.0, 300.0).await;
    let inc = incident_with(&p, "py", "latency").await;
    check_times(&inc, switched, Duration::from_secs(6));
    app.set_mode(p.client(), 0.0, 0.0).await;
    resolved(&p, inc["id"].as_str().unwrap_or_default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraped_only_service_gets_an_error_incident() {
    let app = PythonApp::start(&["--no-otlp"], &[]);
    let p = PlatformProcess::start(&format!(
        "[[service]]\nname = \"scraped\"\nurl = \"{}\"\n",
        app.url
    ));
    let _load = Load::start(p.client(), format!("{}/work", app.url));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let switched = now_ns();
    app.set_mode(p.client(), 0.3, 0.0).await;
    let inc = incident_with(&p, "scraped", "error_rate").await;
    // One scrape interval (1 s) later at most, plus the burn's confirmation.
    check_times(&inc, switched, Duration::from_secs(6));
    let ev = inc["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["signal"] == "error_rate"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ev["detail"]["source"], "scrape", "{ev:#}");
    app.set_mode(p.client(), 0.0, 0.0).await;
    resolved(&p, inc["id"].as_str().unwrap_or_default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chassis_service_behind_no_gateway_gets_error_and_latency_incidents() {
    let exe = bin_dir().join("kitchen-service");
    let p = PlatformProcess::start(&format!(
        r#"
[[service]]
name = "kitchen"
command = ["{exe}"]
[service.env]
AIODS_DB__URL = "sqlite://{{data_dir}}/kitchen.db?mode=rwc"
AIODS_FAULTS__ENABLED = "true"
AIODS_FAULTS__TOKEN = "{FAULT_TOKEN}"
"#,
        exe = exe.display()
    ));
    p.wait_all_ready(Duration::from_secs(30)).await;
    let url = p.instance("kitchen#0").await["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let _load = Load::start(p.client(), format!("{url}/restaurants"));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let switched = now_ns();
    set_fault(p.client(), &url, serde_json::json!({"error_rate": 0.3})).await;
    let inc = incident_with(&p, "kitchen", "error_rate").await;
    check_times(&inc, switched, Duration::from_secs(5));
    clear_fault(p.client(), &url).await;
    resolved(&p, inc["id"].as_str().unwrap_or_default()).await;

    tokio::time::sleep(Duration::from_secs(32)).await;
    let switched = now_ns();
    set_fault(p.client(), &url, serde_json::json!({"latency_ms": 300})).await;
    let inc = incident_with(&p, "kitchen", "latency").await;
    check_times(&inc, switched, Duration::from_secs(6));
    clear_fault(p.client(), &url).await;
    resolved(&p, inc["id"].as_str().unwrap_or_default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_latency_is_named_first_in_the_callers_incident() {
    // Two services known only from their telemetry: py-front calls py-back on every request,
    // with the W3C trace context, so the platform learns the call from the spans.
    let p = PlatformProcess::start("");
    let otlp = |name: &str| {
        vec![
            ("OTEL_SERVICE_NAME", name.to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", p.url.clone()),
        ]
    };
    let back = PythonApp::start(&["--no-metrics-endpoint"], &otlp("py-back"));
    let mut front_env = otlp("py-front");
    front_env.push(("UPSTREAM", back.url.clone()));
    let front = PythonApp::start(&["--no-metrics-endpoint"], &front_env);
    let _load = Load::start(p.client(), format!("{}/work", front.url));
    // Both latency judges need their warm-up of seconds with requests.
    tokio::time::sleep(Duration::from_secs(36)).await;
    back.set_mode(p.client(), 0.0, 300.0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let inc = loop {
        let seen = p.incidents("py-front").await;
        if let Some(i) = seen.iter().find(|i| {
            i["status"] == "open"
                && i["root_causes"][0]["node"] == "py-back"
                && i["root_causes"][0]["score"].as_f64() > Some(0.0)
        }) {
            break i.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no py-front incident naming py-back first: {seen:#?}\nall: {:#}",
            p.api("incidents").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(inc["probable_root_cause"], "py-back", "{inc:#}");
    let causes = inc["root_causes"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        causes.len(),
        2,
        "the caller and its one dependency: {inc:#}"
    );
    assert_eq!(causes[1]["node"], "py-front");
    back.set_mode(p.client(), 0.0, 0.0).await;
}
