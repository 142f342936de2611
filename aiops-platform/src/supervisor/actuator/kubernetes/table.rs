//! [`PodTable`]: the pods of one workload as instances. A pod gets the lowest free index of
//! its service when first seen (a pod replacing one that aiops deleted takes that one's
//! index, so a restart reads as `order#0` generation 2); its sightings become
//! [`LifecycleEvent`]s: `Started` once it has an IP, `Exited` once it terminates, and
//! `Observed` for what the pod's status shows (restarts, OOM kills, back-offs, readiness,
//! evictions).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;

use super::pods::{self, PodView};
use crate::common::instance::InstanceId;
use crate::supervisor::ExitReason;
use crate::supervisor::actuator::{LifecycleEvent, ObservedInstance};

#[derive(Debug)]
struct Tracked {
    index: u32,
    view: PodView,
    generation: u64,
    started: bool,
    exited: bool,
    /// aiops deleted it: its index goes to the next new pod.
    leaving: bool,
    /// The serving label as last seen or set.
    serving: bool,
}

/// The pods of one service.
#[derive(Debug)]
pub(crate) struct PodTable {
    service: String,
    port: u16,
    pods: HashMap<String, Tracked>,
    generations: HashMap<u32, u64>,
    handover: VecDeque<u32>,
}

impl PodTable {
    pub(crate) fn new(service: &str, port: u16) -> Self {
        Self {
            service: service.to_owned(),
            port,
            pods: HashMap::new(),
            generations: HashMap::new(),
            handover: VecDeque::new(),
        }
    }

    fn id(&self, index: u32) -> InstanceId {
        InstanceId::new(self.service.clone(), index)
    }

    fn next_index(&mut self) -> u32 {
        let used: BTreeSet<u32> = self
            .pods
            .values()
            .filter(|t| !t.exited && !t.leaving)
            .map(|t| t.index)
            .collect();
        while let Some(i) = self.handover.pop_front() {
            if !used.contains(&i) {
                return i;
            }
        }
        (0..).find(|i| !used.contains(i)).unwrap_or(0)
    }

    /// A pod was added or changed (or listed).
    pub(crate) fn apply(&mut self, pod: &Pod, now: u64) -> Vec<LifecycleEvent> {
        let view = PodView::of(pod, now);
        let serving = pod.metadata.labels.as_ref().is_some_and(|l| {
            l.get(super::actions::SERVING_LABEL)
                .is_some_and(|v| v == "true")
        });
        if !self.pods.contains_key(&view.name) {
            if view.deleting.is_some() || view.terminal {
                // A leftover (evicted, completed): never an instance.
                return Vec::new();
            }
            let index = self.next_index();
            self.pods.insert(
                view.name.clone(),
                Tracked {
                    index,
                    view: view.clone(),
                    generation: 0,
                    started: false,
                    exited: false,
                    leaving: false,
                    serving,
                },
            );
            let mut out = self.observed(index, None, &view, now);
            out.extend(self.transitions(&view.name, now));
            return out;
        }
        let Some(t) = self.pods.get_mut(&view.name) else {
            return Vec::new();
        };
        let old = std::mem::replace(&mut t.view, view.clone());
        t.serving = serving;
        let index = t.index;
        let mut out = self.observed(index, Some(&old), &view, now);
        out.extend(self.transitions(&view.name, now));
        out
    }

    /// A pod is gone from the API.
    pub(crate) fn delete(&mut self, pod: &Pod, now: u64) -> Vec<LifecycleEvent> {
        let mut last = PodView::of(pod, now);
        last.deleting.get_or_insert(now);
        let name = last.name.clone();
        let out = match self.pods.get_mut(&name) {
            Some(t) => {
                // Its last state: the deletionTimestamp is the pod's own time of death.
                t.view = last;
                self.transitions(&name, now)
            }
            None => Vec::new(),
        };
        self.pods.remove(&name);
        out
    }

