//! The controller: the one event loop that owns instance and incident state. It only
//! dispatches: probe results and lifecycle events update instances ([`lifecycle`]), the pure
//! policies decide repairs and scaling ([`repair`], [`scaling`]), the [`Actuator`] carries them
//! out in spawned tasks whose effects come back as events, and the [`IncidentLedger`] records —
//! flushed once per event, so one event is at most one write per incident.

mod instance;
mod lifecycle;
mod repair;
mod rolling;
mod scaling;
mod setup;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use self::instance::{Instance, Replacement};
use super::actuator::{Actuator, LifecycleEvent, LifecycleStream, Reason, Traffic, WorkloadSpec};
use super::backoff::RestartBudget;
use super::ledger::IncidentLedger;
use super::policy::ScaleTimers;
use super::{Event, SupervisorError, View};
use crate::common::instance::InstanceId;
use crate::config::{RecoveryMode, ServiceConfig, Topology};
use crate::detect::Finding;
use crate::gateway::{RequestStats, Routes};
use crate::incident::{ActionRef, ActionStatus, Notifier};
use crate::store::IncidentDb;

/// Grace of the instances stopped when the platform stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often scaling is considered.
const SCALE_TICK: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct ServiceState {
    cfg: ServiceConfig,
    mode: RecoveryMode,
    /// Restarts (crash and hang repair).
    budget: RestartBudget,
    /// Scale-outs: a budget of their own.
    scale_budget: RestartBudget,
    /// The template its instances are started from (services with a `command`).
    workload: Option<WorkloadSpec>,
    scale: ScaleTimers,
    /// The incident the last scale-out was recorded on (scale-in is recorded there too).
    scale_incident: Option<String>,
    /// A scale-out waiting for its new instance to start.
    pending_scale_out: Option<ActionRef>,
    /// Replacements asked for, waiting for their new instance to start.
    pending_replacements: VecDeque<Replacement>,
    /// A rolling restart on an error burn, one instance at a time.
    rolling: Option<Rolling>,
    /// Messages waiting for its consumers, and when the detectors last said so.
    backlog: Option<(f64, std::time::Instant)>,
}

/// A rolling restart in progress.
#[derive(Debug)]
struct Rolling {
    /// The incident it serves.
    incident: String,
    /// Why, as recorded.
    why: String,
    /// The service's 5xx share before the first restart.
    share_before: f64,
    /// The instance restarted last, and its generation when it was restarted.
    current: (InstanceId, u64),
    /// Since when it has been ready again.
    ready_since: Option<std::time::Instant>,
    /// Instances still to restart.
    queue: VecDeque<InstanceId>,
}

/// What the controller is wired to.
#[derive(Debug)]
pub(super) struct Wiring {
    /// Acts on instances.
    pub(super) actuator: Arc<dyn Actuator>,
    /// Its own input (probes and timers send here).
    pub(super) events: mpsc::UnboundedSender<Event>,
    /// The gateway's table, read for in-flight requests per instance.
    pub(super) routes: Arc<Routes>,
    /// What the gateway's clients saw, read to judge a rolling restart.
    pub(super) stats: Arc<RequestStats>,
    /// What the API reads.
    pub(super) view: Arc<RwLock<View>>,
    /// Incident tables.
    pub(super) db: Option<IncidentDb>,
    /// Webhook notifications.
    pub(super) notifier: Notifier,
    /// Where instances send telemetry.
    pub(super) platform_addr: SocketAddr,
    /// The gateway's address, when upstream calls go through it.
    pub(super) gateway_addr: Option<SocketAddr>,
}

/// Owns the state; runs as one task.
#[derive(Debug)]
pub(super) struct Controller {
    services: BTreeMap<String, ServiceState>,
    instances: BTreeMap<InstanceId, Instance>,
    ledger: IncidentLedger,
    actuator: Arc<dyn Actuator>,
    lifecycle: Option<LifecycleStream>,
    events: mpsc::UnboundedSender<Event>,
    routes: Arc<Routes>,
    stats: Arc<RequestStats>,
    view: Arc<RwLock<View>>,
    db: Option<IncidentDb>,
    probe_client: reqwest::Client,
    shutting_down: bool,
    /// The recovery mode of services that do not set one.
    default_mode: RecoveryMode,
    /// The platform's data directory (services' templates name it).
    data_dir: std::path::PathBuf,
}

