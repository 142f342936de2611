//! Storage: recent telemetry in memory with bounded retention, exception groups also in SQLite.
//!
//! Every signal lives in its own structure behind its own lock; ingestion builds its records
//! outside any lock and then holds the lock only to append a batch, so a slow API reader never
//! holds up a receiver for long. What retention drops is counted in [`Stats`].

mod callgraph;
mod exceptions;
mod logs;
mod metrics;
mod requests;
mod services;
mod traces;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde::Serialize;

pub use callgraph::{MAX_EDGES, ServiceGraph};
pub use exceptions::{ExceptionEvent, ExceptionGroup, ExceptionStore, GroupTally};
pub use logs::{LogQuery, LogRecord, LogStore, Severity};
pub use metrics::{MetricPoint, MetricQuery, MetricSample, MetricStore, SeriesView, Temporality};
pub use requests::{
    AccountingLimits, AccountingRefusals, Bucket, Buckets, HORIZON_SECS, LATENCY_BOUNDS_MS,
    Quarter, RequestAccounting, RequestSource, WindowCounts,
};
pub use services::{DEFAULT_MAX_DISCOVERED, ServiceRegistry, ServiceSeen, ServiceView, Signal};
pub use traces::{
    SpanEvent, SpanRecord, SpanStatus, TraceStore, TraceSummary, TraceTreeNode,
    build_tree as traces_tree,
};

