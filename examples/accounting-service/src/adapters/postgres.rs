//! The PostgreSQL accounting repository: the same rows as the SQLite one, in a database several
//! replicas share. One authorization per order is the table's unique key, so two replicas
//! authorizing one order at once store one row and both return it; a state change is a single
//! `UPDATE`.

use sqlx::PgPool;

use super::db::now_ms;
use super::repository::{AccountRow, AuthorizationRow, storage};
use crate::domain::{
    Account, AccountingRepository, Authorization, AuthorizationState, NewAuthorization,
    RepositoryError,
};

/// Accounts and authorizations in a PostgreSQL database.
pub(crate) struct PgAccountingRepository {
    pool: PgPool,
}

impl PgAccountingRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl AccountingRepository for PgAccountingRepository {
    async fn account(&self, consumer_id: i64) -> Result<Option<Account>, RepositoryError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "SELECT consumer_id, holder, card_token FROM accounts WHERE consumer_id = $1",
        )
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        Ok(row.map(Into::into))
    }

    async fn authorization_for_order(
        &self,
        order_id: i64,
    ) -> Result<Option<Authorization>, RepositoryError> {
        let row: Option<AuthorizationRow> = sqlx::query_as(
            "SELECT id, order_id, consumer_id, amount_cents, state, provider_reference, reason \
             FROM authorizations WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn authorization(&self, id: i64) -> Result<Option<Authorization>, RepositoryError> {
        let row: Option<AuthorizationRow> = sqlx::query_as(
            "SELECT id, order_id, consumer_id, amount_cents, state, provider_reference, reason \
             FROM authorizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn insert(&self, n: &NewAuthorization) -> Result<Authorization, RepositoryError> {
        let now = now_ms();
        // One authorization per order: a concurrent insert waits for the first to commit, then
        // does nothing and reads the first one.
        sqlx::query(
            "INSERT INTO authorizations (order_id, consumer_id, amount_cents, state, \
             provider_reference, reason, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(n.order_id)
        .bind(n.consumer_id)
        .bind(n.amount_cents)
        .bind(n.state.as_str())
        .bind(n.provider_reference.as_deref())
        .bind(n.reason.as_deref())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        self.authorization_for_order(n.order_id)
            .await?
            .ok_or_else(|| RepositoryError("the authorization vanished after insert".into()))
    }

    async fn set_state(&self, id: i64, state: AuthorizationState) -> Result<(), RepositoryError> {
        sqlx::query("UPDATE authorizations SET state = $1, updated_at_ms = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }
}
