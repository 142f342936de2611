//! [`KubernetesActuator`]: the instances of a service are the pods of a Deployment (or of a
//! label selector), kept current by a watch; the verbs are API calls, each also written as a
//! Kubernetes Event on the object so that `kubectl describe` shows what aiops did and why.
//!
//! | verb | API calls |
//! | --- | --- |
//! | restart | `DELETE pods/{name}` (its ReplicaSet makes a new pod, which takes the same instance id) |
//! | scale | `LIST horizontalpodautoscalers` (refused if one targets the Deployment), `GET` + `PATCH deployments/{name}/scale` with the read resourceVersion (a 409 is retried once) |
//! | stop (retire a replaced pod) | `PATCH pods/{name}` annotation `controller.kubernetes.io/pod-deletion-cost: "-1000"`, then scale down by one |
//! | set_traffic | `PATCH pods/{name}` label `aiods.dev/serving` (null: out of its Service; `"true"`: back), queued in order |
//! | rollout restart | `PATCH deployments/{name}` template annotation `kubectl.kubernetes.io/restartedAt` |
//! | every action | `POST events` (core/v1) on the pod or Deployment |
//!
//! Pods are started by their ReplicaSet, never by aiops: [`Actuator::start`] has nothing to
//! do, and pods arrive on the lifecycle stream as `Started` once they have an IP.

mod actions;
mod discovery;
mod error;
mod events;
mod pods;
mod table;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use actions::{DELETION_COST, RESTARTED_AT, SERVING_LABEL};
pub use discovery::{
    AnnotatedSet, Discovered, DiscoveryChange, WATCH_ANNOTATION, deployment_replicas, discover,
    discovered, watch_annotated,
};
pub use error::KubernetesError;

use self::actions::Cluster;
use self::events::{EventRecorder, Target};
use self::table::PodTable;
use self::watch::PodSource;
use super::{
    Actuator, ActuatorError, InstanceSpec, LifecycleEvent, LifecycleStream, ObservedInstance,
    Reason, ScaleOutcome, Traffic, WorkloadSpec,
};
use crate::common::instance::InstanceId;

/// The deletion cost given to a pod that scaling back should remove first.
const RETIRE_COST: &str = "-1000";

/// Where a service's pods are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesWorkload {
    /// The service (instance ids are `service#index`).
    pub service: String,
    /// The namespace.
    pub namespace: String,
    /// The Deployment (its selector finds the pods; scaling patches it).
    pub deployment: Option<String>,
    /// A label selector, when no Deployment is named.
    pub selector: Option<String>,
    /// The container port probed and scraped on each pod IP.
    pub port: u16,
}

/// One service's pods, acted on through the Kubernetes API.
#[derive(Debug)]
pub struct KubernetesActuator {
    workload: KubernetesWorkload,
    cluster: Cluster,
    recorder: EventRecorder,
    table: Arc<Mutex<PodTable>>,
    events: mpsc::UnboundedSender<LifecycleEvent>,
    stream: Mutex<Option<LifecycleStream>>,
    traffic: mpsc::UnboundedSender<(InstanceId, String, bool)>,
}

/// A client from the in-cluster service account or the kubeconfig (`kube::Config::infer`).
pub async fn connect() -> Result<kube::Client, KubernetesError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| KubernetesError::NoCluster(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| KubernetesError::NoCluster(e.to_string()))
}

impl KubernetesActuator {
    /// An actuator for `workload` through `client` (in a tokio runtime: it spawns the task
    /// that applies traffic changes in order). The pod watch starts with [`Actuator::watch`].
    pub fn new(client: kube::Client, workload: KubernetesWorkload) -> Self {
        let cluster = Cluster::new(client.clone(), &workload.namespace);
        let recorder = EventRecorder::new(client, &workload.namespace);
        let (events, stream) = mpsc::unbounded_channel();
        let (traffic, queue) = mpsc::unbounded_channel();
        tokio::spawn(apply_traffic(cluster.clone(), recorder.clone(), queue));
        Self {
            table: Arc::new(Mutex::new(PodTable::new(&workload.service, workload.port))),
            workload,
            cluster,
            recorder,
            events,
            stream: Mutex::new(Some(stream)),
            traffic,
        }
    }

    /// The workload.
    pub fn workload(&self) -> &KubernetesWorkload {
        &self.workload
    }

    /// The pod names of the instances now, by index.
    pub fn pods(&self) -> Vec<(u32, String)> {
        self.table.lock().names()
    }

    fn deployment(&self) -> Result<&str, KubernetesError> {
        self.workload
            .deployment
            .as_deref()
            .ok_or_else(|| KubernetesError::NoDeployment(self.workload.service.clone()))
    }

    fn pod(&self, id: &InstanceId) -> Result<String, KubernetesError> {
        self.table
            .lock()
            .pod_of(id.index)
            .ok_or_else(|| KubernetesError::NoPod(id.to_string()))
    }

    /// Writes an Event; a failure is logged, the action stands.
    async fn event(&self, target: &Target, reason: &str, message: &str, warning: bool) {
        if let Err(error) = self.recorder.record(target, reason, message, warning).await {
            tracing::warn!(object = %target.name, reason, %error, "cannot write the Kubernetes Event");
        }
    }

    /// `kubectl rollout restart`: every pod of the Deployment is replaced within its
    /// rollout strategy.
    pub async fn rollout_restart(&self, why: &Reason) -> Result<(), ActuatorError> {
        let deployment = self.deployment()?.to_owned();
        let at = k8s_openapi::jiff::Timestamp::now().to_string();
        self.cluster.rollout_restart(&deployment, &at).await?;
        let message = format!("aiops restarted the rollout{}", because(why));
        self.event(
            &Target::deployment(&deployment),
            "AiopsRolloutRestart",
            &message,
            false,
        )
        .await;
        Ok(())
    }

