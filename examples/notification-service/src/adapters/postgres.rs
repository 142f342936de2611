//! The PostgreSQL outbox: the same rows as the SQLite one, in a database several replicas
//! share. Each notification is one insert; ids come from the table's identity column.

use sqlx::PgPool;

use super::db::now_ms;
use super::repository::{OutboxRow, storage};
use crate::domain::{Notification, OutboxRepository, RepositoryError};

/// The outbox table of a PostgreSQL database.
pub(crate) struct PgOutbox {
    pool: PgPool,
}

impl PgOutbox {
    /// An outbox over `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl OutboxRepository for PgOutbox {
    async fn record(&self, n: &Notification) -> Result<Notification, RepositoryError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO outbox (order_id, consumer_id, channel, recipient, subject, body, status, \
             error, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(n.order_id)
        .bind(n.consumer_id)
        .bind(&n.channel)
        .bind(&n.email.to)
        .bind(&n.email.subject)
        .bind(&n.email.body)
        .bind(&n.status)
        .bind(n.error.as_deref())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(storage)?;
        Ok(Notification { id, ..n.clone() })
    }

    async fn for_order(&self, order_id: i64) -> Result<Vec<Notification>, RepositoryError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, order_id, consumer_id, channel, recipient, subject, body, status, error \
             FROM outbox WHERE order_id = $1 ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
