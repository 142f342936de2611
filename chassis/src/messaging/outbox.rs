//! The transactional outbox (feature `outbox`): an event is written in the same database
//! transaction as the state change it announces, and a relay publishes it afterwards.
//!
//! ```no_run
//! # use aiods::messaging::{Event, Messaging, outbox};
//! # #[derive(serde::Serialize)] struct OrderCreated { id: String }
//! # impl Event for OrderCreated { fn message_id(&self) -> String { self.id.clone() } }
//! # async fn demo(pool: sqlx::SqlitePool, messaging: Messaging) -> Result<(), Box<dyn std::error::Error>> {
//! outbox::create_tables(&pool).await?; // or the same DDL in the service's migrations
//! let relay = outbox::OutboxRelay::new(messaging, pool.clone()).spawn();
//!
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO orders (id) VALUES (?)").bind("o-1").execute(&mut *tx).await?;
//! outbox::stage(&mut tx, "orders.created", &OrderCreated { id: "o-1".into() }).await?;
//! tx.commit().await?;
//! relay.wake(); // publish now rather than at the next poll
//! # Ok(()) }
//! ```
//!
//! The relay publishes the pending rows in order with `Nats-Msg-Id` = the event's id and
//! deletes each once JetStream acknowledged it. A crash between the publish and the delete
//! publishes the row again at the next start, and JetStream drops it as a duplicate (within the
//! stream's duplicate window, two minutes by default). The trace context current at
//! [`stage`] is stored with the row, so the relay's PRODUCER span continues the request's
//! trace.
//!
//! Tables (created by [`create_tables`], or copied into the service's migrations from
//! [`SQLITE_SCHEMA`] / [`POSTGRES_SCHEMA`]): `outbox` and `processed_messages` (the latter for
//! [`super::idempotency`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use sqlx::{Pool, Postgres, Sqlite, Transaction};
use tokio::sync::Notify;

use super::{Event, Messaging, MessagingError};

