//! Exception tracking with the `sentry` crate: panics and 5xx errors become Sentry events.
//!
//! Enabled by `SENTRY_DSN` (real Sentry, or the aiods platform's Sentry-compatible ingest).
//! Each event carries the exception type, message and stack trace, the tags `service`,
//! `instance`, `trace_id` and `route`, and a stable fingerprint (type + route, or the panic's
//! location) so that one bug is one group. Events go through a bounded queue to a background
//! sender: a dead or slow Sentry never blocks a request, and what is dropped is counted
//! (`aiods_telemetry_dropped_total{signal="exceptions"}`). No DSN: nothing is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use sentry::protocol::{Event, Exception, Level, Mechanism};
use sentry::types::Dsn;

use crate::error::ServerErrorReport;
use crate::otel::{BatchConfig, BatchQueue};

static ENABLED: OnceLock<()> = OnceLock::new();
/// Exception events dropped (queue full or Sentry unreachable).
static DROPPED: LazyLock<Arc<AtomicU64>> = LazyLock::new(Default::default);

/// Whether exception events are sent.
pub fn enabled() -> bool {
    ENABLED.get().is_some()
}

/// Exception events dropped so far.
pub fn dropped_events() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Why exception tracking could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExceptionsError {
    /// `SENTRY_DSN` is not a DSN.
    #[error("SENTRY_DSN is not a valid DSN: {0}")]
    Dsn(String),
    /// The sender thread could not start.
    #[error("cannot start the exception sender: {0}")]
    Thread(#[source] std::io::Error),
}

/// Who sends the events.
#[derive(Debug, Clone)]
pub struct ExceptionSource {
    /// The service name (tag `service`).
    pub service: String,
    /// The instance id (tag `instance`, and `server_name`).
    pub instance: String,
    /// The release (`service@version`).
    pub version: String,
    /// The environment.
    pub environment: String,
}

/// Starts the Sentry client when `SENTRY_DSN` is set; the guard flushes on drop.
pub fn init(source: &ExceptionSource) -> Result<Option<sentry::ClientInitGuard>, ExceptionsError> {
    let Some(dsn) = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|d| !d.trim().is_empty())
    else {
        return Ok(None);
    };
    let dsn: Dsn = dsn
        .parse()
        .map_err(|e| ExceptionsError::Dsn(format!("{e}")))?;
    let transport = Arc::new(QueueTransport::start(dsn.clone()).map_err(ExceptionsError::Thread)?);
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(dsn);
    options.release = Some(format!("{}@{}", source.service, source.version).into());
    options.environment = Some(source.environment.clone().into());
    options.server_name = Some(source.instance.clone().into());
    // We capture panics ourselves, inside the request, where the route and trace are known.
    options.default_integrations = false;
    options.transport = Some(Arc::new(transport));
    options.shutdown_timeout = Duration::from_secs(2);
    let options =
        options.add_integration(sentry::integrations::contexts::ContextIntegration::new());
    let guard = sentry::init(options);
    sentry::configure_scope(|scope| {
        scope.set_tag("service", &source.service);
        scope.set_tag("instance", &source.instance);
    });
    let _ = ENABLED.set(());
    Ok(Some(guard))
}

/// Reports a server error: as an `exception` event on the current span, and to Sentry.
pub(crate) fn report(report: &ServerErrorReport, route: Option<&str>) {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context().clone();
    if span.is_recording() {
        let mut attributes = vec![
            KeyValue::new("exception.type", report.kind),
            KeyValue::new("exception.message", report.message.clone()),
        ];
        if let Some(st) = &report.stacktrace {
            attributes.push(KeyValue::new("exception.stacktrace", st.clone()));
        }
        span.add_event("exception", attributes);
    }
    if !enabled() {
        return;
    }
    let mut event = Event::new();
    event.level = Level::Error;
    event.logger = Some("aiods".into());
    event.message = Some(report.message.clone());
    let stacktrace = report
        .stacktrace
        .as_deref()
        .and_then(sentry::integrations::backtrace::parse_stacktrace);
    event.exception = vec![Exception {
        ty: report.kind.to_owned(),
        value: Some(report.message.clone()),
        stacktrace,
        mechanism: Some(Mechanism {
            ty: if report.kind == "panic" {
                "panic"
            } else {
                "aiods"
            }
            .into(),
            handled: Some(report.kind != "panic"),
            ..Default::default()
        }),
        ..Default::default()
    }]
    .into();
    if sc.is_valid() {
        event
            .tags
            .insert("trace_id".into(), sc.trace_id().to_string());
        event
            .tags
            .insert("span_id".into(), sc.span_id().to_string());
    }
    if let Some(route) = route {
        event.tags.insert("route".into(), route.to_owned());
        event.transaction = Some(route.to_owned());
    }
    // Stable grouping: the same failure in the same place is one group, whatever the message.
    let place = report
        .location
        .clone()
        .or_else(|| route.map(str::to_owned))
        .unwrap_or_default();
    event.fingerprint = vec![report.kind.to_owned().into(), place.into()].into();
    sentry::capture_event(event);
}

/// Sends envelopes from a bounded queue on a background thread, counting what it drops.
struct QueueTransport {
    queue: BatchQueue<sentry::Envelope>,
}

impl QueueTransport {
    fn start(dsn: Dsn) -> std::io::Result<Self> {
        let url = dsn.envelope_api_url().to_string();
        let auth = dsn
            .to_auth(Some(concat!("aiods/", env!("CARGO_PKG_VERSION"))))
            .to_string();
        let dropped = DROPPED.clone();
        let mut client: Option<reqwest::blocking::Client> = None;
        let queue = BatchQueue::start(
            "aiods-sentry",
            BatchConfig {
                max_queue: 256,
                max_batch: 16,
                delay: Duration::from_millis(100),
            },
            DROPPED.clone(),
            move |batch: Vec<sentry::Envelope>| {
                // Built on this thread: the blocking client must not live in an async context.
                let http = client.get_or_insert_with(|| {
                    reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap_or_default()
                });
                for envelope in batch {
                    let mut body = Vec::new();
                    if envelope.to_writer(&mut body).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let sent = http
                        .post(&url)
                        .header("X-Sentry-Auth", &auth)
                        .header("Content-Type", "application/x-sentry-envelope")
                        .body(body)
                        .send();
                    if !sent.is_ok_and(|r| r.status().is_success()) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                true
            },
        )?;
        Ok(Self { queue })
    }
}

impl sentry::Transport for QueueTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        self.queue.push(envelope);
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.queue.flush(timeout)
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        self.queue.flush(timeout)
    }
}
