//! The chaos schedule: kill -9 an instance every `crash_every`, hang one every `hang_every`
//! (fault injection; the liveness probe must catch it), and soft faults (an error rate or
//! added latency for a while) every `soft_every`. Services are taken round-robin, or at random
//! with a seed; instances of a replicated service in turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_platform::store::now_nanos;
use aiops_platform::supervisor::{InstanceStatus, InstanceView, Supervision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

/// One kind of scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SoftFault {
    /// That share of the service's requests answers 500.
    ErrorRate(f64),
    /// Added latency per request, milliseconds.
    Latency(u64),
}

/// The schedule.
#[derive(Debug, Clone)]
pub(crate) struct ChaosConfig {
    /// Kill -9 every this long.
    pub(crate) crash_every: Option<Duration>,
    /// Hang an instance every this long.
    pub(crate) hang_every: Option<Duration>,
    /// Soft faults, every `soft_every` for `soft_for`.
    pub(crate) soft: Vec<SoftFault>,
    /// Interval of soft faults.
    pub(crate) soft_every: Duration,
    /// Length of one soft fault.
    pub(crate) soft_for: Duration,
    /// Services to hit.
    pub(crate) targets: Vec<String>,
    /// Random choice with this seed instead of round-robin.
    pub(crate) seed: Option<u64>,
    /// Bearer token of `/admin/faults`.
    pub(crate) fault_token: String,
    /// Stop injecting this long before the end (so the last fault is repaired in the run).
    pub(crate) last_at: Duration,
}

/// A fault that was injected.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    /// Milliseconds since the phase started.
    pub at_ms: u64,
    /// Nanoseconds since the epoch.
    #[serde(skip)]
    pub at_unix_nano: u64,
    /// The service.
    pub service: String,
    /// The instance (`order#0`).
    pub instance: String,
    /// `kill`, `hang`, `error_rate`, `latency`, `clear`.
    pub kind: String,
    /// Pid killed, rate set…
    pub detail: String,
    /// Whether the injection itself worked.
    pub ok: bool,
}

struct Picker {
    targets: Vec<String>,
    next: usize,
    rng: Option<StdRng>,
    per_service: std::collections::HashMap<String, u32>,
}

impl Picker {
    fn service(&mut self) -> Option<String> {
        if self.targets.is_empty() {
            return None;
        }
        let i = match &mut self.rng {
            Some(r) => r.random_range(0..self.targets.len()),
            None => {
                let i = self.next % self.targets.len();
                self.next += 1;
                i
            }
        };
        self.targets.get(i).cloned()
    }

    /// The next instance of `service` in turn.
    fn instance(&mut self, service: &str, sup: &Supervision) -> Option<InstanceView> {
        let mut list: Vec<InstanceView> = sup
            .instances()
            .into_iter()
            .filter(|i| i.service == service && i.managed)
            .collect();
        list.sort_by_key(|i| i.index);
        if list.is_empty() {
            return None;
        }
        let n = self.per_service.entry(service.to_owned()).or_default();
        let pick = list.get(*n as usize % list.len()).cloned();
        *n += 1;
        pick
    }
}

