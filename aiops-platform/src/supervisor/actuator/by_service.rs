//! [`ByService`]: one actuator per service (Kubernetes ones by name), a default for the rest
//! (local processes); their lifecycle streams merged into one. Services may be added and
//! removed while it runs (Deployments discovered or let go).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    Actuator, ActuatorError, InstanceSpec, LifecycleEvent, LifecycleStream, ObservedInstance,
    Reason, ScaleOutcome, Traffic, WorkloadSpec,
};
use crate::common::instance::InstanceId;

/// Routes each call to the actuator of the service it is about.
#[derive(Debug)]
pub struct ByService {
    default: Arc<dyn Actuator>,
    services: RwLock<BTreeMap<String, Arc<dyn Actuator>>>,
    /// The merged stream's sender once [`Actuator::watch`] was answered, and the task that
    /// forwards each service's own stream into it.
    merged: Mutex<Option<Merged>>,
}

#[derive(Debug)]
struct Merged {
    tx: mpsc::UnboundedSender<LifecycleEvent>,
    forwarders: BTreeMap<String, JoinHandle<()>>,
}

impl ByService {
    /// `default` acts for every service not in `services`.
    pub fn new(default: Arc<dyn Actuator>, services: BTreeMap<String, Arc<dyn Actuator>>) -> Self {
        Self {
            default,
            services: RwLock::new(services),
            merged: Mutex::new(None),
        }
    }

    /// Adds the actuator of `service` (replacing any before it); when the merged stream is
    /// already watched, its events join it from now on.
    pub fn add(&self, service: &str, actuator: Arc<dyn Actuator>) -> Result<(), ActuatorError> {
        let mut merged = self.merged.lock();
        if let Some(m) = merged.as_mut() {
            let task = forward(actuator.watch()?, m.tx.clone());
            if let Some(old) = m.forwarders.insert(service.to_owned(), task) {
                old.abort();
            }
        }
        self.services.write().insert(service.to_owned(), actuator);
        Ok(())
    }

    /// Removes the actuator of `service`: its stream is dropped (so its watch ends) and its
    /// calls go to the default actuator again. Answers whether it had one.
    pub fn remove(&self, service: &str) -> bool {
        if let Some(task) = self
            .merged
            .lock()
            .as_mut()
            .and_then(|m| m.forwarders.remove(service))
        {
            task.abort();
        }
        self.services.write().remove(service).is_some()
    }

    fn of(&self, service: &str) -> Arc<dyn Actuator> {
        self.services
            .read()
            .get(service)
            .unwrap_or(&self.default)
            .clone()
    }
}

/// Forwards `stream` into `tx` until either side is gone.
fn forward(
    mut stream: LifecycleStream,
    tx: mpsc::UnboundedSender<LifecycleEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(e) = stream.recv().await {
            if tx.send(e).is_err() {
                return;
            }
        }
    })
}

#[async_trait::async_trait]
impl Actuator for ByService {
    async fn start(&self, spec: InstanceSpec) -> Result<(), ActuatorError> {
        self.of(&spec.id.service).start(spec).await
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
        let services: Vec<_> = self.services.read().values().cloned().collect();
        for a in services {
            all.extend(a.list().await?);
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Merges every actuator's stream (one forwarding task each; services added later
    /// join with [`ByService::add`]).
    fn watch(&self) -> Result<LifecycleStream, ActuatorError> {
        let mut merged = self.merged.lock();
        if merged.is_some() {
            return Err(ActuatorError::AlreadyWatched);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The default's forwarder ends with the merged stream; it is not a service's.
        forward(self.default.watch()?, tx.clone());
        let mut forwarders = BTreeMap::new();
        for (name, a) in self.services.read().iter() {
            forwarders.insert(name.clone(), forward(a.watch()?, tx.clone()));
        }
        *merged = Some(Merged { tx, forwarders });
        Ok(rx)
    }
}
