//! [`ByService`]: one actuator per service (Kubernetes ones by name), a default for the rest
//! (local processes); their lifecycle streams merged into one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    Actuator, ActuatorError, InstanceSpec, LifecycleStream, ObservedInstance, Reason, ScaleOutcome,
    Traffic, WorkloadSpec,
};
use crate::instance::InstanceId;

/// Routes each call to the actuator of the service it is about.
#[derive(Debug)]
pub struct ByService {
    default: Arc<dyn Actuator>,
    services: BTreeMap<String, Arc<dyn Actuator>>,
}

impl ByService {
    /// `default` acts for every service not in `services`.
    pub fn new(default: Arc<dyn Actuator>, services: BTreeMap<String, Arc<dyn Actuator>>) -> Self {
        Self { default, services }
    }

    fn of(&self, service: &str) -> &Arc<dyn Actuator> {
        self.services.get(service).unwrap_or(&self.default)
    }
}

#[async_trait::async_trait]
impl Actuator for ByService {
    async fn start(&self, spec: InstanceSpec) -> Result<(), ActuatorError> {
        self.of(&spec.id.service).clone().start(spec).await
    }

    async fn stop(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        self.of(&id.service).stop(id, grace, why).await
    }

    async fn restart(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        self.of(&id.service).restart(id, grace, why).await
    }

    async fn scale(
        &self,
        workload: &WorkloadSpec,
        replicas: u32,
        why: &Reason,
    ) -> Result<ScaleOutcome, ActuatorError> {
        self.of(&workload.service)
            .scale(workload, replicas, why)
            .await
    }

    fn set_traffic(&self, id: &InstanceId, traffic: Traffic) {
        self.of(&id.service).set_traffic(id, traffic);
    }

    async fn list(&self) -> Result<Vec<ObservedInstance>, ActuatorError> {
        let mut all = self.default.list().await?;
        for a in self.services.values() {
            all.extend(a.list().await?);
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Merges every actuator's stream (one forwarding task each).
    fn watch(&self) -> Result<LifecycleStream, ActuatorError> {
        let (tx, rx) = mpsc::unbounded_channel();
        for a in std::iter::once(&self.default).chain(self.services.values()) {
            let mut stream = a.watch()?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(e) = stream.recv().await {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(rx)
    }
}
