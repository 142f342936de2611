//! The supervisor: runs each service's instances through an [`Actuator`], probes them, turns
//! every failure signal into evidence on one incident per service, and repairs what it can
//! within the safety limits ([`CrashLoopBackoff`], [`RestartBudget`], approval / dry-run).
//!
//! It reads as decide / act / record: one event loop (the *controller*) owns the state and
//! dispatches process lifecycle events, probe results, detector states and approvals; the
//! [`policy`] functions decide (pure, unit-tested); the [`Actuator`] acts (local processes
//! today, an orchestrator's API next); the incident ledger records, once per change. The API
//! reads a snapshot ([`Supervision::incidents`], [`Supervision::instances`]).

#![warn(clippy::too_many_lines)]

pub mod actuator;
pub mod backoff;
mod capture;
mod controller;
pub mod discovery;
mod ledger;
pub mod policy;
mod probe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use crate::common::instance::InstanceId;
pub use actuator::{
    Actuator, ActuatorError, InstanceSpec, LifecycleEvent, LineSink, LocalProcessActuator,
    ObservedInstance, Traffic, WorkloadSpec,
};
pub use backoff::{CrashLoopBackoff, RestartBudget};
pub use capture::{LogCapture, to_record};

use crate::config::{ServiceConfig, Topology};
use crate::detect::Finding;
use crate::gateway::{Gateway, RequestStats, Routes};
use crate::incident::{Incident, Notifier};
use crate::store::Store;
use crate::store::{IncidentDb, IncidentDbError};

/// How long in-flight gateway requests have to finish when the platform stops.
const GATEWAY_DRAIN: Duration = Duration::from_secs(10);

/// Errors of the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The incident tables failed.
    #[error(transparent)]
    Db(#[from] IncidentDbError),
    /// The gateway could not start.
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    /// No free port could be found.
    #[error("cannot find a free port for {0}: {1}")]
    Port(String, std::io::Error),
    /// A `url` could not be turned into an address.
    #[error("service {0}: cannot resolve url {1:?}")]
    Url(String, String),
    /// The actuator cannot be watched.
    #[error(transparent)]
    Actuator(#[from] ActuatorError),
}

/// Errors of an approval.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// No such incident.
    #[error("no incident {0}")]
    NotFound(String),
    /// Nothing waits for approval.
    #[error("incident {0} has no action waiting for approval")]
    NothingPending(String),
    /// The supervisor is not running.
    #[error("the supervisor is not running")]
    Stopped,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It exited with a code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// Unknown (waiting failed).
    Unknown(String),
}

impl ExitReason {
    /// From a process status.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return Self::Signal(sig);
            }
        }
        match status.code() {
            Some(c) => Self::Code(c),
            None => Self::Unknown(status.to_string()),
        }
    }

    /// `exit code 1`, `signal 9 (SIGKILL)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Code(c) => format!("exit code {c}"),
            Self::Signal(s) => {
                let name = match s {
                    6 => " (SIGABRT)",
                    9 => " (SIGKILL)",
                    11 => " (SIGSEGV)",
                    15 => " (SIGTERM)",
                    2 => " (SIGINT)",
                    _ => "",
                };
                format!("signal {s}{name}")
            }
            Self::Unknown(m) => format!("unknown exit: {m}"),
        }
    }
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Liveness.
    Live,
    /// Readiness.
    Ready,
    /// One path for both (a program with only a liveness endpoint).
    Both,
}

/// A probe's answer (or failure) for one instance generation.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The instance.
    pub id: InstanceId,
    /// Its generation.
    pub generation: u64,
    /// Which probe.
    pub kind: ProbeKind,
    /// Whether it succeeded.
    pub ok: bool,
    /// When it was sent.
    pub sent_at: u64,
    /// When it finished.
    pub done_at: u64,
    /// The failure.
    pub detail: String,
}

