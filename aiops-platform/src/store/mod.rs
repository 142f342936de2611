//! Storage: recent telemetry in memory with bounded retention, exception groups also in SQLite.
//!
//! Every signal lives in its own structure behind its own lock; ingestion builds its records
//! outside any lock and then holds the lock only to append a batch, so a slow API reader never
//! holds up a receiver for long. What retention drops is counted in [`Stats`].

mod callgraph;
pub mod durable;
mod exceptions;
mod incidents;
mod logs;
mod metrics;
mod requests;
mod services;
mod size;
mod traces;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;

pub use callgraph::{MAX_EDGES, ServiceGraph};
pub use exceptions::{ExceptionEvent, ExceptionGroup, ExceptionStore, GroupTally};
pub use incidents::{BudgetKind, BudgetUse, IncidentDb, IncidentDbError, StoredInstance};
pub use logs::{LogInsert, LogQuery, LogRecord, LogStore, Severity};
pub use metrics::{
    LatestSample, MetricPoint, MetricQuery, MetricSample, MetricStore, SeriesView, Temporality,
};
pub use requests::{
    AccountingLimits, AccountingRefusals, Bucket, Buckets, HORIZON_SECS, LATENCY_BOUNDS_MS,
    Quarter, RequestAccounting, RequestSource, WindowCounts,
};
pub use services::{
    DEFAULT_MAX_DISCOVERED, MAX_SERVICE_NAME_BYTES, ServiceRegistry, ServiceSeen, ServiceView,
    Signal,
};
pub use traces::{
    SpanEvent, SpanInsert, SpanRecord, SpanStatus, TraceStore, TraceSummary, TraceTreeNode,
    build_tree as traces_tree,
};

use crate::common::time::now_nanos;
use crate::config::RetentionConfig;
use durable::DurableWriter;

/// The largest `max_item_bytes` allowed: one item always fits in an API page
/// (`crate::web::api::MAX_PAGE_BYTES`).
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

/// One string identifying a sequence of parts, unambiguous whatever the parts hold: each is
/// preceded by its length, so no label name or value (any character, separators included)
/// can make two different label sets the same key.
pub(crate) fn unambiguous_key<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    use std::fmt::Write as _;
    let mut key = String::new();
    for part in parts {
        let _ = write!(key, "{}:", part.len());
        key.push_str(part);
    }
    key
}

/// Counters of everything received, rejected and dropped, per signal.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans accepted.
    pub spans_accepted: AtomicU64,
    /// Spans rejected (invalid ids).
    pub spans_rejected: AtomicU64,
    /// Spans dropped by retention (count or age).
    pub spans_dropped: AtomicU64,
    /// Spans evicted, oldest first, by the byte budget.
    pub spans_evicted: AtomicU64,
    /// Log records accepted.
    pub logs_accepted: AtomicU64,
    /// Log records rejected.
    pub logs_rejected: AtomicU64,
    /// Log records dropped by retention.
    pub logs_dropped: AtomicU64,
    /// Log records evicted, oldest first, by the byte budget.
    pub logs_evicted: AtomicU64,
    /// Metric points accepted (OTLP and scraped).
    pub points_accepted: AtomicU64,
    /// Metric points rejected (no value).
    pub points_rejected: AtomicU64,
    /// Metric points dropped by retention (per-series count or age).
    pub points_dropped: AtomicU64,
    /// New series refused because the series limit was reached.
    pub series_refused: AtomicU64,
    /// Series dropped because they were not updated within the age limit.
    pub series_expired: AtomicU64,
    /// Series evicted, least recently updated first, by the byte budget.
    pub series_evicted: AtomicU64,
    /// Sentry events (errors) accepted.
    pub events_accepted: AtomicU64,
    /// Exception events rejected (larger than `max_item_bytes`).
    pub events_rejected: AtomicU64,
    /// Sentry transactions accepted (stored as spans).
    pub transactions_accepted: AtomicU64,
    /// Sentry envelope items ignored (sessions, attachments, client reports, ...).
    pub sentry_items_ignored: AtomicU64,
    /// Exception groups evicted from memory (still in SQLite).
    pub exception_groups_evicted: AtomicU64,
    /// Items (spans, log records, points, events) refused because their service is new
    /// past the discovered-services cap.
    pub service_cap_refused_items: AtomicU64,
    /// Discovered services forgotten after no telemetry for their time to live.
    pub services_forgotten: AtomicU64,
    /// Words of error log lines not learned: the service's template miner knew its most
    /// words already (`logmine::DEFAULT_MAX_TOKENS`); they were taken as variables.
    pub log_words_refused: AtomicU64,
    /// Error log lines that matched no template once the service's miner made its most
    /// (`logmine::DEFAULT_MAX_TEMPLATES`).
    pub log_templates_refused: AtomicU64,
    /// Durable writes dropped because the writer queue was full.
    pub durable_writes_dropped: AtomicU64,
    /// Durable writes that failed in SQLite.
    pub durable_write_errors: AtomicU64,
    /// Requests refused before decoding (size, type, auth, undecodable).
    pub requests_refused: AtomicU64,
    /// Successful scrapes.
    pub scrapes_ok: AtomicU64,
    /// Failed scrapes.
    pub scrapes_failed: AtomicU64,
}