/// Waits until `id` is ready (up to `max`), answering its view.
async fn ready(sup: &Supervision, id: &str, max: Duration) -> Option<InstanceView> {
    let deadline = Instant::now() + max;
    loop {
        let view = sup.instances().into_iter().find(|i| i.id == id);
        if let Some(v) = &view
            && v.status == InstanceStatus::Ready
            && v.pid.is_some()
        {
            return view;
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGKILL to `pid` (through `kill(1)`: this crate forbids `unsafe`).
pub(crate) fn kill9(pid: u32) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -KILL {pid}: {status}"))
    }
}

pub(crate) async fn faults(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Result<(), String> {
    let req = match body {
        Some(b) => client.post(format!("{url}/admin/faults")).json(&b),
        None => client.delete(format!("{url}/admin/faults")),
    };
    let r = req
        .bearer_auth(token)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("/admin/faults answered {}", r.status()))
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Crash,
    Hang,
    Soft,
}

/// Runs the schedule until the load phase ends (`stop`) or `cfg.last_at` passes.
pub(crate) async fn run(
    cfg: ChaosConfig,
    sup: Arc<Supervision>,
    client: reqwest::Client,
    start: Instant,
    mut stop: watch::Receiver<bool>,
    events: Arc<parking_lot::Mutex<Vec<FaultEvent>>>,
) {
    let mut picker = Picker {
        targets: cfg.targets.clone(),
        next: 0,
        rng: cfg.seed.map(StdRng::seed_from_u64),
        per_service: Default::default(),
    };
    // Next due time per kind.
    let mut due: Vec<(Kind, Duration, Duration)> = Vec::new();
    if let Some(d) = cfg.crash_every.filter(|d| !d.is_zero()) {
        due.push((Kind::Crash, d, d));
    }
    if let Some(d) = cfg.hang_every.filter(|d| !d.is_zero()) {
        due.push((Kind::Hang, d, d));
    }
    if !cfg.soft.is_empty() && !cfg.soft_every.is_zero() {
        due.push((Kind::Soft, cfg.soft_every, cfg.soft_every));
    }
    let mut soft_i = 0usize;
    let mut clears: Vec<(Duration, String, Vec<String>)> = Vec::new();
    let record = |service: &str, instance: &str, kind: &str, detail: String, ok: bool| {
        let e = FaultEvent {
            at_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            at_unix_nano: now_nanos(),
            service: service.to_owned(),
            instance: instance.to_owned(),
            kind: kind.to_owned(),
            detail,
            ok,
        };
        events.lock().push(e);
    };
    loop {
        let next_fault = due.iter().map(|d| d.1).min();
        let next_clear = clears.iter().map(|c| c.0).min();
        let Some(next) = [next_fault, next_clear].into_iter().flatten().min() else {
            let _ = stop.changed().await;
            return;
        };
        let wait = next.saturating_sub(start.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
        }
        let now = start.elapsed();
        // Clear soft faults that ran their time.
        let (done, keep): (Vec<_>, Vec<_>) = clears.into_iter().partition(|c| c.0 <= now);
        clears = keep;
        for (_, service, urls) in done {
            for url in urls {
                let r = faults(&client, &url, &cfg.fault_token, None).await;
                record(&service, &url, "clear", String::new(), r.is_ok());
            }
        }
        if now > cfg.last_at {
            due.clear();
            continue;
        }
        for slot in due.iter_mut().filter(|d| d.1 <= now) {
            slot.1 += slot.2;
            let Some(service) = picker.service() else {
                continue;
            };
            let Some(inst) = picker.instance(&service, &sup) else {
                continue;
            };
            // A fault hits a running instance: wait for it to be back from the previous one.
            let Some(inst) = ready(&sup, &inst.id, Duration::from_secs(10)).await else {
                record(&service, &inst.id, "skipped", "not ready".into(), false);
                continue;
            };
            match slot.0 {
                Kind::Crash => {
                    let pid = inst.pid.unwrap_or_default();
                    let at = now_nanos();
                    let r = kill9(pid);
                    let e = FaultEvent {
                        at_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                        at_unix_nano: at,
                        service: service.clone(),
                        instance: inst.id.clone(),
                        kind: "kill".into(),
                        detail: match &r {
                            Ok(()) => format!("SIGKILL pid {pid}"),
                            Err(e) => e.clone(),
                        },
                        ok: r.is_ok(),
                    };
                    events.lock().push(e);
                }
                Kind::Hang => {
                    let r = faults(
                        &client,
                        &inst.url,
                        &cfg.fault_token,
                        Some(json!({"hang": true})),
                    )
                    .await;
                    let detail = r.clone().err().unwrap_or_else(|| "hang: true".into());
                    record(&service, &inst.id, "hang", detail, r.is_ok());
                }
                Kind::Soft => {
                    let Some(fault) = cfg.soft.get(soft_i % cfg.soft.len()).copied() else {
                        continue;
                    };
                    soft_i += 1;
                    let (kind, body, detail) = match fault {
                        SoftFault::ErrorRate(f) => (
                            "error_rate",
                            json!({"error_rate": f}),
                            format!("error_rate {f}"),
                        ),
                        SoftFault::Latency(ms) => (
                            "latency",
                            json!({"latency_ms": ms}),
                            format!("latency {ms} ms"),
                        ),
                    };
                    let urls: Vec<String> = sup
                        .instances()
                        .into_iter()
                        .filter(|i| i.service == service && i.managed)
                        .map(|i| i.url)
                        .collect();
                    for url in &urls {
                        let r = faults(&client, url, &cfg.fault_token, Some(body.clone())).await;
                        let d = r.clone().err().unwrap_or_else(|| detail.clone());
                        record(&service, url, kind, d, r.is_ok());
                    }
                    clears.push((start.elapsed() + cfg.soft_for, service.clone(), urls));
                }
            }
        }
    }
    // Leave no soft fault behind.
    for (_, service, urls) in clears {
        for url in urls {
            let r = faults(&client, &url, &cfg.fault_token, None).await;
            record(&service, &url, "clear", String::new(), r.is_ok());
        }
    }
}
