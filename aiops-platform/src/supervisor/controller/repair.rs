//! Repairs: the restart policy's decision carried out through the actuator and recorded in
//! the ledger; approvals; request-level detector states.

use std::time::{Duration, Instant};

use super::Controller;
use super::instance::Replacement;
use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::config::ErrorBurnAction;
use crate::detect::DetectorState;
use crate::incident::{ActionKind, ActionRef, ActionStatus, ConditionKey, Incident};
use crate::store::BudgetKind;
use crate::supervisor::actuator::{Reason, Traffic};
use crate::supervisor::ledger::NewAction;
use crate::supervisor::policy::{self, Gate, RestartDecision, RestartSituation};
use crate::supervisor::{ApproveError, Event, InstanceStatus};

impl Controller {
    /// Decides a repair of `id` for incident `inc` and carries it out.
    pub(super) fn plan_restart(
        &mut self,
        id: &InstanceId,
        inc: &str,
        why: String,
        uptime: Duration,
        kill_first: bool,
    ) {
        let Some(situation) = self.restart_situation(id, uptime, kill_first) else {
            return;
        };
        let decision = policy::decide_restart(&situation);
        let crashes = self
            .instances
            .get(id)
            .map(|i| i.backoff.crashes())
            .unwrap_or(0);
        match decision {
            RestartDecision::Leave => {
                let message = format!(
                    "{id} is not restarted: not started by the platform or restart = false"
                );
                self.ledger.note(inc, now_nanos(), "note", message);
            }
            RestartDecision::GiveUp { stop_hung } => self.give_up(id, inc, why, stop_hung),
            RestartDecision::Act { kind, delay, gate } => {
                let why = if crashes > 1 {
                    format!(
                        "{why}; crash {crashes} in a row, back-off {} ms",
                        delay.as_millis()
                    )
                } else {
                    why
                };
                self.act_on(id, inc, why, kind, delay, gate);
            }
        }
    }

    /// The situation of `id` for the restart policy; takes the back-off step and, when a
    /// restart is possible at all, one unit of the budget.
    fn restart_situation(
        &mut self,
        id: &InstanceId,
        uptime: Duration,
        kill_first: bool,
    ) -> Option<RestartSituation> {
        let live_instances = self.live_count(&id.service);
        let svc = self.services.get_mut(&id.service)?;
        let inst = self.instances.get_mut(id)?;
        let restart_enabled = svc.cfg.recovery.restart;
        let possible = inst.managed && restart_enabled;
        let now = now_nanos();
        let backoff_delay = if possible {
            let delay = inst.backoff.on_crash(uptime);
            if let Some(db) = &self.db {
                db.save_crashes(&id.service, id.index, inst.backoff.crashes(), now);
            }
            delay
        } else {
            Duration::ZERO
        };
        let budget_available = possible && svc.budget.try_take(Instant::now());
        if budget_available && let Some(db) = &self.db {
            db.save_budget_use(&id.service, BudgetKind::Restart, now);
        }
        Some(RestartSituation {
            managed: inst.managed,
            restart_enabled,
            mode: svc.mode,
            live_instances,
            hung_and_running: inst.status == InstanceStatus::Hung && inst.running,
            kill_first,
            backoff_delay,
            budget_available,
        })
    }

    fn give_up(&mut self, id: &InstanceId, inc: &str, why: String, stop_hung: bool) {
        let Some(budget) = self.services.get(&id.service).map(|s| s.budget.clone()) else {
            return;
        };
        let reason = format!(
            "restart budget exhausted: {} restarts of {} within {} s; automatic restarts stopped",
            budget.limit(),
            id.service,
            budget.window().as_secs()
        );
        if let Some(inst) = self.instances.get_mut(id) {
            inst.status = InstanceStatus::GivenUp;
        }
        if stop_hung {
            // Still stop a hung process, so it does not hold the port.
            let (actuator, stop) = (self.actuator.clone(), id.clone());
            let reason = Reason::incident(inc, reason.clone());
            self.act("stop", id.clone(), async move {
                actuator.stop(&stop, Duration::ZERO, &reason).await
            });
        }
        let kind = if stop_hung {
            ActionKind::KillAndRestart
        } else {
            ActionKind::Restart
        };
        self.ledger.record(
            inc,
            NewAction {
                service: id.service.clone(),
                instance: Some(id.clone()),
                kind,
                why,
                status: ActionStatus::Skipped,
                delay_ms: 0,
                result: Some(reason.clone()),
            },
        );
        self.ledger.needs_attention(inc, &reason, now_nanos());
    }