/// A plain copy of [`Stats`] for the API.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub spans_accepted: u64,
    pub spans_rejected: u64,
    pub spans_dropped: u64,
    pub spans_evicted: u64,
    pub logs_accepted: u64,
    pub logs_rejected: u64,
    pub logs_dropped: u64,
    pub logs_evicted: u64,
    pub points_accepted: u64,
    pub points_rejected: u64,
    pub points_dropped: u64,
    pub series_refused: u64,
    pub series_expired: u64,
    pub series_evicted: u64,
    pub events_accepted: u64,
    pub events_rejected: u64,
    pub transactions_accepted: u64,
    pub sentry_items_ignored: u64,
    pub exception_groups_evicted: u64,
    pub service_cap_refused_items: u64,
    pub services_forgotten: u64,
    pub log_words_refused: u64,
    pub log_templates_refused: u64,
    pub durable_writes_dropped: u64,
    pub durable_write_errors: u64,
    pub requests_refused: u64,
    pub scrapes_ok: u64,
    pub scrapes_failed: u64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A consistent-enough copy of all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            spans_accepted: g(&self.spans_accepted),
            spans_rejected: g(&self.spans_rejected),
            spans_dropped: g(&self.spans_dropped),
            spans_evicted: g(&self.spans_evicted),
            logs_accepted: g(&self.logs_accepted),
            logs_rejected: g(&self.logs_rejected),
            logs_dropped: g(&self.logs_dropped),
            logs_evicted: g(&self.logs_evicted),
            points_accepted: g(&self.points_accepted),
            points_rejected: g(&self.points_rejected),
            points_dropped: g(&self.points_dropped),
            series_refused: g(&self.series_refused),
            series_expired: g(&self.series_expired),
            series_evicted: g(&self.series_evicted),
            events_accepted: g(&self.events_accepted),
            events_rejected: g(&self.events_rejected),
            transactions_accepted: g(&self.transactions_accepted),
            sentry_items_ignored: g(&self.sentry_items_ignored),
            exception_groups_evicted: g(&self.exception_groups_evicted),
            service_cap_refused_items: g(&self.service_cap_refused_items),
            services_forgotten: g(&self.services_forgotten),
            log_words_refused: g(&self.log_words_refused),
            log_templates_refused: g(&self.log_templates_refused),
            durable_writes_dropped: g(&self.durable_writes_dropped),
            durable_write_errors: g(&self.durable_write_errors),
            requests_refused: g(&self.requests_refused),
            scrapes_ok: g(&self.scrapes_ok),
            scrapes_failed: g(&self.scrapes_failed),
        }
    }
}

impl StatsSnapshot {
    /// The help text of each counter, by its field name (the `# HELP` of `aiops_<field>_total`).
    pub fn help(field: &str) -> Option<&'static str> {
        Some(match field {
            "spans_accepted" => "Spans accepted.",
            "spans_rejected" => "Spans rejected (invalid ids, or larger than max_item_bytes).",
            "spans_dropped" => "Spans dropped by retention (count or age).",
            "spans_evicted" => "Spans evicted, oldest first, by the byte budget (max_span_bytes).",
            "logs_accepted" => "Log records accepted.",
            "logs_rejected" => "Log records rejected (larger than max_item_bytes).",
            "logs_dropped" => "Log records dropped by retention (count or age).",
            "logs_evicted" => {
                "Log records evicted, oldest first, by the byte budget (max_log_bytes)."
            }
            "points_accepted" => "Metric points accepted (OTLP and scraped).",
            "points_rejected" => {
                "Metric points rejected (no value, or labels larger than max_item_bytes)."
            }
            "points_dropped" => {
                "Metric points dropped by retention (per-series count, age, or with an evicted series)."
            }
            "series_refused" => "New series refused because the series limit was reached.",
            "series_expired" => {
                "Series dropped because they were not updated within the age limit."
            }
            "series_evicted" => {
                "Metric series evicted, least recently updated first, by the byte budget (max_metric_bytes)."
            }
            "events_accepted" => "Sentry events (errors) accepted.",
            "events_rejected" => "Exception events rejected (larger than max_item_bytes).",
            "transactions_accepted" => "Sentry transactions accepted (stored as spans).",
            "sentry_items_ignored" => {
                "Sentry envelope items ignored (sessions, attachments, client reports, ...)."
            }
            "exception_groups_evicted" => {
                "Exception groups evicted, least recently seen first, by max_exception_groups or max_exception_bytes."
            }
            "service_cap_refused_items" => {
                "Spans, log records, points and events refused: their service is new past max_discovered_services."
            }
            "log_words_refused" => {
                "Words of error log lines not learned, the service's template miner being full (taken as variables)."
            }
            "log_templates_refused" => {
                "Error log lines that matched no template, the service's template miner having made its most."
            }
            "services_forgotten" => {
                "Discovered services forgotten after discovered_service_ttl_secs without telemetry."
            }
            "durable_writes_dropped" => "Durable writes dropped because the writer queue was full.",
            "durable_write_errors" => "Durable writes that failed in SQLite.",
            "requests_refused" => {
                "Requests refused before decoding (size, type, auth, undecodable)."
            }
            "scrapes_ok" => "Successful scrapes.",
            "scrapes_failed" => "Failed scrapes.",
            _ => return None,
        })
    }
}