use crate::config::RetentionConfig;
use crate::db::DurableWriter;

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 rendering of nanoseconds since the Unix epoch.
pub fn rfc3339(nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
    /// Log records accepted.
    pub logs_accepted: AtomicU64,
    /// Log records rejected.
    pub logs_rejected: AtomicU64,
    /// Log records dropped by retention.
    pub logs_dropped: AtomicU64,
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
    /// Sentry events (errors) accepted.
    pub events_accepted: AtomicU64,
    /// Sentry transactions accepted (stored as spans).
    pub transactions_accepted: AtomicU64,
    /// Sentry envelope items ignored (sessions, attachments, client reports, ...).
    pub sentry_items_ignored: AtomicU64,
    /// Exception groups evicted from memory (still in SQLite).
    pub exception_groups_evicted: AtomicU64,
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
    pub logs_accepted: u64,
    pub logs_rejected: u64,
    pub logs_dropped: u64,
    pub points_accepted: u64,
    pub points_rejected: u64,
    pub points_dropped: u64,
    pub series_refused: u64,
    pub series_expired: u64,
    pub events_accepted: u64,
    pub transactions_accepted: u64,
    pub sentry_items_ignored: u64,
    pub exception_groups_evicted: u64,
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
            logs_accepted: g(&self.logs_accepted),
            logs_rejected: g(&self.logs_rejected),
            logs_dropped: g(&self.logs_dropped),
            points_accepted: g(&self.points_accepted),
            points_rejected: g(&self.points_rejected),
            points_dropped: g(&self.points_dropped),
            series_refused: g(&self.series_refused),
            series_expired: g(&self.series_expired),
            events_accepted: g(&self.events_accepted),
            transactions_accepted: g(&self.transactions_accepted),
            sentry_items_ignored: g(&self.sentry_items_ignored),
            exception_groups_evicted: g(&self.exception_groups_evicted),
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
            "spans_rejected" => "Spans rejected (invalid ids).",
            "spans_dropped" => "Spans dropped by retention (count or age).",
            "logs_accepted" => "Log records accepted.",
            "logs_rejected" => "Log records rejected.",
            "logs_dropped" => "Log records dropped by retention.",
            "points_accepted" => "Metric points accepted (OTLP and scraped).",
            "points_rejected" => "Metric points rejected (no value).",
            "points_dropped" => "Metric points dropped by retention (per-series count or age).",
            "series_refused" => "New series refused because the series limit was reached.",
            "series_expired" => {
                "Series dropped because they were not updated within the age limit."
            }
            "events_accepted" => "Sentry events (errors) accepted.",
            "transactions_accepted" => "Sentry transactions accepted (stored as spans).",
            "sentry_items_ignored" => {
                "Sentry envelope items ignored (sessions, attachments, client reports, ...)."
            }
            "exception_groups_evicted" => "Exception groups evicted from memory (still in SQLite).",
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
            traces: RwLock::new(TraceStore::new(retention.max_spans)),
            logs: RwLock::new(LogStore::new(retention.max_logs)),
            metrics: RwLock::new(MetricStore::new(
                retention.max_series,
                retention.max_points_per_series,
            )),
            exceptions: RwLock::new(ExceptionStore::new(retention.max_exception_groups)),
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

    /// Appends spans (one lock for the batch).
    pub fn insert_spans(&self, spans: Vec<SpanRecord>) {
        if spans.is_empty() {
            return;
        }
        self.touch_services(spans.iter().map(|s| s.service.as_str()), Signal::Traces);
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
        let dropped = traces.insert(spans, now_nanos());
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
        Stats::add(&self.stats.spans_dropped, dropped);
    }

    /// Appends log records.
    pub fn insert_logs(&self, logs: Vec<LogRecord>) {
        if logs.is_empty() {
            return;
        }
        self.touch_services(logs.iter().map(|l| l.service.as_str()), Signal::Logs);
        let n = logs.len() as u64;
        let dropped = self.logs.write().insert(logs, now_nanos());
        Stats::add(&self.stats.logs_accepted, n);
        Stats::add(&self.stats.logs_dropped, dropped);
    }

    /// Appends metric samples.
    pub fn insert_samples(&self, samples: Vec<MetricSample>, signal: Signal) {
        if samples.is_empty() {
            return;
        }
        self.touch_services(samples.iter().map(|s| s.service.as_str()), signal);
        let source = if signal == Signal::Scrape {
            RequestSource::Scrape
        } else {
            RequestSource::Push
        };
        self.requests.record_samples(&samples, source);
        let n = samples.len() as u64;
        let outcome = self.metrics.write().insert(samples, now_nanos());
        Stats::add(&self.stats.points_accepted, n - outcome.refused);
        Stats::add(&self.stats.points_dropped, outcome.dropped_points);
        Stats::add(&self.stats.series_refused, outcome.refused);
    }

    /// Records one exception event in its group and queues the group for SQLite.
    pub fn record_exception(&self, event: ExceptionEvent) {
        self.touch_services(std::iter::once(event.service.as_str()), Signal::Exceptions);
        let (group, evicted) = self.exceptions.write().record(event);
        Stats::add(&self.stats.events_accepted, 1);
        Stats::add(
            &self.stats.exception_groups_evicted,
            u64::from(evicted.is_some()),
        );
        if let Some(durable) = &self.durable {
            let deleted = evicted.is_none_or(|(s, f)| durable.try_delete(s, f));
            if !deleted || !durable.try_upsert(group) {
                Stats::add(&self.stats.durable_writes_dropped, 1);
            }
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

    /// Marks services as seen for a signal now; takes the lock once per batch.
    pub fn touch_services<'a>(&self, names: impl Iterator<Item = &'a str>, signal: Signal) {
        let now = now_nanos();
        let mut distinct: Vec<&str> = Vec::new();
        for name in names {
            if !distinct.contains(&name) {
                distinct.push(name);
            }
        }
        let mut services = self.services.write();
        for name in distinct {
            services.touch(name, signal, now);
        }
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
    }

    /// What is held now.
    pub fn counts(&self) -> StoredCounts {
        let (spans, traces) = {
            let t = self.traces.read();
            (t.span_count(), t.trace_count())
        };
        StoredCounts {
            spans,
            traces,
            logs: self.logs.read().len(),
            series: self.metrics.read().len(),
            exception_groups: self.exceptions.read().len(),
            services: self.services.read().len(),
        }
    }
}
