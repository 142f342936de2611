//! The notification service of the food-delivery example (seed section 13.1, figure 28): it
//! tells customers about their orders through an e-mail port; the default adapter writes the
//! message to the log, and every message is kept in an outbox table.
//!
//! Configuration: `[db] url` (`AIODS_DB__URL`), default `sqlite://notification.db?mode=rwc`.

mod adapters;
pub mod domain;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::adapters::db;
use crate::adapters::email::LogEmailSender;
use crate::domain::NotificationService;

/// Where the database lives when `db.url` is not set.
pub const DEFAULT_DB_URL: &str = "sqlite://notification.db?mode=rwc";

/// Opens the database, registers its readiness check and builds the routes.
#[aiods::service(name = "notification-service")]
pub async fn main(ctx: aiods::ServiceContext) -> aiods::Result<OpenApiRouter> {
    let config: db::DbConfig = ctx.settings().section_or_default("db")?;
    let database = db::open(&config, DEFAULT_DB_URL)
        .await
        .map_err(aiods::Error::internal)?;
    db::register_readiness(ctx.health(), &database);
    let service = Arc::new(NotificationService::new(
        Arc::new(LogEmailSender),
        db::repository(&database),
    ));
    Ok(adapters::http::router(service))
}
