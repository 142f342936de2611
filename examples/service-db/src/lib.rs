//! Opening a food-delivery service's own database: SQLite through sqlx, its migrations and demo
//! data applied, and a readiness check that really queries it. Each service passes its own
//! migrations (`sqlx::migrate!("./migrations")`); only the opening code is shared.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The `[db]` section (`AIODS_DB__URL`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct DbConfig {
    /// A `sqlite://` URL; the service's default file in the working directory when absent.
    pub url: Option<String>,
    /// The pool size.
    pub max_connections: Option<u32>,
}

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        /// The URL.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
}

/// Opens (creating if needed) the database and applies `migrator`'s migrations.
pub async fn open(
    config: &DbConfig,
    default_url: &str,
    migrator: &Migrator,
) -> Result<SqlitePool, DbError> {
    let url = config.url.clone().unwrap_or_else(|| default_url.to_owned());
    let open_err = |source| DbError::Open {
        url: url.clone(),
        source,
    };
    let options = SqliteConnectOptions::from_str(&url)
        .map_err(open_err)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections.unwrap_or(8))
        .connect_with(options)
        .await
        .map_err(open_err)?;
    migrator
        .run(&pool)
        .await
        .map_err(|source| DbError::Migrate {
            url: url.clone(),
            source,
        })?;
    Ok(pool)
}

/// Registers the `database` readiness check: a real query on the pool.
pub fn register_readiness(health: &aiods::HealthRegistry, pool: SqlitePool) {
    health.register("database", move || {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .fetch_one(&pool)
                .await
                .map(|_| ())
        }
    });
}

/// Milliseconds since the Unix epoch, for stored timestamps.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