/// The tables in SQLite.
pub const SQLITE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_messages (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    processed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
";

/// The tables in PostgreSQL.
pub const POSTGRES_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS outbox (
    seq BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BYTEA NOT NULL,
    headers TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_messages (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
";

pub use super::names::{OUTBOX_PENDING, OUTBOX_RELAYED};

/// An outbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The event could not be serialized.
    #[error("cannot encode the event for {subject}: {source}")]
    Encode {
        /// The subject.
        subject: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The database refused.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The relay could not publish a row.
    #[error("outbox relay: {0}")]
    Publish(#[from] MessagingError),
}

impl From<OutboxError> for crate::Error {
    fn from(e: OutboxError) -> Self {
        crate::Error::internal(e)
    }
}

/// One pending outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its order.
    pub seq: i64,
    /// The event's id (`Nats-Msg-Id`).
    pub message_id: String,
    /// Where it goes.
    pub subject: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// The headers to send (the trace context at staging), as a JSON object.
    pub headers: String,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

/// A database the outbox and the idempotent consumer work on: SQLite and PostgreSQL.
pub trait OutboxDatabase: sqlx::Database + sealed::Sealed {
    /// Creates `outbox` and `processed_messages` when missing.
    fn create_tables(pool: &Pool<Self>) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Inserts a row in the caller's transaction.
    fn insert<'a>(
        conn: &'a mut Self::Connection,
        row: &'a OutboxRow,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    /// The first `limit` pending rows, in order.
    fn pending(
        pool: &Pool<Self>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, sqlx::Error>> + Send;
    /// Deletes a relayed row.
    fn delete(pool: &Pool<Self>, seq: i64) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// How many rows are pending.
    fn count(pool: &Pool<Self>) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// Records `(consumer, message_id)`; true when it was not there yet.
    fn claim<'a>(
        conn: &'a mut Self::Connection,
        consumer: &'a str,
        message_id: &'a str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send + 'a;
}

type RowTuple = (i64, String, String, Vec<u8>, String);

fn row(t: RowTuple) -> OutboxRow {
    OutboxRow {
        seq: t.0,
        message_id: t.1,
        subject: t.2,
        payload: t.3,
        headers: t.4,
    }
}

macro_rules! outbox_database {
    ($db:ty, $schema:expr, $insert:expr, $pending:expr, $delete:expr, $claim:expr) => {
        impl OutboxDatabase for $db {
            async fn create_tables(pool: &Pool<Self>) -> Result<(), sqlx::Error> {
                for statement in $schema.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(statement).execute(pool).await?;
                }
                Ok(())
            }

            fn insert<'a>(
                conn: &'a mut Self::Connection,
                row: &'a OutboxRow,
                now_ms: i64,
            ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
                async move {
                    sqlx::query($insert)
                        .bind(&row.message_id)
                        .bind(&row.subject)
                        .bind(&row.payload)
                        .bind(&row.headers)
                        .bind(now_ms)
                        .execute(conn)
                        .await?;
                    Ok(())
                }
            }

            async fn pending(pool: &Pool<Self>, limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
                let rows: Vec<RowTuple> =
                    sqlx::query_as($pending).bind(limit).fetch_all(pool).await?;
                Ok(rows.into_iter().map(row).collect())
            }

            async fn delete(pool: &Pool<Self>, seq: i64) -> Result<(), sqlx::Error> {
                sqlx::query($delete).bind(seq).execute(pool).await?;
                Ok(())
            }

            async fn count(pool: &Pool<Self>) -> Result<i64, sqlx::Error> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
                    .fetch_one(pool)
                    .await?;
                Ok(n)
            }

            fn claim<'a>(
                conn: &'a mut Self::Connection,
                consumer: &'a str,
                message_id: &'a str,
                now_ms: i64,
            ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send + 'a {
                async move {
                    let done = sqlx::query($claim)
                        .bind(consumer)
                        .bind(message_id)
                        .bind(now_ms)
                        .execute(conn)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}

outbox_database!(
    Sqlite,
    SQLITE_SCHEMA,
    "INSERT INTO outbox (message_id, subject, payload, headers, created_at_ms) VALUES (?, ?, ?, ?, ?)",
    "SELECT seq, message_id, subject, payload, headers FROM outbox ORDER BY seq LIMIT ?",
    "DELETE FROM outbox WHERE seq = ?",
    "INSERT INTO processed_messages (consumer, message_id, processed_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
);

outbox_database!(
    Postgres,
    POSTGRES_SCHEMA,
    "INSERT INTO outbox (message_id, subject, payload, headers, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    "SELECT seq, message_id, subject, payload, headers FROM outbox ORDER BY seq LIMIT $1",
    "DELETE FROM outbox WHERE seq = $1",
    "INSERT INTO processed_messages (consumer, message_id, processed_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
);

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Creates the `outbox` and `processed_messages` tables when missing.
pub async fn create_tables<DB: OutboxDatabase>(pool: &Pool<DB>) -> Result<(), sqlx::Error> {
    DB::create_tables(pool).await
}

struct MapInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Writes `event` for `subject` into the outbox within `tx`: it is published (by an
/// [`OutboxRelay`]) only if the transaction commits. The current trace context goes with it.
pub async fn stage<DB: OutboxDatabase, E: Event + ?Sized>(
    tx: &mut Transaction<'_, DB>,
    subject: &str,
    event: &E,
) -> Result<(), OutboxError> {
    let payload = serde_json::to_vec(event).map_err(|source| OutboxError::Encode {
        subject: subject.to_owned(),
        source,
    })?;
    let mut headers = BTreeMap::new();
    TraceContextPropagator::new().inject_context(
        &opentelemetry::Context::current(),
        &mut MapInjector(&mut headers),
    );
    let row = OutboxRow {
        seq: 0,
        message_id: event.message_id(),
        subject: subject.to_owned(),
        payload,
        headers: serde_json::to_string(&headers).unwrap_or_else(|_| "{}".into()),
    };
    DB::insert(&mut **tx, &row, now_ms()).await?;
    Ok(())
}

/// Publishes the outbox's pending rows: [`relay_pending`](Self::relay_pending) once, or
/// [`spawn`](Self::spawn) a task that polls until the service stops.
pub struct OutboxRelay<DB: OutboxDatabase> {
    messaging: Messaging,
    pool: Pool<DB>,
    interval: Duration,
    batch: i64,
}

impl<DB: OutboxDatabase> std::fmt::Debug for OutboxRelay<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("interval", &self.interval)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// The running relay: wake it after a commit to publish at once.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    wake: Arc<Notify>,
}

impl RelayHandle {
    /// Publishes the pending rows now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

impl<DB: OutboxDatabase> OutboxRelay<DB> {
    /// A relay from `pool`'s outbox through `messaging`, polling every 200 ms.
    pub fn new(messaging: Messaging, pool: Pool<DB>) -> Self {
        Self {
            messaging,
            pool,
            interval: Duration::from_millis(200),
            batch: 100,
        }
    }

    /// How often the outbox is read when not woken.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Publishes every pending row in order, deleting each after JetStream acknowledged it;
    /// stops at the first failure (the rest stays for the next pass). Returns how many were
    /// relayed.
    pub async fn relay_pending(&self) -> Result<usize, OutboxError> {
        let mut relayed = 0;
        loop {
            let rows = DB::pending(&self.pool, self.batch).await?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= self.batch;
            for row in rows {
                let mut headers = HeaderMap::new();
                let stored: BTreeMap<String, String> =
                    serde_json::from_str(&row.headers).unwrap_or_default();
                for (k, v) in stored {
                    headers.insert(k.as_str(), v);
                }
                let published = self
                    .messaging
                    .publish_bytes(
                        &row.subject,
                        &row.message_id,
                        Bytes::from(row.payload),
                        headers,
                    )
                    .await;
                if let Err(e) = published {
                    self.report_pending().await;
                    return Err(e.into());
                }
                DB::delete(&self.pool, row.seq).await?;
                metrics::counter!(
                    OUTBOX_RELAYED,
                    "messaging_system" => super::names::SYSTEM,
                    "messaging_destination_name" => row.subject,
                )
                .increment(1);
                relayed += 1;
            }
            if !full || self.messaging.is_stopping() {
                break;
            }
        }
        self.report_pending().await;
        Ok(relayed)
    }

    async fn report_pending(&self) {
        if let Ok(n) = DB::count(&self.pool).await {
            metrics::gauge!(OUTBOX_PENDING, "messaging_system" => super::names::SYSTEM)
                .set(n as f64);
        }
    }

    /// Relays in a task: at once, then every interval or when woken, until the messaging
    /// connection drains (the pass in progress finishes first).
    pub fn spawn(self) -> RelayHandle {
        let wake = Arc::new(Notify::new());
        let handle = RelayHandle { wake: wake.clone() };
        let mut stop = self.messaging.inner.stop.subscribe();
        let messaging = self.messaging.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = self.relay_pending().await {
                    tracing::warn!(target: "aiods::messaging", error = %e, "outbox relay failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(self.interval) => {},
                    () = wake.notified() => {},
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
        super::lock(&messaging.inner.consumers).push(task);
        handle
    }
}