    /// Scales by a function of the current count, refusing against an autoscaler; the
    /// refusal is an Event too.
    async fn scale_to(
        &self,
        to: impl Fn(i32) -> i32,
        why: &Reason,
    ) -> Result<(i32, i32), ActuatorError> {
        let deployment = self.deployment()?.to_owned();
        let target = Target::deployment(&deployment);
        match self.cluster.scale(&deployment, to).await {
            Ok((before, after)) => {
                let message = format!(
                    "aiops scaled {deployment} from {before} to {after} replicas{}",
                    because(why)
                );
                self.event(&target, "AiopsScale", &message, false).await;
                Ok((before, after))
            }
            Err(e @ KubernetesError::HpaOwnsScale { .. }) => {
                self.event(&target, "AiopsScaleRefused", &e.to_string(), true)
                    .await;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `": the reason"` for an Event's message; nothing when there is none.
fn because(why: &Reason) -> String {
    if why.incident.is_none() && why.text.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
}

/// Applies traffic changes one after another, in the order asked.
async fn apply_traffic(
    cluster: Cluster,
    recorder: EventRecorder,
    mut queue: mpsc::UnboundedReceiver<(InstanceId, String, bool)>,
) {
    while let Some((id, pod, serving)) = queue.recv().await {
        match cluster.set_serving(&pod, serving).await {
            Ok(()) => {
                let (reason, message) = if serving {
                    (
                        "AiopsRouteBack",
                        format!("aiops put {id} back in its Service: label {SERVING_LABEL}=true"),
                    )
                } else {
                    (
                        "AiopsRouteAway",
                        format!(
                            "aiops took {id} out of its Service: label {SERVING_LABEL} removed"
                        ),
                    )
                };
                if let Err(error) = recorder
                    .record(&Target::pod(&pod), reason, &message, false)
                    .await
                {
                    tracing::warn!(%pod, reason, %error, "cannot write the Kubernetes Event");
                }
            }
            Err(error) => tracing::error!(%id, %pod, %error, "cannot change the pod's traffic"),
        }
    }
}

#[async_trait::async_trait]
impl Actuator for KubernetesActuator {
    async fn start(&self, _spec: InstanceSpec) -> Result<(), ActuatorError> {
        // The ReplicaSet starts pods; they come on the stream as `Started`.
        Ok(())
    }

    async fn stop(
        &self,
        id: &InstanceId,
        _grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        let pod = self.pod(id)?;
        let cost = serde_json::json!({ "annotations": { DELETION_COST: RETIRE_COST } });
        self.cluster.patch_pod_metadata(&pod, cost).await?;
        let (before, after) = self.scale_to(|n| n - 1, why).await?;
        let message = format!(
            "aiops retires {id}: deletion cost {RETIRE_COST}, scaled from {before} to {after} so that its ReplicaSet removes this pod{}",
            because(why)
        );
        self.event(&Target::pod(&pod), "AiopsRetire", &message, false)
            .await;
        Ok(())
    }

    async fn restart(
        &self,
        id: &InstanceId,
        _grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        let pod = self.pod(id)?;
        self.table.lock().leaving(&pod, true);
        if let Err(e) = self.cluster.delete_pod(&pod).await {
            self.table.lock().leaving(&pod, false);
            return Err(e.into());
        }
        let message = format!(
            "aiops deleted this pod to restart {id} (its ReplicaSet creates a new one){}",
            because(why)
        );
        self.event(&Target::pod(&pod), "AiopsRestart", &message, false)
            .await;
        Ok(())
    }

    async fn scale(
        &self,
        _workload: &WorkloadSpec,
        replicas: u32,
        why: &Reason,
    ) -> Result<ScaleOutcome, ActuatorError> {
        let to = i32::try_from(replicas).unwrap_or(i32::MAX);
        self.scale_to(|_| to, why).await?;
        // The new pods (or the ends of the removed ones) come on the stream.
        Ok(ScaleOutcome::default())
    }

    fn set_traffic(&self, id: &InstanceId, traffic: Traffic) {
        let serving = match traffic {
            Traffic::In(_) => true,
            Traffic::Out => false,
            // Pods start labelled serving by their template; a gone pod has no label.
            Traffic::Registered(_) | Traffic::Forgotten => return,
        };
        let mut table = self.table.lock();
        let Some(pod) = table.pod_of(id.index) else {
            return;
        };
        if table.want_serving(&pod, serving) {
            let _ = self.traffic.send((id.clone(), pod, serving));
        }
    }

    async fn list(&self) -> Result<Vec<ObservedInstance>, ActuatorError> {
        Ok(self.table.lock().list())
    }

    fn watch(&self) -> Result<LifecycleStream, ActuatorError> {
        let stream = self
            .stream
            .lock()
            .take()
            .ok_or(ActuatorError::AlreadyWatched)?;
        let source = match (&self.workload.deployment, &self.workload.selector) {
            (_, Some(selector)) => PodSource::Selector(selector.clone()),
            (Some(d), None) => PodSource::Deployment(d.clone()),
            (None, None) => {
                PodSource::Selector(format!("app.kubernetes.io/name={}", self.workload.service))
            }
        };
        tokio::spawn(watch::run(
            self.cluster.clone(),
            source,
            self.table.clone(),
            self.events.clone(),
        ));
        Ok(stream)
    }
}