/// Sizes of what is held in memory now.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct StoredCounts {
    pub spans: usize,
    pub traces: usize,
    pub logs: usize,
    pub series: usize,
    pub exception_groups: usize,
    pub services: usize,
    pub span_bytes: usize,
    pub log_bytes: usize,
    pub metric_bytes: usize,
    pub exception_bytes: usize,
}

impl StoredCounts {
    /// The help text of each size, by its field name (the `# HELP` of `aiops_stored_<field>`).
    pub fn help(field: &str) -> Option<&'static str> {
        Some(match field {
            "spans" => "Spans held in memory.",
            "traces" => "Traces held in memory.",
            "logs" => "Log records held in memory.",
            "series" => "Metric series held in memory.",
            "exception_groups" => "Exception groups held in memory.",
            "services" => "Services known.",
            "span_bytes" => "Estimated bytes of the spans held in memory (max_span_bytes).",
            "log_bytes" => "Estimated bytes of the log records held in memory (max_log_bytes).",
            "metric_bytes" => {
                "Estimated bytes of the metric series held in memory (max_metric_bytes)."
            }
            "exception_bytes" => {
                "Estimated bytes of the exception groups held in memory (max_exception_bytes)."
            }
            _ => return None,
        })
    }
}

/// All stored telemetry. Cheap to share: every part has its own lock.
#[derive(Debug)]
pub struct Store {
    /// Retention limits.
    pub retention: RetentionConfig,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Spans grouped by trace.
    pub traces: RwLock<TraceStore>,
    /// Log records.
    pub logs: RwLock<LogStore>,
    /// Metric series.
    pub metrics: RwLock<MetricStore>,
    /// Exception groups (mirrored to SQLite).
    pub exceptions: RwLock<ExceptionStore>,
    /// Services seen from any signal.
    pub services: RwLock<ServiceRegistry>,
    /// Per-second request facts of each service, per source (what detection reads).
    pub requests: RequestAccounting,
    /// Which service calls which, learned from spans.
    pub calls: RwLock<ServiceGraph>,
    durable: Option<DurableWriter>,
}

impl Store {
    /// A store with the given limits; `durable` receives exception group updates.
    pub fn new(retention: RetentionConfig, durable: Option<DurableWriter>) -> Self {
        Self {
            traces: RwLock::new(TraceStore::new(
                retention.max_spans,
                retention.max_span_bytes,
            )),
            logs: RwLock::new(LogStore::new(retention.max_logs, retention.max_log_bytes)),
            metrics: RwLock::new(MetricStore::new(
                retention.max_series,
                retention.max_points_per_series,
                retention.max_metric_bytes,
            )),
            exceptions: RwLock::new(ExceptionStore::new(
                retention.max_exception_groups,
                retention.max_exception_bytes,
            )),
            services: RwLock::new(ServiceRegistry::with_max_discovered(
                retention.max_discovered_services,
            )),
            calls: RwLock::new(ServiceGraph::default()),
            requests: RequestAccounting::new(AccountingLimits {
                // Declared services come on top of the discovered cap.
                max_services: retention.max_discovered_services + 1000,
                ..AccountingLimits::default()
            }),
            stats: Arc::new(Stats::default()),
            retention,
            durable,
        }
    }

