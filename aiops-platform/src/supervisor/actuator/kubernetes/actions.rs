//! [`Cluster`]: the API calls behind each verb — delete a pod, relabel it, mark its deletion
//! cost, read and patch a Deployment's scale (never against an autoscaler that owns it), roll
//! a Deployment out again. Each returns a typed [`KubernetesError`].

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use super::error::KubernetesError;

pub use crate::config::SERVING_LABEL;
/// The annotation that makes the ReplicaSet remove a pod first when scaling in.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The API of one namespace.
#[derive(Clone)]
pub(crate) struct Cluster {
    client: kube::Client,
    namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub(crate) fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn err(&self, verb: &'static str, resource: &'static str, e: kube::Error) -> KubernetesError {
        KubernetesError::from_api(verb, resource, &self.namespace, e)
    }

    /// Deletes a pod (gracefully, with its own grace period); gone already is fine.
    pub(crate) async fn delete_pod(&self, name: &str) -> Result<(), KubernetesError> {
        match self.pods().delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.err("delete", "pods", e)),
        }
    }

    /// Merge-patches a pod's metadata (labels or annotations; `null` removes a key).
    pub(crate) async fn patch_pod_metadata(
        &self,
        name: &str,
        metadata: serde_json::Value,
    ) -> Result<(), KubernetesError> {
        let patch = serde_json::json!({ "metadata": metadata });
        self.pods()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| self.err("patch", "pods", e))
    }

    /// Puts a pod back in its Service (`true`) or takes it out (`false`).
    pub(crate) async fn set_serving(
        &self,
        pod: &str,
        serving: bool,
    ) -> Result<(), KubernetesError> {
        let value = if serving {
            serde_json::Value::from("true")
        } else {
            serde_json::Value::Null
        };
        self.patch_pod_metadata(
            pod,
            serde_json::json!({ "labels": { SERVING_LABEL: value } }),
        )
        .await
    }

    /// The label selector of a Deployment's pods (`matchLabels`, `k=v,...`).
    pub(crate) async fn selector_of(&self, deployment: &str) -> Result<String, KubernetesError> {
        let d = self
            .deployments()
            .get(deployment)
            .await
            .map_err(|e| self.err("get", "deployments", e))?;
        let labels = d.spec.selector.match_labels.unwrap_or_default();
        if labels.is_empty() {
            return Err(KubernetesError::NoSelector(deployment.to_owned()));
        }
        Ok(labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","))
    }

    /// The HorizontalPodAutoscaler whose target is `deployment`, if any.
    pub(crate) async fn hpa_of(&self, deployment: &str) -> Result<Option<String>, KubernetesError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.err("list", "horizontalpodautoscalers", e))?;
        Ok(list.items.into_iter().find_map(|h| {
            let target = &h.spec.scale_target_ref;
            (target.kind == "Deployment" && target.name == deployment)
                .then(|| h.metadata.name.unwrap_or_default())
        }))
    }

    /// Sets the replicas of `deployment` to `to(current)`, refusing when an autoscaler owns
    /// it. The patch carries the resourceVersion read: a 409 is retried once with a fresh
    /// read. Answers (before, after).
    pub(crate) async fn scale(
        &self,
        deployment: &str,
        to: impl Fn(i32) -> i32,
    ) -> Result<(i32, i32), KubernetesError> {
        if let Some(hpa) = self.hpa_of(deployment).await? {
            return Err(KubernetesError::HpaOwnsScale {
                hpa,
                deployment: deployment.to_owned(),
            });
        }
        for attempt in 0..2 {
            let scale = self
                .deployments()
                .get_scale(deployment)
                .await
                .map_err(|e| self.err("get", "deployments/scale", e))?;
            let before = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
            let after = to(before).max(0);
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": scale.metadata.resource_version },
                "spec": { "replicas": after },
            });
            match self
                .deployments()
                .patch_scale(deployment, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| self.err("patch", "deployments/scale", e))
            {
                Ok(_) => return Ok((before, after)),
                Err(e) if e.is_conflict() && attempt == 0 => {
                    tracing::info!(
                        deployment,
                        "scale changed meanwhile (409): reading it again"
                    );
                }
                Err(e) if e.is_conflict() => {
                    return Err(KubernetesError::Conflict {
                        deployment: deployment.to_owned(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(KubernetesError::Conflict {
            deployment: deployment.to_owned(),
        })
    }

    /// `kubectl rollout restart`: a new pod-template annotation makes the Deployment
    /// replace every pod, within its rollout strategy.
    pub(crate) async fn rollout_restart(
        &self,
        deployment: &str,
        at: &str,
    ) -> Result<(), KubernetesError> {
        let patch = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
        });
        self.deployments()
            .patch(deployment, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| self.err("patch", "deployments", e))
    }
}
