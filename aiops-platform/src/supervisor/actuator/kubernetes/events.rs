//! [`EventRecorder`]: every action is also written as a core/v1 Event on the object it
//! touched, so `kubectl describe pod|deployment` shows what aiops did and why.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

use super::error::KubernetesError;

/// The component named as the Events' source.
pub(crate) const COMPONENT: &str = "aiops";

/// The object an Event is about.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `v1` or `apps/v1`.
    pub(crate) api_version: &'static str,
    /// `Pod` or `Deployment`.
    pub(crate) kind: &'static str,
    /// Its name.
    pub(crate) name: String,
}

impl Target {
    pub(crate) fn pod(name: &str) -> Self {
        Self {
            api_version: "v1",
            kind: "Pod",
            name: name.to_owned(),
        }
    }

    pub(crate) fn deployment(name: &str) -> Self {
        Self {
            api_version: "apps/v1",
            kind: "Deployment",
            name: name.to_owned(),
        }
    }
}

/// Writes Events in one namespace.
#[derive(Debug, Clone)]
pub(crate) struct EventRecorder {
    api: Api<Event>,
    namespace: String,
    /// Which aiops wrote it (the pod name in a cluster, else the host name).
    instance: String,
}

impl EventRecorder {
    pub(crate) fn new(client: kube::Client, namespace: &str) -> Self {
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| COMPONENT.to_owned());
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            instance,
        }
    }

    /// Writes one Event: `reason` in PascalCase (`AiopsRestart`), `message` says why.
    pub(crate) async fn record(
        &self,
        target: &Target,
        reason: &str,
        message: &str,
        warning: bool,
    ) -> Result<(), KubernetesError> {
        let now = crate::common::time::now_nanos();
        let stamp = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(now))
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let event = Event {
            metadata: ObjectMeta {
                // kubectl's own naming: the object's name and a unique suffix.
                name: Some(format!("{}.{now:x}", target.name)),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(target.api_version.to_owned()),
                kind: Some(target.kind.to_owned()),
                name: Some(target.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.chars().take(1024).collect()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            action: Some(reason.to_owned()),
            count: Some(1),
            first_timestamp: Some(Time(stamp)),
            last_timestamp: Some(Time(stamp)),
            event_time: Some(MicroTime(stamp)),
            source: Some(EventSource {
                component: Some(COMPONENT.to_owned()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        self.api
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
            .map_err(|e| KubernetesError::from_api("create", "events", &self.namespace, e))
    }
}