    fn max_age(&self) -> Duration {
        Duration::from_secs(self.retention.max_age_secs)
    }

    /// The largest single item accepted: `max_item_bytes`, at most [`MAX_ITEM_BYTES`].
    pub fn max_item_bytes(&self) -> usize {
        self.retention.max_item_bytes.clamp(1, MAX_ITEM_BYTES)
    }

    /// Keeps the items whose service is known (drops those of `refused`, counted) and no
    /// larger than `max_item_bytes` (answers how many were too large).
    fn admit<T>(
        &self,
        items: &mut Vec<T>,
        refused: &HashSet<String>,
        service: impl Fn(&T) -> &str,
        bytes: impl Fn(&T) -> usize,
    ) -> u64 {
        let before = items.len();
        if !refused.is_empty() {
            items.retain(|i| !refused.contains(service(i)));
        }
        let known = items.len();
        Stats::add(
            &self.stats.service_cap_refused_items,
            (before - known) as u64,
        );
        let max = self.max_item_bytes();
        items.retain(|i| bytes(i) <= max);
        (known - items.len()) as u64
    }

    /// Appends spans (one lock for the batch); answers how many were not stored (their
    /// service refused by the cap, or larger than `max_item_bytes`; counted).
    pub fn insert_spans(&self, mut spans: Vec<SpanRecord>) -> u64 {
        if spans.is_empty() {
            return 0;
        }
        let before = spans.len() as u64;
        let refused = self.touch_services(spans.iter().map(|s| s.service.as_str()), Signal::Traces);
        let too_large = self.admit(
            &mut spans,
            &refused,
            |s| &s.service,
            SpanRecord::approx_bytes,
        );
        Stats::add(&self.stats.spans_rejected, too_large);
        let not_stored = before - spans.len() as u64;
        if spans.is_empty() {
            return not_stored;
        }
        let n = spans.len() as u64;
        self.requests.record_spans(&spans);
        // The new spans by trace: each trace is looked at once, whatever the batch holds.
        let mut new: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for s in &spans {
            new.entry(s.trace_id.clone())
                .or_default()
                .push(s.span_id.clone());
        }
        let mut traces = self.traces.write();
        let outcome = traces.insert(spans, now_nanos());
        let mut calls = self.calls.write();
        for (trace, ids) in new {
            traces.with_trace(&trace, |all| {
                for s in all.iter().filter(|s| ids.contains(&s.span_id)) {
                    calls.learn(s, all);
                }
            });
        }
        drop((calls, traces));
        Stats::add(&self.stats.spans_accepted, n);
        Stats::add(&self.stats.spans_dropped, outcome.dropped);
        Stats::add(&self.stats.spans_evicted, outcome.evicted);
        not_stored
    }

    /// Appends log records; answers how many were not stored (as for spans).
    pub fn insert_logs(&self, mut logs: Vec<LogRecord>) -> u64 {
        if logs.is_empty() {
            return 0;
        }
        let before = logs.len() as u64;
        let refused = self.touch_services(logs.iter().map(|l| l.service.as_str()), Signal::Logs);
        let too_large = self.admit(&mut logs, &refused, |l| &l.service, LogRecord::approx_bytes);
        Stats::add(&self.stats.logs_rejected, too_large);
        let not_stored = before - logs.len() as u64;
        if logs.is_empty() {
            return not_stored;
        }
        let n = logs.len() as u64;
        let outcome = self.logs.write().insert(logs, now_nanos());
        Stats::add(&self.stats.logs_accepted, n);
        Stats::add(&self.stats.logs_dropped, outcome.dropped);
        Stats::add(&self.stats.logs_evicted, outcome.evicted);
        not_stored
    }

    /// Appends metric samples; answers how many were not stored (as for spans; series
    /// refused by `max_series` are counted apart).
    pub fn insert_samples(&self, mut samples: Vec<MetricSample>, signal: Signal) -> u64 {
        if samples.is_empty() {
            return 0;
        }
        let before = samples.len() as u64;
        let refused = self.touch_services(samples.iter().map(|s| s.service.as_str()), signal);
        let too_large = self.admit(
            &mut samples,
            &refused,
            |s| &s.service,
            MetricSample::approx_series_bytes,
        );
        Stats::add(&self.stats.points_rejected, too_large);
        let not_stored = before - samples.len() as u64;
        if samples.is_empty() {
            return not_stored;
        }
        let source = if signal == Signal::Scrape {
            RequestSource::Scrape
        } else {
            RequestSource::Push
        };
        self.requests.record_samples(&samples, source);
        let n = samples.len() as u64;
        let outcome = self.metrics.write().insert(samples, now_nanos());
        Stats::add(&self.stats.points_accepted, n - outcome.refused);
        Stats::add(
            &self.stats.points_dropped,
            outcome.dropped_points + outcome.evicted_points,
        );
        Stats::add(&self.stats.series_refused, outcome.refused);
        Stats::add(&self.stats.series_evicted, outcome.evicted_series);
        not_stored
    }

