//! The controller: the one event loop that owns instance and incident state.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::actuator::{Actuator, InstanceSpec, LocalProcessActuator, send_signal};
use super::backoff::{CrashLoopBackoff, RestartBudget};
use super::capture::LogCapture;
use super::{
    ApproveError, DetectorState, Event, ExitReason, InstanceId, InstanceView, ProbeKind,
    SupervisorError, View,
};
use crate::config::{ErrorBurnAction, RecoveryMode, ServiceConfig, Topology};
use crate::gateway::Routes;
use crate::incident::{
    Action, ActionStatus, Condition, Evidence, Incident, IncidentDb, IncidentStatus, Notifier,
    new_id,
};
use crate::store::{Store, now_nanos, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Starting,
    Ready,
    Unready,
    Hung,
    Stopping,
    Exited,
    BackingOff,
    WaitingApproval,
    GivenUp,
    External,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Unready => "unready",
            Self::Hung => "hung",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::BackingOff => "backing_off",
            Self::WaitingApproval => "waiting_approval",
            Self::GivenUp => "given_up",
            Self::External => "external",
        }
    }
}

#[derive(Debug)]
struct Instance {
    id: InstanceId,
    addr: SocketAddr,
    managed: bool,
    generation: u64,
    pid: Option<u32>,
    status: Status,
    started: Instant,
    ready: bool,
    live_failures: u32,
    live_fail_since: Option<u64>,
    ready_failures: u32,
    ready_fail_since: Option<u64>,
    backoff: CrashLoopBackoff,
    restarts: u64,
    last_exit: Option<String>,
    /// Start again when the process we are killing exits: (incident, action).
    restart_on_exit: Option<(String, String)>,
    /// A replacement started for a hung instance: (hung instance, incident, action); the hung
    /// one is stopped when this one is ready.
    replaces: Option<(InstanceId, String, String)>,
    /// Forget the instance when its process exits (replaced or scaled in).
    retire_on_exit: bool,
    probe: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct ServiceState {
    cfg: ServiceConfig,
    mode: RecoveryMode,
    budget: RestartBudget,
    /// Transitive dependencies.
    deps: Vec<String>,
    /// Saturated since (scale out after `out_for_ms`).
    high_since: Option<(Instant, u64)>,
    /// Quiet since (scale in after `in_after_ms`).
    low_since: Option<Instant>,
    /// The last scale action (one per `cooldown_ms`).
    last_scale: Option<Instant>,
    /// The incident the last scale-out was recorded on (scale-in is recorded there too).
    scale_incident: Option<String>,
}

/// Owns the state; runs as one task.
#[derive(Debug)]
pub(super) struct Controller {
    services: BTreeMap<String, ServiceState>,
    instances: BTreeMap<InstanceId, Instance>,
    incidents: BTreeMap<String, Incident>,
    open_by_service: HashMap<String, String>,
    actuator: Arc<dyn Actuator>,
    events: mpsc::UnboundedSender<Event>,
    routes: Arc<Routes>,
    view: Arc<RwLock<View>>,
    db: Option<IncidentDb>,
    notifier: Notifier,
    probe_client: reqwest::Client,
    platform_addr: SocketAddr,
    gateway_addr: Option<SocketAddr>,
    upstreams_via_gateway: bool,
    data_dir: PathBuf,
    shutting_down: bool,
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn url_addr(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let host = rest.split('/').next()?;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    host.to_socket_addrs().ok()?.next()
}

fn transitive_deps(all: &[ServiceConfig], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stack = vec![name.to_owned()];
    while let Some(n) = stack.pop() {
        if let Some(s) = all.iter().find(|s| s.name == n) {
            for d in &s.depends_on {
                if d != name && !out.contains(d) {
                    out.push(d.clone());
                    stack.push(d.clone());
                }
            }
        }
    }
    out
}

/// Whether `/proc/<pid>/cmdline` mentions `program` (so a stale pid is ours to kill).
fn pid_runs(pid: u32, program: &str) -> bool {
    let name = std::path::Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| !name.is_empty() && String::from_utf8_lossy(&c).contains(&name))
        .unwrap_or(false)
}

impl Controller {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn new(
        topology: &Topology,
        store: Arc<Store>,
        events: mpsc::UnboundedSender<Event>,
        routes: Arc<Routes>,
        view: Arc<RwLock<View>>,
        db: Option<IncidentDb>,
        notifier: Notifier,
        platform_addr: SocketAddr,
        gateway_addr: Option<SocketAddr>,
    ) -> Result<Self, SupervisorError> {
        let sink = Arc::new(LogCapture::new(store.clone(), events.clone()));
        let actuator: Arc<dyn Actuator> = Arc::new(LocalProcessActuator::new(events.clone(), sink));
        let probe_client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let stored_ports: HashMap<(String, u32), (u16, Option<u32>)> = match &db {
            Some(db) => db
                .instances()
                .await?
                .into_iter()
                .map(|(s, i, port, pid)| ((s, i), (port, pid)))
                .collect(),
            None => HashMap::new(),
        };
        let mut services = BTreeMap::new();
        let mut instances = BTreeMap::new();
        for s in &topology.services {
            let r = &s.recovery;
            let mode = r.mode.unwrap_or(topology.incidents.mode);
            services.insert(
                s.name.clone(),
                ServiceState {
                    cfg: s.clone(),
                    mode,
                    budget: RestartBudget::new(
                        r.restart_budget,
                        Duration::from_secs(r.budget_window_secs),
                    ),
                    deps: transitive_deps(&topology.services, &s.name),
                    high_since: None,
                    low_since: None,
                    last_scale: None,
                    scale_incident: None,
                },
            );
            let backoff = || {
                CrashLoopBackoff::new(
                    Duration::from_millis(r.backoff_initial_ms),
                    Duration::from_millis(r.backoff_max_ms),
                    Duration::from_millis(r.backoff_reset_ms),
                )
            };
            let managed = !s.command.is_empty();
            let count = if managed {
                s.replicas
            } else if s.url.is_some() {
                1
            } else {
                0
            };
            for index in 0..count {
                let id = InstanceId {
                    service: s.name.clone(),
                    index,
                };
                let addr = if managed {
                    let stored = stored_ports.get(&(s.name.clone(), index));
                    if let Some((_, Some(pid))) = stored
                        && let Some(program) = s.command.first()
                        && pid_runs(*pid, program)
                    {
                        // A platform that died left it running: stop it, start our own.
                        tracing::warn!(%id, pid, "stopping an instance left by a previous platform run");
                        let _ = send_signal(*pid, "KILL").await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let port = match stored {
                        Some((port, _)) if *port != 0 && port_is_free(*port) => *port,
                        _ => free_port().map_err(|e| SupervisorError::Port(id.to_string(), e))?,
                    };
                    SocketAddr::from(([127, 0, 0, 1], port))
                } else {
                    let url = s.url.clone().unwrap_or_default();
                    url_addr(&url).ok_or_else(|| SupervisorError::Url(s.name.clone(), url))?
                };
                instances.insert(
                    id.clone(),
                    Instance {
                        id,
                        addr,
                        managed,
                        generation: 0,
                        pid: None,
                        status: if managed {
                            Status::Exited
                        } else {
                            Status::External
                        },
                        started: Instant::now(),
                        ready: false,
                        live_failures: 0,
                        live_fail_since: None,
                        ready_failures: 0,
                        ready_fail_since: None,
                        backoff: backoff(),
                        restarts: 0,
                        last_exit: None,
                        restart_on_exit: None,
                        replaces: None,
                        retire_on_exit: false,
                        probe: None,
                    },
                );
            }
        }
        let mut incidents = BTreeMap::new();
        let mut open_by_service = HashMap::new();
        if let Some(db) = &db {
            for inc in db.recent(1000).await? {
                incidents.insert(inc.id.clone(), inc);
            }
            for mut inc in db.open_incidents().await? {
                inc.note_at(
                    now_nanos(),
                    "note",
                    "platform restarted: incident reloaded, instances restarted".into(),
                );
                open_by_service.insert(inc.service.clone(), inc.id.clone());
                db.save_incident(&inc);
                incidents.insert(inc.id.clone(), inc);
            }
        }
        Ok(Self {
            services,
            instances,
            incidents,
            open_by_service,
            actuator,
            events,
            routes,
            view,
            db,
            notifier,
            probe_client,
            platform_addr,
            gateway_addr,
            upstreams_via_gateway: topology.gateway.upstreams_via_gateway,
            data_dir: topology.platform.data_dir.clone(),
            shutting_down: false,
        })
    }

    /// Starts every managed instance and probes every external one.
    pub(super) async fn start_all(&mut self) {
        self.publish_all();
        let ids: Vec<InstanceId> = self.instances.keys().cloned().collect();
        for id in ids {
            let managed = self.instances.get(&id).is_some_and(|i| i.managed);
            if let Some(inst) = self.instances.get(&id) {
                self.routes.set(&id, inst.addr, false);
            }
            if managed {
                self.start_instance(&id, None).await;
            } else {
                self.spawn_probe(&id);
            }
        }
        self.publish_all();
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let scaling = self
            .services
            .values()
            .any(|s| s.cfg.scale.max_replicas > s.cfg.replicas && !s.cfg.command.is_empty());
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let event = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => return,
                },
                _ = tick.tick(), if scaling => {
                    if !self.shutting_down {
                        self.scale_tick().await;
                    }
                    continue;
                }
            };
            match event {
                Event::Exited {
                    id,
                    generation,
                    exit,
                    at,
                } => self.on_exit(&id, generation, exit, at).await,
                Event::Probe {
                    id,
                    generation,
                    kind,
                    ok,
                    sent_at,
                    done_at,
                    detail,
                } => {
                    self.on_probe(&id, generation, kind, ok, sent_at, done_at, detail)
                        .await;
                }
                Event::Detector(state) => self.on_detector(state).await,
                Event::Evidence {
                    service,
                    signal,
                    instance,
                    detail,
                } => {
                    if let Some(inc_id) = self.open_by_service.get(&service).cloned() {
                        let at = now_nanos();
                        self.with_incident(&inc_id, |inc| {
                            inc.add_evidence(Evidence {
                                at: rfc3339(at),
                                at_unix_nano: at,
                                signal,
                                instance,
                                detail,
                            });
                        });
                    }
                }
                Event::StartDue { id, action } => {
                    if !self.shutting_down {
                        self.start_instance(&id, action).await;
                    }
                }
                Event::Approve {
                    incident,
                    by,
                    reply,
                } => {
                    let r = self.approve(&incident, &by).await;
                    let _ = reply.send(r);
                }
                Event::Shutdown { reply } => {
                    self.shutdown().await;
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    // ----- instances -----

    fn spec(&self, id: &InstanceId, generation: u64) -> Option<InstanceSpec> {
        let svc = self.services.get(&id.service)?;
        let inst = self.instances.get(id)?;
        let cfg = &svc.cfg;
        let port = inst.addr.port().to_string();
        let index = id.index.to_string();
        let data_dir = self.data_dir.display().to_string();
        let vars = [
            ("service", id.service.as_str()),
            ("index", index.as_str()),
            ("port", port.as_str()),
            ("data_dir", data_dir.as_str()),
        ];
        let platform = format!("http://{}", self.platform_addr);
        let project = cfg.sentry_project.unwrap_or(1);
        let mut env = vec![
            (cfg.port_env.clone(), port.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), platform.clone()),
            ("OTEL_SERVICE_NAME".to_owned(), id.service.clone()),
            (
                "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                format!("service.instance.id={id}"),
            ),
            (
                "SENTRY_DSN".to_owned(),
                format!("http://aiops@{}/{project}", self.platform_addr),
            ),
        ];
        for dep in &cfg.depends_on {
            let url = match (self.upstreams_via_gateway, self.gateway_addr) {
                (true, Some(gw)) => format!("http://{gw}"),
                _ => self
                    .instances
                    .get(&InstanceId {
                        service: dep.clone(),
                        index: 0,
                    })
                    .map(|i| format!("http://{}", i.addr))
                    .unwrap_or_default(),
            };
            let upper = dep.to_uppercase().replace('-', "_");
            let name = crate::topology::expand(
                &cfg.upstream_env,
                &[("NAME", upper.as_str()), ("name", dep.as_str())],
            );
            env.push((name, url));
        }
        for (k, v) in &cfg.env {
            env.push((k.clone(), crate::topology::expand(v, &vars)));
        }
        let command = cfg
            .command
            .iter()
            .map(|a| crate::topology::expand(a, &vars))
            .collect();
        Some(InstanceSpec {
            id: id.clone(),
            generation,
            command,
            env,
            cwd: cfg.cwd.clone(),
        })
    }

    fn spawn_probe(&mut self, id: &InstanceId) {
        let Some(svc) = self.services.get(&id.service) else {
            return;
        };
        let health = svc.cfg.health.clone();
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if let Some(p) = inst.probe.take() {
            p.abort();
        }
        inst.probe = Some(tokio::spawn(super::probe::run(
            self.probe_client.clone(),
            id.clone(),
            inst.generation,
            inst.addr,
            health,
            self.events.clone(),
        )));
    }

    /// Starts an instance (a new generation); `action` is the (incident, action) it executes.
    async fn start_instance(&mut self, id: &InstanceId, action: Option<(String, String)>) {
        let Some(generation) = self.instances.get(id).map(|i| i.generation + 1) else {
            return;
        };
        let Some(spec) = self.spec(id, generation) else {
            return;
        };
        let result = self.actuator.start(spec).await;
        let at = now_nanos();
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.generation = generation;
        match result {
            Ok(pid) => {
                inst.pid = Some(pid);
                inst.status = Status::Starting;
                inst.started = Instant::now();
                inst.ready = false;
                inst.live_failures = 0;
                inst.live_fail_since = None;
                inst.ready_failures = 0;
                inst.ready_fail_since = None;
                if action.is_some() {
                    inst.restarts += 1;
                }
                let port = inst.addr.port();
                if let Some(db) = &self.db {
                    db.save_instance(&id.service, id.index, port, Some(pid));
                }
                tracing::info!(%id, pid, generation, port, "instance started");
                self.spawn_probe(id);
                if let Some((inc, act)) = action {
                    self.with_incident(&inc, |i| {
                        i.restarts += 1;
                        i.settle_action(
                            &act,
                            ActionStatus::Executed,
                            format!("started pid {pid} on port {port} (generation {generation})"),
                            at,
                        );
                    });
                    self.save_action(&inc, &act);
                }
            }
            Err(e) => {
                tracing::error!(%id, error = %e, "cannot start instance");
                inst.status = Status::Exited;
                inst.last_exit = Some(format!("failed to start: {e}"));
                if let Some((inc, act)) = &action {
                    self.with_incident(inc, |i| {
                        i.settle_action(act, ActionStatus::Failed, e.to_string(), at);
                    });
                    self.save_action(inc, act);
                }
                // Treat a failed start like a crash: back-off and budget apply.
                let _ = self.events.send(Event::Exited {
                    id: id.clone(),
                    generation,
                    exit: ExitReason::Unknown(format!("failed to start: {e}")),
                    at,
                });
            }
        }
        self.publish(id);
    }

    async fn on_exit(&mut self, id: &InstanceId, generation: u64, exit: ExitReason, at: u64) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if inst.generation != generation {
            return;
        }
        if let Some(p) = inst.probe.take() {
            p.abort();
        }
        self.routes.set_unready(id);
        inst.pid = None;
        inst.ready = false;
        inst.last_exit = Some(exit.describe());
        let uptime = inst.started.elapsed();
        let expected = inst.status == Status::Stopping;
        inst.status = Status::Exited;
        let retire = inst.retire_on_exit;
        let failed_replacement = inst.replaces.take();
        if self.shutting_down {
            self.publish(id);
            return;
        }
        if retire {
            tracing::info!(%id, exit = %exit.describe(), "retired instance stopped");
            self.forget(id);
            return;
        }
        if let Some((old, inc, act)) = failed_replacement {
            // The replacement died before it was ready: restart the hung one in place.
            tracing::warn!(%id, %old, exit = %exit.describe(), "replacement failed: restarting in place");
            self.forget(id);
            self.with_incident(&inc, |i| {
                i.note_at(
                    at,
                    "note",
                    format!(
                        "replacement {id} exited before ready ({}); restarting {old} in place",
                        exit.describe()
                    ),
                );
            });
            self.execute(&old, &inc, &act, true, Duration::ZERO).await;
            self.publish(&old);
            return;
        }
        if expected {
            // We killed it (hung): start the replacement now.
            if let Some(action) = inst.restart_on_exit.take() {
                self.start_instance(id, Some(action)).await;
            }
            self.publish(id);
            return;
        }
        tracing::warn!(%id, exit = %exit.describe(), "instance exited");
        let title = format!("{id} exited ({})", exit.describe());
        let inc = self.open_or_update(
            &id.service,
            &format!("instance:{id}"),
            at,
            title.clone(),
            format!("{id} process exited: {}", exit.describe()),
        );
        let detail = serde_json::json!({
            "exit": exit,
            "description": exit.describe(),
            "uptime_ms": uptime.as_millis() as u64,
        });
        self.evidence(&inc, "process_exit", Some(id), detail, at);
        self.plan_restart_after(id, &inc, title, uptime, false)
            .await;
        self.publish(id);
    }

