//! Incidents, audited actions and instance ports in SQLite, written in order by one task.

use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use tokio::sync::mpsc;

use crate::incident::{Action, Incident, IncidentStatus};

/// Errors of the incident tables.
#[derive(Debug, thiserror::Error)]
pub enum IncidentDbError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        status TEXT NOT NULL,
        detected_unix_nano INTEGER NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS incidents_detected ON incidents (detected_unix_nano)",
    "CREATE TABLE IF NOT EXISTS actions (
        id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        service TEXT NOT NULL,
        instance TEXT,
        what TEXT NOT NULL,
        why TEXT NOT NULL,
        who TEXT NOT NULL,
        status TEXT NOT NULL,
        created_unix_nano INTEGER NOT NULL,
        result TEXT
    )",
    "CREATE TABLE IF NOT EXISTS instances (
        service TEXT NOT NULL,
        idx INTEGER NOT NULL,
        port INTEGER NOT NULL,
        pid INTEGER,
        PRIMARY KEY (service, idx)
    )",
];

/// Later tables.
const LATER_TABLES: &[&str] = &[
    // Each use of a service's restart or scaling budget, so a restarted platform keeps
    // counting within the window.
    "CREATE TABLE IF NOT EXISTS budget_uses (
        service TEXT NOT NULL,
        budget TEXT NOT NULL,
        at_unix_nano INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS budget_uses_at ON budget_uses (at_unix_nano)",
];

/// How long budget uses are kept (longer than any sensible budget window).
const BUDGET_USES_KEPT_NANOS: u64 = 24 * 3600 * 1_000_000_000;

/// Which budget a use was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// Restarts (crash and hang repair).
    Restart,
    /// Scale-outs.
    Scale,
}

impl BudgetKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Scale => "scale",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "restart" => Some(Self::Restart),
            "scale" => Some(Self::Scale),
            _ => None,
        }
    }
}

/// One use of a budget, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    /// The service.
    pub service: String,
    /// Which budget.
    pub budget: BudgetKind,
    /// When (ns since the epoch).
    pub at_unix_nano: u64,
}

/// Columns added after the first release: (table, column, the statement adding it), run
/// when the column is missing.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Which process the pid was: boot id and start time (see `actuator::process_identity`),
    // so a pid reused by an unrelated process is never taken for a leftover instance.
    (
        "instances",
        "process",
        "ALTER TABLE instances ADD COLUMN process TEXT",
    ),
    // The crash-loop back-off's count and its last crash, so a restarted platform resumes it.
    (
        "instances",
        "crashes",
        "ALTER TABLE instances ADD COLUMN crashes INTEGER",
    ),
    (
        "instances",
        "last_crash_unix_nano",
        "ALTER TABLE instances ADD COLUMN last_crash_unix_nano INTEGER",
    ),
];

/// An instance as the last platform run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// The service.
    pub service: String,
    /// The replica index.
    pub index: u32,
    /// Its port.
    pub port: u16,
    /// Its process id, while it ran.
    pub pid: Option<u32>,
    /// Which process that pid was (boot id and start time), when known.
    pub process: Option<String>,
    /// Consecutive quick crashes, and when the last was (ns since the epoch).
    pub crashes: Option<(u32, u64)>,
}

