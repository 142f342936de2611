//! The PostgreSQL consumer repository: the same rows as the SQLite one, in a database several
//! replicas share. Nothing here reads before it writes, so no locking is needed.

use sqlx::PgPool;

use super::repository::{ConsumerRow, storage};
use crate::domain::{Consumer, ConsumerRepository, RepositoryError, Verification};

/// Consumers in a PostgreSQL database.
pub(crate) struct PgConsumerRepository {
    pool: PgPool,
}

impl PgConsumerRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl ConsumerRepository for PgConsumerRepository {
    async fn find(&self, id: i64) -> Result<Option<Consumer>, RepositoryError> {
        let row: Option<ConsumerRow> = sqlx::query_as(
            "SELECT id, name, email, blocked, order_limit_cents FROM consumers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        Ok(row.map(Into::into))
    }

    async fn list(&self) -> Result<Vec<Consumer>, RepositoryError> {
        let rows: Vec<ConsumerRow> = sqlx::query_as(
            "SELECT id, name, email, blocked, order_limit_cents FROM consumers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn record(&self, v: &Verification) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO validations (consumer_id, total_cents, approved, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(v.consumer_id)
        .bind(v.total_cents)
        .bind(v.approved)
        .bind(v.reason.as_deref())
        .bind(super::db::now_ms())
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }
}
