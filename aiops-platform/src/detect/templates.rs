//! New error log templates: every ERROR-level record (captured stdout of supervised instances,
//! OTLP logs of every other service) goes through the service's Drain-style miner; a template
//! never seen before opens the service's `log_template` condition once the service has been
//! watched for its learning period (`detection.learning_secs`, default 60 s from its first
//! log record of any level: the templates of a normal start are learned, not reported). A template's rate jumping against its baseline
//! is evidence on an open incident.
//!
//! - **One fact once**: a supervised service's lines are read from its captured stdout only
//!   (its OTLP log export carries the same lines); any other service's from OTLP.
//! - **Known templates survive a restart**: each new template is stored in SQLite with one
//!   example line; at start the examples are fed to the miners again, so the same templates
//!   are known, without counting as news.
//! - **Failure start** is the first line's own timestamp; the condition clears
//!   [`QUIET_SECS`] after the template's last line. Logs have no successes to observe, so
//!   its recovery is that last line: the condition never makes an incident's recovery later
//!   than its last bad observation (the incident's other conditions, an error rate's first
//!   success for instance, set the real one).

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::config::DetectionConfig;
use crate::logmine::{Evidence as RateEvidence, Level, Miner, RateTracker};
use crate::store::{LogRecord, Severity, Store};

const NS: u64 = 1_000_000_000;
/// A new-template condition clears this long after the template's last line.
pub const QUIET_SECS: u64 = 30;
/// Records read from the store per tick at most (the rest next tick).
const BATCH: usize = 20_000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS log_templates (
    service TEXT NOT NULL,
    template TEXT NOT NULL,
    example TEXT NOT NULL,
    first_seen_unix_nano INTEGER NOT NULL,
    PRIMARY KEY (service, template)
)";

/// Where known templates are kept across restarts.
#[derive(Debug, Clone)]
pub struct TemplateBook {
    pool: Option<SqlitePool>,
}

impl TemplateBook {
    /// A book in `pool` (none: templates are known for this run only).
    pub async fn open(pool: Option<SqlitePool>) -> Result<Self, sqlx::Error> {
        if let Some(p) = &pool {
            sqlx::query(SCHEMA).execute(p).await?;
        }
        Ok(Self { pool })
    }

    /// A book that keeps nothing across restarts.
    pub fn in_memory() -> Self {
        Self { pool: None }
    }

    /// Every stored (service, example line).
    pub async fn load(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        let Some(p) = &self.pool else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query("SELECT service, example FROM log_templates")
            .fetch_all(p)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("service")?, r.try_get("example")?)))
            .collect()
    }

    fn remember(&self, service: &str, template: &str, example: &str, at: u64) {
        let Some(p) = self.pool.clone() else {
            return;
        };
        let (service, template, example) =
            (service.to_owned(), template.to_owned(), example.to_owned());
        tokio::spawn(async move {
            let done = sqlx::query(
                "INSERT OR IGNORE INTO log_templates (service, template, example, first_seen_unix_nano)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(service)
            .bind(template)
            .bind(example)
            .bind(i64::try_from(at).unwrap_or(i64::MAX))
            .execute(&p)
            .await;
            if let Err(error) = done {
                tracing::error!(%error, "cannot store a log template");
            }
        });
    }
}

/// A new template's condition.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    /// The template.
    pub template: String,
    /// Its first line.
    pub example: String,
    /// The first line's time (ns).
    pub since: u64,
    /// The last line's time (ns).
    pub last_at: u64,
}

#[derive(Debug)]
struct ServiceTemplates {
    miner: Miner,
    rates: RateTracker,
    /// Templates stored (by text), so a restart does not report them again.
    stored: HashSet<String>,
    watched_since: u64,
    open: Option<NewTemplate>,
}

impl ServiceTemplates {
    fn new(watched_since: u64) -> Self {
        Self {
            miner: Miner::new(),
            rates: RateTracker::new(10),
            stored: HashSet::new(),
            watched_since,
            open: None,
        }
    }
}

/// What the watch found in one tick for one service.
#[derive(Debug, Default)]
pub struct TemplateNews {
    /// The open new-template condition, if any (closed ones are `None`).
    pub open: Option<NewTemplate>,
    /// Whether a condition closed in this tick, and its recovery time (the template's last
    /// line).
    pub closed_at: Option<u64>,
    /// Rate jumps to add as evidence: (template, count, baseline).
    pub jumps: Vec<(String, u64, f64)>,
}

