//! The service context's messaging connection: made on first use, with its readiness check
//! and its stop signal wired to the service's shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, watch};

use super::{Messaging, MessagingConfig, MessagingError};
use crate::faults::FaultState;
use crate::health::HealthRegistry;

/// The readiness check's name.
pub(crate) const READINESS_CHECK: &str = "nats";

/// What [`crate::ServiceContext::messaging`] connects with, and the connection once made.
#[derive(Clone)]
pub(crate) struct MessagingSlot {
    cell: Arc<OnceCell<Messaging>>,
    config: MessagingConfig,
    name: String,
    health: HealthRegistry,
    faults: Arc<FaultState>,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for MessagingSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingSlot")
            .field("url", &self.config.url)
            .field("connected", &self.cell.get().map(Messaging::is_connected))
            .finish_non_exhaustive()
    }
}

impl MessagingSlot {
    pub(crate) fn new(
        config: MessagingConfig,
        name: String,
        health: HealthRegistry,
        faults: Arc<FaultState>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            cell: Arc::new(OnceCell::new()),
            config,
            name,
            health,
            faults,
            stop,
        }
    }

    /// The connection, made on the first call.
    pub(crate) async fn get(&self) -> Result<Messaging, MessagingError> {
        self.cell
            .get_or_try_init(|| async {
                let messaging =
                    Messaging::connect_with(&self.config, self.faults.clone(), Some(&self.name))
                        .await?;
                let probe = messaging.clone();
                self.health.register(READINESS_CHECK, move || {
                    let connected = probe.is_connected();
                    async move {
                        if connected {
                            Ok(())
                        } else {
                            Err("disconnected from the NATS server")
                        }
                    }
                });
                // The service's shutdown stops the consumers at once; `drain` waits for them.
                let mut stop = self.stop.clone();
                let stopping = messaging.inner.stop.clone();
                tokio::spawn(async move {
                    if stop.wait_for(|s| *s).await.is_ok() {
                        stopping.send_replace(true);
                    }
                });
                Ok(messaging)
            })
            .await
            .cloned()
    }

    /// Drains the connection when one was made.
    pub(crate) async fn drain(&self, within: Duration) {
        if let Some(m) = self.cell.get() {
            m.drain(within).await;
        }
    }
}
