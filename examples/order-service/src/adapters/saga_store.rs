//! The choreographed saga's transactional outbox on SQLite and PostgreSQL: the order's rows
//! and the messages their change publishes are written in one transaction
//! (`aiods::messaging::outbox::stage`), and the chassis's relay publishes them afterwards.

use aiods::messaging::outbox;
use food_events::OrderMessage;
use serde::Serialize;

use super::db::Database;
use super::repository::{corrupt, storage};
use crate::domain::{
    Announce, Inserted, NewOrder, Order, OrderRepository, OrderState, Recorded, RepositoryError,
    SagaStore, Transition,
};

/// An order message as the outbox stages it: its JSON body, its id as `Nats-Msg-Id`.
#[derive(Serialize)]
#[serde(transparent)]
struct Staged<'a>(&'a OrderMessage);

impl aiods::messaging::Event for Staged<'_> {
    fn message_id(&self) -> String {
        self.0.event_id().to_owned()
    }
}

fn outbox_error(e: outbox::OutboxError) -> RepositoryError {
    RepositoryError(Box::new(e))
}

/// Tells the outbox relay that rows were committed (`RelayHandle::wake`).
pub(crate) type WakeRelay = Box<dyn Fn() + Send + Sync>;

/// Orders changed with their messages, in the service's own database.
pub(crate) struct OutboxSagaStore {
    database: Database,
    repository: std::sync::Arc<dyn OrderRepository>,
    wake_relay: WakeRelay,
}

impl OutboxSagaStore {
    /// A store writing to `database` (whose orders `repository` reads), calling `wake_relay`
    /// after each commit that wrote messages.
    pub(crate) fn new(
        database: Database,
        repository: std::sync::Arc<dyn OrderRepository>,
        wake_relay: WakeRelay,
    ) -> Self {
        Self {
            database,
            repository,
            wake_relay,
        }
    }
}

/// The statements of one backend (`?` or `$n` placeholders).
struct Sql {
    insert_order: &'static str,
    insert_history: &'static str,
    update_if_unchanged: &'static str,
}

const SQLITE: Sql = Sql {
    insert_order: "INSERT INTO orders (consumer_id, restaurant_id, lines_json, total_cents, state, \
         idempotency_key, request_fingerprint, created_at_ms, updated_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING id",
    insert_history: "INSERT INTO order_history (order_id, state, note, at_ms) VALUES (?1, ?2, ?3, ?4)",
    update_if_unchanged: "UPDATE orders SET state = ?1, ticket_id = ?2, rejection_step = ?3, \
         rejection_kind = ?4, rejection_code = ?5, rejection_reason = ?6, \
         compensation_pending = ?7, updated_at_ms = ?8 \
         WHERE id = ?9 AND state = ?10 AND updated_at_ms = ?11",
};

const POSTGRES: Sql = Sql {
    insert_order: "INSERT INTO orders (consumer_id, restaurant_id, lines_json, total_cents, state, \
         idempotency_key, request_fingerprint, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING id",
    insert_history: "INSERT INTO order_history (order_id, state, note, at_ms) VALUES ($1, $2, $3, $4)",
    update_if_unchanged: "UPDATE orders SET state = $1, ticket_id = $2, rejection_step = $3, \
         rejection_kind = $4, rejection_code = $5, rejection_reason = $6, \
         compensation_pending = $7, updated_at_ms = $8 \
         WHERE id = $9 AND state = $10 AND updated_at_ms = $11",
};

/// The same transaction on either backend.
macro_rules! insert_announced {
    ($pool:expr, $sql:expr, $new:expr, $announce:expr) => {{
        let new: &NewOrder = $new;
        let lines_json =
            serde_json::to_string(&new.lines).map_err(|e| RepositoryError(e.into()))?;
        let mut tx = $pool.begin().await.map_err(storage)?;
        let inserted: Option<(i64,)> = sqlx::query_as($sql.insert_order)
            .bind(new.consumer_id)
            .bind(new.restaurant_id)
            .bind(&lines_json)
            .bind(new.total_cents)
            .bind(OrderState::ApprovalPending.as_str())
            .bind(new.idempotency_key.as_deref())
            .bind(&new.request_fingerprint)
            .bind(new.created_at_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?;
        match inserted {
            None => {
                tx.rollback().await.map_err(storage)?;
                None
            }
            Some((id,)) => {
                let order = new.stored_as(id);
                for t in &order.history {
                    sqlx::query($sql.insert_history)
                        .bind(id)
                        .bind(t.state.as_str())
                        .bind(t.note.as_deref())
                        .bind(t.at_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(storage)?;
                }
                for message in $announce(&order) {
                    outbox::stage(&mut tx, message.subject(), &Staged(&message))
                        .await
                        .map_err(outbox_error)?;
                }
                tx.commit().await.map_err(storage)?;
                Some(order)
            }
        }
    }};
}

macro_rules! record {
    ($pool:expr, $sql:expr, $read:expr, $order:expr, $transitions:expr, $publish:expr) => {{
        let (read, order): (&Order, &Order) = ($read, $order);
        let r = order.rejection.as_ref();
        let mut tx = $pool.begin().await.map_err(storage)?;
        let done = sqlx::query($sql.update_if_unchanged)
            .bind(order.state.as_str())
            .bind(order.ticket_id)
            .bind(r.map(|r| r.step.as_str()))
            .bind(r.map(|r| r.failure.as_str()))
            .bind(r.and_then(|r| r.code.as_deref()))
            .bind(r.map(|r| r.reason.as_str()))
            .bind(order.compensation_pending)
            .bind(order.updated_at_ms)
            .bind(order.id)
            .bind(read.state.as_str())
            .bind(read.updated_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(storage)?;
            Recorded::Conflict
        } else {
            for t in $transitions {
                sqlx::query($sql.insert_history)
                    .bind(order.id)
                    .bind(t.state.as_str())
                    .bind(t.note.as_deref())
                    .bind(t.at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(storage)?;
            }
            for message in $publish {
                outbox::stage(&mut tx, message.subject(), &Staged(message))
                    .await
                    .map_err(outbox_error)?;
            }
            tx.commit().await.map_err(storage)?;
            Recorded::Saved
        }
    }};
}

#[async_trait::async_trait]
impl SagaStore for OutboxSagaStore {
    async fn insert_announced(
        &self,
        new: &NewOrder,
        announce: Announce,
    ) -> Result<Inserted, RepositoryError> {
        let created = match &self.database {
            Database::Sqlite(pool) => insert_announced!(pool, SQLITE, new, announce),
            Database::Postgres(pool) => insert_announced!(pool, POSTGRES, new, announce),
        };
        if let Some(order) = created {
            (self.wake_relay)();
            return Ok(Inserted::Created(order));
        }
        let key = new.idempotency_key.as_deref().unwrap_or_default();
        self.repository
            .find_by_idempotency_key(key)
            .await?
            .map(Inserted::Existing)
            .ok_or_else(|| corrupt("an idempotency conflict without an order".into()))
    }

    async fn record(
        &self,
        read: &Order,
        order: &Order,
        transitions: &[Transition],
        publish: &[OrderMessage],
    ) -> Result<Recorded, RepositoryError> {
        let recorded = match &self.database {
            Database::Sqlite(pool) => record!(pool, SQLITE, read, order, transitions, publish),
            Database::Postgres(pool) => record!(pool, POSTGRES, read, order, transitions, publish),
        };
        if recorded == Recorded::Saved && !publish.is_empty() {
            (self.wake_relay)();
        }
        Ok(recorded)
    }
}
