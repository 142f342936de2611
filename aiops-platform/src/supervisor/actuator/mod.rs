//! [`Actuator`]: how the supervisor acts on the instances of a service, whatever runs them.
//!
//! The verbs are those an orchestrator offers — start and stop one instance, restart one (the
//! engine may replace it), scale a workload to N, take an instance out of traffic and back,
//! list the instances it runs (including ones the platform did not start) and watch their
//! lifecycle. Effects come back as [`LifecycleEvent`]s on the stream [`Actuator::watch`]
//! answers, never as return values the controller must wait for: the controller's loop spawns
//! the call and goes on. [`LocalProcessActuator`] runs local child processes behind the
//! platform's gateway; [`KubernetesActuator`] (scale a Deployment, delete a Pod, label it out
//! of its Service) implements the same trait; [`ByService`] sends each service's calls to its
//! own actuator.

mod by_service;
pub mod kubernetes;
mod lines;
mod local;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use by_service::ByService;
pub use kubernetes::{KubernetesActuator, KubernetesError, KubernetesWorkload};
pub(crate) use local::free_port;
pub use local::{LocalProcessActuator, process_identity, send_signal};

use super::ExitReason;
use crate::common::instance::InstanceId;

/// Errors of an actuator.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The command is empty.
    #[error("instance {0} has no command")]
    NoCommand(InstanceId),
    /// The instance is unknown to the actuator.
    #[error("instance {0} is not run by this actuator")]
    Unknown(InstanceId),
    /// The program could not be started.
    #[error("cannot start {program} for {id}: {source}")]
    Spawn {
        /// The instance.
        id: InstanceId,
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("cannot signal {id}: {message}")]
    Signal {
        /// The instance.
        id: InstanceId,
        /// What went wrong.
        message: String,
    },
    /// No free port for a new instance.
    #[error("no free port for a new instance of {service}: {source}")]
    Port {
        /// The service.
        service: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The lifecycle stream was already taken.
    #[error("the lifecycle stream is already watched")]
    AlreadyWatched,
    /// The Kubernetes API refused or failed.
    #[error(transparent)]
    Kubernetes(#[from] KubernetesError),
    /// No actuator runs this service.
    #[error("no actuator runs service {0}")]
    NoActuator(String),
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Which instance.
    pub id: InstanceId,
    /// Where it will serve.
    pub addr: SocketAddr,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment added to the platform's.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// A service's instances as one template: what [`Actuator::scale`] starts more of.
/// `{service}`, `{index}`, `{port}` and `{data_dir}` in the command and environment values
/// are replaced per instance.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// The service.
    pub service: String,
    /// Program and arguments (templates).
    pub command: Vec<String>,
    /// Environment (templates), added to the platform's.
    pub env: Vec<(String, String)>,
    /// The variable that carries the port (`AIODS_PORT` by default).
    pub port_env: String,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// The platform's data directory, for `{data_dir}`.
    pub data_dir: PathBuf,
    /// How long a scaled-in instance has to drain after SIGTERM.
    pub drain_grace: Duration,
}

impl WorkloadSpec {
    /// The spec of instance `index` serving on `port` (loopback).
    pub fn instance(&self, index: u32, port: u16) -> InstanceSpec {
        let id = InstanceId::new(self.service.clone(), index);
        let (index_text, port_text) = (index.to_string(), port.to_string());
        let data_dir = self.data_dir.display().to_string();
        let vars = [
            ("service", self.service.as_str()),
            ("index", index_text.as_str()),
            ("port", port_text.as_str()),
            ("data_dir", data_dir.as_str()),
        ];
        let mut env = vec![
            (self.port_env.clone(), port_text.clone()),
            (
                "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                format!("service.instance.id={id}"),
            ),
        ];
        env.extend(
            self.env
                .iter()
                .map(|(k, v)| (k.clone(), crate::config::topology::expand(v, &vars))),
        );
        InstanceSpec {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            id,
            command: self
                .command
                .iter()
                .map(|a| crate::config::topology::expand(a, &vars))
                .collect(),
            env,
            cwd: self.cwd.clone(),
        }
    }
}

/// Whether an instance takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Known at `addr` but not sent traffic yet (starting).
    Registered(SocketAddr),
    /// In traffic at `addr`.
    In(SocketAddr),
    /// Out of traffic, still known.
    Out,
    /// Gone for good (replaced, scaled in).
    Forgotten,
}

