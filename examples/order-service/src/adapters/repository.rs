//! The SQLite order repository: the `orders` row and its `order_history`. An update never takes
//! an order out of `APPROVED` or `REJECTED` (see [`OrderRepository::update`]).

use sqlx::SqlitePool;

use crate::domain::{
    Inserted, NewOrder, Order, OrderLine, OrderRepository, OrderState, Rejection, RepositoryError,
    SagaStep, StepFailure, Transition,
};

/// Orders in the service's SQLite database.
pub(crate) struct SqliteOrderRepository {
    pool: SqlitePool,
}

impl SqliteOrderRepository {
    /// A repository over `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn load(&self, rows: Vec<OrderRow>) -> Result<Vec<Order>, RepositoryError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let history: Vec<HistoryRow> = sqlx::query_as(
                "SELECT state, note, at_ms FROM order_history WHERE order_id = ? ORDER BY id",
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

#[derive(sqlx::FromRow)]
pub(super) struct OrderRow {
    pub(super) id: i64,
    consumer_id: i64,
    restaurant_id: i64,
    lines_json: String,
    total_cents: i64,
    state: String,
    ticket_id: Option<i64>,
    rejection_step: Option<String>,
    rejection_kind: Option<String>,
    rejection_code: Option<String>,
    rejection_reason: Option<String>,
    compensation_pending: bool,
    idempotency_key: Option<String>,
    request_fingerprint: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct HistoryRow {
    state: String,
    note: Option<String>,
    at_ms: i64,
}

/// Why `order` was not updated: it does not exist, or it was stored `APPROVED` or `REJECTED`
/// (by another replica, or a concurrent request) and would have left that state.
pub(super) fn not_updated(order: &Order, stored: Option<String>) -> RepositoryError {
    match stored {
        None => corrupt(format!("order {} does not exist", order.id)),
        Some(state) => corrupt(format!(
            "order {} became {state} meanwhile; it cannot become {}",
            order.id, order.state
        )),
    }
}

pub(super) fn corrupt(what: String) -> RepositoryError {
    RepositoryError(what.into())
}

pub(super) fn parse_state(s: &str) -> Result<OrderState, RepositoryError> {
    OrderState::parse(s).ok_or_else(|| corrupt(format!("unknown order state {s:?}")))
}

impl OrderRow {
    pub(super) fn into_order(self, history: Vec<HistoryRow>) -> Result<Order, RepositoryError> {
        let lines: Vec<OrderLine> = serde_json::from_str(&self.lines_json)
            .map_err(|e| corrupt(format!("order {} has unreadable lines: {e}", self.id)))?;
        let rejection = match (self.rejection_step, self.rejection_kind) {
            (Some(step), Some(kind)) => Some(Rejection {
                step: SagaStep::parse(&step)
                    .ok_or_else(|| corrupt(format!("unknown saga step {step:?}")))?,
                failure: StepFailure::parse(&kind)
                    .ok_or_else(|| corrupt(format!("unknown step failure {kind:?}")))?,
                code: self.rejection_code,
                reason: self.rejection_reason.unwrap_or_default(),
            }),
            _ => None,
        };
        let history = history
            .into_iter()
            .map(|h| {
                Ok(Transition {
                    state: parse_state(&h.state)?,
                    at_ms: h.at_ms,
                    note: h.note,
                })
            })
            .collect::<Result<_, RepositoryError>>()?;
        Ok(Order {
            id: self.id,
            consumer_id: self.consumer_id,
            restaurant_id: self.restaurant_id,
            lines,
            total_cents: self.total_cents,
            state: parse_state(&self.state)?,
            ticket_id: self.ticket_id,
            rejection,
            compensation_pending: self.compensation_pending,
            idempotency_key: self.idempotency_key,
            request_fingerprint: self.request_fingerprint,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            history,
        })
    }
}

pub(super) fn storage(e: sqlx::Error) -> RepositoryError {
    RepositoryError(Box::new(e))
}

#[async_trait::async_trait]
impl OrderRepository for SqliteOrderRepository {
    async fn insert(&self, new: &NewOrder) -> Result<Inserted, RepositoryError> {
        let lines_json =
            serde_json::to_string(&new.lines).map_err(|e| RepositoryError(e.into()))?;
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let state = OrderState::ApprovalPending.as_str();
        let done = sqlx::query(
            "INSERT INTO orders (consumer_id, restaurant_id, lines_json, total_cents, state, \
             idempotency_key, request_fingerprint, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(new.consumer_id)
        .bind(new.restaurant_id)
        .bind(&lines_json)
        .bind(new.total_cents)
        .bind(state)
        .bind(new.idempotency_key.as_deref())
        .bind(&new.request_fingerprint)
        .bind(new.created_at_ms)
        .bind(new.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(storage)?;
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            return self
                .find_by_idempotency_key(key)
                .await?
                .map(Inserted::Existing)
                .ok_or_else(|| corrupt("an idempotency conflict without an order".into()));
        }
        let id = done.last_insert_rowid();
        sqlx::query("INSERT INTO order_history (order_id, state, note, at_ms) VALUES (?, ?, ?, ?)")
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
        let row: Option<OrderRow> = sqlx::query_as("SELECT * FROM orders WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        self.load_one(row).await
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Order>, RepositoryError> {
        let row: Option<OrderRow> =
            sqlx::query_as("SELECT * FROM orders WHERE idempotency_key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
        self.load_one(row).await
    }

    async fn update(&self, order: &Order, t: &Transition) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let r = order.rejection.as_ref();
        // A pending order may move anywhere; an approved or rejected one only stays put (a
        // note appended), whoever wrote it meanwhile.
        let done = sqlx::query(
            "UPDATE orders SET state = ?1, ticket_id = ?2, rejection_step = ?3, \
             rejection_kind = ?4, rejection_code = ?5, rejection_reason = ?6, \
             compensation_pending = ?7, updated_at_ms = ?8 \
             WHERE id = ?9 AND (state IN ('APPROVAL_PENDING', 'CREATE_PENDING', \
             'PAYMENT_CONFIRMED') OR state = ?1)",
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
            let stored: Option<(String,)> = sqlx::query_as("SELECT state FROM orders WHERE id = ?")
                .bind(order.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
            return Err(not_updated(order, stored.map(|(s,)| s)));
        }
        sqlx::query("INSERT INTO order_history (order_id, state, note, at_ms) VALUES (?, ?, ?, ?)")
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
             'PAYMENT_CONFIRMED') AND updated_at_ms < ? ORDER BY id LIMIT 500",
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
            "SELECT * FROM orders WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(state.map(OrderState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        self.load(rows).await
    }
}
