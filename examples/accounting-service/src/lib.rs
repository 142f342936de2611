//! The accounting service of the food-delivery example (seed section 13.1, figure 27):
//! accounts and payment authorizations through a payment-provider port, with a deterministic
//! simulated provider (cards whose token starts with `tok_decline` are declined).
//!
//! `domain` holds the entities, the service and its ports; `adapters` the HTTP controller, the
//! SQLite and PostgreSQL repositories and the simulated provider. Configuration: `[db] url`
//! (`AIODS_DB__URL`), default `sqlite://accounting.db?mode=rwc`. With `saga.mode = events` (`AIODS_SAGA__MODE`, and
//! `messaging.url`) it also authorizes the payment of every `kitchen.ticket_created` event
//! (publishing `accounting.authorized` or `accounting.declined`) and voids it on
//! `orders.payment_void` (seed figure 31).
//!
//! The database is SQLite (`sqlite://…`, the default) or PostgreSQL (`postgres://…` or
//! `postgresql://…`), chosen by the URL's scheme; PostgreSQL lets several replicas write one
//! database (`AIODS_DB__URL=postgres://app:secret@postgres:5432/accounting`). Migrations per
//! backend: `migrations/sqlite`, `migrations/postgres`. The repository suite runs against
//! both (`cargo test -p accounting-service`; PostgreSQL is started by the tests from Debian's
//! `postgresql` package, see `docs/food-delivery.md`).

mod adapters;
pub mod domain;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use food_delivery_db::events::{self, Once, SagaConfig, SagaMode};

use crate::adapters::db;
use crate::adapters::payment::SimulatedPaymentProvider;
use crate::domain::AccountingService;

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://accounting.db?mode=rwc";

/// Opens the database, registers its readiness check, consumes the saga's events when
/// `saga.mode = events`, and builds the routes.
#[aiods::service(name = "accounting-service")]
pub async fn main(ctx: aiods::ServiceContext) -> aiods::Result<OpenApiRouter> {
    let config: db::DbConfig = ctx.settings().section_or_default("db")?;
    let database = db::open(&config, DEFAULT_DB_URL)
        .await
        .map_err(aiods::Error::internal)?;
    db::register_readiness(ctx.health(), &database);
    let service = Arc::new(AccountingService::new(
        db::repository(&database),
        Arc::new(SimulatedPaymentProvider),
    ));
    if SagaConfig::of(&ctx)?.mode == SagaMode::Events {
        let messaging = events::connect(&ctx, &database).await?;
        adapters::messaging::consume(&messaging, &Once::new(database), service.clone()).await?;
    }
    Ok(adapters::http::router(service))
}
