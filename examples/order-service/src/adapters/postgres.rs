//! The PostgreSQL order repository: the same rows as the SQLite one, in a database several
//! replicas share.
//!
//! - A new order and its first history entry are one transaction; the idempotency key is the
//!   table's unique key, so two replicas storing the same key at once store one order (the
//!   second insert waits for the first to commit, then does nothing and reads it).
//! - An update is one transaction: the `UPDATE` locks the row and, when it had to wait for a
//!   concurrent writer, re-checks its condition on the row that writer committed, so an order
//!   stored `APPROVED` or `REJECTED` is never moved elsewhere; the history entry is appended
//!   under the same row lock, so the history ends with the row's state.

use sqlx::PgPool;

use super::repository::{HistoryRow, OrderRow, corrupt, not_updated, storage};
use crate::domain::{
    Inserted, NewOrder, Order, OrderRepository, OrderState, RepositoryError, Transition,
};

/// Orders in a PostgreSQL database.
pub(crate) struct PgOrderRepository {
    pool: PgPool,
}

impl PgOrderRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn load(&self, rows: Vec<OrderRow>) -> Result<Vec<Order>, RepositoryError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let history: Vec<HistoryRow> = sqlx::query_as(
                "SELECT state, note, at_ms FROM order_history WHERE order_id = $1 ORDER BY id",
            )
            .bind(row.id)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
            out.push(row.into_order(history)?);
        }
        Ok(out)
    }

    async fn load_one(&self, row: Option<OrderRow>) -> Result<Option<Order>, RepositoryError> {
        Ok(self.load(row.into_iter().collect()).await?.pop())
    }
}

#[async_trait::async_trait]
impl OrderRepository for PgOrderRepository {
    async fn insert(&self, new: &NewOrder) -> Result<Inserted, RepositoryError> {
        let lines_json =
            serde_json::to_string(&new.lines).map_err(|e| RepositoryError(e.into()))?;
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let state = OrderState::ApprovalPending.as_str();
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO orders (consumer_id, restaurant_id, lines_json, total_cents, state, \
             idempotency_key, request_fingerprint, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(new.consumer_id)
        .bind(new.restaurant_id)
        .bind(&lines_json)
        .bind(new.total_cents)
        .bind(state)
        .bind(new.idempotency_key.as_deref())
        .bind(&new.request_fingerprint)
        .bind(new.created_at_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?;
        let Some((id,)) = inserted else {
            tx.rollback().await.map_err(storage)?;
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            return self
                .find_by_idempotency_key(key)
                .await?
                .map(Inserted::Existing)
                .ok_or_else(|| corrupt("an idempotency conflict without an order".into()));
        };
        sqlx::query(
            "INSERT INTO order_history (order_id, state, note, at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(state)
        .bind(crate::domain::ORDER_RECEIVED)
        .bind(new.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        self.get(id)
            .await?
            .map(Inserted::Created)
            .ok_or_else(|| corrupt(format!("order {id} vanished after insert")))
    }

    async fn get(&self, id: i64) -> Result<Option<Order>, RepositoryError> {
        let row: Option<OrderRow> = sqlx::query_as("SELECT * FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        self.load_one(row).await
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Order>, RepositoryError> {
        let row: Option<OrderRow> =
            sqlx::query_as("SELECT * FROM orders WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
        self.load_one(row).await
    }

    async fn update(&self, order: &Order, t: &Transition) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let r = order.rejection.as_ref();
        let done = sqlx::query(
            "UPDATE orders SET state = $1, ticket_id = $2, rejection_step = $3, \
             rejection_kind = $4, rejection_code = $5, rejection_reason = $6, \
             compensation_pending = $7, updated_at_ms = $8 \
             WHERE id = $9 AND (state IN ('APPROVAL_PENDING', 'CREATE_PENDING', \
             'PAYMENT_CONFIRMED') OR state = $1)",
        )
        .bind(order.state.as_str())
        .bind(order.ticket_id)
        .bind(r.map(|r| r.step.as_str()))
        .bind(r.map(|r| r.failure.as_str()))
        .bind(r.and_then(|r| r.code.as_deref()))
        .bind(r.map(|r| r.reason.as_str()))
        .bind(order.compensation_pending)
        .bind(order.updated_at_ms)
        .bind(order.id)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 {
            let stored: Option<(String,)> =
                sqlx::query_as("SELECT state FROM orders WHERE id = $1")
                    .bind(order.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(storage)?;
            return Err(not_updated(order, stored.map(|(s,)| s)));
        }
        sqlx::query(
            "INSERT INTO order_history (order_id, state, note, at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(order.id)
        .bind(t.state.as_str())
        .bind(t.note.as_deref())
        .bind(t.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn stale(&self, before_ms: i64) -> Result<Vec<Order>, RepositoryError> {
        let rows: Vec<OrderRow> = sqlx::query_as(
            "SELECT * FROM orders WHERE state IN ('APPROVAL_PENDING', 'CREATE_PENDING', \
             'PAYMENT_CONFIRMED') AND updated_at_ms < $1 ORDER BY id LIMIT 500",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        self.load(rows).await
    }

    async fn compensation_pending(&self) -> Result<Vec<Order>, RepositoryError> {
        let rows: Vec<OrderRow> = sqlx::query_as(
            "SELECT * FROM orders WHERE compensation_pending AND state = 'REJECTED' \
             ORDER BY id LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        self.load(rows).await
    }

    async fn list(
        &self,
        state: Option<OrderState>,
        limit: u32,
    ) -> Result<Vec<Order>, RepositoryError> {
        let rows: Vec<OrderRow> = sqlx::query_as(
            "SELECT * FROM orders WHERE ($1::text IS NULL OR state = $1) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(state.map(OrderState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        self.load(rows).await
    }
}
