//! OpenTelemetry: traces and logs over OTLP/HTTP, configured by the standard `OTEL_*`
//! variables.
//!
//! Nothing is set up unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or a
//! per-signal `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT`): no exporter, no cost.
//! `OTEL_SDK_DISABLED=true` or `OTEL_{TRACES,LOGS}_EXPORTER=none` turn a signal off; metrics are
//! pushed over OTLP only with `OTEL_METRICS_EXPORTER=otlp` (Prometheus pull is the default).
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` selects JSON over protobuf; headers, timeouts,
//! resource attributes and the sampler are read by the SDK from their standard variables.
//! Spans over protobuf (the default) are encoded by `proto` and posted by `span_export`,
//! which read the same variables, rather than converted to the SDK's generated structs first:
//! measured with callgrind, that conversion was a third of a traced request's instructions.
//!
//! Spans and log records are queued in bounded queues that count what they drop
//! (`aiods_telemetry_dropped_total{signal="spans"|"otlp_logs"}`); an unreachable collector
//! never blocks or fails a request.

mod proto;
pub(crate) mod server_span;
mod span_export;
pub(crate) mod traceparent;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, LogProcessor, SdkLogRecord, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{
    SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor,
};

use crate::telemetry::dropped::Signal;
use crate::telemetry::{BatchConfig, BatchQueue, DURATION_BUCKETS};
use server_span::FinishedSpan;

/// The name of the chassis's tracer, the instrumentation scope of its spans.
pub(crate) const TRACER_NAME: &str = "aiods";

static TRACER: OnceLock<SdkTracer> = OnceLock::new();
static HTTP_SERVER_DURATION: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();

/// The tracer of the service, when traces are exported.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// The OTLP-pushed `http.server.request.duration` histogram, when metrics are pushed.
pub(crate) fn http_server_duration() -> Option<&'static opentelemetry::metrics::Histogram<f64>> {
    HTTP_SERVER_DURATION.get()
}

/// Who the service is, for the OpenTelemetry resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// `service.name`.
    pub name: String,
    /// `service.version`.
    pub version: String,
    /// `service.instance.id`.
    pub instance_id: String,
    /// `deployment.environment.name`.
    pub environment: String,
}

/// The providers set up by [`init`]; shutting them down flushes what is buffered.
#[derive(Debug, Default)]
pub struct OtelProviders {
    /// The tracer provider, when traces are exported.
    pub traces: Option<SdkTracerProvider>,
    /// The logger provider, when logs are exported.
    pub logs: Option<SdkLoggerProvider>,
    /// The meter provider, when metrics are pushed.
    pub metrics: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl OtelProviders {
    /// Flushes and stops every provider.
    pub fn shutdown(&self) {
        if let Some(p) = &self.traces {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
        if let Some(p) = &self.logs {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
        if let Some(p) = &self.metrics {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// Why OpenTelemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// An exporter could not be built from the configuration.
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces`, `logs` or `metrics`.
        signal: &'static str,
        /// Why.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// An OTLP endpoint is not a URI.
    #[error("the OTLP {signal} endpoint is not a URI: {source}")]
    Endpoint {
        /// `traces`.
        signal: &'static str,
        /// Why.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// A worker thread could not be started.
    #[error("cannot start the {0} export thread")]
    Thread(&'static str, #[source] std::io::Error),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn signal_enabled(signal: &str) -> bool {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let upper = signal.to_uppercase();
    let exporter = env(&format!("OTEL_{upper}_EXPORTER"));
    if signal == "metrics" {
        // Pull (Prometheus) is the default for metrics; push only when asked.
        if !exporter.is_some_and(|e| e.split(',').any(|e| e.trim() == "otlp")) {
            return false;
        }
    } else if exporter.is_some_and(|e| e.trim() == "none") {
        return false;
    }
    env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")).is_some()
}

fn protocol(signal: &str) -> Protocol {
    let p = env(&format!(
        "OTEL_EXPORTER_OTLP_{}_PROTOCOL",
        signal.to_uppercase()
    ))
    .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match p.as_deref() {
        Some("http/json") => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

/// The value of `key` in `OTEL_RESOURCE_ATTRIBUTES`, read as the SDK reads it.
pub fn resource_attribute(key: &'static str) -> Option<String> {
    use opentelemetry_sdk::resource::ResourceDetector as _;
    opentelemetry_sdk::resource::EnvResourceDetector::new()
        .detect()
        .get(&opentelemetry::Key::from_static_str(key))
        .map(|v| v.as_str().into_owned())
}

/// Whether any OTLP signal is configured.
pub fn any_enabled() -> bool {
    ["traces", "logs", "metrics"]
        .iter()
        .any(|s| signal_enabled(s))
}

fn resource(info: &ResourceInfo) -> Resource {
    Resource::builder()
        .with_service_name(info.name.clone())
        .with_attributes([
            KeyValue::new("service.version", info.version.clone()),
            KeyValue::new("service.instance.id", info.instance_id.clone()),
            KeyValue::new("deployment.environment.name", info.environment.clone()),
            KeyValue::new("telemetry.distro.name", "aiods"),
        ])
        .build()
}

/// Sets up the configured signals and the W3C trace-context propagator.
pub fn init(info: &ResourceInfo) -> Result<OtelProviders, OtelError> {
    let mut providers = OtelProviders::default();
    if !any_enabled() {
        return Ok(providers);
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let resource = resource(info);

    if signal_enabled("traces") {
        let queue = BatchQueue::start(
            "aiods-otlp-spans",
            BatchConfig::default(),
            Signal::Spans.counter(),
            span_exporter(&resource)?,
        )
        .map_err(|e| OtelError::Thread("span", e))?;
        let queue = std::sync::Arc::new(queue);
        server_span::install(queue.clone());
        let provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(QueueSpanProcessor { queue })
            .build();
        let _ = TRACER.set(provider.tracer(TRACER_NAME));
        opentelemetry::global::set_tracer_provider(provider.clone());
        providers.traces = Some(provider);
    }

    if signal_enabled("logs") {
        let mut exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(protocol("logs"))
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| OtelError::Exporter {
                signal: "logs",
                source,
            })?;
        exporter.set_resource(&resource);
        let queue = BatchQueue::start(
            "aiods-otlp-logs",
            BatchConfig::default(),
            Signal::OtlpLogs.counter(),
            move |batch: &mut Vec<(SdkLogRecord, opentelemetry::InstrumentationScope)>| {
                let refs: Vec<(&SdkLogRecord, &opentelemetry::InstrumentationScope)> =
                    batch.iter().map(|(r, s)| (r, s)).collect();
                futures_executor::block_on(exporter.export(LogBatch::new(&refs))).is_ok()
            },
        )
        .map_err(|e| OtelError::Thread("log", e))?;
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_log_processor(QueueLogProcessor { queue })
            .build();
        providers.logs = Some(provider);
    }

    if signal_enabled("metrics") {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(protocol("metrics"))
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| OtelError::Exporter {
                signal: "metrics",
                source,
            })?;
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "aiods");
        let histogram = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let _ = HTTP_SERVER_DURATION.set(histogram);
        opentelemetry::global::set_meter_provider(provider.clone());
        providers.metrics = Some(provider);
    }
    Ok(providers)
}

/// Exports one batch of spans; `false` when it was lost.
type ExportSpans = Box<dyn FnMut(&mut Vec<FinishedSpan>) -> bool + Send>;

/// What the span queue exports a batch with: spans written straight to protobuf (the SDK's
/// conversion to its generated structs cost more than everything else the export thread
/// did), or the SDK's OTLP exporter when JSON or compression is asked for.
fn span_exporter(resource: &Resource) -> Result<ExportSpans, OtelError> {
    let direct = (protocol("traces") == Protocol::HttpBinary)
        .then(span_export::DirectSpanConfig::from_env)
        .flatten();
    if let Some(config) = direct {
        config.check().map_err(|source| OtelError::Endpoint {
            signal: "traces",
            source,
        })?;
        let mut exporter = span_export::DirectSpanExporter::new(config, resource);
        return Ok(Box::new(move |batch: &mut Vec<FinishedSpan>| {
            exporter.export(batch)
        }));
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol("traces"))
        .with_timeout(span_export::EXPORT_TIMEOUT)
        .build()
        .map_err(|source| OtelError::Exporter {
            signal: "traces",
            source,
        })?;
    exporter.set_resource(resource);
    Ok(Box::new(move |batch: &mut Vec<FinishedSpan>| {
        let batch = batch.drain(..).map(FinishedSpan::into_span_data).collect();
        futures_executor::block_on(exporter.export(batch)).is_ok()
    }))
}

/// Sends the SDK's finished spans to a counting [`BatchQueue`] (the one server spans go to).
#[derive(Debug)]
struct QueueSpanProcessor {
    queue: std::sync::Arc<BatchQueue<FinishedSpan>>,
}

impl SpanProcessor for QueueSpanProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.queue.push(FinishedSpan::Sdk(span));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(Duration::from_secs(5));
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.flush(timeout);
        Ok(())
    }
}

/// Sends log records to a counting [`BatchQueue`].
#[derive(Debug)]
struct QueueLogProcessor {
    queue: BatchQueue<(SdkLogRecord, opentelemetry::InstrumentationScope)>,
}

impl LogProcessor for QueueLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, scope: &opentelemetry::InstrumentationScope) {
        self.queue.push((data.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(Duration::from_secs(5));
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.flush(timeout);
        Ok(())
    }
}
