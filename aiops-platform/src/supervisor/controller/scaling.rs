//! Scaling: the scale policy's decision for each scalable service, every tick, carried out
//! through [`Actuator::scale`](crate::supervisor::Actuator::scale) and audited on the
//! service's saturation incident.

use std::time::Instant;

use super::Controller;
use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::config::{RecoveryMode, ServiceConfig};
use crate::incident::{ActionKind, ActionStatus, ConditionKey, Signal};
use crate::store::BudgetKind;
use crate::supervisor::InstanceStatus;
use crate::supervisor::actuator::{Reason, Traffic};
use crate::supervisor::ledger::NewAction;
use crate::supervisor::policy::{self, Saturation, ScaleDecision, ScaleSituation};

/// A consumer backlog reported longer ago than this counts as none.
const BACKLOG_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `cfg` asks for scaling (more instances allowed than configured, and a command).
pub(super) fn enabled(cfg: &ServiceConfig) -> bool {
    cfg.scale.max_replicas > cfg.replicas && (!cfg.command.is_empty() || cfg.kubernetes.is_some())
}

/// What the scale decision was taken on.
#[derive(Debug, Clone, Copy)]
struct Measured {
    per: f64,
    backlog_per_live: f64,
    live: u32,
}

/// Messages waiting per live instance; a backlog the detectors have not confirmed lately
/// is none.
fn backlog_per_live(backlog: Option<(f64, Instant)>, live: u32) -> f64 {
    match backlog {
        Some((b, at)) if at.elapsed() < BACKLOG_FRESH && live > 0 => b / f64::from(live),
        _ => 0.0,
    }
}

