//! The SQLite outbox.

use sqlx::SqlitePool;

use super::db::now_ms;
use crate::domain::{Email, Notification, OutboxRepository, RepositoryError};

/// The outbox table of the service's SQLite database.
pub(crate) struct SqliteOutbox {
    pool: SqlitePool,
}

impl SqliteOutbox {
    /// An outbox over `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: i64,
    order_id: i64,
    consumer_id: i64,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    status: String,
    error: Option<String>,
}

impl From<OutboxRow> for Notification {
    fn from(r: OutboxRow) -> Self {
        Notification {
            id: r.id,
            order_id: r.order_id,
            consumer_id: r.consumer_id,
            channel: r.channel,
            email: Email {
                to: r.recipient,
                subject: r.subject,
                body: r.body,
            },
            status: r.status,
            error: r.error,
        }
    }
}

pub(super) fn storage(e: sqlx::Error) -> RepositoryError {
    RepositoryError(Box::new(e))
}

#[async_trait::async_trait]
impl OutboxRepository for SqliteOutbox {
    async fn record(&self, n: &Notification) -> Result<Notification, RepositoryError> {
        let done = sqlx::query(
            "INSERT INTO outbox (order_id, consumer_id, channel, recipient, subject, body, status, \
             error, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(Notification {
            id: done.last_insert_rowid(),
            ..n.clone()
        })
    }

    async fn for_order(&self, order_id: i64) -> Result<Vec<Notification>, RepositoryError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, order_id, consumer_id, channel, recipient, subject, body, status, error \
             FROM outbox WHERE order_id = ? ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
