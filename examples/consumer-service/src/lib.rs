//! The consumer service of the food-delivery example (seed section 13.1, figure 25): customers
//! and their standing, verified by the order saga through `POST /consumers/{id}/validate`.
//!
//! `domain` holds the entities, the service and its ports; `adapters` the HTTP controller and
//! the SQLite repository. Configuration: `[db] url` (`AIODS_DB__URL`), default
//! `sqlite://consumer.db?mode=rwc`.

mod adapters;
pub mod domain;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::adapters::db;
use crate::domain::ConsumerService;

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://consumer.db?mode=rwc";

/// Opens the database, registers its readiness check and builds the routes.
#[aiods::service(name = "consumer-service")]
pub async fn main(ctx: aiods::ServiceContext) -> aiods::Result<OpenApiRouter> {
    let config: db::DbConfig = ctx.settings().section_or_default("db")?;
    let database = db::open(&config, DEFAULT_DB_URL)
        .await
        .map_err(aiods::Error::internal)?;
    db::register_readiness(ctx.health(), &database);
    let service = Arc::new(ConsumerService::new(db::repository(&database)));
    Ok(adapters::http::router(service))
}
