//! A service exercising the chassis's messaging (features `nats` and `outbox`); the messaging
//! integration tests run it over a real `nats-server`.
//!
//! - Stream `ORDERS` (`orders.>`); consumer `kitchen` on `orders.created`. Its handler acts on
//!   the order's `action`: `ok` (records the order once, idempotently), `fail` (an error),
//!   `panic`, `sleep:<ms>` (then records), `fail_after_commit` (records, then fails on the
//!   first delivery: the redelivery must be a duplicate).
//! - `POST /orders` publishes the order (`orders.created`, id = the order's id).
//! - `POST /outbox` writes the order and its event in one transaction (outbox); the relay
//!   runs unless `probe.relay = false`.
//! - `GET /handled`: the orders the consumer recorded, with the delivery that recorded them.
//!
//! `[probe] db` is the SQLite URL (default: in memory).

use std::time::Duration;

use aiods::messaging::idempotency::{self, Claim};
use aiods::messaging::outbox::{self, OutboxRelay, RelayHandle};
use aiods::messaging::sqlx::{self, SqlitePool, sqlite::SqlitePoolOptions};
use aiods::messaging::{ConsumerSpec, Delivery, Event};
use aiods::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct ProbeConfig {
    db: String,
    relay: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            db: "sqlite::memory:".into(),
            relay: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    #[serde(default)]
    action: String,
}

impl Event for Order {
    fn message_id(&self) -> String {
        self.id.clone()
    }
}

#[derive(Clone)]
struct AppState {
    pool: SqlitePool,
    messaging: aiods::messaging::Messaging,
    relay: Option<RelayHandle>,
}

#[aiods::service(name = "messaging-probe")]
async fn main(ctx: ServiceContext) -> aiods::Result<Router> {
    let cfg: ProbeConfig = ctx.settings().section_or_default("probe")?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&cfg.db)
        .await
        .map_err(aiods::Error::internal)?;
    outbox::create_tables(&pool)
        .await
        .map_err(aiods::Error::internal)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS handled (id TEXT PRIMARY KEY, delivered INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await
    .map_err(aiods::Error::internal)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
        .execute(&pool)
        .await
        .map_err(aiods::Error::internal)?;

    let messaging = ctx.messaging().await?;
    messaging.ensure_stream("ORDERS", &["orders.>"]).await?;
    let handler_pool = pool.clone();
    messaging
        .consume(
            ConsumerSpec::durable("kitchen", "ORDERS", "orders.created"),
            move |order: Delivery<Order>| kitchen(handler_pool.clone(), order),
        )
        .await?;
    let relay = cfg
        .relay
        .then(|| OutboxRelay::new(messaging.clone(), pool.clone()).spawn());
    let state = AppState {
        pool,
        messaging,
        relay,
    };
    Ok(Router::new()
        .route("/orders", post(publish_order))
        .route("/outbox", post(stage_order))
        .route("/handled", get(handled))
        .with_state(state))
}

async fn kitchen(pool: SqlitePool, order: Delivery<Order>) -> aiods::Result<()> {
    let action = order.payload.action.clone();
    match action.as_str() {
        "fail" => return Err(aiods::Error::internal("the kitchen is on fire")),
        "panic" => panic!("the kitchen handler panicked on purpose"),
        _ => {}
    }
    if let Some(ms) = action.strip_prefix("sleep:") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tracing::info!(order = %order.payload.id, "handler sleeping");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut tx = pool.begin().await.map_err(aiods::Error::internal)?;
    if idempotency::claim_delivery(&mut tx, &order).await? == Claim::Duplicate {
        tracing::info!(order = %order.payload.id, "duplicate order skipped");
        return Ok(());
    }
    sqlx::query("INSERT INTO handled (id, delivered) VALUES (?, ?)")
        .bind(&order.payload.id)
        .bind(i64::try_from(order.delivered()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(aiods::Error::internal)?;
    tx.commit().await.map_err(aiods::Error::internal)?;
    tracing::info!(order = %order.payload.id, delivered = order.delivered(), "order handled");
    if action == "fail_after_commit" && order.delivered() == 1 {
        return Err(aiods::Error::internal(
            "failed after the commit, before the ack",
        ));
    }
    Ok(())
}

async fn publish_order(
    State(state): State<AppState>,
    Json(order): Json<Order>,
) -> aiods::Result<&'static str> {
    state.messaging.publish("orders.created", &order).await?;
    Ok("published")
}

async fn stage_order(
    State(state): State<AppState>,
    Json(order): Json<Order>,
) -> aiods::Result<&'static str> {
    let mut tx = state.pool.begin().await.map_err(aiods::Error::internal)?;
    sqlx::query("INSERT INTO orders (id) VALUES (?)")
        .bind(&order.id)
        .execute(&mut *tx)
        .await
        .map_err(aiods::Error::internal)?;
    outbox::stage(&mut tx, "orders.created", &order).await?;
    tx.commit().await.map_err(aiods::Error::internal)?;
    if let Some(relay) = &state.relay {
        relay.wake();
    }
    Ok("staged")
}

async fn handled(State(state): State<AppState>) -> aiods::Result<Json<Vec<(String, i64)>>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, delivered FROM handled ORDER BY id")
        .fetch_all(&state.pool)
        .await
        .map_err(aiods::Error::internal)?;
    Ok(Json(rows))
}