/// The miners of every service, fed from the store's log records.
#[derive(Debug)]
pub struct TemplateWatch {
    services: HashMap<String, ServiceTemplates>,
    last_seq: u64,
    book: TemplateBook,
    /// Services whose stdout the platform captures.
    captured: HashSet<String>,
}

impl TemplateWatch {
    /// A watch storing templates in `book`, seeded with what it stored before.
    pub async fn new(book: TemplateBook, captured: HashSet<String>, now: u64) -> Self {
        let mut watch = Self {
            services: HashMap::new(),
            last_seq: 0,
            book,
            captured,
        };
        match watch.book.load().await {
            Ok(known) => {
                for (service, example) in known {
                    let s = watch
                        .services
                        .entry(service)
                        .or_insert_with(|| ServiceTemplates::new(now));
                    let obs = s.miner.observe(&example);
                    let template = s.miner.template(obs.id);
                    s.stored.insert(template);
                }
            }
            Err(error) => tracing::error!(%error, "cannot load known log templates"),
        }
        watch
    }

    /// Reads the log records stored since the last tick and answers, per service, what is new.
    pub fn tick(
        &mut self,
        store: &Store,
        cfg: impl Fn(&str) -> DetectionConfig,
        now: u64,
    ) -> HashMap<String, TemplateNews> {
        let records = store.logs.read().since(self.last_seq, BATCH);
        let mut news: HashMap<String, TemplateNews> = HashMap::new();
        for r in records {
            self.last_seq = self.last_seq.max(r.seq);
            // The learning period runs from the service's first log record of any level.
            self.services
                .entry(r.service.clone())
                .or_insert_with(|| ServiceTemplates::new(now));
            if r.level < Severity::Error || !self.counts(&r) {
                continue;
            }
            let cfg = cfg(&r.service);
            let (words, templates) = self.line(&r, &cfg, now, &mut news);
            crate::store::Stats::add(&store.stats.log_words_refused, words);
            crate::store::Stats::add(&store.stats.log_templates_refused, templates);
        }
        // The miners of services the registry forgot (no telemetry for their time to live)
        // go too, unless just started (restored from the book, not seen since).
        let ttl = store
            .retention
            .discovered_service_ttl_secs
            .saturating_mul(NS);
        let known = store.services.read();
        self.services
            .retain(|name, s| known.contains(name) || now.saturating_sub(s.watched_since) < ttl);
        drop(known);
        for (service, s) in &mut self.services {
            let entry = news.entry(service.clone()).or_default();
            if let Some(open) = &s.open
                && now.saturating_sub(open.last_at) >= QUIET_SECS * NS
            {
                entry.closed_at = Some(open.last_at);
                s.open = None;
            }
            entry.open.clone_from(&s.open);
        }
        news
    }

    /// Whether the record is read (one source per service, see the module docs).
    fn counts(&self, r: &LogRecord) -> bool {
        let from_stdout = r.attributes.contains_key("stream");
        from_stdout || !self.captured.contains(&r.service)
    }

