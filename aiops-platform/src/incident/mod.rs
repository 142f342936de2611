//! Incidents: one per failing service, with the evidence that opened it, the actions taken, a
//! timeline, and MTTD / MTTR / downtime as DESIGN.md defines them (seed section 13.2):
//!
//! - failure start: the first failed request or probe, or the process exit;
//! - detection: when the incident opens; MTTD = detection − failure start;
//! - recovery: the first successful request or probe after the repair; MTTR = recovery −
//!   detection; downtime = recovery − failure start.
//!
//! An incident stays open while any of its *conditions* holds (an instance down or not
//! ready, an error-rate burn, a latency degradation, an exception burst); it recovers when
//! the last one clears.

mod kinds;
mod notify;
mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use kinds::{ActionKind, ActionRef, ConditionKey, Signal, UnknownKind};
pub use notify::Notifier;
pub use report::{ServiceReport, Summary, report};

use crate::common::time::rfc3339;

/// Most evidence items kept per incident (later ones are counted).
const MAX_EVIDENCE: usize = 100;
/// Most timeline entries kept per incident.
const MAX_TIMELINE: usize = 500;

/// Open or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Some condition still holds.
    Open,
    /// Every condition cleared.
    Resolved,
}

/// One piece of evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// When it was seen (RFC 3339).
    pub at: String,
    /// Nanoseconds since the epoch.
    pub at_unix_nano: u64,
    /// What kind of observation it is.
    pub signal: Signal,
    /// The instance, when the signal is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Details (exit code, failure counts, rates, template...).
    pub detail: serde_json::Value,
}

/// State of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting for approval.
    PendingApproval,
    /// Scheduled (after a back-off delay).
    Scheduled,
    /// Done.
    Executed,
    /// Tried and failed.
    Failed,
    /// Not done (budget spent, superseded...).
    Skipped,
    /// Dry-run mode: recorded, never done.
    DryRun,
}

/// An audited action: who, what, why, when, and the result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// Its id.
    pub id: String,
    /// The incident it belongs to.
    pub incident_id: String,
    /// The service.
    pub service: String,
    /// The instance acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What it does.
    pub what: ActionKind,
    /// Why.
    pub why: String,
    /// Who decided (`aiops` for automatic, `api:<who>` for an approval).
    pub who: String,
    /// Its state.
    pub status: ActionStatus,
    /// Delay before acting (back-off), milliseconds.
    pub delay_ms: u64,
    /// When it was decided (RFC 3339).
    pub created_at: String,
    /// Nanoseconds since the epoch.
    pub created_unix_nano: u64,
    /// When it was executed or settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed_at: Option<String>,
    /// The result (pid started, error...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Who approved it, when it needed approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// One candidate root cause of an incident, as ranked from the call graph and the
/// services' signals (see `rca::rank`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// 1 = most likely.
    pub rank: usize,
    /// The service.
    pub node: String,
    /// Its score in `[0, 1]`.
    pub score: f64,
    /// The metric whose change supports it, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// When that change started (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<f64>,
}

/// A timeline entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Nanoseconds since the epoch.
    pub at_unix_nano: u64,
    /// `failure_start`, `detected`, `evidence`, `action`, `recovered`, `resolved`, `note`.
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// A condition that keeps an incident open, with when it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Condition {
    /// When the failure behind it started (nanoseconds since the epoch).
    pub since_unix_nano: u64,
    /// Human description.
    pub description: String,
}

