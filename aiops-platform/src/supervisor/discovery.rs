//! Services found on Kubernetes while the platform runs: the changes of the discovery watch
//! ([`kubernetes::watch_annotated`]) become actuators registered in [`ByService`] and services
//! added to (or let go by) the [`Supervision`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Supervision;
use super::actuator::kubernetes::{self, AnnotatedSet, Discovered, DiscoveryChange};
use super::actuator::{Actuator, ByService, KubernetesActuator};
use crate::config::{ConfigError, KubernetesServiceConfig, ServiceConfig};

/// Everything the discovery watch needs once the supervisor runs.
pub struct DiscoveryPlan {
    /// The cluster.
    pub client: kube::Client,
    /// The namespaces watched.
    pub namespaces: Vec<String>,
    /// The annotated Deployments already supervised (found at start).
    pub known: Vec<Discovered>,
    /// Services the topology names itself: never added or let go by discovery.
    pub named: BTreeSet<String>,
    /// Where the actuators of found services are registered.
    pub actuators: Arc<ByService>,
}

impl std::fmt::Debug for DiscoveryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryPlan")
            .field("namespaces", &self.namespaces)
            .field("known", &self.known)
            .field("named", &self.named)
            .finish_non_exhaustive()
    }
}

/// A discovered Deployment as a service at its defaults, never scaled in below the replicas
/// its spec asks for.
pub fn service_of(found: &Discovered) -> Result<ServiceConfig, ConfigError> {
    let w = &found.workload;
    let mut service = ServiceConfig::named(&w.service)?;
    service.replicas = found.replicas.max(1);
    service.kubernetes = Some(KubernetesServiceConfig {
        namespace: w.namespace.clone(),
        deployment: w.deployment.clone(),
        selector: w.selector.clone(),
        port: w.port,
    });
    Ok(service)
}

/// Runs the discovery watch and applies its changes until the platform stops.
pub async fn follow(plan: DiscoveryPlan, supervision: Arc<Supervision>) {
    let (tx, mut changes) = mpsc::unbounded_channel();
    let watch = tokio::spawn(kubernetes::watch_annotated(
        plan.client.clone(),
        plan.namespaces.clone(),
        AnnotatedSet::new(plan.known),
        tx,
    ));
    while let Some(change) = changes.recv().await {
        match change {
            DiscoveryChange::Found(found) => {
                let name = found.workload.service.clone();
                if plan.named.contains(&name) {
                    continue;
                }
                let service = match service_of(&found) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::error!(service = %name, %error, "cannot supervise a discovered Deployment");
                        continue;
                    }
                };
                let actuator: Arc<dyn Actuator> = Arc::new(KubernetesActuator::new(
                    plan.client.clone(),
                    found.workload.clone(),
                ));
                if let Err(error) = plan.actuators.add(&name, actuator) {
                    tracing::error!(service = %name, %error, "cannot watch a discovered Deployment");
                    continue;
                }
                tracing::info!(service = %name, namespace = %found.workload.namespace, replicas = found.replicas, "discovered an annotated Deployment");
                supervision.add_service(service);
            }
            DiscoveryChange::Lost { namespace, service } => {
                if plan.named.contains(&service) {
                    continue;
                }
                tracing::info!(%service, %namespace, "a discovered Deployment is gone or no longer annotated");
                supervision.remove_service(&service);
                plan.actuators.remove(&service);
            }
        }
    }
    watch.abort();
}
