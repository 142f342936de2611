//! Errors of the accounting domain.

/// A storage failure behind a port.
#[derive(Debug, thiserror::Error)]
#[error("accounting storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The payment provider could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderError(pub String);

/// Why a payment was not authorized.
#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    /// The consumer has no payment account.
    #[error("consumer {0} has no payment account")]
    UnknownAccount(i64),
    /// The amount is not positive.
    #[error("amount must be positive, got {0}")]
    InvalidAmount(i64),
    /// The provider declined the card.
    #[error("payment of order {order_id} declined: {reason}")]
    Declined {
        /// The order.
        order_id: i64,
        /// The provider's reason.
        reason: String,
    },
    /// The order's authorization exists with different terms.
    #[error("order {0} was already submitted for a different consumer or amount")]
    Conflict(i64),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl AccountingError {
    /// The machine-readable code, the same in problem documents and in `accounting.declined`
    /// events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownAccount(_) => "unknown-account",
            Self::InvalidAmount(_) => "invalid-amount",
            Self::Declined { .. } => "payment-declined",
            Self::Conflict(_) => "authorization-conflict",
            Self::Provider(_) => "payment-provider-failed",
            Self::Repository(_) => "internal",
        }
    }

    /// Whether asking again may succeed (the provider or the storage failed), rather than the
    /// payment being refused.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Provider(_) | Self::Repository(_))
    }
}