impl Controller {
    /// Decides and acts for every scalable service.
    pub(super) fn scale_tick(&mut self) {
        let names: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| enabled(&s.cfg))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.scale_service(&name);
        }
    }

    fn scale_service(&mut self, name: &str) {
        let endpoints = self.routes.endpoints(name);
        let ready: Vec<_> = endpoints.iter().filter(|e| e.is_ready()).collect();
        let inflight: usize = ready.iter().map(|e| e.inflight()).sum();
        let per = if ready.is_empty() {
            0.0
        } else {
            inflight as f64 / ready.len() as f64
        };
        let live = self.live_count(name);
        let starting = self
            .instances
            .values()
            .any(|i| i.id.service == name && i.status == InstanceStatus::Starting);
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let backlog_per_live = backlog_per_live(svc.backlog, live);
        let plan = policy::decide_scale(&ScaleSituation {
            cfg: &svc.cfg.scale,
            replicas: svc.cfg.replicas,
            ready: ready.len(),
            inflight_per_ready: per,
            backlog_per_live,
            live,
            starting,
            now: Instant::now(),
            now_unix_nano: now_nanos(),
            timers: svc.scale,
        });
        svc.scale = plan.timers;
        let measured = Measured {
            per,
            backlog_per_live,
            live,
        };
        self.carry_out(name, plan, measured);
    }

    /// Clears the saturation condition when it is over, and takes the plan's step.
    fn carry_out(&mut self, name: &str, plan: policy::ScalePlan, m: Measured) {
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Measured {
            per,
            backlog_per_live,
            live,
        } = m;
        let threshold = svc.cfg.scale.out_when_inflight_per_instance;
        let backlog_threshold = svc.cfg.scale.out_when_backlog_per_instance;
        if !plan.saturated {
            let how = format!(
                "in-flight per ready instance down to {per:.1}, messages waiting per instance {backlog_per_live:.0}"
            );
            self.ledger
                .clear_on_service(name, &ConditionKey::Saturation, now_nanos(), &how);
        }
        match plan.decision {
            ScaleDecision::Hold => {}
            ScaleDecision::Out {
                by,
                to,
                held,
                since_unix_nano,
            } => {
                let (measured, value, limit) = match by {
                    Saturation::Requests => {
                        ("in-flight requests per ready instance", per, threshold)
                    }
                    Saturation::Messages => (
                        "messages waiting per instance",
                        backlog_per_live,
                        backlog_threshold,
                    ),
                };
                let why = format!(
                    "{measured} {value:.1} > {limit} for {} ms; {live} -> {to} instances",
                    held.as_millis(),
                );
                self.scale_out(name, to, since_unix_nano, per, why);
            }
            ScaleDecision::In { to, quiet } => {
                let why = format!(
                    "in-flight per ready instance <= {} and messages waiting per instance <= {} for {} ms; {live} -> {to} instances",
                    threshold / 2.0,
                    backlog_threshold / 2.0,
                    quiet.as_millis(),
                );
                self.scale_in(name, to, why);
            }
        }
    }

    fn scale_out(&mut self, name: &str, to: u32, since: u64, per: f64, why: String) {
        let inc = self.ledger.open_or_update(
            name,
            ConditionKey::Saturation,
            since,
            format!("{name} saturated"),
            format!("{name}: {why}"),
        );
        let detail = serde_json::json!({"inflight_per_ready_instance": per, "why": why});
        self.ledger
            .evidence(&inc, Signal::Saturation, None, detail, now_nanos());
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        svc.scale_incident = Some(inc.clone());
        let skip = if svc.mode != RecoveryMode::Auto {
            Some((
                ActionStatus::DryRun,
                "scaling acts only in auto mode: not executed",
            ))
        } else if !svc.scale_budget.try_take(Instant::now()) {
            Some((
                ActionStatus::Skipped,
                "scaling budget exhausted: not scaled out",
            ))
        } else {
            if let Some(db) = &self.db {
                db.save_budget_use(name, BudgetKind::Scale, now_nanos());
            }
            None
        };
        let workload = svc.workload.clone();
        let reason = Reason::incident(inc.clone(), why.clone());
        let action = self.ledger.record(
            &inc,
            NewAction {
                service: name.to_owned(),
                instance: None,
                kind: ActionKind::ScaleOut,
                why,
                status: skip.map_or(ActionStatus::Scheduled, |(s, _)| s),
                delay_ms: 0,
                result: skip.map(|(_, r)| r.to_owned()),
            },
        );
        let (Some(workload), None) = (workload, skip) else {
            return;
        };
        tracing::info!(service = name, to, "scaling out");
        if let Some(svc) = self.services.get_mut(name) {
            svc.pending_scale_out = Some(action);
        }
        let actuator = self.actuator.clone();
        let id = InstanceId::new(name, to.saturating_sub(1));
        self.act("scale out", id, async move {
            actuator.scale(&workload, to, &reason).await.map(drop)
        });
    }

    /// Out of traffic first, then the actuator stops the newest instance (after a drain).
    fn scale_in(&mut self, name: &str, to: u32, why: String) {
        let Some(newest) = self
            .instances
            .values()
            .filter(|i| i.id.service == name && i.is_live())
            .map(|i| i.id.clone())
            .max_by_key(|i| i.index)
        else {
            return;
        };
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let (inc, workload) = (svc.scale_incident.clone(), svc.workload.clone());
        let pid = self.instances.get(&newest).and_then(|i| i.pid);
        self.actuator.set_traffic(&newest, Traffic::Out);
        if let Some(inst) = self.instances.get_mut(&newest) {
            inst.status = InstanceStatus::Stopping;
            inst.retire_on_exit = true;
            inst.awaiting_start = None;
        }
        tracing::info!(id = %newest, "scaling in");
        let reason = inc.as_ref().map_or_else(
            || Reason::platform(why.clone()),
            |inc| Reason::incident(inc.clone(), why.clone()),
        );
        if let Some(workload) = workload {
            let actuator = self.actuator.clone();
            self.act("scale in", newest.clone(), async move {
                actuator.scale(&workload, to, &reason).await.map(drop)
            });
        }
        if let Some(inc) = inc {
            self.ledger.record(
                &inc,
                NewAction {
                    service: name.to_owned(),
                    instance: Some(newest.clone()),
                    kind: ActionKind::ScaleIn,
                    why,
                    status: ActionStatus::Executed,
                    delay_ms: 0,
                    result: Some(format!(
                        "removed {newest} from the gateway, then SIGTERM to pid {pid:?}"
                    )),
                },
            );
        }
    }
}