    fn observed(
        &self,
        index: u32,
        old: Option<&PodView>,
        new: &PodView,
        now: u64,
    ) -> Vec<LifecycleEvent> {
        pods::changes(old, new, now)
            .into_iter()
            .map(|c| LifecycleEvent::Observed {
                id: self.id(index),
                signal: c.signal,
                healthy: c.healthy,
                detail: c.detail,
                at: c.at,
            })
            .collect()
    }

    /// `Started` the first time a pod serves, `Exited` the first time it stops.
    fn transitions(&mut self, name: &str, now: u64) -> Vec<LifecycleEvent> {
        let Some(t) = self.pods.get_mut(name) else {
            return Vec::new();
        };
        let id = InstanceId::new(self.service.clone(), t.index);
        let mut out = Vec::new();
        if !t.started && t.view.running() {
            let generation = self.generations.entry(t.index).or_insert(0);
            *generation += 1;
            t.generation = *generation;
            t.started = true;
            let ip = t.view.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
            out.push(LifecycleEvent::Started {
                id: id.clone(),
                generation: t.generation,
                addr: SocketAddr::new(ip, self.port),
                pid: None,
                at: now,
            });
        }
        let stopped = t.view.deleting.is_some() || t.view.terminal;
        if stopped && !t.exited {
            t.exited = true;
            if t.started {
                out.push(LifecycleEvent::Exited {
                    id,
                    generation: t.generation,
                    exit: exit_reason(&t.view),
                    at: t.view.deleting.unwrap_or(now),
                });
            }
        }
        out
    }

    /// A relist did not show these pods: they were deleted while the watch was down.
    pub(crate) fn forget_missing(
        &mut self,
        seen: &std::collections::HashSet<String>,
        now: u64,
    ) -> Vec<LifecycleEvent> {
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for name in gone {
            if let Some(t) = self.pods.get_mut(&name) {
                t.view.deleting.get_or_insert(now);
            }
            out.extend(self.transitions(&name, now));
            self.pods.remove(&name);
        }
        out
    }

    /// The pod of instance `index` (not terminated), for an action.
    pub(crate) fn pod_of(&self, index: u32) -> Option<String> {
        self.pods
            .iter()
            .filter(|(_, t)| t.index == index && !t.exited)
            .min_by_key(|(_, t)| t.leaving)
            .map(|(name, _)| name.clone())
    }

    /// aiops deletes `pod` (`true`): the next new pod takes its index; or the deletion
    /// failed (`false`): it keeps it.
    pub(crate) fn leaving(&mut self, pod: &str, leaving: bool) {
        if let Some(t) = self.pods.get_mut(pod) {
            t.leaving = leaving;
            let index = t.index;
            if leaving {
                self.handover.push_back(index);
            } else {
                self.handover.retain(|i| *i != index);
            }
        }
    }

    /// Records the wanted serving state; answers whether it differs from the known one.
    pub(crate) fn want_serving(&mut self, pod: &str, serving: bool) -> bool {
        match self.pods.get_mut(pod) {
            Some(t) if !t.exited && t.serving != serving => {
                t.serving = serving;
                true
            }
            _ => false,
        }
    }

    /// The instances now.
    pub(crate) fn list(&self) -> Vec<ObservedInstance> {
        let mut out: Vec<ObservedInstance> = self
            .pods
            .values()
            .filter(|t| t.started && !t.exited)
            .map(|t| ObservedInstance {
                id: self.id(t.index),
                addr: SocketAddr::new(
                    t.view.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                    self.port,
                ),
                generation: t.generation,
                pid: None,
                running: true,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The names of the pods not terminated, by index.
    pub(crate) fn names(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .pods
            .iter()
            .filter(|(_, t)| !t.exited)
            .map(|(n, t)| (t.index, n.clone()))
            .collect();
        v.sort();
        v
    }
}

fn exit_reason(view: &PodView) -> ExitReason {
    if let Some((message, _)) = &view.evicted {
        return ExitReason::Unknown(format!("pod {} evicted: {message}", view.name));
    }
    if view.terminal
        && let Some((_, code, _)) = view
            .containers
            .iter()
            .find_map(|c| c.last_terminated.clone())
    {
        return ExitReason::Code(code);
    }
    ExitReason::Unknown(format!("pod {} deleted", view.name))
}
