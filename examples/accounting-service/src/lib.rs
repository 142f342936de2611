//! The accounting service of the food-delivery example (seed section 13.1, figure 27):
//! accounts and payment authorizations through a payment-provider port, with a deterministic
//! simulated provider (cards whose token starts with `tok_decline` are declined).
//!
//! `domain` holds the entities, the service and its ports; `adapters` the HTTP controller, the
//! SQLite repository and the simulated provider. Configuration: `[db] url`
//! (`AIODS_DB__URL`), default `sqlite://accounting.db?mode=rwc`.

mod adapters;
pub mod domain;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::adapters::db;
use crate::adapters::payment::SimulatedPaymentProvider;
use crate::domain::AccountingService;

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://accounting.db?mode=rwc";

/// Opens the database, registers its readiness check and builds the routes.
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
    Ok(adapters::http::router(service))
}
