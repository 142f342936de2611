//! The service's own database: the shared opening code (`food-delivery-db`) with this
//! service's migrations and demo data.

pub(crate) use food_delivery_db::{DbConfig, now_ms, register_readiness};

/// This service's migrations, demo data included, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens (creating if needed) the database and applies this service's migrations.
pub(crate) async fn open(
    config: &DbConfig,
    default_url: &str,
) -> Result<sqlx::SqlitePool, food_delivery_db::DbError> {
    food_delivery_db::open(config, default_url, &MIGRATOR).await
}
