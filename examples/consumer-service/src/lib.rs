//! The consumer service of the food-delivery example (seed section 13.1, figure 25): customers
//! and their standing, verified by the order saga through `POST /consumers/{id}/validate`.
//!
//! `domain` holds the entities, the service and its ports; `adapters` the HTTP controller and
//! the SQLite and PostgreSQL repositories. Configuration: `[db] url` (`AIODS_DB__URL`), default
//! `sqlite://consumer.db?mode=rwc`. With `saga.mode = events` (`AIODS_SAGA__MODE`, and
//! `messaging.url`) it also verifies the consumer of every `orders.created` event and publishes
//! `consumers.verified` or `consumers.rejected` (seed figure 31).
//!
//! The database is SQLite (`sqlite://…`, the default) or PostgreSQL (`postgres://…` or
//! `postgresql://…`), chosen by the URL's scheme; PostgreSQL lets several replicas write one
//! database (`AIODS_DB__URL=postgres://app:secret@postgres:5432/consumer`). Migrations per
//! backend: `migrations/sqlite`, `migrations/postgres`. The repository suite runs against
//! both (`cargo test -p consumer-service`; PostgreSQL is started by the tests from Debian's
//! `postgresql` package, see `docs/food-delivery.md`).

mod adapters;
pub mod domain;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use food_delivery_db::events::{self, Once, SagaConfig, SagaMode};

use crate::adapters::db;
use crate::domain::ConsumerService;

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://consumer.db?mode=rwc";

/// Opens the database, registers its readiness check, consumes `orders.created` when
/// `saga.mode = events`, and builds the routes.
#[aiods::service(name = "consumer-service")]
pub async fn main(ctx: aiods::ServiceContext) -> aiods::Result<OpenApiRouter> {
    let config: db::DbConfig = ctx.settings().section_or_default("db")?;
    let database = db::open(&config, DEFAULT_DB_URL)
        .await
        .map_err(aiods::Error::internal)?;
    db::register_readiness(ctx.health(), &database);
    let service = Arc::new(ConsumerService::new(db::repository(&database)));
    if SagaConfig::of(&ctx)?.mode == SagaMode::Events {
        let messaging = events::connect(&ctx, &database).await?;
        adapters::messaging::consume(&messaging, &Once::new(database), service.clone()).await?;
    }
    Ok(adapters::http::router(service))
}
