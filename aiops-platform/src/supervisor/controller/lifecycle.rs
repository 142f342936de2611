//! What the controller does when an instance starts, exits or answers a probe.

use std::net::SocketAddr;
use std::time::Instant;

use super::Controller;
use super::instance::Instance;
use crate::common::instance::InstanceId;
use crate::detect::messaging::StallChange;
use crate::incident::{ActionStatus, ConditionKey, Signal};
use crate::supervisor::actuator::Traffic;
use crate::supervisor::policy::{self, ProbeCounters, ProbeThresholds};
use crate::supervisor::{ExitReason, InstanceStatus, ProbeResult};

impl Controller {
    pub(super) fn spawn_probe(&mut self, id: &InstanceId) {
        let Some(health) = self.services.get(&id.service).map(|s| s.cfg.health.clone()) else {
            return;
        };
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.stop_probe();
        inst.probe = Some(tokio::spawn(crate::supervisor::probe::run(
            self.probe_client.clone(),
            id.clone(),
            inst.generation,
            inst.addr,
            health,
            self.events.clone(),
        )));
    }

    /// A generation started: probe it; settle the action that started it. An instance the
    /// controller does not know (a scale-out, a replacement, one the engine started) is
    /// adopted.
    pub(super) fn on_started(
        &mut self,
        id: &InstanceId,
        generation: u64,
        addr: SocketAddr,
        pid: Option<u32>,
        _at: u64,
    ) {
        if !self.instances.contains_key(id) && (self.shutting_down || !self.adopt(id, addr)) {
            return;
        }
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.generation = generation;
        inst.addr = addr;
        inst.pid = pid;
        inst.running = true;
        if !inst.retire_on_exit {
            inst.status = InstanceStatus::Starting;
        }
        inst.started = Instant::now();
        inst.probes = ProbeCounters::default();
        let port = addr.port();
        if let Some(db) = &self.db {
            let process = pid.and_then(crate::supervisor::actuator::process_identity);
            db.save_instance(&id.service, id.index, port, pid, process);
        }
        tracing::info!(%id, ?pid, generation, port, "instance started");
        if let Some(action) = inst.awaiting_start.take() {
            inst.restarts += 1;
            self.ledger.count_restart(&action.incident);
            let pid = pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            self.ledger.settle(
                &action,
                ActionStatus::Executed,
                format!("started pid {pid} on port {port} (generation {generation})"),
            );
        }
        self.spawn_probe(id);
    }

    /// Takes in an instance started outside the controller's own restarts: a pending
    /// scale-out or replacement claims it. Answers false when the service is unknown.
    fn adopt(&mut self, id: &InstanceId, addr: SocketAddr) -> bool {
        let Some(svc) = self.services.get_mut(&id.service) else {
            return false;
        };
        let mut inst = Instance::new(id.clone(), addr, true, &svc.cfg.recovery);
        inst.replaces = svc.pending_replacements.pop_front();
        let scale_out = svc.pending_scale_out.take();
        self.actuator.set_traffic(id, Traffic::Registered(addr));
        self.instances.insert(id.clone(), inst);
        if let Some(action) = scale_out {
            self.ledger.set_action_instance(&action, id);
            self.ledger.settle(
                &action,
                ActionStatus::Executed,
                format!("started {id} on port {}", addr.port()),
            );
        }
        true
    }

