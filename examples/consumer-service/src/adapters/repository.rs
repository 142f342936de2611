//! The SQLite consumer repository.

use sqlx::SqlitePool;

use crate::domain::{Consumer, ConsumerRepository, RepositoryError, Verification};

/// Consumers in the service's SQLite database.
pub(crate) struct SqliteConsumerRepository {
    pool: SqlitePool,
}

impl SqliteConsumerRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ConsumerRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) blocked: bool,
    pub(super) order_limit_cents: i64,
}

impl From<ConsumerRow> for Consumer {
    fn from(r: ConsumerRow) -> Self {
        Consumer {
            id: r.id,
            name: r.name,
            email: r.email,
            blocked: r.blocked,
            order_limit_cents: r.order_limit_cents,
        }
    }
}

pub(super) fn storage(e: sqlx::Error) -> RepositoryError {
    RepositoryError(Box::new(e))
}

#[async_trait::async_trait]
impl ConsumerRepository for SqliteConsumerRepository {
    async fn find(&self, id: i64) -> Result<Option<Consumer>, RepositoryError> {
        let row: Option<ConsumerRow> = sqlx::query_as(
            "SELECT id, name, email, blocked, order_limit_cents FROM consumers WHERE id = ?",
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
             VALUES (?, ?, ?, ?, ?)",
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
