//! Discovery: the Deployments annotated `aiods.dev/watch: "true"` in the namespaces given
//! become services (named after the Deployment, probed on its first container port), read
//! once when the platform starts.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;

use super::KubernetesWorkload;
use super::error::KubernetesError;

/// The opt-in annotation on a Deployment.
pub const WATCH_ANNOTATION: &str = "aiods.dev/watch";

/// The annotated Deployments of `namespaces`, as workloads (sorted by namespace, name).
pub async fn discover(
    client: &kube::Client,
    namespaces: &[String],
) -> Result<Vec<KubernetesWorkload>, KubernetesError> {
    let mut out = Vec::new();
    for ns in namespaces {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        // Annotations cannot be selected on by the server: list, then filter.
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| KubernetesError::from_api("list", "deployments", ns, e))?;
        for d in list.items {
            let watched = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(WATCH_ANNOTATION))
                .is_some_and(|v| v == "true");
            let Some(name) = d.metadata.name.clone().filter(|_| watched) else {
                continue;
            };
            let port = d
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.ports.as_ref())
                .and_then(|p| p.first())
                .and_then(|p| u16::try_from(p.container_port).ok());
            let Some(port) = port else {
                tracing::warn!(deployment = %name, namespace = %ns, "annotated for aiops but names no container port: skipped");
                continue;
            };
            out.push(KubernetesWorkload {
                service: name.clone(),
                namespace: ns.clone(),
                deployment: Some(name),
                selector: None,
                port,
            });
        }
    }
    Ok(out)
}