    async fn plan_restart(&mut self, id: &InstanceId, inc: &str, why: String, kill_first: bool) {
        let uptime = self
            .instances
            .get(id)
            .map(|i| i.started.elapsed())
            .unwrap_or_default();
        self.plan_restart_after(id, inc, why, uptime, kill_first)
            .await;
    }

    /// Decides a restart of `id` for incident `inc`, within back-off, budget and mode.
    async fn plan_restart_after(
        &mut self,
        id: &InstanceId,
        inc: &str,
        why: String,
        uptime: Duration,
        kill_first: bool,
    ) {
        let Some(svc) = self.services.get_mut(&id.service) else {
            return;
        };
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let at = now_nanos();
        if !inst.managed || !svc.cfg.recovery.restart {
            self.with_incident(inc, |i| {
                i.note_at(
                    at,
                    "note",
                    format!(
                        "{id} is not restarted: not started by the platform or restart = false"
                    ),
                );
            });
            return;
        }
        let delay = inst.backoff.on_crash(uptime);
        let crashes = inst.backoff.crashes();
        let mode = svc.mode;
        // A hung (still running) instance of a replicated service: start a replacement first.
        let replace = kill_first
            && mode == RecoveryMode::Auto
            && svc.cfg.replicas >= 2
            && inst.status == Status::Hung
            && inst.pid.is_some();
        let mut action = Action {
            id: new_id("act"),
            incident_id: inc.to_owned(),
            service: id.service.clone(),
            instance: Some(id.to_string()),
            what: if replace {
                "replace".into()
            } else if kill_first {
                "kill_and_restart".into()
            } else {
                "restart".into()
            },
            why: if crashes > 1 {
                format!(
                    "{why}; crash {crashes} in a row, back-off {} ms",
                    delay.as_millis()
                )
            } else {
                why
            },
            who: "aiops".into(),
            status: ActionStatus::Scheduled,
            delay_ms: delay.as_millis() as u64,
            created_at: rfc3339(at),
            created_unix_nano: at,
            executed_at: None,
            result: None,
            approved_by: None,
        };
        let now = Instant::now();
        if !svc.budget.try_take(now) {
            let reason = format!(
                "restart budget exhausted: {} restarts of {} within {} s; automatic restarts stopped",
                svc.budget.limit(),
                id.service,
                svc.budget.window().as_secs()
            );
            action.status = ActionStatus::Skipped;
            action.result = Some(reason.clone());
            action.executed_at = Some(rfc3339(at));
            inst.status = Status::GivenUp;
            if kill_first {
                // Still stop a hung process, so it does not hold the port.
                let _ = self.actuator.stop(id, Duration::ZERO).await;
                inst.status = Status::GivenUp;
            }
            let action_id = action.id.clone();
            let mut notify = None;
            self.with_incident(inc, |i| {
                i.add_action(action);
                if !i.needs_attention {
                    i.needs_attention = true;
                    i.attention_reason = Some(reason.clone());
                    i.note_at(at, "note", reason.clone());
                    notify = Some(i.clone());
                }
            });
            if let Some(i) = notify {
                self.notifier.send("incident.attention", &i);
            }
            self.save_action(inc, &action_id);
            self.publish(id);
            return;
        }
        let action_id = action.id.clone();
        match mode {
            RecoveryMode::Auto => {
                self.with_incident(inc, |i| {
                    i.add_action(action);
                });
                self.save_action(inc, &action_id);
                if replace {
                    self.replace(id, inc, &action_id).await;
                } else {
                    self.execute(id, inc, &action_id, kill_first, delay).await;
                }
            }
            RecoveryMode::Approval => {
                action.status = ActionStatus::PendingApproval;
                inst.status = Status::WaitingApproval;
                self.with_incident(inc, |i| {
                    i.add_action(action);
                    i.note_at(
                        at,
                        "note",
                        format!("waiting for POST /api/v1/incidents/{}/approve", i.id),
                    );
                });
                self.save_action(inc, &action_id);
            }
            RecoveryMode::DryRun => {
                action.status = ActionStatus::DryRun;
                action.result = Some("dry run: not executed".into());
                self.with_incident(inc, |i| {
                    i.add_action(action);
                });
                self.save_action(inc, &action_id);
            }
        }
        self.publish(id);
    }

