//! Receivers: OTLP/HTTP, Sentry ingest, and the request-body handling they share.

pub mod body;
pub mod otlp;
pub mod scrape;
pub mod sentry;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;

use crate::store::{ExceptionEvent, LogRecord, MetricSample, Signal, SpanRecord, Stats, Store};

/// Where received telemetry goes. The receivers hold only this and their [`Receivers`]
/// settings, never the application's state (as the OpenTelemetry Collector's receivers hold
/// only their next consumer).
pub trait TelemetrySink: Send + Sync + std::fmt::Debug {
    /// Keeps spans; returns how many were not kept (each counted in [`Stats`]).
    fn insert_spans(&self, spans: Vec<SpanRecord>) -> u64;
    /// Keeps log records; returns how many were not kept.
    fn insert_logs(&self, logs: Vec<LogRecord>) -> u64;
    /// Keeps metric samples of one signal; returns how many were not kept.
    fn insert_samples(&self, samples: Vec<MetricSample>, signal: Signal) -> u64;
    /// Keeps one exception event (grouped by fingerprint).
    fn record_exception(&self, event: ExceptionEvent);
    /// The counters of what was received, refused and dropped.
    fn stats(&self) -> &Stats;
}

impl TelemetrySink for Store {
    fn insert_spans(&self, spans: Vec<SpanRecord>) -> u64 {
        Store::insert_spans(self, spans)
    }
    fn insert_logs(&self, logs: Vec<LogRecord>) -> u64 {
        Store::insert_logs(self, logs)
    }
    fn insert_samples(&self, samples: Vec<MetricSample>, signal: Signal) -> u64 {
        Store::insert_samples(self, samples, signal)
    }
    fn record_exception(&self, event: ExceptionEvent) {
        Store::record_exception(self, event);
    }
    fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The receivers' state: their sink, who may send, and how much.
#[derive(Debug)]
pub struct Receivers {
    /// Where accepted telemetry goes.
    pub sink: Arc<dyn TelemetrySink>,
    /// Ingest keys: accepted as `Authorization: Bearer` on OTLP and as Sentry public keys.
    pub ingest_keys: Vec<String>,
    /// OTLP ingest key: (header name, value), the older form beside `ingest_keys`.
    pub otlp_ingest_key: Option<(String, String)>,
    /// Accepted Sentry public keys (with `ingest_keys`; both empty: any).
    pub sentry_keys: Vec<String>,
    /// Accepted Sentry project ids.
    pub sentry_projects: HashSet<u64>,
    /// Largest body as sent.
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
}

/// The receivers' routes (OTLP/HTTP and Sentry ingest), with their own state: they can be
/// merged into a router of any state.
pub fn router<S: Clone + Send + Sync + 'static>(receivers: Arc<Receivers>) -> Router<S> {
    Router::new()
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/logs", post(otlp::logs))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/api/{project_id}/envelope/", post(sentry::envelope))
        .route("/api/{project_id}/envelope", post(sentry::envelope))
        .route("/api/{project_id}/store/", post(sentry::store))
        .route("/api/{project_id}/store", post(sentry::store))
        .with_state(receivers)
}

/// Why an ingest request was refused. Each maps to one 4xx status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 400: the body does not decode.
    #[error("{0}")]
    BadRequest(String),
    /// 401: credentials missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: unknown target (e.g. Sentry project).
    #[error("{0}")]
    NotFound(String),
    /// 413: body too large, before or after decompression.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: content type or encoding not understood.
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl IngestError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        crate::common::problem::Problem::new(self.status(), self.to_string()).into_response()
    }
}
