//! Starts the probe service (`examples/probe_service.rs`) as a real process on port 0 and
//! reads its JSON log lines.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where cargo put the examples of this package.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join(name)
}

pub struct Service {
    pub child: Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Service {
    pub fn start(env: &[(&str, &str)]) -> Service {
        Self::start_example("probe_service", env)
    }

    /// Starts the example `name` (built by cargo for the tests) on port 0.
    pub fn start_example(name: &str, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(example_path(name));
        cmd.env("AIODS_PORT", "0")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SENTRY_DSN")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("probe service starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut svc = Service {
            child,
            port: 0,
            lines,
            stderr,
        };
        let started = svc
            .wait_for_log(
                |v| v["message"] == "service started",
                Duration::from_secs(20),
            )
            .unwrap_or_else(|| {
                panic!(
                    "service did not start; stderr: {}",
                    svc.stderr.lock().unwrap()
                )
            });
        svc.port = started["port"].as_u64().expect("port in the started event") as u16;
        svc
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Every stdout line, parsed; panics on a line that is not JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    pub fn wait_for_log(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| pred(v));
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the samples of a Prometheus text exposition, honouring quoted label values (which
/// may hold `}` and `,`, as route templates do: `prometheus-parse` 0.2 splits them wrongly).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("sample line");
        let name = line[..name_end].to_owned();
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices().peekable();
            let mut key = String::new();
            let mut value = String::new();
            let mut in_value = false;
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                if in_value {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(match n {
                                    'n' => '\n',
                                    other => other,
                                });
                            }
                        }
                        '"' => {
                            labels.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                            in_value = false;
                        }
                        _ => value.push(c),
                    }
                } else {
                    match c {
                        '"' => in_value = true,
                        '}' => {
                            end = i + 2;
                            break;
                        }
                        '=' | ',' | ' ' => {}
                        _ => key.push(c),
                    }
                }
            }
            rest = &rest[end..];
        }
        let value = rest.split_whitespace().next().expect("a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect("a number"),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// `promtool check metrics` on `text`: its verdict and what it said. Missing promtool fails
/// the test (Debian package `prometheus`, installed by `.ci/run`): it never skips.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is required (Debian package `prometheus`, installed by .ci/run): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
