//! Errors of the order domain.

use std::fmt;

use super::{Order, SagaStep};

/// A storage failure behind a port.
#[derive(Debug, thiserror::Error)]
#[error("order storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// How a saga step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepFailure {
    /// The other service does not know the entity (customer, restaurant, account).
    NotFound,
    /// The other service refused (blocked customer, unavailable item, declined card).
    Refused,
    /// The other service could not be reached or failed.
    Unavailable,
    /// The other service did not answer in time.
    TimedOut,
    /// The order stayed pending too long and the reconciler gave up on it.
    Expired,
}

impl StepFailure {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
            Self::TimedOut => "timed_out",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotFound,
            Self::Refused,
            Self::Unavailable,
            Self::TimedOut,
            Self::Expired,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Whether the other service gave a definite answer (nothing to undo on its side).
    pub fn is_definite(self) -> bool {
        matches!(self, Self::NotFound | Self::Refused)
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call to another service failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure}: {detail}")]
pub struct StepError {
    /// How.
    pub failure: StepFailure,
    /// What the other service said, or why it could not be reached.
    pub detail: String,
    /// The other service's machine-readable problem code, when it gave one.
    pub code: Option<String>,
}

impl StepError {
    /// A failure with no problem code.
    pub fn new(failure: StepFailure, detail: impl Into<String>) -> Self {
        Self {
            failure,
            detail: detail.into(),
            code: None,
        }
    }
}

/// Why an order could not be placed or read.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request is invalid (no lines, a non-positive quantity, …).
    #[error("invalid order: {0}")]
    Invalid(String),
    /// The restaurant does not exist.
    #[error("restaurant {0} does not exist")]
    UnknownRestaurant(i64),
    /// The restaurant has no such item.
    #[error("restaurant {restaurant_id} has no menu item {menu_item_id}")]
    UnknownMenuItem {
        /// The restaurant.
        restaurant_id: i64,
        /// The item asked for.
        menu_item_id: i64,
    },
    /// No order has this id.
    #[error("order {0} does not exist")]
    NotFound(i64),
    /// The idempotency key was used before for a different request.
    #[error("idempotency key {0:?} was already used for a different order request")]
    IdempotencyMismatch(String),
    /// A step failed before the order was stored (pricing against the kitchen's menu).
    #[error("{step} step failed before the order was created: {error}")]
    StepFailed {
        /// The step.
        step: SagaStep,
        /// How.
        error: StepError,
    },
    /// The saga rejected the order; its `rejection` says at which step and why.
    #[error("order {} was rejected", .0.id)]
    Rejected(Box<Order>),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}
