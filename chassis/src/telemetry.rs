//! Telemetry set-up: the log subscriber (and, with OTLP configured, the exporters).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{ChassisConfig, LogFormat};
use crate::logging::{JsonLogLayer, stdout_writer};

/// Flushes buffered telemetry when shut down (or dropped).
#[must_use = "dropping the guard flushes and stops telemetry"]
#[derive(Debug)]
pub struct TelemetryGuard {
    log: Option<WorkerGuard>,
}

impl TelemetryGuard {
    /// Flushes everything buffered.
    pub fn shutdown(mut self) {
        self.log.take();
    }
}

/// Installs the global subscriber: `RUST_LOG` filter (default `info`) and JSON lines on stdout.
/// Does nothing (but still returns a guard) if a global subscriber is already set.
pub fn init(service: &str, cfg: &ChassisConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = stdout_writer();
    let result = match cfg.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLogLayer::new(service, writer))
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init(),
    };
    if result.is_ok() {
        crate::logging::install_panic_log_hook();
    }
    TelemetryGuard { log: Some(guard) }
}
