//! Discovery: the Deployments annotated `aiods.dev/watch: "true"` in the namespaces given
//! become services (named after the Deployment, probed on its first container port). They are
//! listed once when the platform starts ([`discover`]) and then watched
//! ([`watch_annotated`]): a Deployment annotated later is added while the platform runs, one
//! deleted or no longer annotated is let go. [`AnnotatedSet`] decides which sighting is which
//! change, without the API.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

use super::KubernetesWorkload;
use super::error::KubernetesError;

/// The opt-in annotation on a Deployment.
pub const WATCH_ANNOTATION: &str = "aiods.dev/watch";

/// An annotated Deployment, as a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Where its pods are.
    pub workload: KubernetesWorkload,
    /// The replicas its spec asks for (1 when unset, as the API server defaults it): the
    /// floor aiops never scales it in below.
    pub replicas: u32,
}

/// What changed in the set of annotated Deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryChange {
    /// A Deployment is annotated now (new, or newly annotated).
    Found(Discovered),
    /// A Deployment is gone or no longer annotated: the service of that name is let go.
    Lost {
        /// Its namespace.
        namespace: String,
        /// The service (the Deployment's name).
        service: String,
    },
}

/// The Deployment as a service, when it is annotated and names a container port.
pub fn discovered(namespace: &str, d: &Deployment) -> Option<Discovered> {
    let annotated = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WATCH_ANNOTATION))
        .is_some_and(|v| v == "true");
    let name = d.metadata.name.clone().filter(|_| annotated)?;
    let spec = &d.spec;
    let port = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.container_port).ok());
    let Some(port) = port else {
        tracing::warn!(deployment = %name, namespace, "annotated for aiops but names no container port: skipped");
        return None;
    };
    let replicas = replicas_of(spec);
    Some(Discovered {
        workload: KubernetesWorkload {
            service: name.clone(),
            namespace: namespace.to_owned(),
            deployment: Some(name),
            selector: None,
            port,
        },
        replicas,
    })
}

/// The annotated Deployments of `namespaces` now (sorted by namespace, name).
pub async fn discover(
    client: &kube::Client,
    namespaces: &[String],
) -> Result<Vec<Discovered>, KubernetesError> {
    let mut out = Vec::new();
    for ns in namespaces {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        // Annotations cannot be selected on by the server: list, then filter.
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| KubernetesError::from_api("list", "deployments", ns, e))?;
        out.extend(list.items.iter().filter_map(|d| discovered(ns, d)));
    }
    out.sort_by(|a, b| {
        (&a.workload.namespace, &a.workload.service)
            .cmp(&(&b.workload.namespace, &b.workload.service))
    });
    Ok(out)
}

/// The replicas the spec of Deployment `name` asks for.
pub async fn deployment_replicas(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<u32, KubernetesError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = api
        .get(name)
        .await
        .map_err(|e| KubernetesError::from_api("get", "deployments", namespace, e))?;
    Ok(replicas_of(&d.spec))
}

/// The replicas a Deployment's spec asks for (1 when unset, as the API server defaults it).
fn replicas_of(spec: &k8s_openapi::api::apps::v1::DeploymentSpec) -> u32 {
    spec.replicas
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(1)
}

/// The annotated Deployments seen so far, by namespace and name: turns each sighting of the
/// watch into the change it is, if any.
#[derive(Debug, Default)]
pub struct AnnotatedSet {
    known: BTreeMap<(String, String), Discovered>,
    /// Names seen during a relist, until it is done.
    relisting: BTreeMap<String, BTreeSet<String>>,
}

impl AnnotatedSet {
    /// A set that already holds `known` (the services listed at start).
    pub fn new(known: impl IntoIterator<Item = Discovered>) -> Self {
        Self {
            known: known
                .into_iter()
                .map(|d| {
                    (
                        (d.workload.namespace.clone(), d.workload.service.clone()),
                        d,
                    )
                })
                .collect(),
            relisting: BTreeMap::new(),
        }
    }

    /// A Deployment was added or modified.
    pub fn apply(&mut self, namespace: &str, d: &Deployment) -> Option<DiscoveryChange> {
        let name = d.metadata.name.clone()?;
        if let Some(seen) = self.relisting.get_mut(namespace) {
            seen.insert(name.clone());
        }
        let key = (namespace.to_owned(), name);
        match (discovered(namespace, d), self.known.contains_key(&key)) {
            (Some(found), false) => {
                self.known.insert(key, found.clone());
                Some(DiscoveryChange::Found(found))
            }
            // Still annotated: a change of replicas or port is not a new service.
            (Some(_), true) | (None, false) => None,
            (None, true) => self.lose(key),
        }
    }

    /// A Deployment was deleted.
    pub fn delete(&mut self, namespace: &str, d: &Deployment) -> Option<DiscoveryChange> {
        let name = d.metadata.name.clone()?;
        self.lose((namespace.to_owned(), name))
    }

    /// A relist of `namespace` starts (after a watch that was too old).
    pub fn relist_started(&mut self, namespace: &str) {
        self.relisting.insert(namespace.to_owned(), BTreeSet::new());
    }

