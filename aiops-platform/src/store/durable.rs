//! Durable storage in SQLite: exception groups now, incidents and actions later.
//!
//! Writes go through [`DurableWriter`]: a bounded channel to one task that applies them in
//! batches (one transaction per batch), so ingestion never waits on the disk.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;

use crate::store::{ExceptionGroup, Stats};

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
}

/// The SQLite database.
#[derive(Debug, Clone)]
pub struct Database {
    /// The connection pool (part 2 adds its own tables through it).
    pub pool: SqlitePool,
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS exception_groups (
        service TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        title TEXT NOT NULL,
        exception_type TEXT,
        level TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen_unix_nano INTEGER NOT NULL,
        last_seen_unix_nano INTEGER NOT NULL,
        last_trace_id TEXT,
        sample_event TEXT NOT NULL,
        PRIMARY KEY (service, fingerprint)
    )"];

impl Database {
    /// Opens (creating if needed) the database file and its tables.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// All exception groups.
    pub async fn load_exception_groups(&self) -> Result<Vec<ExceptionGroup>, DbError> {
        let rows = sqlx::query(
            "SELECT service, fingerprint, title, exception_type, level, count,
                    first_seen_unix_nano, last_seen_unix_nano, last_trace_id, sample_event
             FROM exception_groups",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let first: i64 = row.try_get("first_seen_unix_nano")?;
            let last: i64 = row.try_get("last_seen_unix_nano")?;
            let count: i64 = row.try_get("count")?;
            let sample: String = row.try_get("sample_event")?;
            let first = u64::try_from(first).unwrap_or(0);
            let last = u64::try_from(last).unwrap_or(0);
            out.push(ExceptionGroup {
                service: row.try_get("service")?,
                fingerprint: row.try_get("fingerprint")?,
                title: row.try_get("title")?,
                exception_type: row.try_get("exception_type")?,
                level: row.try_get("level")?,
                count: u64::try_from(count).unwrap_or(0),
                first_seen: crate::common::time::rfc3339(first),
                last_seen: crate::common::time::rfc3339(last),
                first_seen_unix_nano: first,
                last_seen_unix_nano: last,
                last_trace_id: row.try_get("last_trace_id")?,
                sample_event: serde_json::from_str(&sample).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    /// Starts the batched writer task; the returned handle queues writes without waiting.
    pub fn spawn_writer(
        &self,
        stats: Arc<Stats>,
        capacity: usize,
    ) -> (DurableWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = tokio::spawn(writer_loop(self.pool.clone(), rx, stats));
        (DurableWriter { tx }, handle)
    }
}

/// A durable write.
#[derive(Debug)]
pub enum DurableOp {
    /// Insert or replace an exception group with its current state.
    UpsertExceptionGroup(Box<ExceptionGroup>),
    /// Delete an exception group evicted from memory (service, fingerprint).
    DeleteExceptionGroup(String, String),
    /// Answer once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Queues durable writes; never blocks.
#[derive(Debug, Clone)]
pub struct DurableWriter {
    tx: mpsc::Sender<DurableOp>,
}

impl DurableWriter {
    /// Queues an exception group; false when the queue is full or the writer is gone.
    pub fn try_upsert(&self, group: ExceptionGroup) -> bool {
        self.tx
            .try_send(DurableOp::UpsertExceptionGroup(Box::new(group)))
            .is_ok()
    }

    /// Queues the deletion of an evicted group; false when the queue is full or the writer
    /// is gone.
    pub fn try_delete(&self, service: String, fingerprint: String) -> bool {
        self.tx
            .try_send(DurableOp::DeleteExceptionGroup(service, fingerprint))
            .is_ok()
    }

    /// Waits until everything queued so far is written (or the writer is gone). Bound it
    /// with a timeout: the queue may be long and SQLite slow.
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(DurableOp::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

const BATCH: usize = 512;

async fn writer_loop(pool: SqlitePool, mut rx: mpsc::Receiver<DurableOp>, stats: Arc<Stats>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Coalesce: only the latest state of each group needs writing (`None`: deleted).
        let mut latest: HashMap<(String, String), Option<ExceptionGroup>> = HashMap::new();
        let mut flushed = Vec::new();
        for op in batch.drain(..) {
            match op {
                DurableOp::Flush(done) => flushed.push(done),
                DurableOp::UpsertExceptionGroup(g) => {
                    latest.insert((g.service.clone(), g.fingerprint.clone()), Some(*g));
                }
                DurableOp::DeleteExceptionGroup(service, fingerprint) => {
                    latest.insert((service, fingerprint), None);
                }
            }
        }
        let n = latest.len() as u64;
        if n > 0
            && let Err(error) = write_groups(&pool, latest).await
        {
            tracing::error!(%error, groups = n, "durable write failed");
            Stats::add(&stats.durable_write_errors, n);
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
    tracing::debug!("durable writer stopped");
}

async fn write_groups(
    pool: &SqlitePool,
    groups: HashMap<(String, String), Option<ExceptionGroup>>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for ((service, fingerprint), g) in groups {
        let Some(g) = g else {
            sqlx::query("DELETE FROM exception_groups WHERE service = ? AND fingerprint = ?")
                .bind(service)
                .bind(fingerprint)
                .execute(&mut *tx)
                .await?;
            continue;
        };
        sqlx::query(
            "INSERT INTO exception_groups (service, fingerprint, title, exception_type, level, count,
                first_seen_unix_nano, last_seen_unix_nano, last_trace_id, sample_event)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (service, fingerprint) DO UPDATE SET
                title = excluded.title, exception_type = excluded.exception_type,
                level = excluded.level, count = max(count, excluded.count),
                first_seen_unix_nano = min(first_seen_unix_nano, excluded.first_seen_unix_nano),
                last_seen_unix_nano = max(last_seen_unix_nano, excluded.last_seen_unix_nano),
                last_trace_id = excluded.last_trace_id, sample_event = excluded.sample_event",
        )
        .bind(&g.service)
        .bind(&g.fingerprint)
        .bind(&g.title)
        .bind(&g.exception_type)
        .bind(&g.level)
        .bind(i64::try_from(g.count).unwrap_or(i64::MAX))
        .bind(i64::try_from(g.first_seen_unix_nano).unwrap_or(i64::MAX))
        .bind(i64::try_from(g.last_seen_unix_nano).unwrap_or(i64::MAX))
        .bind(&g.last_trace_id)
        .bind(g.sample_event.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Database;
    use crate::config::RetentionConfig;
    use crate::store::{ExceptionEvent, Stats, Store};

    fn event(fingerprint: &str, at: u64) -> ExceptionEvent {
        ExceptionEvent {
            service: "svc".into(),
            fingerprint: fingerprint.into(),
            title: fingerprint.into(),
            exception_type: None,
            level: "error".into(),
            time_unix_nano: at,
            trace_id: None,
            event: serde_json::json!({ "big": "x".repeat(1000) }),
        }
    }

    async fn fingerprints(db: &Database) -> Vec<String> {
        let mut f: Vec<String> = db
            .load_exception_groups()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|g| g.fingerprint)
            .collect();
        f.sort();
        f
    }

    /// Waits until the writer has caught up with `expected` rows.
    async fn settle(db: &Database, expected: &[&str]) -> Vec<String> {
        for _ in 0..200 {
            let now = fingerprints(db).await;
            if now == expected {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fingerprints(db).await
    }

    #[tokio::test]
    async fn evicted_groups_leave_sqlite_and_a_restore_keeps_the_cap() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("aiops.db");
        let db = Database::open(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let retention = RetentionConfig {
            max_exception_groups: 2,
            ..RetentionConfig::default()
        };
        let stats = Arc::new(Stats::default());
        let (writer, _task) = db.spawn_writer(stats.clone(), 64);
        let store = Store::new(retention.clone(), Some(writer));
        for (i, f) in ["a", "b", "c"].iter().enumerate() {
            store.record_exception(event(f, 10 + i as u64));
        }
        // "a" was the least recently seen: evicted from memory and from the file.
        assert_eq!(settle(&db, &["b", "c"]).await, ["b", "c"]);

        // A file holding more groups than the cap (an older platform, a lowered cap).
        let (writer, _task) = db.spawn_writer(stats, 64);
        let store = Store::new(RetentionConfig::default(), Some(writer));
        store.record_exception(event("d", 5));
        assert_eq!(settle(&db, &["b", "c", "d"]).await, ["b", "c", "d"]);
        let (writer, _task) = db.spawn_writer(Arc::new(Stats::default()), 64);
        let capped = Store::new(retention, Some(writer));
        capped.restore_exceptions(db.load_exception_groups().await.unwrap_or_default());
        assert_eq!(capped.exceptions.read().len(), 2, "restore keeps the cap");
        // The oldest, "d", is gone from the file too.
        assert_eq!(settle(&db, &["b", "c"]).await, ["b", "c"]);
    }
}
