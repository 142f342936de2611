//! The ports the consumer domain needs.

use super::{Consumer, RepositoryError, Verification};

/// Where consumers are kept.
#[async_trait::async_trait]
pub trait ConsumerRepository: Send + Sync {
    /// The consumer with `id`, if any.
    async fn find(&self, id: i64) -> Result<Option<Consumer>, RepositoryError>;
    /// All consumers, by id.
    async fn list(&self) -> Result<Vec<Consumer>, RepositoryError>;
    /// Records a verification.
    async fn record(&self, verification: &Verification) -> Result<(), RepositoryError>;
}