/// Input of the controller (besides the actuator's lifecycle events).
#[derive(Debug)]
pub enum Event {
    /// A probe answered or failed.
    Probe(ProbeResult),
    /// What a detector found: a condition's state, evidence, root causes.
    Finding(Finding),
    /// A back-off delay elapsed: restart the instance.
    RestartDue {
        /// The instance.
        id: InstanceId,
    },
    /// Approve the pending actions of an incident.
    Approve {
        /// The incident.
        incident: String,
        /// Who approves.
        by: String,
        /// The answer.
        reply: oneshot::Sender<Result<Incident, ApproveError>>,
    },
    /// An actuator call failed (a missing permission, an autoscaler owning the scale).
    ActionFailed {
        /// The instance (or, for a scale, `service#new-count-1`).
        id: InstanceId,
        /// Which call (`restart`, `scale out`, ...).
        what: &'static str,
        /// Why.
        error: String,
    },
    /// A service found while the platform runs (a Deployment annotated for aiops); its
    /// actuator is already registered. Ignored when the service is known.
    AddService(Box<ServiceConfig>),
    /// The instances an actuator runs now for a service just added (its pods may have come on
    /// the lifecycle stream before the service was known): adopted when not known yet.
    Adopt {
        /// The service.
        service: String,
        /// What the actuator lists.
        instances: Vec<ObservedInstance>,
    },
    /// A service let go (its Deployment deleted or no longer annotated): its instances are
    /// forgotten (not stopped) and its open incident says so.
    RemoveService {
        /// The service.
        name: String,
    },
    /// Stop every instance and the controller.
    Shutdown {
        /// Answered when everything stopped.
        reply: oneshot::Sender<()>,
    },
}

/// Where an instance is in its life, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Started, not ready yet.
    Starting,
    /// Answering its readiness probe, in traffic.
    Ready,
    /// Failing its readiness probe, out of traffic.
    Unready,
    /// Failing its liveness probe.
    Hung,
    /// Being stopped.
    Stopping,
    /// Not running.
    Exited,
    /// Waiting out a crash-loop back-off.
    BackingOff,
    /// A repair waits for approval.
    WaitingApproval,
    /// The restart budget is spent: left as is.
    GivenUp,
    /// Not run by the platform (URL only), probed.
    External,
}

impl InstanceStatus {
    /// The snake_case name the API shows.
    pub fn as_str(self) -> &'static str {
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

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instance as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// `order#0`.
    pub id: String,
    /// The service.
    pub service: String,
    /// Index.
    pub index: u32,
    /// Its address.
    pub addr: String,
    /// `http://addr`.
    pub url: String,
    /// Where it is in its life.
    pub status: InstanceStatus,
    /// Process id, while running.
    pub pid: Option<u32>,
    /// Starts so far (1 + restarts).
    pub generation: u64,
    /// Restarts made by the platform.
    pub restarts: u64,
    /// Consecutive quick crashes (the back-off exponent).
    pub crash_loop_count: u32,
    /// How the last process ended.
    pub last_exit: Option<String>,
    /// Whether the platform starts it (false for URL-only services).
    pub managed: bool,
    /// Whether it runs now (a process, or a pod with an address).
    #[serde(skip)]
    pub running: bool,
}

/// The shared face of the supervisor: snapshots for the API and a way to send it events.
#[derive(Debug)]
pub struct Supervision {
    /// Routing table of the gateway.
    pub routes: Arc<Routes>,
    /// What the gateway's clients saw.
    pub stats: Arc<RequestStats>,
    /// The gateway's bound address, when it runs.
    pub gateway_addr: RwLock<Option<SocketAddr>>,
    events: mpsc::UnboundedSender<Event>,
    view: Arc<RwLock<View>>,
    /// Incident tables.
    pub db: Option<IncidentDb>,
    pending: Mutex<Option<(controller::Controller, mpsc::UnboundedReceiver<Event>)>>,
    gateway: Option<Arc<Gateway>>,
    gateway_listen: SocketAddr,
    /// Stops the gateway (dropping it does too), and the task that drains it.
    gateway_run: Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
    /// The SQLite pool detection keeps its known log templates in.
    pool: Option<sqlx::SqlitePool>,
}

