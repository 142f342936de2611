//! [`KubernetesError`]: what can go wrong talking to the API server, typed so that the
//! incident note says what to fix (a missing RBAC rule, an autoscaler that owns the scale).

/// Errors of the Kubernetes actuator.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    /// No cluster configuration was found (neither in-cluster nor a kubeconfig).
    #[error(
        "no Kubernetes cluster configuration found (in-cluster service account or kubeconfig): {0}"
    )]
    NoCluster(String),
    /// The API server answered 403: the service account lacks a permission.
    #[error(
        "missing RBAC permission: cannot {verb} {resource} in namespace {namespace} (grant it in Role aiops-actuator): {message}"
    )]
    Forbidden {
        /// The Kubernetes verb (`delete`, `patch`, ...).
        verb: &'static str,
        /// The resource, with its subresource (`deployments/scale`).
        resource: &'static str,
        /// The namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// A HorizontalPodAutoscaler owns the replica count: scaling would fight it.
    #[error(
        "not scaled: HorizontalPodAutoscaler {hpa} owns the replicas of deployment {deployment} (change its minReplicas/maxReplicas instead)"
    )]
    HpaOwnsScale {
        /// The autoscaler.
        hpa: String,
        /// The deployment.
        deployment: String,
    },
    /// The scale kept changing under us (409 twice).
    #[error(
        "scale of deployment {deployment} changed concurrently twice (409 Conflict); not scaled"
    )]
    Conflict {
        /// The deployment.
        deployment: String,
    },
    /// The service names a selector only: there is no Deployment to scale or roll.
    #[error("service {0} names no deployment: cannot scale or roll it out")]
    NoDeployment(String),
    /// The Deployment selects its pods with `matchExpressions` only.
    #[error("deployment {0} has no matchLabels selector: name a selector in the topology")]
    NoSelector(String),
    /// The instance has no pod now.
    #[error("instance {0} has no pod")]
    NoPod(String),
    /// Any other API failure.
    #[error("{verb} {resource}: {source}")]
    Api {
        /// The Kubernetes verb.
        verb: &'static str,
        /// The resource.
        resource: &'static str,
        /// The cause.
        source: kube::Error,
    },
}

impl KubernetesError {
    /// Classifies a failed call of `verb` on `resource`: a 403 becomes [`KubernetesError::Forbidden`].
    pub(crate) fn from_api(
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
        source: kube::Error,
    ) -> Self {
        match &source {
            kube::Error::Api(status) if status.code == 403 => Self::Forbidden {
                verb,
                resource,
                namespace: namespace.to_owned(),
                message: status.message.clone(),
            },
            _ => Self::Api {
                verb,
                resource,
                source,
            },
        }
    }

    /// Whether the API server answered 409 Conflict.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}