    /// Records one exception event in its group and queues the group for SQLite.
    pub fn record_exception(&self, event: ExceptionEvent) {
        let refused =
            self.touch_services(std::iter::once(event.service.as_str()), Signal::Exceptions);
        let mut events = vec![event];
        let too_large = self.admit(
            &mut events,
            &refused,
            |e| &e.service,
            ExceptionEvent::approx_bytes,
        );
        Stats::add(&self.stats.events_rejected, too_large);
        let Some(event) = events.pop() else {
            return;
        };
        let (group, evicted) = self.exceptions.write().record(event);
        Stats::add(&self.stats.events_accepted, 1);
        Stats::add(&self.stats.exception_groups_evicted, evicted.len() as u64);
        if let Some(durable) = &self.durable {
            let mut lost = 0;
            for (s, f) in evicted {
                lost += u64::from(!durable.try_delete(s, f));
            }
            lost += u64::from(!durable.try_upsert(group));
            Stats::add(&self.stats.durable_writes_dropped, lost);
        }
    }

    /// Loads exception groups read back from SQLite at start.
    pub fn restore_exceptions(&self, groups: Vec<ExceptionGroup>) {
        let mut services = self.services.write();
        for g in &groups {
            services.touch(&g.service, Signal::Exceptions, g.last_seen_unix_nano);
        }
        drop(services);
        let dropped = self.exceptions.write().restore(groups);
        Stats::add(&self.stats.exception_groups_evicted, dropped.len() as u64);
        if let Some(durable) = &self.durable {
            for (service, fingerprint) in dropped {
                if !durable.try_delete(service, fingerprint) {
                    Stats::add(&self.stats.durable_writes_dropped, 1);
                }
            }
        }
    }

    /// Marks services as seen for a signal now; takes the lock once per batch, costs
    /// linear time in the batch whatever number of names it holds. Answers the names refused
    /// (new past the discovered-services cap): their items are not stored.
    pub fn touch_services<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        signal: Signal,
    ) -> HashSet<String> {
        let now = now_nanos();
        let mut distinct: HashSet<&str> = HashSet::new();
        let mut refused = HashSet::new();
        let mut services = self.services.write();
        for name in names {
            if distinct.insert(name) && !services.touch(name, signal, now) {
                refused.insert(name.to_owned());
            }
        }
        refused
    }

    /// Drops what is older than the age limit. Called periodically.
    pub fn prune(&self) {
        let now = now_nanos();
        let max_age = u64::try_from(self.max_age().as_nanos()).unwrap_or(u64::MAX);
        let cutoff = now.saturating_sub(max_age);
        let dropped = self.traces.write().prune_before(cutoff);
        Stats::add(&self.stats.spans_dropped, dropped);
        let dropped = self.logs.write().prune_before(cutoff);
        Stats::add(&self.stats.logs_dropped, dropped);
        let (points, series) = self.metrics.write().prune_before(cutoff);
        Stats::add(&self.stats.points_dropped, points);
        Stats::add(&self.stats.series_expired, series);
        let ttl = self
            .retention
            .discovered_service_ttl_secs
            .saturating_mul(1_000_000_000);
        let forgotten = self.services.write().forget_idle(now.saturating_sub(ttl));
        if !forgotten.is_empty() {
            // Their request facts go too, so the accounting's cap does not fill with the dead.
            self.requests.forget(&forgotten);
            Stats::add(&self.stats.services_forgotten, forgotten.len() as u64);
        }
    }

    /// What is held now.
    pub fn counts(&self) -> StoredCounts {
        let (spans, traces, span_bytes) = {
            let t = self.traces.read();
            (t.span_count(), t.trace_count(), t.bytes())
        };
        let (logs, log_bytes) = {
            let l = self.logs.read();
            (l.len(), l.bytes())
        };
        let (series, metric_bytes) = {
            let m = self.metrics.read();
            (m.len(), m.bytes())
        };
        let (exception_groups, exception_bytes) = {
            let e = self.exceptions.read();
            (e.len(), e.bytes())
        };
        StoredCounts {
            spans,
            traces,
            logs,
            series,
            exception_groups,
            services: self.services.read().len(),
            span_bytes,
            log_bytes,
            metric_bytes,
            exception_bytes,
        }
    }
}
