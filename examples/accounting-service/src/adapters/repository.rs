//! The SQLite accounting repository.

use sqlx::SqlitePool;

use super::db::now_ms;
use crate::domain::{
    Account, AccountingRepository, Authorization, AuthorizationState, NewAuthorization,
    RepositoryError,
};

/// Accounts and authorizations in the service's SQLite database.
pub(crate) struct SqliteAccountingRepository {
    pool: SqlitePool,
}

impl SqliteAccountingRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    consumer_id: i64,
    holder: String,
    card_token: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct AuthorizationRow {
    id: i64,
    order_id: i64,
    consumer_id: i64,
    amount_cents: i64,
    state: String,
    provider_reference: Option<String>,
    reason: Option<String>,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            consumer_id: r.consumer_id,
            holder: r.holder,
            card_token: r.card_token,
        }
    }
}

impl TryFrom<AuthorizationRow> for Authorization {
    type Error = RepositoryError;
    fn try_from(r: AuthorizationRow) -> Result<Self, RepositoryError> {
        Ok(Authorization {
            id: r.id,
            order_id: r.order_id,
            consumer_id: r.consumer_id,
            amount_cents: r.amount_cents,
            state: AuthorizationState::parse(&r.state).ok_or_else(|| {
                RepositoryError(format!("unknown authorization state {:?}", r.state).into())
            })?,
            provider_reference: r.provider_reference,
            reason: r.reason,
        })
    }
}

pub(super) fn storage(e: sqlx::Error) -> RepositoryError {
    RepositoryError(Box::new(e))
}

#[async_trait::async_trait]
impl AccountingRepository for SqliteAccountingRepository {
    async fn account(&self, consumer_id: i64) -> Result<Option<Account>, RepositoryError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "SELECT consumer_id, holder, card_token FROM accounts WHERE consumer_id = ?",
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
             FROM authorizations WHERE order_id = ?",
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
             FROM authorizations WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn insert(&self, n: &NewAuthorization) -> Result<Authorization, RepositoryError> {
        let now = now_ms();
        // One authorization per order: a concurrent retry finds the first one.
        sqlx::query(
            "INSERT INTO authorizations (order_id, consumer_id, amount_cents, state, \
             provider_reference, reason, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
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
        sqlx::query("UPDATE authorizations SET state = ?, updated_at_ms = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }
}
