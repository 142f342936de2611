//! The consumer service: `verifyConsumerDetails()` of the seed's figure 25.

use std::sync::Arc;

use super::{Consumer, ConsumerError, ConsumerRepository, Verification};

/// Verifies that consumers may place orders.
pub struct ConsumerService {
    repository: Arc<dyn ConsumerRepository>,
}

impl ConsumerService {
    /// A service over `repository`.
    pub fn new(repository: Arc<dyn ConsumerRepository>) -> Self {
        Self { repository }
    }

    /// The consumer with `id`.
    pub async fn get(&self, id: i64) -> Result<Consumer, ConsumerError> {
        self.repository
            .find(id)
            .await?
            .ok_or(ConsumerError::UnknownConsumer(id))
    }

    /// All consumers.
    pub async fn list(&self) -> Result<Vec<Consumer>, ConsumerError> {
        Ok(self.repository.list().await?)
    }

    /// Checks that consumer `id` may place an order of `total_cents`, and records the answer.
    pub async fn verify(&self, id: i64, total_cents: i64) -> Result<Consumer, ConsumerError> {
        let consumer = self.get(id).await?;
        let outcome = consumer.check_order(total_cents);
        self.repository
            .record(&Verification {
                consumer_id: id,
                total_cents,
                approved: outcome.is_ok(),
                reason: outcome.as_ref().err().map(ToString::to_string),
            })
            .await?;
        outcome.map(|()| consumer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::RepositoryError;

    #[derive(Default)]
    struct InMemory {
        consumers: Vec<Consumer>,
        recorded: Mutex<Vec<Verification>>,
    }

    #[async_trait::async_trait]
    impl ConsumerRepository for InMemory {
        async fn find(&self, id: i64) -> Result<Option<Consumer>, RepositoryError> {
            Ok(self.consumers.iter().find(|c| c.id == id).cloned())
        }
        async fn list(&self) -> Result<Vec<Consumer>, RepositoryError> {
            Ok(self.consumers.clone())
        }
        async fn record(&self, v: &Verification) -> Result<(), RepositoryError> {
            self.recorded.lock().expect("lock").push(v.clone());
            Ok(())
        }
    }

    fn consumer(id: i64, blocked: bool, limit: i64) -> Consumer {
        Consumer {
            id,
            name: format!("c{id}"),
            email: format!("c{id}@example.test"),
            blocked,
            order_limit_cents: limit,
        }
    }

    fn service() -> (ConsumerService, Arc<InMemory>) {
        let repo = Arc::new(InMemory {
            consumers: vec![consumer(1, false, 5000), consumer(2, true, 5000)],
            ..Default::default()
        });
        (ConsumerService::new(repo.clone()), repo)
    }

    #[tokio::test]
    async fn a_consumer_in_good_standing_is_verified_and_recorded() {
        let (svc, repo) = service();
        let c = svc.verify(1, 1200).await.expect("verified");
        assert_eq!(c.id, 1);
        let recorded = repo.recorded.lock().expect("lock");
        assert!(recorded[0].approved);
    }

    #[tokio::test]
    async fn blocked_unknown_over_limit_and_non_positive_are_refused() {
        let (svc, repo) = service();
        assert!(matches!(
            svc.verify(2, 100).await,
            Err(ConsumerError::Blocked(2))
        ));
        assert!(matches!(
            svc.verify(9, 100).await,
            Err(ConsumerError::UnknownConsumer(9))
        ));
        assert!(matches!(
            svc.verify(1, 5001).await,
            Err(ConsumerError::LimitExceeded { .. })
        ));
        assert!(matches!(
            svc.verify(1, 0).await,
            Err(ConsumerError::InvalidTotal(0))
        ));
        let recorded = repo.recorded.lock().expect("lock");
        assert_eq!(
            recorded.len(),
            3,
            "refusals of known consumers are recorded"
        );
        assert!(recorded.iter().all(|v| !v.approved && v.reason.is_some()));
    }
}
