//! [`IncidentLedger`]: the incidents the supervisor keeps — one open per service — with their
//! conditions, evidence and audited actions. Changes mark an incident dirty; [`IncidentLedger::flush`]
//! (called once per controller event) writes each changed incident and action once and
//! publishes it to the API's view.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::actuator::Reason;
use super::{ApproveError, View};
use crate::common::instance::InstanceId;
use crate::common::time::{now_nanos, rfc3339};
use crate::incident::{
    Action, ActionKind, ActionRef, ActionStatus, Condition, ConditionKey, Evidence, Incident,
    IncidentStatus, Notifier, Signal, new_id,
};
use crate::store::{IncidentDb, IncidentDbError};

/// How far a detector's failure start and first success may lie outside a resolved incident's
/// window and still be that incident's (1 s).
pub(super) const COVER_GRACE_NS: u64 = 1_000_000_000;

/// Incidents loaded at start (most recent first).
const RELOADED_INCIDENTS: u32 = 1000;

/// What a new action is.
#[derive(Debug, Clone)]
pub(super) struct NewAction {
    /// The service.
    pub(super) service: String,
    /// The instance acted on.
    pub(super) instance: Option<InstanceId>,
    /// What it does.
    pub(super) kind: ActionKind,
    /// Why.
    pub(super) why: String,
    /// Its state at creation.
    pub(super) status: ActionStatus,
    /// Back-off delay before it runs.
    pub(super) delay_ms: u64,
    /// Its result, when it is settled at creation (skipped, dry run).
    pub(super) result: Option<String>,
}

/// An action waiting for approval, now approved.
#[derive(Debug, Clone)]
pub(super) struct Approved {
    /// The action.
    pub(super) action: ActionRef,
    /// What it does.
    pub(super) kind: ActionKind,
    /// The instance it acts on.
    pub(super) instance: Option<InstanceId>,
}

/// The incidents, the one open per service, and what changed since the last flush.
#[derive(Debug)]
pub(super) struct IncidentLedger {
    incidents: BTreeMap<String, Incident>,
    open_by_service: HashMap<String, String>,
    /// Transitive dependencies of each service, for the probable root cause.
    deps: BTreeMap<String, Vec<String>>,
    dirty: BTreeSet<String>,
    dirty_actions: BTreeSet<(String, String)>,
    db: Option<IncidentDb>,
    notifier: Notifier,
    view: Arc<RwLock<View>>,
}

impl IncidentLedger {
    /// Loads recent incidents from `db`; incidents still open are reopened with a note.
    pub(super) async fn load(
        db: Option<IncidentDb>,
        notifier: Notifier,
        deps: BTreeMap<String, Vec<String>>,
        view: Arc<RwLock<View>>,
    ) -> Result<Self, IncidentDbError> {
        let mut ledger = Self {
            incidents: BTreeMap::new(),
            open_by_service: HashMap::new(),
            deps,
            dirty: BTreeSet::new(),
            dirty_actions: BTreeSet::new(),
            db,
            notifier,
            view,
        };
        let Some(db) = ledger.db.clone() else {
            return Ok(ledger);
        };
        for inc in db.recent(RELOADED_INCIDENTS).await? {
            ledger.incidents.insert(inc.id.clone(), inc);
        }
        for mut inc in db.open_incidents().await? {
            inc.note_at(
                now_nanos(),
                "note",
                "platform restarted: incident reloaded, instances restarted".into(),
            );
            ledger
                .open_by_service
                .insert(inc.service.clone(), inc.id.clone());
            ledger.dirty.insert(inc.id.clone());
            ledger.incidents.insert(inc.id.clone(), inc);
        }
        ledger.publish_all();
        Ok(ledger)
    }

    /// The open incident of `service`.
    pub(super) fn open_incident(&self, service: &str) -> Option<String> {
        self.open_by_service.get(service).cloned()
    }

    /// The resolved incident of `service` whose failure window holds a condition that started
    /// at `since` and saw its first success by `until` (each within [`COVER_GRACE_NS`]): the
    /// failures a repair already ended, seen by a detector a tick after the repair — evidence
    /// of that incident, not a new one.
    pub(super) fn resolved_covering(
        &self,
        service: &str,
        since: u64,
        until: u64,
    ) -> Option<String> {
        self.incidents
            .values()
            .filter(|i| i.service == service && i.status == IncidentStatus::Resolved)
            .filter(|i| {
                i.recovered_unix_nano.is_some_and(|r| {
                    since <= r
                        && until <= r.saturating_add(COVER_GRACE_NS)
                        && i.failure_start_unix_nano.saturating_sub(COVER_GRACE_NS) <= since
                })
            })
            .max_by_key(|i| i.recovered_unix_nano)
            .map(|i| i.id.clone())
    }