enum Write {
    Incident(Box<Incident>),
    Action(Box<Action>),
    Instance {
        service: String,
        index: u32,
        port: u16,
        pid: Option<u32>,
        process: Option<String>,
    },
    Crashes {
        service: String,
        index: u32,
        crashes: u32,
        at: u64,
    },
    BudgetUse(BudgetUse),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The incident tables; writes are queued and applied in order by one task.
#[derive(Debug, Clone)]
pub struct IncidentDb {
    pool: SqlitePool,
    tx: mpsc::UnboundedSender<Write>,
    /// Incident rows written (queued) since the tables were opened.
    incident_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Incident rows that could not be decoded (set aside, see [`IncidentDb::open_incidents`]).
    undecodable: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

impl IncidentDb {
    /// Creates the tables and starts the writer.
    pub async fn open(pool: SqlitePool) -> Result<Self, IncidentDbError> {
        for s in SCHEMA {
            sqlx::query(*s).execute(&pool).await?;
        }
        for t in LATER_TABLES {
            sqlx::query(*t).execute(&pool).await?;
        }
        for (table, column, add) in ADDED_COLUMNS {
            let present: Option<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_table_info(?) WHERE name = ?")
                    .bind(*table)
                    .bind(*column)
                    .fetch_optional(&pool)
                    .await?;
            if present.is_none() {
                sqlx::query(*add).execute(&pool).await?;
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
        let writer_pool = pool.clone();
        tokio::spawn(async move {
            while let Some(w) = rx.recv().await {
                if let Err(error) = apply(&writer_pool, w).await {
                    tracing::error!(%error, "incident write failed");
                }
            }
        });
        Ok(Self {
            pool,
            tx,
            incident_writes: std::sync::Arc::default(),
            undecodable: std::sync::Arc::default(),
        })
    }

    /// Queues the current state of an incident.
    pub fn save_incident(&self, incident: &Incident) {
        self.incident_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(Write::Incident(Box::new(incident.clone())));
    }

    /// Queues an audit record (inserted or updated).
    pub fn save_action(&self, action: &Action) {
        let _ = self.tx.send(Write::Action(Box::new(action.clone())));
    }

    /// Queues an instance's port, pid and which process that pid is (so a restarted
    /// platform reuses the port and stops only its own leftover processes).
    pub fn save_instance(
        &self,
        service: &str,
        index: u32,
        port: u16,
        pid: Option<u32>,
        process: Option<String>,
    ) {
        let _ = self.tx.send(Write::Instance {
            service: service.to_owned(),
            index,
            port,
            pid,
            process,
        });
    }

    /// Queues an instance's crash-loop count after a crash at `at`.
    pub fn save_crashes(&self, service: &str, index: u32, crashes: u32, at: u64) {
        let _ = self.tx.send(Write::Crashes {
            service: service.to_owned(),
            index,
            crashes,
            at,
        });
    }

    /// Queues one use of a service's budget.
    pub fn save_budget_use(&self, service: &str, budget: BudgetKind, at_unix_nano: u64) {
        let _ = self.tx.send(Write::BudgetUse(BudgetUse {
            service: service.to_owned(),
            budget,
            at_unix_nano,
        }));
    }

    /// The budget uses of the last day before `now` (ns since the epoch); older ones are
    /// deleted.
    pub async fn budget_uses(&self, now: u64) -> Result<Vec<BudgetUse>, IncidentDbError> {
        let cutoff = i64::try_from(now.saturating_sub(BUDGET_USES_KEPT_NANOS)).unwrap_or(0);
        sqlx::query("DELETE FROM budget_uses WHERE at_unix_nano < ?")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query("SELECT service, budget, at_unix_nano FROM budget_uses")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let budget: String = r.try_get("budget")?;
            let at: i64 = r.try_get("at_unix_nano")?;
            if let Some(budget) = BudgetKind::parse(&budget) {
                out.push(BudgetUse {
                    service: r.try_get("service")?,
                    budget,
                    at_unix_nano: u64::try_from(at).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Incident rows set aside because they could not be decoded, since the tables were
    /// opened.
    pub fn undecodable_rows(&self) -> u64 {
        self.undecodable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Incident rows written since the tables were opened (one per change of an incident).
    pub fn incident_writes(&self) -> u64 {
        self.incident_writes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Write::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Incidents still open. A row that cannot be decoded (written by a newer version, or
    /// damaged) does not stop the platform: it is logged, counted and set aside with status
    /// `undecodable` (its body kept for whoever looks), and the others load.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, IncidentDbError> {
        let rows = sqlx::query("SELECT id, body FROM incidents WHERE status = 'open'")
            .fetch_all(&self.pool)
            .await?;
        let (incidents, bad) = decode(rows)?;
        for (id, error) in bad {
            self.undecodable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(incident = %id, %error, "an open incident cannot be decoded: set aside with status 'undecodable'");
            sqlx::query("UPDATE incidents SET status = 'undecodable' WHERE id = ?")
                .bind(&id)
                .execute(&self.pool)
                .await?;
        }
        Ok(incidents)
    }

    /// The most recent incidents (newest first).
    pub async fn recent(&self, limit: u32) -> Result<Vec<Incident>, IncidentDbError> {
        let rows =
            sqlx::query("SELECT id, body FROM incidents ORDER BY detected_unix_nano DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        let (incidents, bad) = decode(rows)?;
        for (id, error) in bad {
            tracing::warn!(incident = %id, %error, "an incident cannot be decoded: skipped");
        }
        Ok(incidents)
    }

    /// Stored instances: (service, index) → (port, pid).
    pub async fn instances(&self) -> Result<Vec<StoredInstance>, IncidentDbError> {
        let rows = sqlx::query(
            "SELECT service, idx, port, pid, process, crashes, last_crash_unix_nano FROM instances",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let idx: i64 = r.try_get("idx")?;
            let port: i64 = r.try_get("port")?;
            let pid: Option<i64> = r.try_get("pid")?;
            out.push(StoredInstance {
                service: r.try_get("service")?,
                index: u32::try_from(idx).unwrap_or(0),
                port: u16::try_from(port).unwrap_or(0),
                pid: pid.and_then(|p| u32::try_from(p).ok()),
                process: r.try_get("process")?,
                crashes: match (
                    r.try_get::<Option<i64>, _>("crashes")?,
                    r.try_get::<Option<i64>, _>("last_crash_unix_nano")?,
                ) {
                    (Some(n), Some(at)) => Some((
                        u32::try_from(n).unwrap_or(0),
                        u64::try_from(at).unwrap_or(0),
                    )),
                    _ => None,
                },
            });
        }
        Ok(out)
    }
}

/// Rows that do not decode: their incident ids and why.
type Undecodable = Vec<(String, serde_json::Error)>;

/// The incidents of `rows`, and the rows that do not decode.
fn decode(
    rows: Vec<sqlx::sqlite::SqliteRow>,
) -> Result<(Vec<Incident>, Undecodable), IncidentDbError> {
    let mut out = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let body: String = r.try_get("body")?;
        match serde_json::from_str(&body) {
            Ok(incident) => out.push(incident),
            Err(error) => bad.push((id, error)),
        }
    }
    Ok((out, bad))
}

async fn apply(pool: &SqlitePool, w: Write) -> Result<(), sqlx::Error> {
    match w {
        Write::Incident(inc) => {
            let status = match inc.status {
                IncidentStatus::Open => "open",
                IncidentStatus::Resolved => "resolved",
            };
            let body = serde_json::to_string(&*inc).unwrap_or_default();
            sqlx::query(
                "INSERT INTO incidents (id, service, status, detected_unix_nano, body)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
            )
            .bind(&inc.id)
            .bind(&inc.service)
            .bind(status)
            .bind(i64::try_from(inc.detected_unix_nano).unwrap_or(i64::MAX))
            .bind(body)
            .execute(pool)
            .await?;
        }
        Write::Action(a) => {
            let status = serde_json::to_value(a.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO actions (id, incident_id, service, instance, what, why, who, status,
                    created_unix_nano, result)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                    result = excluded.result, who = excluded.who",
            )
            .bind(&a.id)
            .bind(&a.incident_id)
            .bind(&a.service)
            .bind(&a.instance)
            .bind(a.what.as_str())
            .bind(&a.why)
            .bind(&a.who)
            .bind(status)
            .bind(i64::try_from(a.created_unix_nano).unwrap_or(i64::MAX))
            .bind(&a.result)
            .execute(pool)
            .await?;
        }
        Write::Instance {
            service,
            index,
            port,
            pid,
            process,
        } => {
            sqlx::query(
                "INSERT INTO instances (service, idx, port, pid, process) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (service, idx) DO UPDATE SET port = excluded.port, pid = excluded.pid,
                 process = excluded.process",
            )
            .bind(service)
            .bind(i64::from(index))
            .bind(i64::from(port))
            .bind(pid.map(i64::from))
            .bind(process)
            .execute(pool)
            .await?;
        }
        Write::Crashes {
            service,
            index,
            crashes,
            at,
        } => {
            sqlx::query(
                "UPDATE instances SET crashes = ?, last_crash_unix_nano = ? WHERE service = ? AND idx = ?",
            )
            .bind(i64::from(crashes))
            .bind(i64::try_from(at).unwrap_or(i64::MAX))
            .bind(service)
            .bind(i64::from(index))
            .execute(pool)
            .await?;
        }
        Write::BudgetUse(u) => {
            sqlx::query("INSERT INTO budget_uses (service, budget, at_unix_nano) VALUES (?, ?, ?)")
                .bind(u.service)
                .bind(u.budget.as_str())
                .bind(i64::try_from(u.at_unix_nano).unwrap_or(i64::MAX))
                .execute(pool)
                .await?;
        }
        Write::Flush(done) => {
            let _ = done.send(());
        }
    }
    Ok(())
}