    fn line(
        &mut self,
        r: &LogRecord,
        cfg: &DetectionConfig,
        now: u64,
        news: &mut HashMap<String, TemplateNews>,
    ) -> (u64, u64) {
        let s = self
            .services
            .entry(r.service.clone())
            .or_insert_with(|| ServiceTemplates::new(now));
        let before = (s.miner.tokens_refused(), s.miner.templates_refused());
        let obs = s.miner.observe(&r.message);
        let refused = (
            s.miner.tokens_refused() - before.0,
            s.miner.templates_refused() - before.1,
        );
        let template = s.miner.template(obs.id);
        let ts = i64::try_from(r.time_unix_nano / NS).unwrap_or(0);
        if let Some(RateEvidence::RateJump {
            count, baseline, ..
        }) = s.rates.observe(ts, &obs, Some(Level::Error))
        {
            news.entry(r.service.clone()).or_default().jumps.push((
                template.clone(),
                count,
                baseline,
            ));
        }
        if let Some(open) = s.open.as_mut()
            && (open.template == template || obs.changed)
        {
            open.last_at = open.last_at.max(r.time_unix_nano);
        }
        if !obs.is_new || s.stored.contains(&template) {
            return refused;
        }
        s.stored.insert(template.clone());
        self.book
            .remember(&r.service, &template, &r.message, r.time_unix_nano);
        let learned = now.saturating_sub(s.watched_since) >= cfg.learning_secs * NS;
        if learned && cfg.new_error_templates && s.open.is_none() {
            s.open = Some(NewTemplate {
                template,
                example: r.message.clone(),
                since: r.time_unix_nano,
                last_at: r.time_unix_nano,
            });
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetentionConfig;

    fn error(service: &str, message: &str, at: u64) -> LogRecord {
        LogRecord {
            timestamp: crate::common::time::rfc3339(at),
            time_unix_nano: at,
            level: Severity::Error,
            severity_text: "ERROR".into(),
            message: message.into(),
            service: service.into(),
            target: String::new(),
            trace_id: None,
            span_id: None,
            attributes: serde_json::Map::new(),
            seq: 0,
        }
    }

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        SqlitePool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_new_template_after_learning_opens_and_a_known_one_never_does() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let book = TemplateBook::open(Some(pool(&dir).await))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(RetentionConfig::default(), None);
        let t0 = 1_000 * NS;
        let cfg = |_: &str| DetectionConfig::default();
        let mut watch = TemplateWatch::new(book.clone(), HashSet::new(), t0).await;
        // During the learning period: learned, not news.
        store.insert_logs(vec![error(
            "svc",
            "database pool exhausted after 30 s",
            t0 + NS,
        )]);
        let news = watch.tick(&store, cfg, t0 + NS);
        assert!(news.get("svc").is_none_or(|n| n.open.is_none()));
        // After it: the same template is old news, a new one opens.
        let later = t0 + 61 * NS;
        store.insert_logs(vec![error(
            "svc",
            "database pool exhausted after 31 s",
            later,
        )]);
        assert!(
            watch
                .tick(&store, cfg, later)
                .get("svc")
                .is_none_or(|n| n.open.is_none())
        );
        store.insert_logs(vec![error(
            "svc",
            "payment gateway refused card",
            later + NS,
        )]);
        let news = watch.tick(&store, cfg, later + NS);
        let open = news.get("svc").and_then(|n| n.open.clone());
        assert_eq!(open.map(|o| o.since), Some(later + NS));
        // Quiet for QUIET_SECS: closed, recovered at the end of the quiet period.
        let quiet = later + NS + QUIET_SECS * NS;
        let news = watch.tick(&store, cfg, quiet);
        assert_eq!(news.get("svc").and_then(|n| n.closed_at), Some(later + NS));

        // A restart knows both templates, even before its own learning period ends... and
        // after it: neither opens again.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let store = Store::new(RetentionConfig::default(), None);
        let mut again = TemplateWatch::new(book, HashSet::new(), t0).await;
        let much_later = t0 + 600 * NS;
        store.insert_logs(vec![
            error("svc", "payment gateway refused card", much_later),
            error("svc", "database pool exhausted after 99 s", much_later),
        ]);
        let news = again.tick(&store, cfg, much_later);
        assert!(news.get("svc").is_none_or(|n| n.open.is_none()), "{news:?}");
    }

    #[tokio::test]
    async fn a_supervised_service_is_read_from_its_stdout_only() {
        let store = Store::new(RetentionConfig::default(), None);
        let mut watch = TemplateWatch::new(
            TemplateBook::in_memory(),
            HashSet::from(["svc".to_owned()]),
            0,
        )
        .await;
        let at = 100 * NS;
        let otlp = error("svc", "disk full on /var", at);
        let mut captured = error("svc", "disk full on /var", at + 61 * NS);
        captured
            .attributes
            .insert("stream".into(), serde_json::json!("stdout"));
        store.insert_logs(vec![otlp]);
        assert!(
            watch
                .tick(&store, |_| DetectionConfig::default(), at)
                .get("svc")
                .is_none_or(|n| n.open.is_none())
        );
        store.insert_logs(vec![captured]);
        let news = watch.tick(&store, |_| DetectionConfig::default(), at + 61 * NS);
        assert!(news.get("svc").is_some_and(|n| n.open.is_some()));
    }
}
