//! Errors of the consumer domain.

/// A storage failure behind a port.
#[derive(Debug, thiserror::Error)]
#[error("consumer storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Why a consumer cannot be found or cannot place an order.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// No consumer has this id.
    #[error("consumer {0} does not exist")]
    UnknownConsumer(i64),
    /// The consumer is blocked.
    #[error("consumer {0} is blocked and cannot place orders")]
    Blocked(i64),
    /// The order total is over the consumer's limit.
    #[error("order total {total_cents} exceeds consumer {consumer_id}'s limit of {limit_cents}")]
    LimitExceeded {
        /// The consumer.
        consumer_id: i64,
        /// The order's total.
        total_cents: i64,
        /// The consumer's limit.
        limit_cents: i64,
    },
    /// The order total is not positive.
    #[error("order total must be positive, got {0}")]
    InvalidTotal(i64),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl ConsumerError {
    /// The machine-readable code of a refusal, the same in problem documents and in
    /// `consumers.rejected` events; `None` for a storage failure (not a refusal).
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::UnknownConsumer(_) => "unknown-consumer",
            Self::Blocked(_) => "consumer-blocked",
            Self::LimitExceeded { .. } => "order-limit-exceeded",
            Self::InvalidTotal(_) => "invalid-total",
            Self::Repository(_) => return None,
        })
    }
}