/// An incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incident {
    /// Its id (`inc-…`).
    pub id: String,
    /// The failing service.
    pub service: String,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// A one-line summary.
    pub title: String,
    /// The signals seen, in the order they first appeared.
    pub signals: Vec<Signal>,
    /// An upstream dependency whose own incident probably explains this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probable_root_cause: Option<String>,
    /// Candidate root causes, most likely first (the service itself among them).
    #[serde(default)]
    pub root_causes: Vec<RootCause>,
    /// The latest recovery time of the conditions cleared so far (ns).
    #[serde(default)]
    pub latest_recovery: u64,
    /// True when automatic recovery gave up (restart budget spent) and a human is needed.
    pub needs_attention: bool,
    /// Why a human is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_reason: Option<String>,
    /// Failure start (RFC 3339).
    pub failure_start: String,
    /// Failure start, nanoseconds since the epoch.
    pub failure_start_unix_nano: u64,
    /// Detection: when the incident opened.
    pub detected_at: String,
    /// Detection, nanoseconds since the epoch.
    pub detected_unix_nano: u64,
    /// Recovery: first success after the repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<String>,
    /// Recovery, nanoseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_unix_nano: Option<u64>,
    /// Detection − failure start, milliseconds.
    pub mttd_ms: f64,
    /// Recovery − detection, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mttr_ms: Option<f64>,
    /// Recovery − failure start, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<f64>,
    /// Instance restarts made for this incident.
    pub restarts: u32,
    /// Conditions still holding, by key (`instance:order#0`, `error_rate`...).
    pub conditions: BTreeMap<ConditionKey, Condition>,
    /// Evidence, oldest first.
    pub evidence: Vec<Evidence>,
    /// Evidence items not kept (past the cap).
    pub evidence_dropped: u64,
    /// Actions, oldest first.
    pub actions: Vec<Action>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
}

fn ms_between(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1e6
}

impl Incident {
    /// Opens an incident for `service`, with the condition `key` that started at
    /// `failure_start` and was detected at `detected`.
    pub fn open(
        id: String,
        service: &str,
        title: String,
        key: ConditionKey,
        condition: Condition,
        detected: u64,
    ) -> Self {
        let failure_start = condition.since_unix_nano.min(detected);
        let mut inc = Self {
            id,
            service: service.to_owned(),
            status: IncidentStatus::Open,
            title,
            signals: Vec::new(),
            probable_root_cause: None,
            root_causes: Vec::new(),
            latest_recovery: 0,
            needs_attention: false,
            attention_reason: None,
            failure_start: rfc3339(failure_start),
            failure_start_unix_nano: failure_start,
            detected_at: rfc3339(detected),
            detected_unix_nano: detected,
            recovered_at: None,
            recovered_unix_nano: None,
            mttd_ms: ms_between(failure_start, detected),
            mttr_ms: None,
            downtime_ms: None,
            restarts: 0,
            conditions: BTreeMap::new(),
            evidence: Vec::new(),
            evidence_dropped: 0,
            actions: Vec::new(),
            timeline: Vec::new(),
        };
        inc.note_at(
            failure_start,
            "failure_start",
            format!("failure started: {}", condition.description),
        );
        inc.note_at(
            detected,
            "detected",
            format!("incident opened: {}", inc.title),
        );
        inc.conditions.insert(key, condition);
        inc
    }

