//! Measures MTTD and MTTR of `aiops` on this machine: runs `aiops up` (built beside this
//! binary) with the five food-delivery services, then for each service kills its instance with
//! SIGKILL `AIOPS_MTTR_ROUNDS` times (default 10) and hangs it through fault injection
//! `AIOPS_MTTR_HANG_ROUNDS` times (default 3), waiting each time for the incident to resolve,
//! and prints p50 / p95 of MTTD and MTTR per service and failure kind. Failures are spaced
//! 1.2 s apart with `backoff_reset_ms = 1000`, so each one is a first crash (restarted at
//! once); closer failures would be a crash loop and back off, by design.
//!
//! ```sh
//! cargo build --release -p aiods-e2e --bins && target/release/mttr
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "mttr-token";
const FAULT_TOKEN: &str = "mttr-fault-token";
const SERVICES: [&str; 5] = ["consumer", "kitchen", "accounting", "notification", "order"];

struct Platform {
    child: Child,
    url: String,
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn topology(dir: &std::path::Path, bins: &std::path::Path) -> String {
    let mut t = format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_token = \"{TOKEN}\"\n",
        dir.display()
    );
    for s in SERVICES {
        let routes = match s {
            "order" => r#"["/orders"]"#,
            "consumer" => r#"["/consumers"]"#,
            "kitchen" => r#"["/tickets", "/restaurants"]"#,
            "accounting" => r#"["/authorizations"]"#,
            _ => r#"["/notifications"]"#,
        };
        let deps = if s == "order" {
            r#"["consumer", "kitchen", "accounting", "notification"]"#
        } else {
            "[]"
        };
        t.push_str(&format!(
            "\n[[service]]\nname = \"{s}\"\ncommand = [\"{}\"]\nroutes = {routes}\ndepends_on = {deps}\n\
             [service.recovery]\nrestart_budget = 1000\nbackoff_reset_ms = 1000\n\
             [service.env]\nAIODS_DB__URL = \"sqlite://{{data_dir}}/{s}.db?mode=rwc\"\n\
             AIODS_FAULTS__ENABLED = \"true\"\nAIODS_FAULTS__TOKEN = \"{FAULT_TOKEN}\"\n",
            bins.join(format!("{s}-service")).display()
        ));
    }
    t
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn api(c: &reqwest::Client, base: &str, path: &str) -> Result<Value, String> {
    c.get(format!("{base}/api/v1/{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

async fn instance(c: &reqwest::Client, base: &str, id: &str) -> Result<Value, String> {
    let all = api(c, base, "instances").await?;
    all["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id).cloned())
        .ok_or_else(|| format!("no instance {id}"))
}

async fn resolved_count(c: &reqwest::Client, base: &str, s: &str) -> Result<usize, String> {
    let v = api(
        c,
        base,
        &format!("incidents?service={s}&status=resolved&limit=1000"),
    )
    .await?;
    Ok(v["items"].as_array().map_or(0, Vec::len))
}

async fn wait_ready(c: &reqwest::Client, base: &str, id: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if instance(c, base, id).await?["status"] == "ready" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{id} not ready"))
}

/// Injects one failure and answers (MTTD, MTTR) of the incident it caused.
async fn one(c: &reqwest::Client, base: &str, s: &str, hang: bool) -> Result<(f64, f64), String> {
    let id = format!("{s}#0");
    wait_ready(c, base, &id).await?;
    let before = resolved_count(c, base, s).await?;
    let inst = instance(c, base, &id).await?;
    if hang {
        let url = inst["url"].as_str().unwrap_or_default();
        c.post(format!("{url}/admin/faults"))
            .bearer_auth(FAULT_TOKEN)
            .json(&json!({"hang": true}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
    } else {
        let pid = inst["pid"].as_u64().ok_or("no pid")?;
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let v = api(
            c,
            base,
            &format!("incidents?service={s}&status=resolved&limit=1000"),
        )
        .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() > before {
            let newest = &items[0];
            return Ok((
                newest["mttd_ms"].as_f64().unwrap_or(f64::NAN),
                newest["mttr_ms"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{s}: incident did not resolve"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn measure(base: String) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let rounds = env_usize("AIOPS_MTTR_ROUNDS", 10);
    let hang_rounds = env_usize("AIOPS_MTTR_HANG_ROUNDS", 3);
    println!(
        "{:<13} {:<6} {:>3} {:>10} {:>10} {:>10} {:>10}",
        "service", "kind", "n", "MTTD p50", "MTTD p95", "MTTR p50", "MTTR p95"
    );
    let (mut all_crash, mut all_hang) = (Vec::new(), Vec::new());
    for s in SERVICES {
        for (kind, n, hang) in [("kill-9", rounds, false), ("hang", hang_rounds, true)] {
            if n == 0 {
                continue;
            }
            let mut d = Vec::new();
            let mut r = Vec::new();
            for _ in 0..n {
                let (mttd, mttr) = one(&c, &base, s, hang).await?;
                d.push(mttd);
                r.push(mttr);
                if hang {
                    all_hang.push((mttd, mttr));
                } else {
                    all_crash.push((mttd, mttr));
                }
                // Past `backoff_reset_ms`, so each failure is a first crash (no back-off).
                tokio::time::sleep(Duration::from_millis(1200)).await;
            }
            println!(
                "{s:<13} {kind:<6} {n:>3} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms",
                percentile(&d, 0.5),
                percentile(&d, 0.95),
                percentile(&r, 0.5),
                percentile(&r, 0.95)
            );
        }
    }
    for (kind, v) in [("kill-9", &all_crash), ("hang", &all_hang)] {
        if v.is_empty() {
            continue;
        }
        let d: Vec<f64> = v.iter().map(|x| x.0).collect();
        let r: Vec<f64> = v.iter().map(|x| x.1).collect();
        println!(
            "{:<13} {kind:<6} {:>3} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms",
            "ALL",
            v.len(),
            percentile(&d, 0.5),
            percentile(&d, 0.95),
            percentile(&r, 0.5),
            percentile(&r, 0.95)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        return ExitCode::FAILURE;
    };
    let Some(bins) = exe.parent().map(std::path::Path::to_path_buf) else {
        return ExitCode::FAILURE;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return ExitCode::FAILURE;
    };
    let config = dir.path().join("aiods.toml");
    if let Err(e) = std::fs::write(&config, topology(dir.path(), &bins)) {
        eprintln!("mttr: {e}");
        return ExitCode::FAILURE;
    }
    let child = Command::new(bins.join("aiops"))
        .args(["up", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mttr: cannot run aiops beside this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut url = None;
    if let Some(out) = child.stdout.take() {
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == "listening"
            {
                url = v["url"].as_str().map(str::to_owned);
                break;
            }
        }
        // Keep draining so the platform never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    }
    let platform = Platform {
        child,
        url: url.unwrap_or_default(),
    };
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return ExitCode::FAILURE;
    };
    let result = rt.block_on(measure(platform.url.clone()));
    drop(platform);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mttr: {e}");
            ExitCode::FAILURE
        }
    }
}
