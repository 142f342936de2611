//! The order service of the food-delivery example (seed section 13.1, figure 24): it receives
//! orders and orchestrates the saga across the consumer, kitchen, accounting and notification
//! services (or, with `saga.mode = events`, follows it as a choreography), compensating
//! failures and reconciling orders left pending.
//!
//! `domain` holds the order, the saga and its ports; `adapters` the HTTP controller, the SQLite
//! and PostgreSQL repositories and the HTTP clients of the other services. Configuration:
//!
//! | key | env | default |
//! |---|---|---|
//! | `db.url` | `AIODS_DB__URL` | `sqlite://order.db?mode=rwc` |
//! | `upstreams.consumer` … | `AIODS_UPSTREAMS__CONSUMER` … | none (calls fail, naming the step) |
//! | `orders.pending_timeout_ms` | `AIODS_ORDERS__PENDING_TIMEOUT_MS` | 30000 |
//! | `orders.reconcile_interval_ms` | `AIODS_ORDERS__RECONCILE_INTERVAL_MS` | 5000 |
//! | `saga.mode` | `AIODS_SAGA__MODE` | `http`; `events` runs the saga as choreography over NATS JetStream |
//! | `messaging.url` | `AIODS_MESSAGING__URL` | none (required with `saga.mode = events`) |
//!
//! With `saga.mode = events` (seed figure 31), `POST /orders` stores the order with
//! `orders.created` in the transactional outbox and answers 202 at once; the order service then
//! listens to the consumer, kitchen and accounting services' events and approves the order or
//! rejects and compensates it (see `food-events` for the subjects, and [`domain::react`]).
//!
//! The database is SQLite (`sqlite://…`, the default) or PostgreSQL (`postgres://…` or
//! `postgresql://…`), chosen by the URL's scheme; PostgreSQL lets several replicas write one
//! database (`AIODS_DB__URL=postgres://app:secret@postgres:5432/orders`). Migrations per
//! backend: `migrations/sqlite`, `migrations/postgres`. The repository suite runs against
//! both (`cargo test -p order-service`; PostgreSQL is started by the tests from Debian's
//! `postgresql` package, see `docs/food-delivery.md`).

mod adapters;
pub mod domain;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aiods::messaging::outbox::OutboxRelay;
use food_delivery_db::events::{Once, SagaConfig, SagaMode};
use utoipa_axum::router::OpenApiRouter;

use crate::adapters::db;
use crate::adapters::saga_store::OutboxSagaStore;
use crate::adapters::upstream::{
    CachedMenus, HttpAccounting, HttpConsumer, HttpKitchen, HttpNotification,
};
use crate::domain::{
    ChoreographedOrders, OrderError, OrderPorts, OrderService, ReconcileReport, SystemClock,
};

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://order.db?mode=rwc";

/// The `[orders]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
struct OrdersConfig {
    /// An order pending for longer than this is rejected by the reconciler.
    pending_timeout_ms: u64,
    /// How often the reconciler runs.
    reconcile_interval_ms: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            pending_timeout_ms: 30_000,
            reconcile_interval_ms: 5_000,
        }
    }
}

/// Opens the database, wires the saga to the other services (over HTTP, or over events with
/// `saga.mode = events`), starts the reconciler and builds the routes.
#[aiods::service(name = "order-service")]
pub async fn main(ctx: aiods::ServiceContext) -> aiods::Result<OpenApiRouter> {
    let config: db::DbConfig = ctx.settings().section_or_default("db")?;
    let orders: OrdersConfig = ctx.settings().section_or_default("orders")?;
    let saga = SagaConfig::of(&ctx)?;
    let database = db::open(&config, DEFAULT_DB_URL)
        .await
        .map_err(aiods::Error::internal)?;
    db::register_readiness(ctx.health(), &database);
    let client = ctx.client().clone();
    if saga.mode == SagaMode::Events {
        return choreographed(&ctx, database, client, orders).await;
    }
    let service = Arc::new(OrderService::new(OrderPorts {
        repository: db::repository(&database),
        consumer: Arc::new(HttpConsumer(client.clone())),
        kitchen: Arc::new(HttpKitchen(client.clone())),
        accounting: Arc::new(HttpAccounting(client.clone())),
        notification: Arc::new(HttpNotification(client)),
        clock: Arc::new(SystemClock),
    }));
    let reconciler = service.clone();
    tokio::spawn(reconcile_forever(orders, move |timeout| {
        let service = reconciler.clone();
        async move { service.reconcile(timeout).await }
    }));
    Ok(adapters::http::router(service))
}

/// The saga as choreography: orders stored with `orders.created` in the outbox, the relay
/// publishing it, the consumers of the other services' answers, the reconciler expiring
/// orders nobody answered for.
async fn choreographed(
    ctx: &aiods::ServiceContext,
    database: db::Database,
    client: aiods::Client,
    config: OrdersConfig,
) -> aiods::Result<OpenApiRouter> {
    let messaging = food_delivery_db::events::connect(ctx, &database).await?;
    let relay = match &database {
        db::Database::Sqlite(pool) => OutboxRelay::new(messaging.clone(), pool.clone()).spawn(),
        db::Database::Postgres(pool) => OutboxRelay::new(messaging.clone(), pool.clone()).spawn(),
    };
    let repository = db::repository(&database);
    let store = Arc::new(OutboxSagaStore::new(
        database.clone(),
        repository.clone(),
        Box::new(move || relay.wake()),
    ));
    let service = Arc::new(ChoreographedOrders::new(
        repository,
        store,
        Arc::new(CachedMenus::new(HttpKitchen(client))),
        Arc::new(SystemClock),
    ));
    adapters::messaging::consume(&messaging, Once::new(database), service.clone()).await?;
    let reconciler = service.clone();
    tokio::spawn(reconcile_forever(config, move |timeout| {
        let service = reconciler.clone();
        async move { service.reconcile(timeout).await }
    }));
    Ok(adapters::http::router(service))
}

/// Runs a reconciliation pass at start and then every `reconcile_interval_ms`.
async fn reconcile_forever<F, Fut>(config: OrdersConfig, reconcile: F)
where
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = Result<ReconcileReport, OrderError>>,
{
    let timeout = Duration::from_millis(config.pending_timeout_ms);
    let mut tick =
        tokio::time::interval(Duration::from_millis(config.reconcile_interval_ms.max(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reconcile(timeout).await {
            Ok(report) if report == Default::default() => {}
            Ok(report) => tracing::info!(
                expired = ?report.expired,
                compensated = ?report.compensated,
                still_pending = ?report.still_pending,
                "orders reconciled"
            ),
            Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
        }
    }
}