    fn act_on(
        &mut self,
        id: &InstanceId,
        inc: &str,
        why: String,
        kind: ActionKind,
        delay: Duration,
        gate: Gate,
    ) {
        let (status, result) = match gate {
            Gate::Auto => (ActionStatus::Scheduled, None),
            Gate::AwaitApproval => (ActionStatus::PendingApproval, None),
            Gate::DryRun => (ActionStatus::DryRun, Some("dry run: not executed".into())),
        };
        let action = self.ledger.record(
            inc,
            NewAction {
                service: id.service.clone(),
                instance: Some(id.clone()),
                kind,
                why,
                status,
                delay_ms: delay.as_millis() as u64,
                result,
            },
        );
        match gate {
            Gate::Auto => self.execute(id, action, kind, delay),
            Gate::AwaitApproval => {
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.status = InstanceStatus::WaitingApproval;
                }
                let message = format!("waiting for POST /api/v1/incidents/{inc}/approve");
                self.ledger.note(inc, now_nanos(), "note", message);
            }
            Gate::DryRun => {}
        }
    }

    /// Carries out a restart action of `kind` on `id` after `delay`.
    fn execute(&mut self, id: &InstanceId, action: ActionRef, kind: ActionKind, delay: Duration) {
        match kind {
            ActionKind::Replace => self.replace(id, action),
            ActionKind::KillAndRestart => self.kill_and_restart(id, action, delay),
            _ => self.restart_later(id, action, delay),
        }
    }

    /// Stops a running instance (after `delay`) and starts it again; not running: restarts.
    pub(super) fn kill_and_restart(&mut self, id: &InstanceId, action: ActionRef, delay: Duration) {
        let grace = self.grace(&id.service);
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if !inst.running {
            self.restart_later(id, action, delay);
            return;
        }
        inst.status = InstanceStatus::Stopping;
        let reason = self.ledger.reason(&action);
        inst.awaiting_start = Some(action);
        self.actuator.set_traffic(id, Traffic::Out);
        let (actuator, target) = (self.actuator.clone(), id.clone());
        self.act("restart", id.clone(), async move {
            tokio::time::sleep(delay).await;
            actuator.restart(&target, grace, &reason).await
        });
    }

    /// Starts an exited instance again, at once or after the back-off.
    fn restart_later(&mut self, id: &InstanceId, action: ActionRef, delay: Duration) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.awaiting_start = Some(action);
        if delay.is_zero() {
            self.restart_now(id);
            return;
        }
        inst.status = InstanceStatus::BackingOff;
        let (events, id) = (self.events.clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::RestartDue { id });
        });
    }

    /// Asks the actuator to start `id` again now.
    pub(super) fn restart_now(&mut self, id: &InstanceId) {
        let grace = self.grace(&id.service);
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.status = InstanceStatus::Starting;
        let reason = inst.awaiting_start.as_ref().map_or_else(
            || Reason::platform("restart of an exited instance"),
            |a| self.ledger.reason(a),
        );
        let (actuator, target) = (self.actuator.clone(), id.clone());
        self.act("restart", id.clone(), async move {
            actuator.restart(&target, grace, &reason).await
        });
    }

    /// Starts a replacement of the hung instance `old` (one more instance of its workload);
    /// `old` is stopped when the replacement is ready (see [`Controller::retire_replaced`]).
    fn replace(&mut self, old: &InstanceId, action: ActionRef) {
        let live = self.live_count(&old.service);
        let Some(svc) = self.services.get_mut(&old.service) else {
            return;
        };
        let Some(workload) = svc.workload.clone() else {
            return;
        };
        svc.pending_replacements.push_back(Replacement {
            old: old.clone(),
            action: action.clone(),
        });
        let message = format!("starting a replacement for {old}; {old} is killed once it is ready");
        self.ledger
            .note(&action.incident, now_nanos(), "action", message);
        tracing::info!(%old, "starting a replacement for a hung instance");
        let reason = self.ledger.reason(&action);
        let actuator = self.actuator.clone();
        self.act("replace", old.clone(), async move {
            actuator.scale(&workload, live + 1, &reason).await.map(drop)
        });
    }

    /// The replacement `new` is ready: stop the hung instance it replaces and settle.
    pub(super) fn retire_replaced(&mut self, new: &InstanceId, r: Replacement, at: u64) {
        let grace = self.grace(&r.old.service);
        let port = self.instances.get(new).map(|i| i.addr.port()).unwrap_or(0);
        if let Some(o) = self.instances.get_mut(&r.old) {
            o.status = InstanceStatus::Stopping;
            o.retire_on_exit = true;
            o.awaiting_start = None;
            self.actuator.set_traffic(&r.old, Traffic::Out);
            let (actuator, old) = (self.actuator.clone(), r.old.clone());
            let reason = self.ledger.reason(&r.action);
            self.act("stop", r.old.clone(), async move {
                actuator.stop(&old, grace, &reason).await
            });
        }
        tracing::info!(old = %r.old, %new, "replacement ready: stopping the hung instance");
        self.ledger.count_restart(&r.action.incident);
        self.ledger.settle(
            &r.action,
            ActionStatus::Executed,
            format!(
                "replacement {new} ready on port {port}; then stopped {}",
                r.old
            ),
        );
        let how = format!("replacement {new} ready; {} stopped", r.old);
        for key in [
            ConditionKey::Down(r.old.clone()),
            ConditionKey::NotReady(r.old.clone()),
        ] {
            self.ledger.clear(&r.action.incident, &key, at, &how);
        }
    }

    /// Managed instances of `service` that count (not being stopped or retired).
    pub(super) fn live_count(&self, service: &str) -> u32 {
        self.instances
            .values()
            .filter(|i| i.id.service == service && i.is_live())
            .count() as u32
    }

    /// Approves the pending actions of an incident and acts at once (the approval is the
    /// decision: no back-off).
    pub(super) fn approve(&mut self, inc: &str, by: &str) -> Result<Incident, ApproveError> {
        for a in self.ledger.approve(inc, by)? {
            if let Some(id) = a.instance.filter(|i| self.instances.contains_key(i)) {
                self.execute(&id, a.action, a.kind, Duration::ZERO);
            }
        }
        self.ledger
            .get(inc)
            .cloned()
            .ok_or_else(|| ApproveError::NotFound(inc.to_owned()))
    }

    /// Failures a repair already ended (a detector judged them a tick after the recovery):
    /// evidence of that incident, once — not a second incident for one fault. Answers whether
    /// `s` was such.
    fn attach_to_resolved(&mut self, s: &DetectorState) -> bool {
        if self.ledger.open_incident(&s.service).is_some() {
            return false;
        }
        let Some(prev) = self
            .ledger
            .resolved_covering(&s.service, s.since, s.recovered_at)
        else {
            return false;
        };
        if self
            .ledger
            .get(&prev)
            .is_some_and(|i| !i.signals.contains(&s.signal))
        {
            self.ledger
                .evidence(&prev, s.signal, None, s.detail.clone(), now_nanos());
        }
        true
    }

    /// A request-level detector's state: open or clear its condition; restart on an error
    /// burn when the service asks for it.
    pub(super) async fn on_detector(&mut self, s: DetectorState) {
        let key = ConditionKey::Detector(s.signal);
        let has = self.ledger.has_condition(&s.service, &key);
        if !s.active {
            if s.signal == crate::incident::Signal::ErrorRate
                && let Some(svc) = self.services.get_mut(&s.service)
            {
                svc.rolling = None;
            }
            if has {
                let how = format!("{} back to normal", s.signal);
                self.ledger
                    .clear_on_service(&s.service, &key, s.recovered_at, &how);
            }
            return;
        }
        if has {
            return;
        }
        if self.attach_to_resolved(&s) {
            return;
        }
        let title = match s.signal {
            crate::incident::Signal::ErrorRate => format!("{} error rate burning", s.service),
            crate::incident::Signal::Latency => format!("{} latency degraded", s.service),
            crate::incident::Signal::LogTemplate => {
                format!("{}: new error log template", s.service)
            }
            crate::incident::Signal::PoisonMessages => {
                format!("{}: poison messages dead-lettered", s.service)
            }
            crate::incident::Signal::ConsumerErrors => {
                format!("{}: message handlers failing", s.service)
            }
            _ => format!("{} exception burst", s.service),
        };
        let description = format!("{}: {}", s.signal, s.detail);
        let inc = self
            .ledger
            .open_or_update(&s.service, key, s.since, title.clone(), description);
        self.ledger
            .evidence(&inc, s.signal, None, s.detail, now_nanos());
        let restart = s.signal == crate::incident::Signal::ErrorRate
            && self
                .services
                .get(&s.service)
                .is_some_and(|x| x.cfg.recovery.on_error_burn == ErrorBurnAction::Restart);
        if restart {
            self.start_roll(&s.service, &inc, title);
        }
    }
}
