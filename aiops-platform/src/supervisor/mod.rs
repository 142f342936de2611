//! The supervisor: runs each service's instances through an [`Actuator`], probes them, turns
//! every failure signal into evidence on one incident per service, and repairs what it can
//! within the safety limits ([`CrashLoopBackoff`], [`RestartBudget`], approval / dry-run).
//!
//! Everything that changes state goes through one event loop (the *controller*): process
//! exits (seen the instant the child is reaped), probe results, detector states, approvals.
//! The API reads a snapshot ([`Supervision::incidents`], [`Supervision::instances`]).

pub mod actuator;
pub mod backoff;
mod capture;
mod controller;
mod probe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use actuator::{Actuator, ActuatorError, InstanceSpec, LineSink, LocalProcessActuator};
pub use backoff::{CrashLoopBackoff, RestartBudget};
pub use capture::{LogCapture, to_record};

use crate::config::Topology;
use crate::gateway::{Gateway, RequestStats, Routes};
use crate::incident::{Incident, IncidentDb, IncidentDbError, Notifier};
use crate::store::Store;

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

/// One instance of a service: `order#0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct InstanceId {
    /// The service.
    pub service: String,
    /// Its index among the service's replicas.
    pub index: u32,
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.service, self.index)
    }
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

/// A detector's state for one service and one signal, sent every tick.
#[derive(Debug, Clone)]
pub struct DetectorState {
    /// The service.
    pub service: String,
    /// `error_rate`, `latency`, `exception_burst`.
    pub signal: &'static str,
    /// Whether the condition holds now.
    pub active: bool,
    /// When the failure behind it started (when active).
    pub since: u64,
    /// The first success after the failure (when it ended).
    pub recovered_at: u64,
    /// What was measured.
    pub detail: serde_json::Value,
}

/// Input of the controller.
#[derive(Debug)]
pub enum Event {
    /// A process exited.
    Exited {
        /// The instance.
        id: InstanceId,
        /// Its generation.
        generation: u64,
        /// How.
        exit: ExitReason,
        /// When (ns since the epoch).
        at: u64,
    },
    /// A probe answered or failed.
    Probe {
        /// The instance.
        id: InstanceId,
        /// Its generation.
        generation: u64,
        /// Which probe.
        kind: ProbeKind,
        /// Whether it succeeded.
        ok: bool,
        /// When it was sent.
        sent_at: u64,
        /// When it finished.
        done_at: u64,
        /// The failure.
        detail: String,
    },
    /// A request-level detector's state.
    Detector(DetectorState),
    /// Supporting evidence (log templates): attached to the open incident, if any.
    Evidence {
        /// The service.
        service: String,
        /// The signal.
        signal: String,
        /// The instance.
        instance: Option<String>,
        /// Details.
        detail: serde_json::Value,
    },
    /// A back-off delay elapsed: start the instance.
    StartDue {
        /// The instance.
        id: InstanceId,
        /// The incident and action it executes.
        action: Option<(String, String)>,
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
    /// Stop every instance and the controller.
    Shutdown {
        /// Answered when everything stopped.
        reply: oneshot::Sender<()>,
    },
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
    /// `starting`, `ready`, `unready`, `hung`, `stopping`, `exited`, `backing_off`,
    /// `waiting_approval`, `given_up`, `external`.
    pub status: String,
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
    pending: parking_lot::Mutex<Option<controller::Controller>>,
    rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    gateway: Option<Arc<Gateway>>,
    gateway_listen: SocketAddr,
}

#[derive(Debug, Default)]
struct View {
    instances: BTreeMap<InstanceId, InstanceView>,
    incidents: BTreeMap<String, Incident>,
}

impl Supervision {
    /// Builds the supervisor for `topology` (nothing runs until [`Supervision::start`]).
    /// `platform_addr` is where instances send telemetry.
    pub async fn new(
        topology: &Topology,
        store: Arc<Store>,
        pool: Option<sqlx::SqlitePool>,
        platform_addr: SocketAddr,
    ) -> Result<Arc<Self>, SupervisorError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let routes = Arc::new(Routes::new(topology.gateway.balance));
        let stats = Arc::new(RequestStats::default());
        for s in &topology.services {
            for r in &s.routes {
                routes.add_prefix(r, &s.name);
            }
        }
        let db = match pool {
            Some(p) => Some(IncidentDb::open(p).await?),
            None => None,
        };
        let view = Arc::new(RwLock::new(View::default()));
        let gateway_enabled = topology
            .gateway
            .enabled
            .unwrap_or_else(|| topology.services.iter().any(|s| !s.routes.is_empty()));
        let quiet = topology
            .services
            .first()
            .map(|s| s.detection.quiet_ms)
            .unwrap_or(2000);
        let gateway = gateway_enabled.then(|| {
            Arc::new(Gateway::new(
                &topology.gateway,
                routes.clone(),
                stats.clone(),
                std::time::Duration::from_millis(quiet),
            ))
        });
        // Bind the gateway now so its address can go into upstream URLs.
        let mut gateway_addr = None;
        let mut gateway_listen = topology.gateway.listen;
        if gateway.is_some() {
            let probe = std::net::TcpListener::bind(topology.gateway.listen)
                .map_err(|e| SupervisorError::Port("gateway".into(), e))?;
            let addr = probe
                .local_addr()
                .map_err(|e| SupervisorError::Port("gateway".into(), e))?;
            drop(probe);
            gateway_addr = Some(addr);
            gateway_listen = addr;
        }
        let controller = controller::Controller::new(
            topology,
            store.clone(),
            tx.clone(),
            routes.clone(),
            view.clone(),
            db.clone(),
            Notifier::new(topology.incidents.webhook.clone()),
            platform_addr,
            gateway_addr,
        )
        .await?;
        Ok(Arc::new(Self {
            routes,
            stats,
            gateway_addr: RwLock::new(gateway_addr),
            events: tx,
            view,
            db,
            pending: parking_lot::Mutex::new(Some(controller)),
            rx: parking_lot::Mutex::new(Some(rx)),
            gateway,
            gateway_listen,
        }))
    }

    /// Starts the gateway, the controller (which starts every instance) and the detectors.
    pub async fn start(
        self: &Arc<Self>,
        store: Arc<Store>,
        topology: &Topology,
    ) -> Result<(), SupervisorError> {
        if let Some(gw) = &self.gateway {
            let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
            let (addr, _task) = gw
                .clone()
                .spawn(self.gateway_listen, async move {
                    let _ = shutdown_rx.await;
                })
                .await?;
            *self.gateway_addr.write() = Some(addr);
            // Kept alive for the process lifetime; dropping it stops the gateway.
            std::mem::forget(shutdown_tx);
            tracing::info!(%addr, "gateway listening");
        }
        let controller = self.pending.lock().take();
        let rx = self.rx.lock().take();
        if let (Some(mut c), Some(rx)) = (controller, rx) {
            c.start_all().await;
            tokio::spawn(c.run(rx));
        }
        crate::detect::spawn(topology, store, self.stats.clone(), self.events.clone());
        Ok(())
    }

    /// Stops every instance (SIGTERM, then SIGKILL after a grace) and waits.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.events.send(Event::Shutdown { reply }).is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), rx).await;
        }
        if let Some(db) = &self.db {
            db.flush().await;
        }
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
