//! Opening a food-delivery service's own database through sqlx: SQLite (one instance, a file
//! beside it) or PostgreSQL (several replicas writing one database), chosen by the scheme of
//! `[db] url` (`AIODS_DB__URL`). The service's migrations for that backend and its demo data are
//! applied, and a readiness check really queries it. Each service passes its own migrations
//! (`sqlx::migrate!("./migrations/sqlite")` and `…/postgres`); only the opening code is shared.
//!
//! | `[db] url` | backend |
//! |---|---|
//! | `sqlite://order.db?mode=rwc` | SQLite, WAL mode, one writer |
//! | `postgres://user:password@host:5432/orders` (or `postgresql://`) | PostgreSQL |
//!
//! Several replicas may start at once against one PostgreSQL database: sqlx's migrator holds an
//! advisory lock while it migrates, so one of them applies the migrations and the others wait.

#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub mod events;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

/// The `[db]` section (`AIODS_DB__URL`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct DbConfig {
    /// A `sqlite://`, `postgres://` or `postgresql://` URL; the service's default SQLite file in
    /// the working directory when absent.
    pub url: Option<String>,
    /// The pool size (default 8).
    pub max_connections: Option<u32>,
}

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names a backend the services do not have.
    #[error("unsupported database URL {url}: expected sqlite://…, postgres://… or postgresql://…")]
    UnsupportedScheme {
        /// The URL, password hidden.
        url: String,
    },
    /// Connecting failed.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The URL, password hidden.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        /// The URL, password hidden.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
}

/// The backends a `[db] url` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://` (or `sqlite:`).
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The backend `url` names, from its scheme.
    pub fn of(url: &str) -> Result<Self, DbError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(DbError::UnsupportedScheme { url: redact(url) }),
        }
    }
}

/// A service's migrations, one folder per backend (the SQL dialects differ).
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// `./migrations/sqlite`.
    pub sqlite: &'static Migrator,
    /// `./migrations/postgres`.
    pub postgres: &'static Migrator,
}

/// An open, migrated database: the pool of its backend.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl Database {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// A real query on the pool: what the `database` readiness check runs.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT count(*) FROM sqlite_master")
                .fetch_one(pool)
                .await
                .map(|_| ()),
            Self::Postgres(pool) => sqlx::query("SELECT count(*) FROM pg_catalog.pg_tables")
                .fetch_one(pool)
                .await
                .map(|_| ()),
        }
    }
}

/// Opens the database `config` names (`default_url` when it names none), creating a SQLite file
/// if needed, and applies the backend's migrations.
pub async fn open(
    config: &DbConfig,
    default_url: &str,
    migrations: Migrations,
) -> Result<Database, DbError> {
    let url = config.url.clone().unwrap_or_else(|| default_url.to_owned());
    let shown = redact(&url);
    let open_err = |source| DbError::Open {
        url: shown.clone(),
        source,
    };
    let max_connections = config.max_connections.unwrap_or(8);
    let (database, migrator) = match Backend::of(&url)? {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(&url)
                .map_err(open_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .map_err(open_err)?;
            (Database::Sqlite(pool), migrations.sqlite)
        }
        Backend::Postgres => {
            let options = PgConnectOptions::from_str(&url).map_err(open_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(open_err)?;
            (Database::Postgres(pool), migrations.postgres)
        }
    };
    let migrated = match &database {
        Database::Sqlite(pool) => migrator.run(pool).await,
        Database::Postgres(pool) => migrator.run(pool).await,
    };
    migrated.map_err(|source| DbError::Migrate { url: shown, source })?;
    Ok(database)
}

/// Registers the `database` readiness check: a real query on the pool.
pub fn register_readiness(health: &aiods::HealthRegistry, database: &Database) {
    let database = database.clone();
    health.register("database", move || {
        let database = database.clone();
        async move { database.ping().await }
    });
}

/// `url` with the password of its user info, if any, replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch, for stored timestamps.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            Backend::of("sqlite://order.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::of("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of("postgres://u:p@db:5432/orders").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of("PostgreSQL://db/orders").ok(),
            Some(Backend::Postgres)
        );
    }

    #[test]
    fn an_unsupported_scheme_is_named_without_the_password() {
        let err = Backend::of("mysql://root:hunter2@db/orders").expect_err("mysql is refused");
        let message = err.to_string();
        assert!(message.contains("mysql://root:***@db/orders"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(Backend::of("order.db").is_err());
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cr3t@db:5432/orders?sslmode=disable"),
            "postgres://app:***@db:5432/orders?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://app@db/orders"),
            "postgres://app@db/orders"
        );
        assert_eq!(
            redact("sqlite://order.db?mode=rwc"),
            "sqlite://order.db?mode=rwc"
        );
        assert_eq!(redact("postgres://db/x@y"), "postgres://db/x@y");
    }

    #[tokio::test]
    async fn an_unsupported_scheme_fails_to_open() {
        static EMPTY: Migrator = Migrator::DEFAULT;
        let migrations = Migrations {
            sqlite: &EMPTY,
            postgres: &EMPTY,
        };
        let config = DbConfig {
            url: Some("mongodb://db/orders".into()),
            max_connections: None,
        };
        let err = open(&config, "sqlite://unused.db", migrations)
            .await
            .expect_err("mongodb is refused");
        assert!(matches!(err, DbError::UnsupportedScheme { .. }), "{err:?}");
    }
}