    /// Starts a replacement of the hung instance `old` on a new index and port; `old` is
    /// stopped when the replacement is ready (see `retire_replaced`).
    async fn replace(&mut self, old: &InstanceId, inc: &str, action_id: &str) {
        let Some((new, port)) = self.add_instance(
            &old.service,
            Some((old.clone(), inc.to_owned(), action_id.to_owned())),
        ) else {
            tracing::error!(%old, "no port for a replacement: restarting in place");
            self.execute(old, inc, action_id, true, Duration::ZERO)
                .await;
            return;
        };
        let at = now_nanos();
        self.with_incident(inc, |i| {
            i.note_at(
                at,
                "action",
                format!(
                    "starting replacement {new} on port {port}; {old} is killed once it is ready"
                ),
            );
        });
        tracing::info!(%old, %new, port, "starting a replacement for a hung instance");
        self.start_instance(&new, None).await;
    }

    /// A new (not yet started) instance of `service` on the next index and a free port, known
    /// to the gateway as not ready. Answers it and its port.
    fn add_instance(
        &mut self,
        service: &str,
        replaces: Option<(InstanceId, String, String)>,
    ) -> Option<(InstanceId, u16)> {
        let index = self
            .instances
            .keys()
            .filter(|i| i.service == service)
            .map(|i| i.index + 1)
            .max()
            .unwrap_or(0);
        let new = InstanceId {
            service: service.to_owned(),
            index,
        };
        let port = free_port().ok()?;
        let r = self.services.get(service).map(|s| s.cfg.recovery.clone())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.instances.insert(
            new.clone(),
            Instance {
                id: new.clone(),
                addr,
                managed: true,
                generation: 0,
                pid: None,
                status: Status::Exited,
                started: Instant::now(),
                ready: false,
                live_failures: 0,
                live_fail_since: None,
                ready_failures: 0,
                ready_fail_since: None,
                backoff: CrashLoopBackoff::new(
                    Duration::from_millis(r.backoff_initial_ms),
                    Duration::from_millis(r.backoff_max_ms),
                    Duration::from_millis(r.backoff_reset_ms),
                ),
                restarts: 0,
                last_exit: None,
                restart_on_exit: None,
                replaces,
                retire_on_exit: false,
                probe: None,
            },
        );
        self.routes.set(&new, addr, false);
        Some((new, port))
    }

