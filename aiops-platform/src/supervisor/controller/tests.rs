//! The controller driven through its real event loop, with a scripted actuator (the test's
//! stand-in for an engine: it answers every call with the lifecycle events an engine would
//! send) and a real SQLite incident database.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use super::{Controller, Wiring};
use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::config::topology::Balance;
use crate::config::{ServiceConfig, Topology};
use crate::gateway::Routes;
use crate::incident::{ActionKind, ActionStatus, IncidentStatus, Notifier};
use crate::store::IncidentDb;
use crate::supervisor::actuator::{
    Actuator, ActuatorError, InstanceSpec, LifecycleEvent, LifecycleStream, ObservedInstance,
    Reason, ScaleOutcome, Traffic, WorkloadSpec,
};
use crate::supervisor::{Event, ExitReason, ProbeKind, ProbeResult, View};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Start(InstanceId),
    Restart(InstanceId, Reason),
}

/// Answers each call with the events an engine would send.
#[derive(Debug)]
struct ScriptedEngine {
    calls: Mutex<Vec<Call>>,
    generations: Mutex<std::collections::HashMap<InstanceId, u64>>,
    events: mpsc::UnboundedSender<LifecycleEvent>,
    stream: Mutex<Option<LifecycleStream>>,
    /// Restarts fail as an API server without the permission would make them.
    forbidden: std::sync::atomic::AtomicBool,
}

impl ScriptedEngine {
    fn new() -> Arc<Self> {
        let (events, stream) = mpsc::unbounded_channel();
        Arc::new(Self {
            calls: Mutex::default(),
            generations: Mutex::default(),
            events,
            stream: Mutex::new(Some(stream)),
            forbidden: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn started(&self, id: &InstanceId) {
        let generation = {
            let mut g = self.generations.lock();
            let n = g.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let _ = self.events.send(LifecycleEvent::Started {
            id: id.clone(),
            generation,
            addr: "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}")),
            pid: Some(4242),
            at: now_nanos(),
        });
    }

    fn crash(&self, id: &InstanceId) {
        let generation = self.generations.lock().get(id).copied().unwrap_or(0);
        let _ = self.events.send(LifecycleEvent::Exited {
            id: id.clone(),
            generation,
            exit: ExitReason::Signal(9),
            at: now_nanos(),
        });
    }
}

#[async_trait::async_trait]
impl Actuator for ScriptedEngine {
    async fn start(&self, spec: InstanceSpec) -> Result<(), ActuatorError> {
        self.calls.lock().push(Call::Start(spec.id.clone()));
        self.started(&spec.id);
        Ok(())
    }
    async fn stop(&self, _: &InstanceId, _: Duration, _: &Reason) -> Result<(), ActuatorError> {
        Ok(())
    }
    async fn restart(
        &self,
        id: &InstanceId,
        _: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        self.calls
            .lock()
            .push(Call::Restart(id.clone(), why.clone()));
        if self.forbidden.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::supervisor::actuator::KubernetesError::Forbidden {
                verb: "delete",
                resource: "pods",
                namespace: "aiods".into(),
                message: "pods \"svc-1\" is forbidden".into(),
            }
            .into());
        }
        self.started(id);
        Ok(())
    }
    async fn scale(
        &self,
        _: &WorkloadSpec,
        _: u32,
        _: &Reason,
    ) -> Result<ScaleOutcome, ActuatorError> {
        Ok(ScaleOutcome::default())
    }
    fn set_traffic(&self, _: &InstanceId, _: Traffic) {}
    async fn list(&self) -> Result<Vec<ObservedInstance>, ActuatorError> {
        Ok(self
            .generations
            .lock()
            .iter()
            .map(|(id, generation)| ObservedInstance {
                id: id.clone(),
                addr: "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}")),
                generation: *generation,
                pid: None,
                running: true,
            })
            .collect())
    }
    fn watch(&self) -> Result<LifecycleStream, ActuatorError> {
        self.stream
            .lock()
            .take()
            .ok_or(ActuatorError::AlreadyWatched)
    }
}

