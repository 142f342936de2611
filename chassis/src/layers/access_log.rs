//! The access log: one `INFO` event `request completed` (target `aiods::access`) per request,
//! with method, route template, status and duration.

use std::time::Duration;

/// Whether `route` is one of the endpoints the chassis itself serves.
pub(crate) fn is_chassis_route(route: &str) -> bool {
    matches!(
        route,
        "/health" | "/health/live" | "/health/ready" | "/metrics" | "/info" | "/openapi.json"
    ) || route.starts_with("/docs")
}

/// What the line of a request needs beyond what the request layer keeps anyway.
pub(crate) struct AccessLine {
    /// The path, for a request no route matched (the route is logged otherwise).
    path: Option<String>,
}

impl AccessLine {
    /// The line of a request to `route` (`path` when none matched), when one is written:
    /// probes and scrapes of the chassis endpoints would drown the log (they are counted in
    /// the metrics instead), and nothing is prepared when `INFO` is off.
    pub(crate) fn start(route: Option<&str>, path: &str) -> Option<Self> {
        let chassis = route.is_some_and(is_chassis_route);
        // The global level only (a load): the event's own callsite applies the full filter.
        (!chassis && tracing::level_enabled!(tracing::Level::INFO)).then(|| Self {
            path: route.is_none().then(|| path.to_owned()),
        })
    }

    /// Writes the line.
    pub(crate) fn emit(self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        // Microsecond precision is plenty, and keeps the lines short.
        let duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        // The message as a `&str` field rather than format arguments: it reaches the JSON
        // writer as a string, not through the formatting machinery (same line out).
        tracing::info!(
            target: "aiods::access",
            message = "request completed",
            method,
            route = route.unwrap_or(""),
            path = self.path.as_deref(),
            status,
            duration_ms,
        );
    }
}