impl Controller {
    /// Builds the state for `topology` (nothing starts until [`Controller::start_all`]).
    pub(super) async fn new(topology: &Topology, wiring: Wiring) -> Result<Self, SupervisorError> {
        let plan = setup::plan(topology, &wiring).await?;
        let ledger = IncidentLedger::load(
            wiring.db.clone(),
            wiring.notifier,
            plan.deps,
            wiring.view.clone(),
        )
        .await?;
        let lifecycle = wiring.actuator.watch()?;
        let probe_client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Ok(Self {
            services: plan.services,
            instances: plan.instances,
            ledger,
            actuator: wiring.actuator,
            lifecycle: Some(lifecycle),
            events: wiring.events,
            routes: wiring.routes,
            stats: wiring.stats,
            view: wiring.view,
            db: wiring.db,
            probe_client,
            shutting_down: false,
            default_mode: topology.incidents.mode,
            data_dir: topology.platform.data_dir.clone(),
        })
    }

    /// Starts every managed instance and probes every external one.
    pub(super) async fn start_all(&mut self) {
        let ids: Vec<InstanceId> = self.instances.keys().cloned().collect();
        for id in ids {
            let Some(inst) = self.instances.get_mut(&id) else {
                continue;
            };
            self.actuator
                .set_traffic(&id, Traffic::Registered(inst.addr));
            if !inst.managed {
                self.spawn_probe(&id);
                continue;
            }
            inst.status = super::InstanceStatus::Starting;
            let spec = self
                .services
                .get(&id.service)
                .and_then(|s| s.workload.as_ref())
                .map(|w| w.instance(id.index, inst.addr.port()));
            if let Some(spec) = spec
                && let Err(e) = self.actuator.start(spec).await
            {
                tracing::error!(%id, error = %e, "cannot start instance");
            }
        }
        self.publish();
    }

    /// Runs until [`Event::Shutdown`] or until every sender is gone.
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(SCALE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let Some(mut lifecycle) = self.lifecycle.take() else {
            return;
        };
        loop {
            let ticking = self
                .services
                .values()
                .any(|s| scaling::enabled(&s.cfg) || s.rolling.is_some());
            tokio::select! {
                e = rx.recv() => match e {
                    Some(Event::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(e) => self.dispatch(e).await,
                    None => return,
                },
                Some(e) = lifecycle.recv() => self.on_lifecycle(e).await,
                _ = tick.tick(), if ticking => {
                    if !self.shutting_down {
                        self.scale_tick();
                        self.roll_tick();
                    }
                }
            }
            self.ledger.flush();
            self.publish();
        }
    }

    async fn dispatch(&mut self, event: Event) {
        match event {
            Event::Probe(p) => self.on_probe(p).await,
            Event::Finding(finding) => self.on_finding(finding).await,
            Event::RestartDue { id } => {
                if !self.shutting_down {
                    self.restart_now(&id);
                }
            }
            Event::Approve {
                incident,
                by,
                reply,
            } => {
                let r = self.approve(&incident, &by);
                self.ledger.flush();
                let _ = reply.send(r);
            }
            Event::ActionFailed { id, what, error } => self.on_action_failed(&id, what, &error),
            Event::AddService(service) => self.add_service(*service),
            Event::Adopt { service, instances } => {
                let now = crate::common::time::now_nanos();
                for i in instances.into_iter().filter(|i| i.running) {
                    if i.id.service == service
                        && self.services.contains_key(&service)
                        && !self.instances.contains_key(&i.id)
                    {
                        self.on_started(&i.id, i.generation, i.addr, i.pid, now);
                    }
                }
            }
            Event::RemoveService { name } => self.remove_service(&name),
            Event::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    async fn on_finding(&mut self, finding: Finding) {
        match finding {
            Finding::State(state) => self.on_detector(state).await,
            Finding::Evidence {
                service,
                signal,
                instance,
                detail,
            } => {
                if let Some(inc) = self.ledger.open_incident(&service) {
                    let at = crate::common::time::now_nanos();
                    self.ledger
                        .evidence(&inc, signal, instance.as_ref(), detail, at);
                }
            }
            Finding::ConsumerStall { service, change } => {
                self.on_consumer_stall(&service, change);
            }
            Finding::ConsumerBacklog { service, backlog } => {
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.backlog = Some((backlog, std::time::Instant::now()));
                }
            }
            Finding::RootCauses { service, causes } => {
                if let Some(inc) = self.ledger.open_incident(&service) {
                    self.ledger.root_causes(&inc, causes);
                }
            }
        }
    }

    async fn on_lifecycle(&mut self, event: LifecycleEvent) {
        match event {
            LifecycleEvent::Started {
                id,
                generation,
                addr,
                pid,
                at,
            } => self.on_started(&id, generation, addr, pid, at),
            LifecycleEvent::StartFailed {
                id,
                generation,
                error,
                at,
            } => self.on_start_failed(&id, generation, error, at).await,
            LifecycleEvent::Exited {
                id,
                generation,
                exit,
                at,
            } => self.on_exit(&id, generation, exit, at).await,
            LifecycleEvent::Observed {
                id,
                signal,
                healthy,
                detail,
                at,
            } => self.on_observed(&id, signal, healthy, detail, at),
        }
    }

    async fn shutdown(&mut self) {
        self.shutting_down = true;
        // Pods outlive the platform: only its own processes are stopped.
        let ids: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.managed)
            .filter(|i| {
                self.services
                    .get(&i.id.service)
                    .is_none_or(|s| s.cfg.kubernetes.is_none())
            })
            .map(|i| i.id.clone())
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let actuator = self.actuator.clone();
            set.spawn(async move {
                let why = Reason::platform("the platform is stopping");
                actuator.stop(&id, SHUTDOWN_GRACE, &why).await
            });
        }
        while set.join_next().await.is_some() {}
        for inst in self.instances.values_mut() {
            inst.stop_probe();
        }
        self.ledger.flush();
        self.publish();
    }

