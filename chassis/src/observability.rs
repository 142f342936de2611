//! Telemetry set-up: the log subscriber, OpenTelemetry (traces, logs, metrics over OTLP) and
//! exception tracking (with its panic hook), each from its standard configuration, and the
//! guard that flushes them at exit.
//!
//! What the telemetry paths share (metric names, drop counters, the counting queue) is in
//! [`crate::telemetry`]; this module only starts them.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{ChassisConfig, LogFormat};
use crate::info::ServiceInfo;
use crate::logging::{JsonLogLayer, stdout_writer};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// OpenTelemetry could not be set up.
    #[error(transparent)]
    Otel(#[from] crate::otel::OtelError),
    /// The log writer thread could not start.
    #[error("cannot start the log writer: {0}")]
    LogWriter(#[source] std::io::Error),
    /// Exception tracking could not be set up.
    #[error(transparent)]
    Exceptions(#[from] crate::exceptions::ExceptionsError),
}

/// Flushes buffered telemetry when shut down (or dropped).
#[must_use = "dropping the guard flushes and stops telemetry"]
pub struct TelemetryGuard {
    otel: crate::otel::OtelProviders,
    sentry: Option<sentry::ClientInitGuard>,
    log: Option<crate::log_writer::LogWriterGuard>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otel", &self.otel)
            .field("sentry", &self.sentry.is_some())
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Flushes everything buffered: spans, OTLP logs, exceptions, then stdout.
    pub fn shutdown(self) {
        self.shutdown_within(std::time::Duration::from_secs(2));
    }

    /// Like [`TelemetryGuard::shutdown`], with the exception queue drained for at most
    /// `limit` (what is left of the shutdown grace) instead of a fixed time.
    pub fn shutdown_within(mut self, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        self.otel.shutdown();
        if let Some(sentry) = self.sentry.take() {
            sentry.flush(Some(limit.saturating_sub(started.elapsed())));
        }
        self.log.take();
    }
}

/// Targets whose events are never exported over OTLP: the exporters' own machinery, which
/// would otherwise feed back into itself.
fn is_exporter_target(target: &str) -> bool {
    ["opentelemetry", "hyper", "reqwest", "h2", "tower", "sentry"]
        .iter()
        .any(|p| target.starts_with(p))
}

/// Installs the global subscriber — `RUST_LOG` filter (default `info`), JSON lines on stdout,
/// and when configured the OTLP trace and log bridges — and starts exception tracking.
/// Leaves an already installed global subscriber in place.
pub fn init(info: &ServiceInfo, cfg: &ChassisConfig) -> Result<TelemetryGuard, TelemetryError> {
    let otel = crate::otel::init(&crate::otel::ResourceInfo {
        name: info.name.clone(),
        version: info.version.clone(),
        instance_id: info.instance_id.clone(),
        environment: info.env.clone(),
    })?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = stdout_writer().map_err(TelemetryError::LogWriter)?;
    let spans = otel.traces.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("aiods"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && !is_exporter_target(m.target())
            }))
    });
    let otlp_logs = otel.logs.as_ref().map(|provider| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                !is_exporter_target(m.target())
            }))
    });
    // The access log may skip `tracing` only when its line would reach nothing but the JSON
    // layer: set below once this subscriber is known to be the global one.
    let direct_access_log =
        (cfg.log_format == LogFormat::Json && otlp_logs.is_none()).then(|| writer.clone());
    let stdout = match cfg.log_format {
        LogFormat::Json => JsonLogLayer::new(info.name.clone(), writer).boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(spans)
        .with(otlp_logs)
        .try_init()
        .is_ok();
    if installed {
        crate::exceptions::install_panic_hook();
        if let Some(writer) = direct_access_log {
            crate::logging::install_access_log(
                &info.name,
                writer,
                crate::logging::access_lines_enabled(),
            );
        }
    }
    let sentry = crate::exceptions::init(&crate::exceptions::ExceptionSource {
        service: info.name.clone(),
        instance: info.instance_id.clone(),
        version: info.version.clone(),
        environment: info.env.clone(),
    })?;
    Ok(TelemetryGuard {
        otel,
        sentry,
        log: Some(guard),
    })
}
