//! The chaos schedule: kill -9 an instance every `crash_every` (a supervised one, or a
//! watched service's process, which the lab restarts itself), hang one every `hang_every`
//! (fault injection; the liveness probe must catch it), and soft faults (an error rate or
//! added latency for a while) every `soft_every`. Services are taken round-robin, or at random
//! with a seed; instances of a replicated service in turn. A fault waits until its service is
//! free — no open incident, its instance back, no soft fault running — so faults never merge
//! into one incident.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_platform::common::time::now_nanos;
use aiops_platform::incident::IncidentStatus;
use aiops_platform::supervisor::{InstanceStatus, InstanceView, Supervision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::watched::Watched;

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
    /// No fault before this (a latency baseline needs seconds of traffic first).
    pub(crate) first_at: Duration,
    /// Stop after this many faults injected.
    pub(crate) max_faults: Option<usize>,
    /// Services the lab runs itself: their kills are the lab's.
    pub(crate) watched: Option<Arc<Watched>>,
}

/// A service busy this long (an incident open, an instance not back) is skipped.
const BUSY_GIVE_UP: Duration = Duration::from_secs(60);
/// How often a fault waiting for its service is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(100);
/// Once its service is free, a fault waits a random part of this before it is injected, so
/// fault times fall at every phase of the probe interval and of the per-second buckets
/// detection judges (without it a periodic schedule hits the same phase every time).
const PHASE_JITTER_MS: u64 = 1000;

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
    /// `kill` (a supervised instance), `kill_watched` (a watched service's process),
    /// `hang`, `error_rate`, `latency`, `clear`, `skipped`.
    pub kind: String,
    /// Pid killed, rate set…
    pub detail: String,
    /// Whether the injection itself worked.
    pub ok: bool,
    /// How long the fault lasts when the lab ends it (error rate and latency until cleared; a
    /// watched kill until the lab starts the process again).
    pub lasts_ms: Option<u64>,
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

    /// The next instance of `service` in turn (a watched service's one instance).
    fn instance(&mut self, service: &str, sup: &Supervision) -> Option<InstanceView> {
        let mut list: Vec<InstanceView> = sup
            .instances()
            .into_iter()
            .filter(|i| i.service == service)
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Crash,
    Hang,
    Soft,
}

/// One kind of fault on its own clock.
struct Slot {
    kind: Kind,
    /// When it is due next (since the start).
    next: Duration,
    every: Duration,
    /// The service and instance picked for it, and since when it waits for them.
    waiting: Option<(String, Duration, String)>,
    /// The service is free and the random phase delay is running: inject when due.
    jittered: bool,
}

/// Why `service` cannot take a fault now: an incident of it is open, its instance is not
/// back, or its last soft fault is not cleared yet. `None` when it can.
fn busy(
    service: &str,
    inst: &InstanceView,
    sup: &Supervision,
    watched: Option<&Watched>,
    softened: bool,
) -> Option<&'static str> {
    if softened {
        return Some("its last soft fault still runs");
    }
    if sup
        .incidents()
        .iter()
        .any(|i| i.service == service && i.status == IncidentStatus::Open)
    {
        return Some("an incident of it is open");
    }
    match watched.filter(|w| w.contains(service)) {
        Some(w) => (!w.running(service)).then_some("its process is not restarted yet"),
        None => (inst.managed && (inst.status != InstanceStatus::Ready || inst.pid.is_none()))
            .then_some("its instance is not ready"),
    }
}