    /// Adds a timeline entry.
    pub fn note_at(&mut self, at: u64, kind: &str, message: String) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(1);
        }
        self.timeline.push(TimelineEntry {
            at: rfc3339(at),
            at_unix_nano: at,
            kind: kind.to_owned(),
            message,
        });
    }

    /// Adds evidence (and a timeline entry).
    pub fn add_evidence(&mut self, e: Evidence) {
        if !self.signals.contains(&e.signal) {
            self.signals.push(e.signal);
        }
        let msg = match &e.instance {
            Some(i) => format!("{} on {i}: {}", e.signal, e.detail),
            None => format!("{}: {}", e.signal, e.detail),
        };
        self.note_at(e.at_unix_nano, "evidence", msg);
        if self.evidence.len() >= MAX_EVIDENCE {
            self.evidence_dropped += 1;
        } else {
            self.evidence.push(e);
        }
    }

    /// Adds (or keeps) a condition; an earlier start moves the failure start back only while
    /// nothing was detected yet, so MTTD stays what it was when the incident opened.
    pub fn add_condition(&mut self, key: &ConditionKey, condition: Condition, at: u64) {
        if self.status == IncidentStatus::Resolved {
            return;
        }
        if !self.conditions.contains_key(key) {
            self.note_at(
                at,
                "note",
                format!("condition {key}: {}", condition.description),
            );
            self.conditions.insert(key.clone(), condition);
        }
    }

    /// Clears a condition at `at` (the first success after the repair). Answers true when
    /// that resolved the incident.
    ///
    /// The incident's recovery is the latest recovery among its conditions, whatever order
    /// they clear in.
    pub fn clear_condition(&mut self, key: &ConditionKey, at: u64, how: &str) -> bool {
        if self.conditions.remove(key).is_none() {
            return false;
        }
        self.note_at(at, "note", format!("condition {key} cleared: {how}"));
        self.latest_recovery = self.latest_recovery.max(at);
        if self.conditions.is_empty() {
            self.resolve(self.latest_recovery);
            true
        } else {
            false
        }
    }

    /// Marks the incident recovered and resolved at `at`.
    pub fn resolve(&mut self, at: u64) {
        let at = at.max(self.failure_start_unix_nano);
        self.status = IncidentStatus::Resolved;
        self.recovered_at = Some(rfc3339(at));
        self.recovered_unix_nano = Some(at);
        self.mttr_ms = Some(ms_between(self.detected_unix_nano, at).max(0.0));
        self.downtime_ms = Some(ms_between(self.failure_start_unix_nano, at));
        self.needs_attention = false;
        for a in self.actions.iter_mut().filter(|a| {
            matches!(
                a.status,
                ActionStatus::PendingApproval | ActionStatus::Scheduled
            )
        }) {
            a.status = ActionStatus::Skipped;
            a.result = Some("superseded: the service recovered first".into());
            a.executed_at = Some(rfc3339(at));
        }
        self.note_at(
            at,
            "recovered",
            format!(
                "recovered: MTTD {:.1} ms, MTTR {:.1} ms, downtime {:.1} ms",
                self.mttd_ms,
                self.mttr_ms.unwrap_or(0.0),
                self.downtime_ms.unwrap_or(0.0)
            ),
        );
    }

    /// Adds an action (and a timeline entry); answers its index.
    pub fn add_action(&mut self, action: Action) -> usize {
        self.note_at(
            action.created_unix_nano,
            "action",
            format!(
                "{} {} by {} ({:?}): {}",
                action.what,
                action.instance.as_deref().unwrap_or(&self.service),
                action.who,
                action.status,
                action.why
            ),
        );
        self.actions.push(action);
        self.actions.len() - 1
    }

    /// Settles an action with a status and result.
    pub fn settle_action(
        &mut self,
        action_id: &str,
        status: ActionStatus,
        result: String,
        at: u64,
    ) {
        let Some(a) = self.actions.iter_mut().find(|a| a.id == action_id) else {
            return;
        };
        a.status = status;
        a.executed_at = Some(rfc3339(at));
        a.result = Some(result.clone());
        let what = a.what;
        self.note_at(at, "action", format!("{what} {status:?}: {result}"));
    }
}

/// A new id: `inc-<unix millis>-<random>`.
pub fn new_id(prefix: &str) -> String {
    let r: u32 = rand::random();
    format!(
        "{prefix}-{}-{r:08x}",
        crate::common::time::now_nanos() / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_the_definitions() {
        let s = 1_000_000_000_000u64;
        let mut inc = Incident::open(
            "inc-1".into(),
            "order",
            "order#0 exited".into(),
            ConditionKey::Down(crate::common::instance::InstanceId::new("order", 0)),
            Condition {
                since_unix_nano: s,
                description: "exit".into(),
            },
            s + 2_000_000,
        );
        assert!((inc.mttd_ms - 2.0).abs() < 1e-9);
        let key = ConditionKey::Down(crate::common::instance::InstanceId::new("order", 0));
        assert!(inc.clear_condition(&key, s + 52_000_000, "ready"));
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(inc.mttr_ms, Some(50.0));
        assert_eq!(inc.downtime_ms, Some(52.0));
    }
}