    /// Whether the open incident of `service` has the condition `key`.
    pub(super) fn has_condition(&self, service: &str, key: &ConditionKey) -> bool {
        self.open_by_service
            .get(service)
            .and_then(|i| self.incidents.get(i))
            .is_some_and(|i| i.conditions.contains_key(key))
    }

    /// The open incident of `service` with the condition `key` (failure started at `since`),
    /// opened now if there is none. Answers its id.
    pub(super) fn open_or_update(
        &mut self,
        service: &str,
        key: ConditionKey,
        since: u64,
        title: String,
        description: String,
    ) -> String {
        let now = now_nanos();
        let condition = Condition {
            since_unix_nano: since,
            description,
        };
        if let Some(id) = self.open_incident(service) {
            self.with(&id, |i| i.add_condition(&key, condition, now));
            return id;
        }
        let inc = Incident::open(new_id("inc"), service, title, key, condition, now);
        let id = inc.id.clone();
        tracing::warn!(incident = %id, service, title = %inc.title, mttd_ms = inc.mttd_ms, "incident opened");
        self.notifier.send("incident.opened", &inc);
        self.incidents.insert(id.clone(), inc);
        self.open_by_service.insert(service.to_owned(), id.clone());
        self.dirty.insert(id.clone());
        self.correlate(service);
        id
    }