/// What happened to an instance, as the actuator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// A generation of an instance started (or was found running).
    Started {
        /// The instance.
        id: InstanceId,
        /// Its generation (1 for the first start, bumped at every start).
        generation: u64,
        /// Where it serves.
        addr: SocketAddr,
        /// Its process id, when it is a local process.
        pid: Option<u32>,
        /// When (ns since the epoch).
        at: u64,
    },
    /// It could not be started.
    StartFailed {
        /// The instance.
        id: InstanceId,
        /// The generation that failed.
        generation: u64,
        /// Why.
        error: String,
        /// When.
        at: u64,
    },
    /// A generation ended (seen the instant the process is reaped).
    Exited {
        /// The instance.
        id: InstanceId,
        /// Its generation.
        generation: u64,
        /// How.
        exit: ExitReason,
        /// When.
        at: u64,
    },
    /// Something the engine reports about a running instance (a container restart or OOM
    /// kill, a crash-loop back-off, an eviction, a readiness change), at the engine's time.
    /// The engine acts on it itself: evidence, not a request to repair.
    Observed {
        /// The instance.
        id: InstanceId,
        /// What it is evidence of (`ProcessExit`, `Readiness`).
        signal: crate::incident::Signal,
        /// A recovery (the pod became Ready) rather than a failure.
        healthy: bool,
        /// What happened (`pod`, `reason`, `description`, ...).
        detail: serde_json::Value,
        /// When, by the engine's clock.
        at: u64,
    },
}

/// The lifecycle events of everything an actuator runs.
pub type LifecycleStream = mpsc::UnboundedReceiver<LifecycleEvent>;

/// An instance as the actuator reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInstance {
    /// The instance.
    pub id: InstanceId,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its current generation.
    pub generation: u64,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// Whether it runs now.
    pub running: bool,
}

/// Why the supervisor calls a verb: the incident it serves and the reason recorded there, so
/// that an engine which writes its own record beside the object (a Kubernetes Event) says
/// what the incident says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason {
    /// The incident the action belongs to (none: the platform's own housekeeping).
    pub incident: Option<String>,
    /// The reason, as the incident's action records it.
    pub text: String,
}

impl Reason {
    /// The reason of an action of incident `incident`.
    pub fn incident(incident: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            incident: Some(incident.into()),
            text: text.into(),
        }
    }

    /// A reason that belongs to no incident (shutdown, housekeeping).
    pub fn platform(text: impl Into<String>) -> Self {
        Self {
            incident: None,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.incident, self.text.is_empty()) {
            (Some(inc), false) => write!(f, "incident {inc}: {}", self.text),
            (Some(inc), true) => write!(f, "incident {inc}"),
            (None, _) => f.write_str(&self.text),
        }
    }
}

/// What a scale call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleOutcome {
    /// Instances started (their `Started` events follow on the stream).
    pub started: Vec<InstanceId>,
    /// Instances being stopped (their `Exited` events follow).
    pub stopping: Vec<InstanceId>,
}

/// Where output lines of an instance go.
pub trait LineSink: Send + Sync + std::fmt::Debug {
    /// One line from stdout (`stderr == false`) or stderr.
    fn line(&self, id: &InstanceId, stderr: bool, line: String);
}

/// Acts on the instances of services: the supervisor's only way to change the world.
#[async_trait::async_trait]
pub trait Actuator: Send + Sync + std::fmt::Debug {
    /// Starts one instance from its spec; a `Started` (or `StartFailed`) event follows.
    async fn start(&self, spec: InstanceSpec) -> Result<(), ActuatorError>;
    /// Stops an instance for good: SIGTERM (or the engine's graceful delete), then a kill
    /// after `grace` (zero: at once). Its `Exited` event follows.
    async fn stop(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError>;
    /// Restarts an instance — stopped first within `grace` if it still runs; the engine may
    /// replace it with a new one. `Exited` and `Started` events follow.
    async fn restart(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError>;
    /// Scales `workload` to `replicas` instances; new ones are started from its template,
    /// extra ones (the newest) stopped after its drain grace.
    async fn scale(
        &self,
        workload: &WorkloadSpec,
        replicas: u32,
        why: &Reason,
    ) -> Result<ScaleOutcome, ActuatorError>;
    /// Takes an instance into traffic or out of it. Synchronous, so the order of calls is
    /// the order of effect; an engine that needs an API call queues it in order.
    fn set_traffic(&self, id: &InstanceId, traffic: Traffic);
    /// The instances it runs now, including ones the platform did not start.
    async fn list(&self) -> Result<Vec<ObservedInstance>, ActuatorError>;
    /// The lifecycle events of every instance it runs; answered once.
    fn watch(&self) -> Result<LifecycleStream, ActuatorError>;
}