#[derive(Debug, Default)]
struct View {
    instances: BTreeMap<InstanceId, InstanceView>,
    incidents: BTreeMap<String, Incident>,
}

/// What an actuator may be built with: the gateway's routing table (the traffic of local
/// instances) and the sink of instance output lines.
#[derive(Debug, Clone)]
pub struct ActuatorContext {
    /// The gateway's routing table.
    pub routes: Arc<Routes>,
    /// Where output lines of local instances go (store and log miner).
    pub sink: Arc<dyn LineSink>,
}

impl Supervision {
    /// Builds the supervisor for `topology` with local processes as the actuator (nothing
    /// runs until [`Supervision::start`]). `platform_addr` is where instances send telemetry.
    pub async fn new(
        topology: &Topology,
        store: Arc<Store>,
        pool: Option<sqlx::SqlitePool>,
        platform_addr: SocketAddr,
    ) -> Result<Arc<Self>, SupervisorError> {
        Self::with_actuator(topology, store, pool, platform_addr, |cx| {
            Arc::new(LocalProcessActuator::new(cx.routes, cx.sink))
        })
        .await
    }

    /// Like [`Supervision::new`], acting through the actuator `build` makes.
    pub async fn with_actuator(
        topology: &Topology,
        store: Arc<Store>,
        pool: Option<sqlx::SqlitePool>,
        platform_addr: SocketAddr,
        build: impl FnOnce(ActuatorContext) -> Arc<dyn Actuator>,
    ) -> Result<Arc<Self>, SupervisorError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let routes = Arc::new(Routes::new(topology.gateway.balance));
        let stats = Arc::new(RequestStats::default());
        for s in &topology.services {
            for r in &s.routes {
                routes.add_prefix(r, &s.name);
            }
        }
        let db = match pool.clone() {
            Some(p) => Some(IncidentDb::open(p).await?),
            None => None,
        };
        let view = Arc::new(RwLock::new(View::default()));
        let gateway = gateway(topology, &routes, &stats, &store);
        // Bind the gateway's port now so its address can go into upstream URLs.
        let gateway_addr = match &gateway {
            Some(_) => Some(reserve(topology.gateway.listen)?),
            None => None,
        };
        let sink = Arc::new(LogCapture::new(store));
        let actuator = build(ActuatorContext {
            routes: routes.clone(),
            sink,
        });
        let wiring = controller::Wiring {
            actuator,
            events: tx.clone(),
            routes: routes.clone(),
            stats: stats.clone(),
            view: view.clone(),
            db: db.clone(),
            notifier: Notifier::new(topology.incidents.webhook.clone()),
            platform_addr,
            gateway_addr,
        };
        let controller = controller::Controller::new(topology, wiring).await?;
        Ok(Arc::new(Self {
            routes,
            stats,
            gateway_addr: RwLock::new(gateway_addr),
            events: tx,
            view,
            db,
            pending: Mutex::new(Some((controller, rx))),
            gateway,
            gateway_listen: gateway_addr.unwrap_or(topology.gateway.listen),
            gateway_run: Mutex::new(None),
            pool,
        }))
    }

    /// Starts the gateway, the controller (which starts every instance) and the detectors.
    pub async fn start(
        self: &Arc<Self>,
        store: Arc<Store>,
        topology: &Topology,
    ) -> Result<(), SupervisorError> {
        if let Some(gw) = &self.gateway {
            let (stop, stopped) = oneshot::channel::<()>();
            let (addr, task) = gw
                .clone()
                .spawn(self.gateway_listen, async move {
                    let _ = stopped.await;
                })
                .await?;
            *self.gateway_addr.write() = Some(addr);
            *self.gateway_run.lock() = Some((stop, task));
            tracing::info!(%addr, "gateway listening");
        }
        let pending = self.pending.lock().take();
        if let Some((mut controller, rx)) = pending {
            controller.start_all().await;
            tokio::spawn(controller.run(rx));
        }
        let events = self.events.clone();
        crate::detect::spawn(
            topology,
            store,
            move |finding| events.send(Event::Finding(finding)).is_ok(),
            self.pool.clone(),
        );
        Ok(())
    }

    /// Drains the gateway (in-flight requests finish, within 10 s), then stops
    /// every instance (SIGTERM, then SIGKILL after a grace) and waits.
    pub async fn shutdown(&self) {
        let run = self.gateway_run.lock().take();
        if let Some((stop, task)) = run {
            let _ = stop.send(());
            if tokio::time::timeout(GATEWAY_DRAIN, task).await.is_err() {
                tracing::warn!("gateway requests still in flight after the drain grace");
            }
        }
        let (reply, rx) = oneshot::channel();
        if self.events.send(Event::Shutdown { reply }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
        if let Some(db) = &self.db {
            db.flush().await;
        }
    }

    /// Supervises `service` from now on (its actuator must already be registered); a
    /// service already known is left as it is.
    pub fn add_service(&self, service: ServiceConfig) {
        let _ = self.events.send(Event::AddService(Box::new(service)));
    }

    /// Lets `name` go: its instances are forgotten, not stopped.
    pub fn remove_service(&self, name: &str) {
        let _ = self.events.send(Event::RemoveService {
            name: name.to_owned(),
        });
    }

    /// Approves the pending actions of an incident.
    pub async fn approve(&self, incident: &str, by: &str) -> Result<Incident, ApproveError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::Approve {
                incident: incident.to_owned(),
                by: by.to_owned(),
                reply,
            })
            .map_err(|_| ApproveError::Stopped)?;
        rx.await.map_err(|_| ApproveError::Stopped)?
    }

    /// Incidents, newest first.
    pub fn incidents(&self) -> Vec<Incident> {
        let mut v: Vec<Incident> = self.view.read().incidents.values().cloned().collect();
        v.sort_by_key(|i| std::cmp::Reverse(i.detected_unix_nano));
        v
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Option<Incident> {
        self.view.read().incidents.get(id).cloned()
    }

    /// Instances.
    pub fn instances(&self) -> Vec<InstanceView> {
        self.view.read().instances.values().cloned().collect()
    }

    /// The gateway URL, when it runs.
    pub fn gateway_url(&self) -> Option<String> {
        (*self.gateway_addr.read()).map(|a| format!("http://{a}"))
    }
}

fn gateway(
    topology: &Topology,
    routes: &Arc<Routes>,
    stats: &Arc<RequestStats>,
    store: &Arc<Store>,
) -> Option<Arc<Gateway>> {
    let enabled = topology
        .gateway
        .enabled
        .unwrap_or_else(|| topology.services.iter().any(|s| !s.routes.is_empty()));
    let quiet = topology
        .services
        .first()
        .map(|s| s.detection.quiet_ms)
        .unwrap_or(2000);
    enabled.then(|| {
        Arc::new(
            Gateway::new(
                &topology.gateway,
                routes.clone(),
                stats.clone(),
                Duration::from_millis(quiet),
            )
            .observed_by(store.clone()),
        )
    })
}

/// Picks the gateway's address now (port 0 becomes a free port).
fn reserve(listen: SocketAddr) -> Result<SocketAddr, SupervisorError> {
    let probe = std::net::TcpListener::bind(listen)
        .map_err(|e| SupervisorError::Port("gateway".into(), e))?;
    probe
        .local_addr()
        .map_err(|e| SupervisorError::Port("gateway".into(), e))
}