    /// The relist of `namespace` is done: what it did not show is gone.
    pub fn relist_done(&mut self, namespace: &str) -> Vec<DiscoveryChange> {
        let Some(seen) = self.relisting.remove(namespace) else {
            return Vec::new();
        };
        let gone: Vec<_> = self
            .known
            .keys()
            .filter(|(ns, name)| ns == namespace && !seen.contains(name))
            .cloned()
            .collect();
        gone.into_iter().filter_map(|k| self.lose(k)).collect()
    }

    fn lose(&mut self, key: (String, String)) -> Option<DiscoveryChange> {
        self.known.remove(&key)?;
        let (namespace, service) = key;
        Some(DiscoveryChange::Lost { namespace, service })
    }
}

/// Watches the Deployments of `namespaces` and sends each change of `set` until the receiver
/// is gone. Failures (a missing permission too) are logged and retried with kube's back-off.
pub async fn watch_annotated(
    client: kube::Client,
    namespaces: Vec<String>,
    mut set: AnnotatedSet,
    changes: mpsc::UnboundedSender<DiscoveryChange>,
) {
    let streams = namespaces.into_iter().map(|ns| {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |e| (ns.clone(), e))
            .boxed()
    });
    let mut all = futures_util::stream::select_all(streams);
    while let Some((ns, item)) = all.next().await {
        let out = match item {
            Ok(watcher::Event::Init) => {
                set.relist_started(&ns);
                Vec::new()
            }
            Ok(watcher::Event::InitApply(d) | watcher::Event::Apply(d)) => {
                set.apply(&ns, &d).into_iter().collect()
            }
            Ok(watcher::Event::InitDone) => set.relist_done(&ns),
            Ok(watcher::Event::Delete(d)) => set.delete(&ns, &d).into_iter().collect(),
            Err(error) => {
                let error = match error {
                    watcher::Error::InitialListFailed(e) => {
                        KubernetesError::from_api("list", "deployments", &ns, e).to_string()
                    }
                    watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
                        KubernetesError::from_api("watch", "deployments", &ns, e).to_string()
                    }
                    other => other.to_string(),
                };
                tracing::error!(namespace = %ns, %error, "deployment discovery watch failed; retrying with back-off");
                Vec::new()
            }
        };
        for change in out {
            if changes.send(change).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, annotated: bool, replicas: Option<i32>) -> Deployment {
        let annotations = if annotated {
            serde_json::json!({ WATCH_ANNOTATION: "true" })
        } else {
            serde_json::json!({})
        };
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "namespace": "aiods", "annotations": annotations },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": { "spec": { "containers": [
                    { "name": "app", "image": "x", "ports": [{ "containerPort": 8080 }] }
                ] } }
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn lost(name: &str) -> DiscoveryChange {
        DiscoveryChange::Lost {
            namespace: "aiods".into(),
            service: name.into(),
        }
    }

    #[test]
    fn an_annotated_deployment_is_found_once_with_its_replicas() {
        let mut set = AnnotatedSet::default();
        let Some(DiscoveryChange::Found(found)) =
            set.apply("aiods", &deployment("kitchen", true, Some(3)))
        else {
            panic!("not found");
        };
        assert_eq!(found.replicas, 3);
        assert_eq!(found.workload.port, 8080);
        assert_eq!(found.workload.deployment.as_deref(), Some("kitchen"));
        // A modification of a known one (scaled by someone) is no new service.
        assert_eq!(
            set.apply("aiods", &deployment("kitchen", true, Some(5))),
            None
        );
        // Unannotated: never a service; unset replicas default to 1.
        assert_eq!(set.apply("aiods", &deployment("legacy", false, None)), None);
        let Some(DiscoveryChange::Found(one)) =
            set.apply("aiods", &deployment("notify", true, None))
        else {
            panic!("not found");
        };
        assert_eq!(one.replicas, 1);
    }

    #[test]
    fn losing_the_annotation_or_the_deployment_lets_the_service_go() {
        let mut set = AnnotatedSet::default();
        set.apply("aiods", &deployment("kitchen", true, Some(2)));
        set.apply("aiods", &deployment("order", true, Some(2)));
        assert_eq!(
            set.apply("aiods", &deployment("kitchen", false, Some(2))),
            Some(lost("kitchen"))
        );
        assert_eq!(
            set.delete("aiods", &deployment("order", true, Some(2))),
            Some(lost("order"))
        );
        assert_eq!(
            set.delete("aiods", &deployment("order", true, Some(2))),
            None
        );
    }

    #[test]
    fn a_relist_that_no_longer_shows_a_deployment_loses_it() {
        let start = [
            deployment("kitchen", true, Some(2)),
            deployment("order", true, None),
        ]
        .iter()
        .filter_map(|d| discovered("aiods", d))
        .collect::<Vec<_>>();
        let mut set = AnnotatedSet::new(start);
        set.relist_started("aiods");
        // The ones known at start come again: nothing new.
        assert_eq!(set.apply("aiods", &deployment("order", true, None)), None);
        assert_eq!(set.relist_done("aiods"), [lost("kitchen")]);
        assert!(
            set.relist_done("aiods").is_empty(),
            "one relist, one answer"
        );
    }
}
