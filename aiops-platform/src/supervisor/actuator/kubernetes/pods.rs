//! What a pod's status says, and what changed between two sightings of it: the pure part of
//! the pod watch. A change becomes a [`PodChange`] stamped with the pod's own time (a
//! container's `finishedAt`, a condition's `lastTransitionTime`), not the time we saw it.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::incident::Signal;

/// One container's state, as far as repairs care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerView {
    pub(crate) name: String,
    pub(crate) restarts: i32,
    /// `CrashLoopBackOff`, `ImagePullBackOff`, ... while waiting.
    pub(crate) waiting: Option<(String, String)>,
    /// The last termination: reason (`OOMKilled`, `Error`), exit code, when.
    pub(crate) last_terminated: Option<(String, i32, u64)>,
}

/// A pod, as far as the actuator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodView {
    pub(crate) name: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) ready: bool,
    /// When the Ready condition last changed.
    pub(crate) ready_at: Option<u64>,
    /// Deletion asked (ns since the epoch): the pod is terminating.
    pub(crate) deleting: Option<u64>,
    /// `Succeeded` or `Failed`: its containers will not run again.
    pub(crate) terminal: bool,
    /// `Evicted` (or another pod-level reason) with its message and time.
    pub(crate) evicted: Option<(String, u64)>,
    pub(crate) containers: Vec<ContainerView>,
}

/// Nanoseconds since the epoch of an API time.
pub(crate) fn nanos(t: &Time) -> u64 {
    u64::try_from(t.0.as_nanosecond()).unwrap_or(0)
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn container(c: &ContainerStatus) -> ContainerView {
    let waiting = c
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| {
            w.reason
                .clone()
                .map(|r| (r, w.message.clone().unwrap_or_default()))
        });
    let last_terminated = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            (
                t.reason.clone().unwrap_or_else(|| "Unknown".into()),
                t.exit_code,
                t.finished_at.as_ref().map(nanos).unwrap_or(0),
            )
        });
    ContainerView {
        name: c.name.clone(),
        restarts: c.restart_count,
        waiting,
        last_terminated,
    }
}

impl PodView {
    /// Reads what matters of `pod`; `now` stamps what the pod does not.
    pub(crate) fn of(pod: &Pod, now: u64) -> Self {
        let status = pod.status.as_ref();
        let ready = condition(pod, "Ready");
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        let evicted = status
            .and_then(|s| s.reason.as_deref())
            .filter(|r| *r == "Evicted")
            .map(|_| {
                let at = condition(pod, "DisruptionTarget")
                    .and_then(|c| c.last_transition_time.as_ref())
                    .map_or(now, nanos);
                let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
                (message, at)
            });
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_at: ready.and_then(|c| c.last_transition_time.as_ref().map(nanos)),
            deleting: pod.metadata.deletion_timestamp.as_ref().map(nanos),
            terminal: matches!(phase, "Succeeded" | "Failed"),
            evicted,
            containers: status
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(container).collect())
                .unwrap_or_default(),
        }
    }

    /// Serving: it has an address and is neither terminating nor finished.
    pub(crate) fn running(&self) -> bool {
        self.ip.is_some() && self.deleting.is_none() && !self.terminal
    }
}

/// Something that happened to a pod, at the pod's own time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodChange {
    /// Which signal it is evidence of.
    pub(crate) signal: Signal,
    /// True when it is a recovery (the pod became Ready).
    pub(crate) healthy: bool,
    /// What happened (`reason`, `container`, `restarts`, `exit_code`, `message`).
    pub(crate) detail: serde_json::Value,
    /// When, by the pod's own clock.
    pub(crate) at: u64,
}

/// What changed from `old` (none: first sighting) to `new`. A first sighting reports only
/// what is wrong now (a crash loop, an eviction), not history (earlier restarts).
pub(crate) fn changes(old: Option<&PodView>, new: &PodView, now: u64) -> Vec<PodChange> {
    let pod = new.name.as_str();
    let mut out: Vec<PodChange> = new
        .containers
        .iter()
        .flat_map(|c| {
            let before = old.and_then(|o| o.containers.iter().find(|x| x.name == c.name));
            container_changes(pod, before, c, now)
        })
        .collect();
    if let Some((message, at)) = &new.evicted
        && old.is_none_or(|o| o.evicted.is_none())
    {
        out.push(PodChange {
            signal: Signal::ProcessExit,
            healthy: false,
            detail: serde_json::json!({
                "pod": pod, "reason": "Evicted", "message": message,
                "description": format!("pod {pod} evicted: {message}"),
            }),
            at: *at,
        });
    }
    if let Some(o) = old
        && o.ready != new.ready
        && new.deleting.is_none()
    {
        let state = if new.ready { "Ready" } else { "not Ready" };
        out.push(PodChange {
            signal: Signal::Readiness,
            healthy: new.ready,
            detail: serde_json::json!({
                "pod": pod, "ready": new.ready,
                "description": format!("pod {pod} became {state}"),
            }),
            at: new.ready_at.unwrap_or(now),
        });
    }
    out
}