fn ready(id: &InstanceId, generation: u64) -> Event {
    Event::Probe(ProbeResult {
        id: id.clone(),
        generation,
        kind: ProbeKind::Both,
        ok: true,
        sent_at: now_nanos(),
        done_at: now_nanos(),
        detail: String::new(),
    })
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A controller for one service `svc` (one replica), running, with its instance ready.
async fn running_controller() -> (
    tempfile::TempDir,
    IncidentDb,
    Arc<ScriptedEngine>,
    mpsc::UnboundedSender<Event>,
    Arc<RwLock<View>>,
) {
    crate::common::install_crypto_provider();
    let topology: Topology = toml::from_str(
        r#"
        [[service]]
        name = "svc"
        command = ["never-run"]
        health = { startup_grace_ms = 600000 }
        "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db = IncidentDb::open(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = ScriptedEngine::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let view = Arc::new(RwLock::new(View::default()));
    let wiring = Wiring {
        actuator: engine.clone(),
        events: tx.clone(),
        routes: Arc::new(Routes::new(Balance::RoundRobin)),
        stats: Arc::default(),
        view: view.clone(),
        db: Some(db.clone()),
        notifier: Notifier::new(None),
        platform_addr: "127.0.0.1:4318".parse().unwrap_or_else(|e| panic!("{e}")),
        gateway_addr: None,
    };
    let mut controller = Controller::new(&topology, wiring)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    controller.start_all().await;
    tokio::spawn(controller.run(rx));
    let id = InstanceId::new("svc", 0);
    // Probes are spawned once the start is seen: answer only then.
    eventually("svc#0 started", || {
        let v = view.read();
        v.instances
            .get(&id)
            .is_some_and(|i| i.generation == 1)
            .then_some(())
    })
    .await;
    let _ = tx.send(ready(&id, 1));
    eventually("svc#0 ready", || {
        let v = view.read();
        v.instances
            .get(&id)
            .is_some_and(|i| i.status.as_str() == "ready")
            .then_some(())
    })
    .await;
    (dir, db, engine, tx, view)
}

/// Crashes `id` (generation 1), answers its restart ready, and waits for the crash's incident
/// to resolve; answers it.
async fn crash_until_resolved(
    engine: &ScriptedEngine,
    tx: &mpsc::UnboundedSender<Event>,
    view: &RwLock<View>,
    id: &InstanceId,
) -> crate::incident::Incident {
    engine.crash(id);
    eventually("the restart's start", || {
        let v = view.read();
        v.instances
            .get(id)
            .is_some_and(|i| i.generation == 2)
            .then_some(())
    })
    .await;
    let _ = tx.send(ready(id, 2));
    eventually("the incident resolved", || {
        let v = view.read();
        v.incidents
            .values()
            .find(|i| i.status == IncidentStatus::Resolved)
            .cloned()
    })
    .await
}

#[tokio::test]
async fn a_crash_is_one_write_per_change_and_the_engine_is_asked_to_restart() {
    let (_dir, db, engine, tx, view) = running_controller().await;
    let id = InstanceId::new("svc", 0);
    let before = db.incident_writes();

    let incident = crash_until_resolved(&engine, &tx, &view, &id).await;
    db.flush().await;

    // Opened (with its evidence and the scheduled restart), restart executed, resolved.
    assert_eq!(db.incident_writes() - before, 3, "{incident:#?}");
    // The engine is told why, as the incident records it.
    let why = Reason::incident(incident.id.clone(), incident.actions[0].why.clone());
    assert!(why.text.contains("svc#0"), "{why}");
    assert_eq!(
        *engine.calls.lock(),
        [Call::Start(id.clone()), Call::Restart(id.clone(), why)]
    );
    assert_eq!(incident.restarts, 1);
    assert_eq!(incident.actions.len(), 1);
    assert_eq!(incident.actions[0].what, ActionKind::Restart);
    assert_eq!(incident.actions[0].status, ActionStatus::Executed);
    let stored = db.recent(10).await.unwrap_or_default();
    assert_eq!(
        stored.first().map(|i| i.status),
        Some(IncidentStatus::Resolved)
    );
}

#[tokio::test]
async fn a_refused_action_fails_with_a_note_saying_why() {
    let (_dir, _db, engine, _tx, view) = running_controller().await;
    let id = InstanceId::new("svc", 0);
    engine
        .forbidden
        .store(true, std::sync::atomic::Ordering::SeqCst);
    engine.crash(&id);
    let incident = eventually("the restart failed", || {
        let v = view.read();
        v.incidents
            .values()
            .find(|i| {
                i.actions
                    .first()
                    .is_some_and(|a| a.status == ActionStatus::Failed)
            })
            .cloned()
    })
    .await;
    let result = incident.actions[0].result.clone().unwrap_or_default();
    assert!(
        result.contains("missing RBAC permission: cannot delete pods"),
        "{result}"
    );
    assert!(
        incident
            .timeline
            .iter()
            .any(|t| t.kind == "note" && t.message.contains("restart of svc#0 failed")),
        "{:#?}",
        incident.timeline
    );
}

#[tokio::test]
async fn engine_observations_are_evidence_at_their_own_time_until_ready_again() {
    let (_dir, _db, engine, _tx, view) = running_controller().await;
    let id = InstanceId::new("svc", 0);
    let at = now_nanos() - 5_000_000_000;
    let _ = engine.events.send(LifecycleEvent::Observed {
        id: id.clone(),
        signal: crate::incident::Signal::ProcessExit,
        healthy: false,
        detail: serde_json::json!({"reason": "OOMKilled", "description": "container app restarted (OOMKilled)"}),
        at,
    });
    let incident = eventually("the incident", || {
        view.read().incidents.values().next().cloned()
    })
    .await;
    assert_eq!(incident.failure_start_unix_nano, at);
    assert_eq!(incident.evidence[0].at_unix_nano, at);
    assert_eq!(incident.evidence[0].detail["reason"], "OOMKilled");
    assert!(
        incident.actions.is_empty(),
        "the engine restarted it already"
    );

    let _ = engine.events.send(LifecycleEvent::Observed {
        id: id.clone(),
        signal: crate::incident::Signal::Readiness,
        healthy: true,
        detail: serde_json::json!({"description": "pod became Ready"}),
        at: at + 1_000_000_000,
    });
    let resolved = eventually("resolved", || {
        view.read()
            .incidents
            .values()
            .find(|i| i.status == IncidentStatus::Resolved)
            .cloned()
    })
    .await;
    assert_eq!(resolved.recovered_unix_nano, Some(at + 1_000_000_000));
    assert_eq!(*engine.calls.lock(), [Call::Start(id)]);
}

#[tokio::test]
async fn a_service_found_while_running_is_supervised_and_one_let_go_is_forgotten() {
    let (_dir, _db, engine, tx, view) = running_controller().await;
    let found = InstanceId::new("found", 0);
    // Before the service is known, its pods are no instances of anything.
    engine.started(&found);
    engine.started(&InstanceId::new("svc", 0));
    eventually("svc#0 restarted", || {
        let v = view.read();
        v.instances
            .get(&InstanceId::new("svc", 0))
            .is_some_and(|i| i.generation == 2)
            .then_some(())
    })
    .await;
    assert!(!view.read().instances.contains_key(&found));

    let mut service = ServiceConfig::named("found").unwrap_or_else(|e| panic!("{e}"));
    service.health.startup_grace_ms = 600_000;
    service.kubernetes = Some(crate::config::KubernetesServiceConfig {
        namespace: "aiods".into(),
        deployment: Some("found".into()),
        selector: None,
        port: 8080,
    });
    // Its pod started before it was added (its Started came too early): adopted from the
    // actuator's list.
    let _ = tx.send(Event::AddService(Box::new(service.clone())));
    eventually("found#0 adopted", || {
        view.read().instances.contains_key(&found).then_some(())
    })
    .await;
    // Added twice: still one service, its instance kept.
    let _ = tx.send(Event::AddService(Box::new(service)));
    let _ = tx.send(Event::RemoveService {
        name: "found".into(),
    });
    eventually("found#0 forgotten", || {
        (!view.read().instances.contains_key(&found)).then_some(())
    })
    .await;
    assert!(
        view.read()
            .instances
            .contains_key(&InstanceId::new("svc", 0))
    );
}

/// A consumer of `svc` at `instance` (host:port) stalled, or finishing messages again.
fn stall(stalled: bool, instance: &str) -> Event {
    Event::Finding(crate::detect::Finding::ConsumerStall {
        service: "svc".into(),
        change: crate::detect::messaging::StallChange {
            instance: instance.into(),
            group: "kitchen".into(),
            stalled,
            at: now_nanos(),
            backlog: 12.0,
        },
    })
}

#[tokio::test]
async fn a_stalled_consumer_at_an_address_no_instance_has_is_a_service_incident_without_restart() {
    let (_dir, _db, engine, tx, view) = running_controller().await;
    let _ = tx.send(stall(true, "127.0.0.1:10"));
    let other = eventually("the service-level incident", || {
        let v = view.read();
        v.incidents.values().next().cloned()
    })
    .await;
    assert!(other.actions.is_empty(), "{other:#?}");
    assert!(other.title.contains("at 127.0.0.1:10"), "{}", other.title);
    let _ = tx.send(stall(false, "127.0.0.1:10"));
    eventually("the service-level incident over", || {
        let v = view.read();
        v.incidents
            .values()
            .all(|i| i.status == IncidentStatus::Resolved)
            .then_some(())
    })
    .await;
    assert_eq!(engine.calls.lock().len(), 1, "only the first start");
}

#[tokio::test]
async fn a_stalled_consumer_instance_is_killed_and_restarted_and_its_incident_ends_when_ready() {
    let (_dir, _db, engine, tx, view) = running_controller().await;
    let id = InstanceId::new("svc", 0);
    // The engine starts svc#0 on 127.0.0.1:9.
    let _ = tx.send(stall(true, "127.0.0.1:9"));
    let incident = eventually("the restart", || {
        let v = view.read();
        v.incidents
            .values()
            .find(|i| i.title.contains("svc#0") && !i.actions.is_empty())
            .cloned()
    })
    .await;
    assert_eq!(incident.actions[0].what, ActionKind::KillAndRestart);
    assert!(
        incident.title.contains("consumer kitchen stalled"),
        "{}",
        incident.title
    );
    assert!(
        incident
            .evidence
            .iter()
            .any(|e| e.signal == crate::incident::Signal::ConsumerStalled),
        "{incident:#?}"
    );
    eventually("the engine asked to restart svc#0", || {
        engine
            .calls
            .lock()
            .iter()
            .any(|c| matches!(c, Call::Restart(i, _) if *i == id))
            .then_some(())
    })
    .await;
    let _ = tx.send(ready(&id, 2));
    eventually("the incident resolved once svc#0 is ready again", || {
        let v = view.read();
        v.incidents
            .get(&incident.id)
            .is_some_and(|i| i.status == IncidentStatus::Resolved)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn failures_a_repair_already_ended_are_evidence_of_its_incident_not_a_second_one() {
    let (_dir, _db, engine, tx, view) = running_controller().await;
    let id = InstanceId::new("svc", 0);
    let crashed_at = now_nanos();
    let resolved = crash_until_resolved(&engine, &tx, &view, &id).await;
    let burn = |since: u64, recovered_at: u64| {
        Event::Finding(crate::detect::Finding::State(
            crate::detect::DetectorState {
                service: "svc".into(),
                signal: crate::incident::Signal::ErrorRate,
                active: true,
                since,
                recovered_at,
                detail: serde_json::json!({}),
            },
        ))
    };
    // The requests the crash failed, judged a tick after the recovery.
    let recovered = resolved.recovered_unix_nano.unwrap_or_default();
    let _ = tx.send(burn(
        crashed_at.saturating_sub(1_000_000),
        recovered + 5_000_000,
    ));
    eventually("the burn attached to the resolved incident", || {
        let v = view.read();
        v.incidents
            .get(&resolved.id)
            .is_some_and(|i| i.signals.contains(&crate::incident::Signal::ErrorRate))
            .then_some(())
    })
    .await;
    assert_eq!(view.read().incidents.len(), 1, "no second incident");
    // Failures going on well after the recovery are a new incident.
    let _ = tx.send(burn(crashed_at, recovered + 10_000_000_000));
    eventually("a second incident for failures after the recovery", || {
        (view.read().incidents.len() == 2).then_some(())
    })
    .await;
}
