//! A Python with the official OpenTelemetry SDK and prometheus_client (pinned in
//! `tests/python/requirements.txt`) — or with the packages of another requirements file in
//! `tests/python/` — made once per target directory by the tests themselves:
//! `python3 -m venv` + `pip install`. A machine that cannot make it fails the test with the
//! reason — it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's `tests/python` folder.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's `python`, made on first use (other test processes wait for it).
pub fn python() -> PathBuf {
    python_with("requirements.txt")
}

/// The `python` of a venv with the packages pinned in `tests/python/<requirements>`, made on
/// first use (other test processes wait for it).
pub fn python_with(requirements: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let file = requirements;
    let requirements = python_dir().join(file);
    let pins = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("tests/python/{file}: {e}"));
    // A new venv when the pins change.
    let tag = pins
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let venv = target.join(format!("aiods-pyenv-{tag:08x}"));
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if ready.exists() {
        return python;
    }
    std::fs::create_dir_all(&target).expect("target dir");
    let lock = target.join(format!("aiods-pyenv-{tag:08x}.lock"));
    let deadline = Instant::now() + Duration::from_secs(600);
    // mkdir is atomic: one process builds, the others wait for `.ready`.
    while std::fs::create_dir(&lock).is_err() {
        if ready.exists() {
            return python;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            lock.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            &format!("pip install -r tests/python/{file}"),
        );
        std::fs::write(&ready, b"ok").expect("venv marker");
    }
    let _ = std::fs::remove_dir(&lock);
    python
}

/// `tests/python/telemetry_app.py` running with `env`, and its port.
pub struct PythonApp {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub url: String,
}

impl PythonApp {
    /// Starts the app with `args` and `env`; waits for its `listening` line.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(python())
            .arg(python_dir().join("telemetry_app.py"))
            .args(args)
            .env("PORT", "0")
            // The SDK's defaults (5 s, 60 s) would hide any detector.
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start telemetry_app.py");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .expect("read the listening line");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("telemetry_app.py said {line:?}: {e}"));
        let port = v["port"].as_u64().expect("port");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sets the share of 500 answers and the added latency.
    pub async fn set_mode(&self, client: &reqwest::Client, error_rate: f64, latency_ms: f64) {
        let r = client
            .post(format!("{}/admin/mode", self.url))
            .json(&serde_json::json!({"error_rate": error_rate, "latency_ms": latency_ms}))
            .send()
            .await
            .expect("set mode");
        assert!(r.status().is_success());
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
