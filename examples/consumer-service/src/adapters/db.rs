//! The service's own database: the shared opening code (`food-delivery-db`) with this
//! service's migrations and demo data (one folder per backend, `migrations/sqlite` and
//! `migrations/postgres`), and the repository for the backend `[db] url` names.

use std::sync::Arc;

pub(crate) use food_delivery_db::{Database, DbConfig, now_ms, register_readiness};
use sqlx::migrate::Migrator;

use super::postgres::PgConsumerRepository;
use super::repository::SqliteConsumerRepository;
use crate::domain::ConsumerRepository;

/// This service's SQLite migrations, demo data included, embedded at build time.
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The same schema and demo data in PostgreSQL's dialect.
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Opens the database `config` names (SQLite or PostgreSQL, by the URL's scheme; a SQLite file
/// is created if needed) and applies this service's migrations for that backend.
pub(crate) async fn open(
    config: &DbConfig,
    default_url: &str,
) -> Result<Database, food_delivery_db::DbError> {
    let migrations = food_delivery_db::Migrations {
        sqlite: &SQLITE,
        postgres: &POSTGRES,
    };
    food_delivery_db::open(config, default_url, migrations).await
}

/// The repository over `database`, of its backend.
pub(crate) fn repository(database: &Database) -> Arc<dyn ConsumerRepository> {
    match database {
        Database::Sqlite(pool) => Arc::new(SqliteConsumerRepository::new(pool.clone())),
        Database::Postgres(pool) => Arc::new(PgConsumerRepository::new(pool.clone())),
    }
}