    /// Names an upstream with its own open incident as the probable root cause, both ways.
    fn correlate(&mut self, service: &str) {
        let mut links: Vec<(String, String)> = Vec::new(); // (incident, root service)
        if let Some(me) = self.open_by_service.get(service)
            && let Some(dep) = self
                .deps
                .get(service)
                .and_then(|d| d.iter().find(|d| self.open_by_service.contains_key(*d)))
        {
            links.push((me.clone(), dep.clone()));
        }
        for (name, deps) in &self.deps {
            if deps.iter().any(|d| d == service)
                && let Some(inc) = self.open_by_service.get(name)
            {
                links.push((inc.clone(), service.to_owned()));
            }
        }
        let now = now_nanos();
        for (inc, root) in links {
            let root_inc = self.open_incident(&root).unwrap_or_default();
            self.with(&inc, |i| {
                if i.probable_root_cause.is_none() {
                    i.probable_root_cause = Some(root.clone());
                    i.add_evidence(Evidence {
                        at: rfc3339(now),
                        at_unix_nano: now,
                        signal: Signal::Dependency,
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

    /// Adds evidence to incident `inc`.
    pub(super) fn evidence(
        &mut self,
        inc: &str,
        signal: Signal,
        instance: Option<&InstanceId>,
        detail: serde_json::Value,
        at: u64,
    ) {
        self.with(inc, |i| {
            i.add_evidence(Evidence {
                at: rfc3339(at),
                at_unix_nano: at,
                signal,
                instance: instance.map(ToString::to_string),
                detail,
            });
        });
    }

    /// Adds a timeline note to incident `inc`.
    pub(super) fn note(&mut self, inc: &str, at: u64, kind: &str, message: String) {
        self.with(inc, |i| i.note_at(at, kind, message));
    }

    /// Clears condition `key` of incident `inc` at `at` (the first success after the repair).
    pub(super) fn clear(&mut self, inc: &str, key: &ConditionKey, at: u64, how: &str) {
        let mut resolved = None;
        self.with(inc, |i| {
            if i.clear_condition(key, at, how) {
                resolved = Some(i.clone());
            }
        });
        if let Some(i) = resolved {
            tracing::info!(incident = %i.id, service = %i.service, mttd_ms = i.mttd_ms,
                mttr_ms = i.mttr_ms, "incident resolved");
            self.notifier.send("incident.resolved", &i);
        }
    }

    /// Clears condition `key` on the open incident of `service`, if any.
    pub(super) fn clear_on_service(
        &mut self,
        service: &str,
        key: &ConditionKey,
        at: u64,
        how: &str,
    ) {
        if let Some(inc) = self.open_incident(service) {
            self.clear(&inc, key, at, how);
        }
    }

    /// Records a new action on incident `inc`.
    pub(super) fn record(&mut self, inc: &str, new: NewAction) -> ActionRef {
        let at = now_nanos();
        let settled = new.result.is_some();
        let action = Action {
            id: new_id("act"),
            incident_id: inc.to_owned(),
            service: new.service,
            instance: new.instance.as_ref().map(ToString::to_string),
            what: new.kind,
            why: new.why,
            who: "aiops".into(),
            status: new.status,
            delay_ms: new.delay_ms,
            created_at: rfc3339(at),
            created_unix_nano: at,
            executed_at: settled.then(|| rfc3339(at)),
            result: new.result,
            approved_by: None,
        };
        let r = ActionRef {
            incident: inc.to_owned(),
            action: action.id.clone(),
        };
        self.with(inc, |i| {
            i.add_action(action);
        });
        self.dirty_actions
            .insert((r.incident.clone(), r.action.clone()));
        r
    }

    /// Settles an action: executed, failed or skipped, with its result.
    pub(super) fn settle(&mut self, action: &ActionRef, status: ActionStatus, result: String) {
        let at = now_nanos();
        self.with(&action.incident, |i| {
            i.settle_action(&action.action, status, result, at);
        });
        self.dirty_actions
            .insert((action.incident.clone(), action.action.clone()));
    }

    /// Names the instance an action acted on once it is known (a scale-out's new instance).
    pub(super) fn set_action_instance(&mut self, action: &ActionRef, instance: &InstanceId) {
        self.with(&action.incident, |i| {
            if let Some(a) = i.actions.iter_mut().find(|a| a.id == action.action) {
                a.instance = Some(instance.to_string());
            }
        });
    }

    /// Replaces the ranked root causes of incident `inc`; a top cause other than the service
    /// itself becomes its probable root cause (noted when it changes).
    pub(super) fn root_causes(&mut self, inc: &str, causes: Vec<crate::incident::RootCause>) {
        let now = now_nanos();
        self.with(inc, |i| {
            let top = causes
                .first()
                .filter(|c| c.node != i.service && c.score > 0.0)
                .map(|c| c.node.clone());
            if top.is_some() && top != i.probable_root_cause {
                let message = format!(
                    "root causes ranked: {}",
                    causes
                        .iter()
                        .map(|c| format!("{} ({:.2})", c.node, c.score))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                i.note_at(now, "note", message);
                i.probable_root_cause = top;
            }
            i.root_causes = causes;
        });
    }

    /// Counts a restart made for incident `inc`.
    pub(super) fn count_restart(&mut self, inc: &str) {
        self.with(inc, |i| i.restarts += 1);
    }

    /// Marks incident `inc` as needing a human (once), and notifies.
    pub(super) fn needs_attention(&mut self, inc: &str, reason: &str, at: u64) {
        let mut notify = None;
        self.with(inc, |i| {
            if !i.needs_attention {
                i.needs_attention = true;
                i.attention_reason = Some(reason.to_owned());
                i.note_at(at, "note", reason.to_owned());
                notify = Some(i.clone());
            }
        });
        if let Some(i) = notify {
            self.notifier.send("incident.attention", &i);
        }
    }

    /// Approves every action of `inc` waiting for approval; answers them.
    pub(super) fn approve(&mut self, inc: &str, by: &str) -> Result<Vec<Approved>, ApproveError> {
        let Some(incident) = self.incidents.get_mut(inc) else {
            return Err(ApproveError::NotFound(inc.to_owned()));
        };
        let mut approved = Vec::new();
        for a in incident
            .actions
            .iter_mut()
            .filter(|a| a.status == ActionStatus::PendingApproval)
        {
            a.status = ActionStatus::Scheduled;
            a.approved_by = Some(by.to_owned());
            approved.push(Approved {
                action: ActionRef {
                    incident: inc.to_owned(),
                    action: a.id.clone(),
                },
                kind: a.what,
                instance: a.instance.as_deref().and_then(|i| i.parse().ok()),
            });
        }
        if approved.is_empty() {
            return Err(ApproveError::NothingPending(inc.to_owned()));
        }
        let message = format!("{} action(s) approved by {by}", approved.len());
        incident.note_at(now_nanos(), "action", message);
        self.dirty.insert(inc.to_owned());
        for a in &approved {
            self.dirty_actions
                .insert((a.action.incident.clone(), a.action.action.clone()));
        }
        Ok(approved)
    }

    /// Why `action` is taken: its incident and the reason it records.
    pub(super) fn reason(&self, action: &ActionRef) -> Reason {
        let text = self
            .incidents
            .get(&action.incident)
            .and_then(|i| i.actions.iter().find(|a| a.id == action.action))
            .map(|a| a.why.clone())
            .unwrap_or_default();
        Reason::incident(action.incident.clone(), text)
    }

    /// The incident as it is now.
    pub(super) fn get(&self, inc: &str) -> Option<&Incident> {
        self.incidents.get(inc)
    }

    fn with(&mut self, inc: &str, f: impl FnOnce(&mut Incident)) {
        if let Some(i) = self.incidents.get_mut(inc) {
            f(i);
            if i.status == IncidentStatus::Resolved
                && self
                    .open_by_service
                    .get(&i.service)
                    .is_some_and(|o| o == inc)
            {
                self.open_by_service.remove(&i.service);
            }
            self.dirty.insert(inc.to_owned());
        }
    }

    /// Writes each incident and action changed since the last flush once, and publishes it.
    pub(super) fn flush(&mut self) {
        for (inc, act) in std::mem::take(&mut self.dirty_actions) {
            if let (Some(db), Some(a)) = (
                &self.db,
                self.incidents
                    .get(&inc)
                    .and_then(|i| i.actions.iter().find(|a| a.id == act)),
            ) {
                db.save_action(a);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        if dirty.is_empty() {
            return;
        }
        let mut view = self.view.write();
        for id in dirty {
            if let Some(i) = self.incidents.get(&id) {
                if let Some(db) = &self.db {
                    db.save_incident(i);
                }
                view.incidents.insert(id, i.clone());
            }
        }
    }

    fn publish_all(&self) {
        let mut view = self.view.write();
        for (id, i) in &self.incidents {
            view.incidents.insert(id.clone(), i.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ledger(db: Option<IncidentDb>) -> IncidentLedger {
        crate::common::install_crypto_provider();
        let deps = BTreeMap::from([("order".to_owned(), vec!["kitchen".to_owned()])]);
        IncidentLedger::load(db, Notifier::new(None), deps, Arc::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn sqlite() -> (tempfile::TempDir, IncidentDb) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db = IncidentDb::open(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, db)
    }

    fn down(service: &str) -> ConditionKey {
        ConditionKey::Down(InstanceId::new(service, 0))
    }

    #[tokio::test]
    async fn one_write_per_flush_however_many_changes() {
        let (_dir, db) = sqlite().await;
        let mut l = ledger(Some(db.clone())).await;
        let inc = l.open_or_update("kitchen", down("kitchen"), 1, "t".into(), "d".into());
        l.evidence(&inc, Signal::ProcessExit, None, serde_json::json!({}), 2);
        let act = l.record(
            &inc,
            NewAction {
                service: "kitchen".into(),
                instance: None,
                kind: ActionKind::Restart,
                why: "exit".into(),
                status: ActionStatus::Scheduled,
                delay_ms: 0,
                result: None,
            },
        );
        assert_eq!(db.incident_writes(), 0, "nothing written before the flush");
        l.flush();
        assert_eq!(db.incident_writes(), 1);
        l.flush();
        assert_eq!(
            db.incident_writes(),
            1,
            "an unchanged incident is not written"
        );
        l.settle(&act, ActionStatus::Executed, "started".into());
        l.clear(&inc, &down("kitchen"), 3, "ready");
        l.flush();
        assert_eq!(db.incident_writes(), 2);
        db.flush().await;
        let stored = db.recent(10).await.unwrap_or_default();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].status, IncidentStatus::Resolved);
        assert_eq!(stored[0].actions[0].status, ActionStatus::Executed);
    }

    #[tokio::test]
    async fn one_open_incident_per_service_and_upstreams_named_as_root_cause() {
        let mut l = ledger(None).await;
        let k = l.open_or_update("kitchen", down("kitchen"), 1, "k".into(), "d".into());
        let again = l.open_or_update(
            "kitchen",
            ConditionKey::Detector(Signal::Latency),
            2,
            "k".into(),
            "d".into(),
        );
        assert_eq!(k, again);
        assert!(l.has_condition("kitchen", &ConditionKey::Detector(Signal::Latency)));
        let o = l.open_or_update("order", down("order"), 3, "o".into(), "d".into());
        assert_eq!(
            l.get(&o).and_then(|i| i.probable_root_cause.clone()),
            Some("kitchen".to_owned())
        );
        // Clearing one condition keeps it open; the last one resolves it.
        l.clear(&k, &down("kitchen"), 4, "ready");
        assert_eq!(l.open_incident("kitchen"), Some(k.clone()));
        l.clear(&k, &ConditionKey::Detector(Signal::Latency), 5, "ok");
        assert_eq!(l.open_incident("kitchen"), None);
    }

    #[tokio::test]
    async fn approval_schedules_pending_actions_once() {
        let mut l = ledger(None).await;
        let inc = l.open_or_update("kitchen", down("kitchen"), 1, "k".into(), "d".into());
        l.record(
            &inc,
            NewAction {
                service: "kitchen".into(),
                instance: Some(InstanceId::new("kitchen", 0)),
                kind: ActionKind::KillAndRestart,
                why: "hung".into(),
                status: ActionStatus::PendingApproval,
                delay_ms: 0,
                result: None,
            },
        );
        let approved = l.approve(&inc, "ops").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(approved.len(), 1);
        assert_eq!(approved[0].instance, Some(InstanceId::new("kitchen", 0)));
        assert_eq!(approved[0].kind, ActionKind::KillAndRestart);
        assert!(matches!(
            l.approve(&inc, "ops"),
            Err(ApproveError::NothingPending(_))
        ));
        assert!(matches!(
            l.approve("nope", "ops"),
            Err(ApproveError::NotFound(_))
        ));
    }
}