    /// Every 200 ms: scale services out on saturation and back in when quiet.
    async fn scale_tick(&mut self) {
        let names: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.cfg.scale.max_replicas > s.cfg.replicas && !s.cfg.command.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.scale_service(&name).await;
        }
    }

    async fn scale_service(&mut self, name: &str) {
        let endpoints = self.routes.endpoints(name);
        let ready: Vec<_> = endpoints.iter().filter(|e| e.is_ready()).collect();
        let inflight: usize = ready.iter().map(|e| e.inflight()).sum();
        let per = if ready.is_empty() {
            0.0
        } else {
            inflight as f64 / ready.len() as f64
        };
        let live: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.id.service == name && i.managed && i.status != Status::Stopping)
            .map(|i| i.id.clone())
            .collect();
        let starting = self
            .instances
            .values()
            .any(|i| i.id.service == name && i.status == Status::Starting);
        let open = self.open_by_service.get(name).cloned();
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let cfg = svc.cfg.scale.clone();
        let now = Instant::now();
        let cooled = svc
            .last_scale
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(cfg.cooldown_ms));
        if per > cfg.out_when_inflight_per_instance && !ready.is_empty() {
            svc.low_since = None;
            let (since, since_ns) = *svc.high_since.get_or_insert((now, now_nanos()));
            let held = now.duration_since(since);
            if held >= Duration::from_millis(cfg.out_for_ms)
                && (live.len() as u32) < cfg.max_replicas
                && cooled
                && !starting
            {
                svc.last_scale = Some(now);
                svc.high_since = None;
                let why = format!(
                    "in-flight requests per ready instance {per:.1} > {} for {} ms; {} -> {} instances (max {})",
                    cfg.out_when_inflight_per_instance,
                    held.as_millis(),
                    live.len(),
                    live.len() + 1,
                    cfg.max_replicas
                );
                self.scale_out(name, since_ns, per, why).await;
            }
            return;
        }
        svc.high_since = None;
        if let Some(inc) = open.filter(|i| {
            self.incidents
                .get(i)
                .is_some_and(|x| x.conditions.contains_key("saturation"))
        }) {
            let how = format!("in-flight per ready instance down to {per:.1}");
            self.clear(&inc, "saturation", now_nanos(), &how);
        }
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if per > cfg.out_when_inflight_per_instance / 2.0 {
            svc.low_since = None;
            return;
        }
        let since = *svc.low_since.get_or_insert(now);
        let quiet = now.duration_since(since);
        if quiet >= Duration::from_millis(cfg.in_after_ms)
            && live.len() as u32 > svc.cfg.replicas
            && cooled
            && let Some(newest) = live.iter().max_by_key(|i| i.index).cloned()
        {
            svc.last_scale = Some(now);
            svc.low_since = None;
            let inc = svc.scale_incident.clone();
            let why = format!(
                "in-flight per ready instance <= {} for {} ms; {} -> {} instances (replicas {})",
                cfg.out_when_inflight_per_instance / 2.0,
                quiet.as_millis(),
                live.len(),
                live.len() - 1,
                svc.cfg.replicas
            );
            self.scale_in(&newest, inc, why);
        }
    }

    fn scale_action(
        &self,
        inc: &str,
        service: &str,
        what: &str,
        instance: &InstanceId,
        why: String,
    ) -> Action {
        let at = now_nanos();
        Action {
            id: new_id("act"),
            incident_id: inc.to_owned(),
            service: service.to_owned(),
            instance: Some(instance.to_string()),
            what: what.into(),
            why,
            who: "aiops".into(),
            status: ActionStatus::Scheduled,
            delay_ms: 0,
            created_at: rfc3339(at),
            created_unix_nano: at,
            executed_at: None,
            result: None,
            approved_by: None,
        }
    }

    async fn scale_out(&mut self, name: &str, since: u64, per: f64, why: String) {
        let inc = self.open_or_update(
            name,
            "saturation",
            since,
            format!("{name} saturated"),
            format!("{name}: {why}"),
        );
        self.evidence(
            &inc,
            "saturation",
            None,
            serde_json::json!({"inflight_per_ready_instance": per, "why": why}),
            now_nanos(),
        );
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        svc.scale_incident = Some(inc.clone());
        let mode = svc.mode;
        let budget_ok = svc.budget.try_take(Instant::now());
        let Some((new, port)) = self.add_instance(name, None) else {
            tracing::error!(service = name, "no free port to scale out");
            return;
        };
        let mut action = self.scale_action(&inc, name, "scale_out", &new, why);
        let at = now_nanos();
        let skip = if !budget_ok {
            Some((
                ActionStatus::Skipped,
                "restart budget exhausted: not scaled out".to_owned(),
            ))
        } else if mode != RecoveryMode::Auto {
            Some((
                ActionStatus::DryRun,
                "scaling acts only in auto mode: not executed".to_owned(),
            ))
        } else {
            None
        };
        if let Some((status, result)) = skip {
            self.forget(&new);
            action.status = status;
            action.result = Some(result);
            action.executed_at = Some(rfc3339(at));
            let action_id = action.id.clone();
            self.with_incident(&inc, |i| {
                i.add_action(action);
            });
            self.save_action(&inc, &action_id);
            return;
        }
        let action_id = action.id.clone();
        tracing::info!(service = name, %new, port, "scaling out");
        self.with_incident(&inc, |i| {
            i.add_action(action);
        });
        self.save_action(&inc, &action_id);
        self.start_instance(&new, None).await;
        let pid = self.instances.get(&new).and_then(|i| i.pid);
        let at = now_nanos();
        self.with_incident(&inc, |i| {
            i.settle_action(
                &action_id,
                ActionStatus::Executed,
                format!("started {new} (pid {pid:?}) on port {port}"),
                at,
            );
        });
        self.save_action(&inc, &action_id);
        self.publish(&new);
    }

    fn scale_in(&mut self, id: &InstanceId, inc: Option<String>, why: String) {
        let pid = self.instances.get(id).and_then(|i| i.pid);
        // Out of the gateway first, then SIGTERM (SIGKILL only after a long grace).
        self.routes.set_unready(id);
        if let Some(inst) = self.instances.get_mut(id) {
            inst.status = Status::Stopping;
            inst.ready = false;
            inst.retire_on_exit = true;
            inst.restart_on_exit = None;
        }
        let actuator = self.actuator.clone();
        let stop = id.clone();
        tokio::spawn(async move {
            if let Err(e) = actuator.stop(&stop, Duration::from_secs(10)).await {
                tracing::error!(id = %stop, error = %e, "cannot stop a scaled-in instance");
            }
        });
        tracing::info!(%id, "scaling in");
        if let Some(inc) = inc {
            let mut action = self.scale_action(&inc, &id.service, "scale_in", id, why);
            let at = now_nanos();
            action.status = ActionStatus::Executed;
            action.executed_at = Some(rfc3339(at));
            action.result = Some(format!(
                "removed {id} from the gateway, then SIGTERM to pid {pid:?}"
            ));
            let action_id = action.id.clone();
            self.with_incident(&inc, |i| {
                i.add_action(action);
            });
            self.save_action(&inc, &action_id);
        }
        self.publish(id);
    }

    /// The replacement `new` is ready: stop the hung instance it replaces and settle the action.
    fn retire_replaced(
        &mut self,
        new: &InstanceId,
        replaced: (InstanceId, String, String),
        at: u64,
    ) {
        let (old, inc, act) = replaced;
        let grace = self
            .services
            .get(&old.service)
            .map(|s| Duration::from_millis(s.cfg.recovery.kill_grace_ms))
            .unwrap_or_default();
        let port = self.instances.get(new).map(|i| i.addr.port()).unwrap_or(0);
        if let Some(o) = self.instances.get_mut(&old) {
            o.status = Status::Stopping;
            o.retire_on_exit = true;
            o.restart_on_exit = None;
            o.ready = false;
            self.routes.set_unready(&old);
            let actuator = self.actuator.clone();
            let old = old.clone();
            tokio::spawn(async move {
                if let Err(e) = actuator.stop(&old, grace).await {
                    tracing::error!(%old, error = %e, "cannot stop a replaced instance");
                }
            });
        }
        tracing::info!(%old, %new, "replacement ready: stopping the hung instance");
        self.with_incident(&inc, |i| {
            i.restarts += 1;
            i.settle_action(
                &act,
                ActionStatus::Executed,
                format!("replacement {new} ready on port {port}; then stopped {old}"),
                at,
            );
        });
        self.save_action(&inc, &act);
        let how = format!("replacement {new} ready; {old} stopped");
        self.clear(&inc, &format!("instance:{old}"), at, &how);
        self.clear(&inc, &format!("ready:{old}"), at, &how);
        self.publish(&old);
    }

    /// Forgets an instance whose process is gone (replaced or scaled in).
    fn forget(&mut self, id: &InstanceId) {
        if let Some(mut inst) = self.instances.remove(id)
            && let Some(p) = inst.probe.take()
        {
            p.abort();
        }
        self.routes.remove(id);
        self.view.write().instances.remove(id);
    }

    /// Executes a restart action (after `delay`).
    async fn execute(
        &mut self,
        id: &InstanceId,
        inc: &str,
        action_id: &str,
        kill_first: bool,
        delay: Duration,
    ) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let action = Some((inc.to_owned(), action_id.to_owned()));
        let running = inst.pid.is_some();
        if kill_first && running {
            inst.status = Status::Stopping;
            inst.restart_on_exit = action;
            let grace = self
                .services
                .get(&id.service)
                .map(|s| Duration::from_millis(s.cfg.recovery.kill_grace_ms))
                .unwrap_or_default();
            let actuator = self.actuator.clone();
            let id = id.clone();
            let delay_then_stop = async move {
                tokio::time::sleep(delay).await;
                if let Err(e) = actuator.stop(&id, grace).await {
                    tracing::error!(%id, error = %e, "cannot stop instance");
                }
            };
            tokio::spawn(delay_then_stop);
        } else if delay.is_zero() {
            self.start_instance(id, action).await;
        } else {
            inst.status = Status::BackingOff;
            let events = self.events.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = events.send(Event::StartDue { id, action });
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_probe(
        &mut self,
        id: &InstanceId,
        generation: u64,
        kind: ProbeKind,
        ok: bool,
        sent_at: u64,
        done_at: u64,
        detail: String,
    ) {
        let Some(svc) = self.services.get(&id.service) else {
            return;
        };
        let live_threshold = svc.cfg.health.failure_threshold;
        let ready_threshold = svc.cfg.health.ready_failure_threshold;
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if inst.generation != generation || matches!(inst.status, Status::Stopping | Status::Exited)
        {
            return;
        }
        let live = matches!(kind, ProbeKind::Live | ProbeKind::Both);
        let ready = matches!(kind, ProbeKind::Ready | ProbeKind::Both);
        if ok {
            if live {
                inst.live_failures = 0;
                inst.live_fail_since = None;
            }
            if ready {
                inst.ready_failures = 0;
                inst.ready_fail_since = None;
                // Always refresh: the gateway may have taken it out on a refused connection.
                self.routes.set(id, inst.addr, true);
                if !inst.ready {
                    inst.ready = true;
                    inst.status = if inst.managed {
                        Status::Ready
                    } else {
                        Status::External
                    };
                    tracing::info!(%id, "instance ready");
                    let replaced = inst.replaces.take();
                    // The first success after the repair: recovery time.
                    if let Some(inc) = self.open_by_service.get(&id.service).cloned() {
                        let how = format!("{id} answered its readiness probe");
                        self.clear(&inc, &format!("instance:{id}"), done_at, &how);
                        self.clear(&inc, &format!("ready:{id}"), done_at, &how);
                    }
                    if let Some(r) = replaced {
                        self.retire_replaced(id, r, done_at);
                    }
                    self.publish(id);
                }
            }
            return;
        }
        if ready {
            inst.ready_failures += 1;
            let since = *inst.ready_fail_since.get_or_insert(sent_at);
            if inst.ready_failures >= ready_threshold && inst.ready {
                inst.ready = false;
                inst.status = Status::Unready;
                self.routes.set_unready(id);
                let failures = inst.ready_failures;
                let inc = self.open_or_update(
                    &id.service,
                    &format!("ready:{id}"),
                    since,
                    format!("{id} not ready"),
                    format!("{id} readiness failing: {detail}"),
                );
                self.evidence(
                    &inc,
                    "readiness",
                    Some(id),
                    serde_json::json!({"consecutive_failures": failures, "last_error": detail}),
                    done_at,
                );
                self.publish(id);
            }
        }
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if live {
            inst.live_failures += 1;
            let since = *inst.live_fail_since.get_or_insert(sent_at);
            if inst.live_failures >= live_threshold && inst.status != Status::Hung {
                let failures = inst.live_failures;
                inst.status = Status::Hung;
                inst.ready = false;
                self.routes.set_unready(id);
                let title = format!("{id} not live ({failures} failed liveness probes)");
                let inc = self.open_or_update(
                    &id.service,
                    &format!("instance:{id}"),
                    since,
                    title.clone(),
                    format!("{id} liveness failing: {detail}"),
                );
                self.evidence(
                    &inc,
                    "liveness",
                    Some(id),
                    serde_json::json!({"consecutive_failures": failures, "last_error": detail}),
                    done_at,
                );
                if inst_managed(&self.instances, id) {
                    self.plan_restart(id, &inc, title, true).await;
                }
                self.publish(id);
            }
        }
    }

    async fn on_detector(&mut self, s: DetectorState) {
        let key = s.signal.to_owned();
        let open = self.open_by_service.get(&s.service).cloned();
        let has = open
            .as_ref()
            .and_then(|i| self.incidents.get(i))
            .is_some_and(|i| i.conditions.contains_key(&key));
        if s.active && !has {
            let title = match s.signal {
                "error_rate" => format!("{} error rate burning", s.service),
                "latency" => format!("{} latency degraded", s.service),
                _ => format!("{} exception burst", s.service),
            };
            let now = now_nanos();
            let inc = self.open_or_update(
                &s.service,
                &key,
                s.since,
                title.clone(),
                format!("{}: {}", s.signal, s.detail),
            );
            self.evidence(&inc, s.signal, None, s.detail, now);
            let restart = s.signal == "error_rate"
                && self
                    .services
                    .get(&s.service)
                    .is_some_and(|x| x.cfg.recovery.on_error_burn == ErrorBurnAction::Restart);
            if restart {
                let ids: Vec<InstanceId> = self
                    .instances
                    .keys()
                    .filter(|i| i.service == s.service)
                    .cloned()
                    .collect();
                for id in ids {
                    self.plan_restart(&id, &inc, title.clone(), true).await;
                }
            }
        } else if !s.active
            && has
            && let Some(inc) = open
        {
            let how = format!("{} back to normal", s.signal);
            self.clear(&inc, &key, s.recovered_at, &how);
        }
    }

    async fn approve(&mut self, inc_id: &str, by: &str) -> Result<Incident, ApproveError> {
        let Some(inc) = self.incidents.get_mut(inc_id) else {
            return Err(ApproveError::NotFound(inc_id.to_owned()));
        };
        let pending: Vec<(String, Option<String>, bool, u64)> = inc
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::PendingApproval)
            .map(|a| {
                (
                    a.id.clone(),
                    a.instance.clone(),
                    a.what == "kill_and_restart",
                    a.delay_ms,
                )
            })
            .collect();
        if pending.is_empty() {
            return Err(ApproveError::NothingPending(inc_id.to_owned()));
        }
        let at = now_nanos();
        for a in inc
            .actions
            .iter_mut()
            .filter(|a| a.status == ActionStatus::PendingApproval)
        {
            a.status = ActionStatus::Scheduled;
            a.approved_by = Some(by.to_owned());
        }
        inc.note_at(
            at,
            "action",
            format!("{} action(s) approved by {by}", pending.len()),
        );
        for (action_id, instance, kill_first, _delay) in pending {
            self.save_action(inc_id, &action_id);
            let id = self
                .instances
                .keys()
                .find(|i| Some(i.to_string()) == instance)
                .cloned();
            if let Some(id) = id {
                // The approval is the decision: act now, without the back-off.
                self.execute(&id, inc_id, &action_id, kill_first, Duration::ZERO)
                    .await;
                self.publish(&id);
            }
        }
        self.persist(inc_id);
        self.incidents
            .get(inc_id)
            .cloned()
            .ok_or_else(|| ApproveError::NotFound(inc_id.to_owned()))
    }

    async fn shutdown(&mut self) {
        self.shutting_down = true;
        let ids: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.managed && i.pid.is_some())
            .map(|i| i.id.clone())
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let actuator = self.actuator.clone();
            set.spawn(async move { actuator.stop(&id, Duration::from_secs(3)).await });
        }
        while set.join_next().await.is_some() {}
        for inst in self.instances.values_mut() {
            if let Some(p) = inst.probe.take() {
                p.abort();
            }
        }
    }

    // ----- incidents -----

    /// The open incident of `service`, opened now if there is none, with the condition `key`
    /// (failure started at `since`). Answers its id.
    fn open_or_update(
        &mut self,
        service: &str,
        key: &str,
        since: u64,
        title: String,
        description: String,
    ) -> String {
        let now = now_nanos();
        let condition = Condition {
            since_unix_nano: since,
            description,
        };
        if let Some(id) = self.open_by_service.get(service).cloned() {
            self.with_incident(&id, |i| i.add_condition(key, condition, now));
            return id;
        }
        let inc = Incident::open(new_id("inc"), service, title, key, condition, now);
        let id = inc.id.clone();
        tracing::warn!(incident = %id, service, title = %inc.title, mttd_ms = inc.mttd_ms, "incident opened");
        self.incidents.insert(id.clone(), inc);
        self.open_by_service.insert(service.to_owned(), id.clone());
        self.correlate(service);
        if let Some(i) = self.incidents.get(&id) {
            self.notifier.send("incident.opened", i);
        }
        self.persist(&id);
        id
    }

    /// Names an upstream with its own open incident as the probable root cause, both ways.
    fn correlate(&mut self, service: &str) {
        let now = now_nanos();
        let mut links: Vec<(String, String)> = Vec::new(); // (incident, root service)
        if let Some(me) = self.open_by_service.get(service)
            && let Some(deps) = self.services.get(service).map(|s| s.deps.clone())
            && let Some(dep) = deps.iter().find(|d| self.open_by_service.contains_key(*d))
        {
            links.push((me.clone(), dep.clone()));
        }
        for (name, s) in &self.services {
            if s.deps.iter().any(|d| d == service)
                && let Some(inc) = self.open_by_service.get(name)
            {
                links.push((inc.clone(), service.to_owned()));
            }
        }
        for (inc, root) in links {
            let root_inc = self.open_by_service.get(&root).cloned().unwrap_or_default();
            self.with_incident(&inc, |i| {
                if i.probable_root_cause.is_none() {
                    i.probable_root_cause = Some(root.clone());
                    i.add_evidence(Evidence {
                        at: rfc3339(now),
                        at_unix_nano: now,
                        signal: "dependency".into(),
                        instance: None,
                        detail: serde_json::json!({
                            "upstream": root, "upstream_incident": root_inc,
                            "reason": "an upstream dependency has its own open incident"
                        }),
                    });
                }
            });
        }
    }

    fn evidence(
        &mut self,
        inc: &str,
        signal: &str,
        instance: Option<&InstanceId>,
        detail: serde_json::Value,
        at: u64,
    ) {
        self.with_incident(inc, |i| {
            i.add_evidence(Evidence {
                at: rfc3339(at),
                at_unix_nano: at,
                signal: signal.to_owned(),
                instance: instance.map(ToString::to_string),
                detail,
            });
        });
    }

    fn clear(&mut self, inc: &str, key: &str, at: u64, how: &str) {
        let mut resolved = None;
        self.with_incident(inc, |i| {
            if i.clear_condition(key, at, how) {
                resolved = Some(i.clone());
            }
        });
        if let Some(i) = resolved {
            tracing::info!(incident = %i.id, service = %i.service, mttd_ms = i.mttd_ms,
                mttr_ms = i.mttr_ms, "incident resolved");
            self.open_by_service.remove(&i.service);
            self.notifier.send("incident.resolved", &i);
        }
    }

    fn with_incident(&mut self, id: &str, f: impl FnOnce(&mut Incident)) {
        if let Some(i) = self.incidents.get_mut(id) {
            f(i);
            if i.status == IncidentStatus::Resolved {
                self.open_by_service.remove(&i.service);
            }
        }
        self.persist(id);
    }

    fn persist(&self, id: &str) {
        if let Some(i) = self.incidents.get(id) {
            if let Some(db) = &self.db {
                db.save_incident(i);
            }
            self.view.write().incidents.insert(id.to_owned(), i.clone());
        }
    }

    fn save_action(&self, inc: &str, action_id: &str) {
        if let (Some(db), Some(a)) = (
            &self.db,
            self.incidents
                .get(inc)
                .and_then(|i| i.actions.iter().find(|a| a.id == action_id)),
        ) {
            db.save_action(a);
        }
    }

    fn publish(&self, id: &InstanceId) {
        if let Some(i) = self.instances.get(id) {
            self.view.write().instances.insert(id.clone(), view_of(i));
        }
    }

    fn publish_all(&self) {
        let mut v = self.view.write();
        for (id, i) in &self.instances {
            v.instances.insert(id.clone(), view_of(i));
        }
        for (id, i) in &self.incidents {
            v.incidents.insert(id.clone(), i.clone());
        }
    }
}

fn inst_managed(instances: &BTreeMap<InstanceId, Instance>, id: &InstanceId) -> bool {
    instances.get(id).is_some_and(|i| i.managed)
}

fn view_of(i: &Instance) -> InstanceView {
    InstanceView {
        id: i.id.to_string(),
        service: i.id.service.clone(),
        index: i.id.index,
        addr: i.addr.to_string(),
        url: format!("http://{}", i.addr),
        status: i.status.name().into(),
        pid: i.pid,
        generation: i.generation,
        restarts: i.restarts,
        crash_loop_count: i.backoff.crashes(),
        last_exit: i.last_exit.clone(),
        managed: i.managed,
    }
}
