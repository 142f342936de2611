//! Rolling restart on an error burn (`on_error_burn = "restart"`): one instance at a time,
//! each next one only when the last one's restart helped ([`policy::decide_roll`]).

use std::collections::VecDeque;
use std::time::Instant;

use super::{Controller, Rolling};
use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::gateway::WindowSummary;
use crate::supervisor::InstanceStatus;
use crate::supervisor::policy::{self, RollStep};

impl Controller {
    /// Restarts the instances of `service` one at a time on an error burn (see
    /// [`policy::decide_roll`]): the first now, each next one only if the last helped.
    pub(super) fn start_roll(&mut self, service: &str, inc: &str, why: String) {
        let mut queue: VecDeque<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.id.service == service && i.is_live())
            .map(|i| i.id.clone())
            .collect();
        let Some(first) = queue.pop_front() else {
            return;
        };
        let share_before = self
            .stats
            .window(service, now_nanos(), policy::ROLL_SETTLE.as_secs())
            .error_share();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        if svc.rolling.is_some() {
            return;
        }
        let generation = self.instances.get(&first).map_or(0, |i| i.generation);
        svc.rolling = Some(Rolling {
            incident: inc.to_owned(),
            why: why.clone(),
            share_before,
            current: (first.clone(), generation),
            ready_since: None,
            queue,
        });
        let message = format!(
            "rolling restart of {service}: one instance at a time, each next one only if the last halved the 5xx share ({:.1} % before)",
            share_before * 100.0
        );
        self.ledger.note(inc, now_nanos(), "action", message);
        self.restart_for_roll(&first, inc, why);
    }

    fn restart_for_roll(&mut self, id: &InstanceId, inc: &str, why: String) {
        let uptime = self
            .instances
            .get(id)
            .map(|i| i.started.elapsed())
            .unwrap_or_default();
        self.plan_restart(id, inc, why, uptime, true);
    }

    /// Judges the instance a rolling restart restarted last, and goes on or stops.
    pub(super) fn roll_tick(&mut self) {
        let rolling: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.rolling.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in rolling {
            self.roll_service(&name);
        }
    }

    fn roll_service(&mut self, name: &str) {
        let now = Instant::now();
        let after = self
            .stats
            .window(name, now_nanos(), policy::ROLL_SETTLE.as_secs());
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(roll) = svc.rolling.as_mut() else {
            return;
        };
        let (id, generation) = roll.current.clone();
        let inst = self.instances.get(&id);
        let (ready_again, gone) = match inst {
            Some(i) => (
                i.generation > generation && i.status == InstanceStatus::Ready,
                i.status == InstanceStatus::GivenUp,
            ),
            None => (false, true),
        };
        if gone {
            let message = format!("rolling restart of {name} stopped: {id} was not restarted");
            let inc = roll.incident.clone();
            svc.rolling = None;
            self.ledger.note(&inc, now_nanos(), "note", message);
            return;
        }
        if !ready_again {
            roll.ready_since = None;
            return;
        }
        let ready_since = *roll.ready_since.get_or_insert(now);
        let step = policy::decide_roll(&policy::RollSituation {
            ready_for: Some(now.duration_since(ready_since)),
            share_before: roll.share_before,
            requests_after: after.total,
            share_after: after.error_share(),
            more: !roll.queue.is_empty(),
        });
        self.apply_roll_step(name, &id, step, after);
    }

    /// Carries out a step of the roll of `name`, whose last restarted instance is `id`.
    fn apply_roll_step(
        &mut self,
        name: &str,
        id: &InstanceId,
        step: RollStep,
        after: WindowSummary,
    ) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(roll) = svc.rolling.as_mut() else {
            return;
        };
        let (inc, why) = (roll.incident.clone(), roll.why.clone());
        let percent = |x: f64| x * 100.0;
        match step {
            RollStep::Wait => {}
            RollStep::Next => {
                let Some(next) = roll.queue.pop_front() else {
                    return;
                };
                let g = self.instances.get(&next).map_or(0, |i| i.generation);
                roll.current = (next.clone(), g);
                roll.ready_since = None;
                let message = format!(
                    "{id} restarted and ready: 5xx share {:.1} % (was {:.1} %); restarting {next}",
                    percent(after.error_share()),
                    percent(roll.share_before)
                );
                self.ledger.note(&inc, now_nanos(), "action", message);
                self.restart_for_roll(&next, &inc, why);
            }
            RollStep::Done => {
                svc.rolling = None;
                let message = format!(
                    "rolling restart of {name} done: every instance restarted, 5xx share {:.1} %",
                    percent(after.error_share())
                );
                self.ledger.note(&inc, now_nanos(), "action", message);
            }
            RollStep::Stop { requests_after } => {
                let left = roll.queue.len();
                let share_before = roll.share_before;
                svc.rolling = None;
                let message = format!(
                    "rolling restart of {name} stopped after {id}: the 5xx share did not halve ({:.1} % before, {:.1} % over {requests_after} requests since {id} was ready); {left} other instance(s) left as they are",
                    percent(share_before),
                    percent(after.error_share())
                );
                self.ledger.note(&inc, now_nanos(), "note", message);
            }
        }
    }
}