    /// Forgets an instance whose process is gone (replaced or scaled in).
    fn forget(&mut self, id: &InstanceId) {
        if let Some(mut inst) = self.instances.remove(id) {
            inst.stop_probe();
        }
        self.actuator.set_traffic(id, Traffic::Forgotten);
    }

    /// Publishes every instance to the API's view.
    fn publish(&self) {
        let mut view = self.view.write();
        view.instances = self
            .instances
            .iter()
            .map(|(id, i)| (id.clone(), i.view()))
            .collect();
    }

    /// Supervises a service found while running. Its pods come on the lifecycle stream.
    fn add_service(&mut self, service: ServiceConfig) {
        if self.shutting_down || self.services.contains_key(&service.name) {
            return;
        }
        tracing::info!(service = %service.name, "supervising a service found while running");
        let workload = setup::kubernetes_workload(&service, &self.data_dir);
        let state = setup::service_state(&service, self.default_mode, Some(workload));
        let name = service.name.clone();
        self.services.insert(name.clone(), state);
        // Pods seen on the stream before the service was known were not adopted: adopt
        // what the actuator runs now.
        let (actuator, events) = (self.actuator.clone(), self.events.clone());
        tokio::spawn(async move {
            match actuator.list().await {
                Ok(instances) => {
                    let _ = events.send(Event::Adopt {
                        service: name,
                        instances,
                    });
                }
                Err(error) => tracing::error!(service = %name, %error, "cannot list its instances"),
            }
        });
    }

    /// Forgets a service let go and its instances (they keep running: aiops did not start
    /// them); its open incident says so.
    fn remove_service(&mut self, name: &str) {
        if self.services.remove(name).is_none() {
            return;
        }
        tracing::info!(service = name, "no longer supervising a service");
        let ids: Vec<InstanceId> = self
            .instances
            .keys()
            .filter(|id| id.service == name)
            .cloned()
            .collect();
        for id in ids {
            if let Some(mut inst) = self.instances.remove(&id) {
                inst.stop_probe();
            }
        }
        if let Some(inc) = self.ledger.open_incident(name) {
            let message = format!(
                "{name} is no longer supervised: its Deployment was deleted or lost the aiods.dev/watch annotation"
            );
            self.ledger
                .note(&inc, crate::common::time::now_nanos(), "note", message);
        }
    }

    /// Spawns an actuator call; a failure is logged and comes back as
    /// [`Event::ActionFailed`] (its effects, or their absence, come on the lifecycle stream).
    fn act<F>(&self, what: &'static str, id: InstanceId, call: F)
    where
        F: Future<Output = Result<(), super::ActuatorError>> + Send + 'static,
    {
        let events = self.events.clone();
        tokio::spawn(async move {
            if let Err(error) = call.await {
                tracing::error!(%id, %error, "{what} failed");
                let error = error.to_string();
                let _ = events.send(Event::ActionFailed { id, what, error });
            }
        });
    }

    /// An actuator call failed: the action it carried out fails, and the incident says why
    /// (a missing RBAC permission, an autoscaler that owns the replicas).
    fn on_action_failed(&mut self, id: &InstanceId, what: &str, error: &str) {
        let message = format!("{what} of {id} failed: {error}");
        let awaiting = self
            .instances
            .get_mut(id)
            .and_then(|i| i.awaiting_start.take());
        let scale_out = self
            .services
            .get_mut(&id.service)
            .and_then(|s| s.pending_scale_out.take().filter(|_| what == "scale out"));
        for action in awaiting.iter().chain(scale_out.iter()) {
            self.ledger
                .settle(action, ActionStatus::Failed, message.clone());
        }
        if let Some(inc) = self.ledger.open_incident(&id.service) {
            self.ledger
                .note(&inc, crate::common::time::now_nanos(), "note", message);
        }
    }

    fn grace(&self, service: &str) -> Duration {
        self.services
            .get(service)
            .map(|s| Duration::from_millis(s.cfg.recovery.kill_grace_ms))
            .unwrap_or_default()
    }
}
