//! The ports the accounting domain needs.

use super::{
    Account, Authorization, AuthorizationState, NewAuthorization, ProviderDecision, ProviderError,
    RepositoryError,
};

/// Where accounts and authorizations are kept.
#[async_trait::async_trait]
pub trait AccountingRepository: Send + Sync {
    /// The account of consumer `consumer_id`.
    async fn account(&self, consumer_id: i64) -> Result<Option<Account>, RepositoryError>;
    /// The authorization of order `order_id`.
    async fn authorization_for_order(
        &self,
        order_id: i64,
    ) -> Result<Option<Authorization>, RepositoryError>;
    /// The authorization with `id`.
    async fn authorization(&self, id: i64) -> Result<Option<Authorization>, RepositoryError>;
    /// Stores an authorization; if the order has one already, returns that one.
    async fn insert(&self, new: &NewAuthorization) -> Result<Authorization, RepositoryError>;
    /// Changes an authorization's state.
    async fn set_state(&self, id: i64, state: AuthorizationState) -> Result<(), RepositoryError>;
}

/// `PaymentFacade`: the third-party payment provider.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Asks the provider to authorize `amount_cents` on `card_token` for `order_id`.
    async fn authorize(
        &self,
        card_token: &str,
        amount_cents: i64,
        order_id: i64,
    ) -> Result<ProviderDecision, ProviderError>;
}
