//! Test support: starts the real `aiops up` binary on port 0 and talks to it over HTTP.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API token every test platform uses.
pub const TOKEN: &str = "test-token-0123456789";

/// A running `aiops up` process, killed on drop.
pub struct Platform {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The bound address.
    pub addr: String,
    /// Data directory (kept by the caller's `TempDir`).
    pub data_dir: PathBuf,
    http: reqwest::blocking::Client,
    gateway: mpsc::Receiver<String>,
}

impl Platform {
    /// Starts with defaults in `dir`; `platform_keys` go into `[platform]`, `rest` after it.
    pub fn start(dir: &Path, platform_keys: &str, rest: &str) -> Self {
        install_crypto();
        let config = dir.join("aiods.toml");
        let data = dir.join("data");
        std::fs::write(
            &config,
            format!(
                "[platform]\ndata_dir = {:?}\nscrape_interval_ms = 200\n{platform_keys}\n{rest}\n",
                data.display().to_string()
            ),
        )
        .expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(["up", "-c"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .env("AIOPS_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aiops");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let (gateway_tx, gateway) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let text = v["addr"].as_str().or(v["url"].as_str());
                    let text = text.unwrap_or_default().to_string();
                    if v["event"] == "listening" {
                        let _ = tx.send(text);
                    } else if v["event"] == "gateway" {
                        let _ = gateway_tx.send(text);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("aiops printed its listening address");
        Self {
            child,
            url: format!("http://{addr}"),
            addr,
            data_dir: data,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            gateway,
        }
    }

    /// The gateway's URL, once it printed it.
    pub fn gateway_url(&self) -> String {
        self.gateway
            .recv_timeout(Duration::from_secs(30))
            .expect("aiops printed its gateway URL")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The platform's own `/metrics` text.
    pub fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|r| r.text())
            .expect("GET /metrics")
    }

    /// GET an API path with the token; returns status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, Some(TOKEN))
    }

    /// GET with an optional token.
    pub fn get_with(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().expect("GET");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST raw bytes with headers; returns status, content type and body.
    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String, Vec<u8>) {
        let mut req = self.http.post(format!("{}{path}", self.url)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().expect("POST");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ct, resp.bytes().expect("body").to_vec())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lowers the open-file limit of a running process (as a small `ulimit -n` would), so that a
/// test can show what happens when connections would exhaust it.
pub fn limit_open_files(pid: u32, max: u32) {
    let status = Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={max}:{max}")])
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit failed");
}

/// The value of the sample `name{labels}` in an exposition text (0 when absent).
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `items` of a page.
pub fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Installs the ring TLS provider (reqwest is built without one); idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
