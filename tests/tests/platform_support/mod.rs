//! Runs `aiops up` as a real process over a topology of real service binaries, and reads its
//! API. Dropping the platform sends SIGTERM, so it stops its instances.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod python;

use serde_json::Value;

pub const TOKEN: &str = "platform-test-token";
pub const FAULT_TOKEN: &str = "fault-token";

pub fn bin_dir() -> PathBuf {
    let _ = (
        env!("CARGO_BIN_EXE_consumer-service"),
        env!("CARGO_BIN_EXE_kitchen-service"),
        env!("CARGO_BIN_EXE_accounting-service"),
        env!("CARGO_BIN_EXE_notification-service"),
        env!("CARGO_BIN_EXE_order-service"),
    );
    Path::new(env!("CARGO_BIN_EXE_aiops"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A `[[service]]` block for one food-delivery service, with fault injection on.
pub fn food_service(name: &str, extra: &str) -> String {
    food_service_with(name, extra, &[])
}

/// [`food_service`] with more environment variables.
pub fn food_service_with(name: &str, extra: &str, env: &[(&str, &str)]) -> String {
    let exe = bin_dir().join(format!("{name}-service"));
    let (routes, deps) = match name {
        "order" => (
            r#"["/orders"]"#,
            r#"["consumer", "kitchen", "accounting", "notification"]"#,
        ),
        "consumer" => (r#"["/consumers"]"#, "[]"),
        "kitchen" => (r#"["/tickets", "/restaurants"]"#, "[]"),
        "accounting" => (r#"["/authorizations"]"#, "[]"),
        _ => (r#"["/notifications"]"#, "[]"),
    };
    format!(
        r#"
[[service]]
name = "{name}"
command = ["{exe}"]
routes = {routes}
depends_on = {deps}
{extra}
[service.env]
AIODS_DB__URL = "sqlite://{{data_dir}}/{name}.db?mode=rwc"
AIODS_FAULTS__ENABLED = "true"
AIODS_FAULTS__TOKEN = "{FAULT_TOKEN}"
AIODS_ORDERS__RECONCILE_INTERVAL_MS = "200"
RUST_LOG = "info"
{env}"#,
        exe = exe.display(),
        env = env
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", toml::Value::String((*v).to_owned())))
            .collect::<String>(),
    )
}

/// All five services.
pub fn food_delivery(extra: &str) -> String {
    ["consumer", "kitchen", "accounting", "notification", "order"]
        .iter()
        .map(|n| food_service(n, extra))
        .collect()
}

pub struct PlatformProcess {
    child: Option<Child>,
    pub url: String,
    pub gateway: String,
    _dir: Option<tempfile::TempDir>,
    output: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl PlatformProcess {
    /// Starts `aiops up` with `services` (TOML) after a `[platform]` section.
    pub fn start(services: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Self::start_at(dir.path(), services);
        p._dir = Some(dir);
        p
    }

    /// Starts with its data in `dir` (kept by the caller, e.g. across a platform restart).
    pub fn start_at(dir: &Path, services: &str) -> Self {
        let toml = format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_token = \"{TOKEN}\"\nscrape_interval_ms = 1000\n{services}",
            dir.display()
        );
        let config = dir.join("aiods.toml");
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(["up", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                if l.len() > 5000 {
                    l.drain(..2500);
                }
                l.push(line);
            }
        });
        let (mut url, mut gateway) = (String::new(), String::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        let want_gateway = services.contains("routes");
        while url.is_empty() || (want_gateway && gateway.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if v["event"] == "listening" => url = v["url"].as_str().unwrap().into(),
                Ok(v) if v["event"] == "gateway" => gateway = v["url"].as_str().unwrap().into(),
                Ok(_) => {}
                Err(_) => panic!("aiops did not start: {}", output.lock().unwrap().join("\n")),
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            child: Some(child),
            url,
            gateway,
            _dir: None,
            output,
            client,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The platform's own `/metrics` exposition.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub async fn api(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}/api/v1/{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post_api(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn instances(&self) -> Vec<Value> {
        self.api("instances").await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn instance(&self, id: &str) -> Value {
        self.instances()
            .await
            .into_iter()
            .find(|i| i["id"] == id)
            .unwrap_or(Value::Null)
    }

    pub async fn incidents(&self, service: &str) -> Vec<Value> {
        self.api(&format!("incidents?service={service}")).await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until every instance is ready.
    pub async fn wait_all_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.instances().await;
            if !all.is_empty() && all.iter().all(|i| i["status"] == "ready") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instances not ready: {all:#?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `f` until it answers `Some`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the platform with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the platform with SIGKILL (its instances keep running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PlatformProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -<signal> <pid>`.
pub fn signal(pid: u64, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

pub fn order_body() -> Value {
    serde_json::json!({"consumer_id": 1, "restaurant_id": 1,
        "lines": [{"menu_item_id": 11, "quantity": 2}]})
}

impl PlatformProcess {
    /// `POST /orders` of [`order_body`] through the gateway.
    pub async fn post_order(&self) -> reqwest::Response {
        self.client()
            .post(format!("{}/orders", self.gateway))
            .json(&order_body())
            .send()
            .await
            .unwrap()
    }
}

/// Sets a fault on one instance.
pub async fn set_fault(client: &reqwest::Client, instance_url: &str, body: Value) {
    let r = client
        .post(format!("{instance_url}/admin/faults"))
        .bearer_auth(FAULT_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "set fault: {}", r.status());
}

pub async fn clear_fault(client: &reqwest::Client, instance_url: &str) {
    let r = client
        .delete(format!("{instance_url}/admin/faults"))
        .bearer_auth(FAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "clear fault: {}", r.status());
}