    /// A start failed: the action fails, and it counts as a crash (back-off and budget apply).
    pub(super) async fn on_start_failed(
        &mut self,
        id: &InstanceId,
        generation: u64,
        error: String,
        at: u64,
    ) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.generation = generation;
        tracing::error!(%id, %error, "cannot start instance");
        if let Some(action) = inst.awaiting_start.take() {
            self.ledger
                .settle(&action, ActionStatus::Failed, error.clone());
        }
        let exit = ExitReason::Unknown(format!("failed to start: {error}"));
        self.on_exit(id, generation, exit, at).await;
    }

    /// A generation ended: expected (stopped by us), a failed replacement, or a crash.
    pub(super) async fn on_exit(
        &mut self,
        id: &InstanceId,
        generation: u64,
        exit: ExitReason,
        at: u64,
    ) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if inst.generation != generation {
            return;
        }
        inst.stop_probe();
        inst.pid = None;
        inst.running = false;
        inst.probes.ready = false;
        inst.last_exit = Some(exit.describe());
        let uptime = inst.started.elapsed();
        let expected = inst.status == InstanceStatus::Stopping;
        inst.status = InstanceStatus::Exited;
        let (retire, failed_replacement) = (inst.retire_on_exit, inst.replaces.take());
        self.actuator.set_traffic(id, Traffic::Out);
        if self.shutting_down || expected && !retire {
            // Stopped by us: its restart (if any) reports `Started`.
            return;
        }
        if retire {
            tracing::info!(%id, exit = %exit.describe(), "retired instance stopped");
            self.forget(id);
            return;
        }
        if let Some(r) = failed_replacement {
            // The replacement died before it was ready: restart the hung one in place.
            tracing::warn!(%id, old = %r.old, exit = %exit.describe(), "replacement failed");
            self.forget(id);
            let message = format!(
                "replacement {id} exited before ready ({}); restarting {} in place",
                exit.describe(),
                r.old
            );
            self.ledger.note(&r.action.incident, at, "note", message);
            self.kill_and_restart(&r.old, r.action, std::time::Duration::ZERO);
            return;
        }
        tracing::warn!(%id, exit = %exit.describe(), "instance exited");
        let title = format!("{id} exited ({})", exit.describe());
        let description = format!("{id} process exited: {}", exit.describe());
        let inc = self.ledger.open_or_update(
            &id.service,
            ConditionKey::Down(id.clone()),
            at,
            title.clone(),
            description,
        );
        let detail = serde_json::json!({
            "exit": exit,
            "description": exit.describe(),
            "uptime_ms": uptime.as_millis() as u64,
        });
        self.ledger
            .evidence(&inc, Signal::ProcessExit, Some(id), detail, at);
        self.plan_restart(id, &inc, title, uptime, false);
    }

    /// The engine reports something about a running instance (Kubernetes: a container
    /// restart, an OOM kill, a back-off, an eviction, a readiness change). The engine has
    /// acted already (the kubelet restarts containers), so it is evidence on a condition
    /// of its own, cleared when the instance is ready again — not a repair.
    pub(super) fn on_observed(
        &mut self,
        id: &InstanceId,
        signal: Signal,
        healthy: bool,
        detail: serde_json::Value,
        at: u64,
    ) {
        if !self.instances.contains_key(id) {
            return;
        }
        let description = detail
            .get("description")
            .and_then(|d| d.as_str())
            .map_or_else(|| format!("{id}: {signal}"), |d| format!("{id}: {d}"));
        if healthy {
            for key in [
                ConditionKey::Down(id.clone()),
                ConditionKey::NotReady(id.clone()),
            ] {
                self.ledger
                    .clear_on_service(&id.service, &key, at, &description);
            }
            return;
        }
        let key = if signal == Signal::Readiness {
            ConditionKey::NotReady(id.clone())
        } else {
            ConditionKey::Down(id.clone())
        };
        let inc =
            self.ledger
                .open_or_update(&id.service, key, at, description.clone(), description);
        self.ledger.evidence(&inc, signal, Some(id), detail, at);
    }

    /// A probe answered or failed.
    pub(super) async fn on_probe(&mut self, p: ProbeResult) {
        let Some(cfg) = self.services.get(&p.id.service).map(|s| &s.cfg.health) else {
            return;
        };
        let thresholds = ProbeThresholds {
            live: cfg.failure_threshold,
            ready: cfg.ready_failure_threshold,
        };
        let Some(inst) = self.instances.get_mut(&p.id) else {
            return;
        };
        if inst.generation != p.generation
            || matches!(
                inst.status,
                InstanceStatus::Stopping | InstanceStatus::Exited
            )
        {
            return;
        }
        let outcome = policy::assess_probe(&mut inst.probes, p.kind, p.ok, p.sent_at, thresholds);
        if p.ok && inst.probes.ready {
            // Always refresh: the gateway may have taken it out on a refused connection.
            self.actuator.set_traffic(&p.id, Traffic::In(inst.addr));
        }
        if outcome.became_ready {
            self.on_ready(&p.id, p.done_at);
        }
        if let Some(run) = outcome.became_unready {
            self.on_unready(&p, run);
        }
        if let Some(run) = outcome.became_hung {
            self.on_hung(&p, run);
        }
    }

    /// The first ready answer after a start or a failure: recovery time.
    fn on_ready(&mut self, id: &InstanceId, at: u64) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.status = if inst.managed {
            InstanceStatus::Ready
        } else {
            InstanceStatus::External
        };
        tracing::info!(%id, "instance ready");
        let replaced = inst.replaces.take();
        let how = format!("{id} answered its readiness probe");
        for key in [
            ConditionKey::Down(id.clone()),
            ConditionKey::NotReady(id.clone()),
        ] {
            self.ledger.clear_on_service(&id.service, &key, at, &how);
        }
        if let Some(r) = replaced {
            self.retire_replaced(id, r, at);
        }
    }

    fn on_unready(&mut self, p: &ProbeResult, run: policy::FailureRun) {
        let id = &p.id;
        if let Some(inst) = self.instances.get_mut(id) {
            inst.status = InstanceStatus::Unready;
        }
        self.actuator.set_traffic(id, Traffic::Out);
        let inc = self.ledger.open_or_update(
            &id.service,
            ConditionKey::NotReady(id.clone()),
            run.since,
            format!("{id} not ready"),
            format!("{id} readiness failing: {}", p.detail),
        );
        let detail =
            serde_json::json!({"consecutive_failures": run.failures, "last_error": p.detail});
        self.ledger
            .evidence(&inc, Signal::Readiness, Some(id), detail, p.done_at);
    }

    fn on_hung(&mut self, p: &ProbeResult, run: policy::FailureRun) {
        let id = &p.id;
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.status = InstanceStatus::Hung;
        let managed = inst.managed;
        self.actuator.set_traffic(id, Traffic::Out);
        let title = format!("{id} not live ({} failed liveness probes)", run.failures);
        let inc = self.ledger.open_or_update(
            &id.service,
            ConditionKey::Down(id.clone()),
            run.since,
            title.clone(),
            format!("{id} liveness failing: {}", p.detail),
        );
        let detail =
            serde_json::json!({"consecutive_failures": run.failures, "last_error": p.detail});
        self.ledger
            .evidence(&inc, Signal::Liveness, Some(id), detail, p.done_at);
        if managed {
            let uptime = self
                .instances
                .get(id)
                .map(|i| i.started.elapsed())
                .unwrap_or_default();
            self.plan_restart(id, &inc, title, uptime, true);
        }
    }

    /// A message consumer stalled or finishes messages again (from its scraped metrics). A
    /// stalled instance the platform started is wedged as far as its messages go: it is
    /// treated as a hung one (incident, kill and restart by the restart policy); one it did not
    /// start gets a service-level incident only.
    pub(super) fn on_consumer_stall(&mut self, service: &str, change: StallChange) {
        let id = self
            .instances
            .iter()
            .find(|(id, i)| id.service == service && i.addr.to_string() == change.instance)
            .map(|(id, _)| id.clone());
        let key = match &id {
            Some(id) => ConditionKey::Down(id.clone()),
            None => ConditionKey::Detector(Signal::ConsumerStalled),
        };
        let who = id.as_ref().map_or_else(
            || format!("{service} at {}", change.instance),
            ToString::to_string,
        );
        if !change.stalled {
            let how = format!("{who} finishes messages of {} again", change.group);
            self.ledger.clear_on_service(service, &key, change.at, &how);
            return;
        }
        let title = format!(
            "{who}: consumer {} stalled ({} messages waiting)",
            change.group, change.backlog
        );
        let inc = self.ledger.open_or_update(
            service,
            key,
            change.at,
            title.clone(),
            format!("{title}: work waiting and no message finished"),
        );
        let detail = serde_json::json!({
            "consumer": change.group, "backlog": change.backlog, "instance_address": change.instance,
        });
        let now = crate::common::time::now_nanos();
        self.ledger
            .evidence(&inc, Signal::ConsumerStalled, id.as_ref(), detail, now);
        let Some(id) = id else {
            return;
        };
        let Some(inst) = self.instances.get_mut(&id) else {
            return;
        };
        if !inst.managed || !inst.running {
            return;
        }
        inst.status = InstanceStatus::Hung;
        let uptime = inst.started.elapsed();
        self.plan_restart(&id, &inc, title, uptime, true);
    }
}
