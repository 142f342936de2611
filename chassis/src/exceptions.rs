//! Exception tracking: every server error (a 5xx `aiods::Error` or a panic) is logged, counted
//! (`aiods_exceptions_total{type}`), added to the request's span as an `exception` event and
//! sent to Sentry, all in one function that [`crate::layers::RequestLayer`] calls once per
//! failed request. The panic hook installed here keeps a panic's location and stack trace for
//! that layer.
//!
//! Enabled by `SENTRY_DSN` (real Sentry, or the aiods platform's Sentry-compatible ingest).
//! Each event carries the exception type, message and stack trace, the tags `service`,
//! `instance`, `trace_id` and `route`, and a stable fingerprint (type + route, or the panic's
//! location) so that one bug is one group. Events go through a bounded queue to a background
//! sender: a dead or slow Sentry never blocks a request, and what is dropped is counted
//! (`aiods_telemetry_dropped_total{signal="exceptions"}`). No DSN: nothing is sent.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use sentry::protocol::{Event, Exception, Level, Mechanism};
use sentry::types::Dsn;

use crate::error::ServerErrorReport;
use crate::telemetry::dropped::Signal;
use crate::telemetry::{BatchConfig, BatchQueue, EXCEPTIONS};

static ENABLED: OnceLock<()> = OnceLock::new();

/// Whether exception events are sent.
pub fn enabled() -> bool {
    ENABLED.get().is_some()
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

/// Captures one server error of a request whose route template is `route`: logs it (a panic
/// was logged by the panic hook already), counts it, adds it to the current span as an
/// `exception` event and sends it to Sentry. The one place where an exception is reported.
pub(crate) fn capture(mut report: ServerErrorReport, route: Option<&str>) {
    if report.kind != PANIC {
        tracing::error!(error.kind = report.kind, error = %report.message, "request failed");
    }
    metrics::counter!(EXCEPTIONS, "type" => report.kind).increment(1);
    // A stack trace is only worth its cost when someone receives it.
    if report.unexpected && report.stacktrace.is_none() && enabled() {
        report.stacktrace = Some(std::backtrace::Backtrace::force_capture().to_string());
    }
    let report = &report;
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
            ty: if report.kind == PANIC {
                "panic"
            } else {
                "aiods"
            }
            .into(),
            handled: Some(report.kind != PANIC),
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

/// The `kind` of a panic's report.
pub(crate) const PANIC: &str = "panic";

/// The report of a panic caught while serving a request on this thread: the message from its
/// payload, the location and stack trace from the panic hook, which ran a moment before.
pub(crate) fn panic_report(payload: &(dyn std::any::Any + Send)) -> ServerErrorReport {
    let (location, stacktrace) = take_last_panic();
    ServerErrorReport {
        kind: PANIC,
        message: panic_message(payload),
        location,
        stacktrace,
        unexpected: true,
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<(Option<String>, Option<String>)> =
        const { std::cell::RefCell::new((None, None)) };
}

/// The location and stack trace of the last panic on this thread, taken once.
fn take_last_panic() -> (Option<String>, Option<String>) {
    LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Routes panics to the log as an `ERROR` event (with location), instead of text on stderr,
/// and keeps the location and stack trace for the exception layer ([`take_last_panic`]).
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let stacktrace = enabled().then(|| std::backtrace::Backtrace::force_capture().to_string());
        LAST_PANIC.with(|p| *p.borrow_mut() = (Some(location.clone()), stacktrace));
        if tracing::dispatcher::has_been_set() {
            tracing::error!(target: "aiods::panic", panic_message = %message, panic_location = %location, "panic");
        } else {
            previous(info);
        }
    }));
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
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
        let dropped = Signal::Exceptions.counter();
        let mut client: Option<reqwest::blocking::Client> = None;
        let queue = BatchQueue::start(
            "aiods-sentry",
            BatchConfig {
                max_queue: 256,
                max_batch: 16,
                delay: Duration::from_millis(100),
            },
            Signal::Exceptions.counter(),
            move |batch: &mut Vec<sentry::Envelope>| {
                // Built on this thread: the blocking client must not live in an async context.
                let http = client.get_or_insert_with(|| {
                    reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap_or_default()
                });
                for envelope in batch.drain(..) {
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