/// Runs the schedule until the load phase ends (`stop`), `cfg.last_at` passes or
/// `cfg.max_faults` were injected. A fault waits for its service to be free (no open
/// incident, instance back, no soft fault running), so one fault is one incident; a service
/// busy for a minute is skipped (recorded as `skipped`).
#[allow(clippy::too_many_lines)]
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
    let mut due: Vec<Slot> = Vec::new();
    let mut add = |kind, every: Option<Duration>| {
        if let Some(d) = every.filter(|d| !d.is_zero()) {
            due.push(Slot {
                kind,
                next: d.max(cfg.first_at),
                every: d,
                waiting: None,
                jittered: false,
            });
        }
    };
    add(Kind::Crash, cfg.crash_every);
    add(Kind::Hang, cfg.hang_every);
    if !cfg.soft.is_empty() {
        add(Kind::Soft, Some(cfg.soft_every));
    }
    let mut soft_i = 0usize;
    let mut injected = 0usize;
    let mut phase = StdRng::seed_from_u64(cfg.seed.unwrap_or_else(now_nanos));
    let mut clears: Vec<(Duration, String, Vec<String>)> = Vec::new();
    let record = |e: FaultEvent| events.lock().push(e);
    let event = |service: &str, instance: &str, kind: &str, detail: String, ok: bool| FaultEvent {
        at_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        at_unix_nano: now_nanos(),
        service: service.to_owned(),
        instance: instance.to_owned(),
        kind: kind.to_owned(),
        detail,
        ok,
        lasts_ms: None,
    };
    loop {
        let next_fault = due.iter().map(|d| d.next).min();
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
                record(event(&service, &url, "clear", String::new(), r.is_ok()));
            }
        }
        if cfg.max_faults.is_some_and(|m| injected >= m) {
            due.clear();
            continue;
        }
        // Past the last time, only faults already decided (waiting out their phase) go in.
        if now > cfg.last_at {
            due.retain(|d| d.jittered);
            if due.is_empty() {
                continue;
            }
        }
        for slot in due.iter_mut().filter(|d| d.next <= now) {
            let (service, since, inst) = match slot.waiting.take() {
                // The same instance again, as it is now.
                Some((service, since, id)) => {
                    let inst = sup.instances().into_iter().find(|i| i.id == id);
                    (service, since, inst)
                }
                None => match picker.service() {
                    Some(service) => {
                        let inst = picker.instance(&service, &sup);
                        (service, now, inst)
                    }
                    None => {
                        slot.next += slot.every;
                        continue;
                    }
                },
            };
            let Some(inst) = inst else {
                slot.next += slot.every;
                slot.jittered = false;
                continue;
            };
            let softened = clears.iter().any(|c| c.1 == service);
            let why = busy(&service, &inst, &sup, cfg.watched.as_deref(), softened);
            if why.is_none() && !slot.jittered {
                slot.jittered = true;
                slot.waiting = Some((service, since, inst.id));
                slot.next = now + Duration::from_millis(phase.random_range(0..PHASE_JITTER_MS));
                continue;
            }
            slot.jittered = false;
            if let Some(why) = why {
                if now.saturating_sub(since) < BUSY_GIVE_UP {
                    // Try the same service again shortly.
                    slot.waiting = Some((service, since, inst.id));
                    slot.next = now + BUSY_RETRY;
                } else {
                    record(event(&service, &inst.id, "skipped", why.into(), false));
                    slot.next = now + slot.every;
                }
                continue;
            }
            slot.next = (slot.next + slot.every).max(now + BUSY_RETRY);
            match slot.kind {
                Kind::Crash => {
                    let watched = cfg.watched.as_ref().filter(|w| w.contains(&service));
                    let e = match watched {
                        Some(w) => {
                            let r = w.kill(&service).await;
                            let mut e = event(
                                &service,
                                &inst.id,
                                "kill_watched",
                                match &r {
                                    Ok((pid, _)) => format!(
                                        "SIGKILL pid {pid}; the lab restarts it after {:?}",
                                        w.restart_after()
                                    ),
                                    Err(e) => e.clone(),
                                },
                                r.is_ok(),
                            );
                            if let Ok((_, at)) = r {
                                e.at_unix_nano = at;
                            }
                            e.lasts_ms = u64::try_from(w.restart_after().as_millis()).ok();
                            e
                        }
                        None => {
                            let pid = inst.pid.unwrap_or_default();
                            let at = now_nanos();
                            let r = kill9(pid);
                            let mut e = event(
                                &service,
                                &inst.id,
                                "kill",
                                match &r {
                                    Ok(()) => format!("SIGKILL pid {pid}"),
                                    Err(e) => e.clone(),
                                },
                                r.is_ok(),
                            );
                            e.at_unix_nano = at;
                            e
                        }
                    };
                    injected += usize::from(e.ok);
                    record(e);
                }
                Kind::Hang => {
                    if cfg.watched.as_ref().is_some_and(|w| w.contains(&service)) {
                        // Nothing would end it: the platform does not restart what it did
                        // not start.
                        let why = "a watched service is not hung (no one would repair it)";
                        record(event(&service, &inst.id, "skipped", why.into(), false));
                        continue;
                    }
                    let at = now_nanos();
                    let r = faults(
                        &client,
                        &inst.url,
                        &cfg.fault_token,
                        Some(json!({"hang": true})),
                    )
                    .await;
                    let detail = r.clone().err().unwrap_or_else(|| "hang: true".into());
                    let mut e = event(&service, &inst.id, "hang", detail, r.is_ok());
                    e.at_unix_nano = at;
                    injected += usize::from(e.ok);
                    record(e);
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
                    let list: Vec<InstanceView> = sup
                        .instances()
                        .into_iter()
                        .filter(|i| i.service == service)
                        .collect();
                    // One fault per service: every instance at once, T0 before the first.
                    let at = now_nanos();
                    let mut errors = Vec::new();
                    for i in &list {
                        if let Err(e) =
                            faults(&client, &i.url, &cfg.fault_token, Some(body.clone())).await
                        {
                            errors.push(format!("{}: {e}", i.id));
                        }
                    }
                    let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
                    let ok = errors.is_empty() && !list.is_empty();
                    let mut e = event(
                        &service,
                        &ids.join(","),
                        kind,
                        if ok {
                            format!("{detail} for {:?}", cfg.soft_for)
                        } else {
                            errors.join("; ")
                        },
                        ok,
                    );
                    e.at_unix_nano = at;
                    e.lasts_ms = u64::try_from(cfg.soft_for.as_millis()).ok();
                    injected += usize::from(ok);
                    record(e);
                    let urls = list.into_iter().map(|i| i.url).collect();
                    clears.push((start.elapsed() + cfg.soft_for, service.clone(), urls));
                }
            }
        }
    }
    // Leave no soft fault behind.
    for (_, service, urls) in clears {
        for url in urls {
            let r = faults(&client, &url, &cfg.fault_token, None).await;
            record(event(&service, &url, "clear", String::new(), r.is_ok()));
        }
    }
}
