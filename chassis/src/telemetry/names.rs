//! Metric names and histogram buckets, shared by the Prometheus recorder, the OTLP meter and
//! the middleware that records them.
//!
//! HTTP metrics follow the OpenTelemetry semantic conventions, rendered the Prometheus way:
//! `http.server.request.duration` becomes `http_server_request_duration_seconds`.

/// `http.server.request.duration`, in seconds.
pub const HTTP_SERVER_DURATION: &str = "http_server_request_duration_seconds";
/// `http.server.active_requests`.
pub const HTTP_SERVER_ACTIVE: &str = "http_server_active_requests";
/// `http.client.request.duration`, in seconds.
pub const HTTP_CLIENT_DURATION: &str = "http_client_request_duration_seconds";
/// Telemetry items dropped (label `signal`).
pub const TELEMETRY_DROPPED: &str = "aiods_telemetry_dropped_total";
/// Exceptions captured (label `type`).
pub const EXCEPTIONS: &str = "aiods_exceptions_total";

/// The bucket boundaries the OpenTelemetry HTTP conventions advise for durations, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];