/// A container restarted (its restart count went up) or entered a back-off.
fn container_changes(
    pod: &str,
    before: Option<&ContainerView>,
    c: &ContainerView,
    now: u64,
) -> Vec<PodChange> {
    let mut out = Vec::new();
    if let Some(b) = before
        && c.restarts > b.restarts
    {
        let (reason, exit_code, at) = c
            .last_terminated
            .clone()
            .unwrap_or_else(|| ("Unknown".into(), -1, now));
        out.push(PodChange {
            signal: Signal::ProcessExit,
            healthy: false,
            detail: serde_json::json!({
                "pod": pod, "container": c.name, "reason": reason,
                "exit_code": exit_code, "restarts": c.restarts,
                "description": format!("container {} of pod {pod} restarted ({reason}, exit code {exit_code}); restart {}", c.name, c.restarts),
            }),
            at,
        });
    }
    let was_waiting = before.and_then(|b| b.waiting.as_ref()).map(|w| &w.0);
    if let Some((reason, message)) = &c.waiting
        && reason.ends_with("BackOff")
        && was_waiting != Some(reason)
    {
        let at = c.last_terminated.as_ref().map_or(now, |t| t.2);
        out.push(PodChange {
            signal: Signal::ProcessExit,
            healthy: false,
            detail: serde_json::json!({
                "pod": pod, "container": c.name, "reason": reason, "message": message,
                "restarts": c.restarts,
                "description": format!("container {} of pod {pod}: {reason}", c.name),
            }),
            at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> PodView {
        let pod: Pod = serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        PodView::of(&pod, 7)
    }

    fn running(restarts: i32, ready: &str, last: serde_json::Value) -> PodView {
        pod(serde_json::json!({
            "metadata": {"name": "order-1"},
            "status": {
                "phase": "Running", "podIP": "10.1.0.7",
                "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2026-12-02T10:00:05Z"}],
                "containerStatuses": [{
                    "name": "app", "ready": ready == "True", "restartCount": restarts, "image": "i", "imageID": "",
                    "state": {"running": {"startedAt": "2026-12-02T10:00:04Z"}},
                    "lastState": last,
                }],
            },
        }))
    }

    #[test]
    fn an_oom_kill_is_a_restart_at_the_containers_own_time() {
        let before = running(0, "True", serde_json::json!({}));
        let after = running(
            1,
            "True",
            serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-12-02T10:00:03Z"}}),
        );
        let got = changes(Some(&before), &after, 0);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].detail["reason"], "OOMKilled");
        assert_eq!(got[0].detail["exit_code"], 137);
        assert_eq!(got[0].at, 1_796_205_603_000_000_000);
        assert!(changes(None, &after, 0).is_empty(), "history is not news");
    }

    #[test]
    fn readiness_changes_carry_the_condition_time() {
        let ready = running(0, "True", serde_json::json!({}));
        let unready = running(0, "False", serde_json::json!({}));
        let got = changes(Some(&ready), &unready, 0);
        assert_eq!((got[0].signal, got[0].healthy), (Signal::Readiness, false));
        assert_eq!(got[0].at, 1_796_205_605_000_000_000);
        assert!(changes(Some(&unready), &ready, 0)[0].healthy);
        assert!(ready.running() && ready.ip.is_some());
    }

    #[test]
    fn evictions_and_crash_loops_are_reported_once() {
        let evicted = pod(serde_json::json!({
            "metadata": {"name": "order-1"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."},
        }));
        assert!(!evicted.running() && evicted.terminal);
        let got = changes(None, &evicted, 9);
        assert_eq!(
            (got.len(), got[0].at),
            (1, 7),
            "seen at 7: no DisruptionTarget time"
        );
        assert!(changes(Some(&evicted), &evicted, 9).is_empty());

        let mut looping = running(3, "False", serde_json::json!({}));
        looping.containers[0].waiting = Some(("CrashLoopBackOff".into(), "back-off 40s".into()));
        let got = changes(None, &looping, 5);
        assert_eq!(got[0].detail["reason"], "CrashLoopBackOff");
        assert!(changes(Some(&looping), &looping, 5).is_empty());
    }
}
