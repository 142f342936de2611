//! The access log: one `INFO` event `request completed` (target `aiods::access`) per request,
//! with method, route template, status and duration.

use std::time::{Duration, SystemTime};

/// Whether `route` is one of the endpoints the chassis itself serves.
pub(crate) fn is_chassis_route(route: &str) -> bool {
    matches!(
        route,
        "/health" | "/health/live" | "/health/ready" | "/metrics" | "/info" | "/openapi.json"
    ) || route.starts_with("/docs")
}

/// The access line of a request that gets one.
pub(crate) struct AccessLine(());

impl AccessLine {
    /// The line of a request to `route`, when one is written: probes and scrapes of the
    /// chassis endpoints would drown the log (they are counted in the metrics instead), and
    /// nothing is written when `INFO` is off.
    pub(crate) fn start(route: Option<&str>) -> Option<Self> {
        let chassis = route.is_some_and(is_chassis_route);
        // The global level only (a load): the event's own callsite applies the full filter.
        (!chassis && tracing::level_enabled!(tracing::Level::INFO)).then_some(Self(()))
    }

    /// Writes the line of a request answered `at` (`path`: for a request no route matched).
    pub(crate) fn emit(
        self,
        method: &str,
        route: Option<&str>,
        path: Option<&str>,
        status: u16,
        elapsed: Duration,
        at: SystemTime,
    ) {
        // Microsecond precision is plenty, and keeps the lines short.
        let duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        crate::logging::write_access_line(&crate::logging::AccessFields {
            method,
            route: route.unwrap_or(""),
            path,
            status,
            duration_ms,
            at,
        });
    }
}
