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

    /// Writes the line of a request answered `at` (`path`: for a request no route matched):
    /// straight to the chassis's JSON log when nothing else needs the `tracing` event
    /// (`logging::access_log`), as a `tracing` event otherwise.
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
        let route = route.unwrap_or("");
        if let Some(log) = crate::logging::access_log() {
            log.write(&crate::logging::AccessFields {
                method,
                route,
                path,
                status,
                duration_ms,
                at,
            });
            return;
        }
        emit_event(method, route, path, status, duration_ms);
    }
}

/// Whether the current subscriber's filter lets access lines through (what it decides for
/// the event [`emit_event`] makes: same target, level and fields).
pub(crate) fn enabled() -> bool {
    tracing::enabled!(
        target: "aiods::access",
        tracing::Level::INFO,
        message,
        method,
        route,
        path,
        status,
        duration_ms
    )
}

/// The access line as a `tracing` event.
fn emit_event(method: &str, route: &str, path: Option<&str>, status: u16, duration_ms: f64) {
    // The message as a `&str` field rather than format arguments: it reaches the JSON
    // writer as a string, not through the formatting machinery (same line out).
    tracing::info!(
        target: "aiods::access",
        message = "request completed",
        method,
        route,
        path,
        status,
        duration_ms,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::tests::Capture;
    use crate::logging::{AccessFields, JsonLogLayer, TraceIds, format_access_line, json_string};
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_subscriber::layer::SubscriberExt;

    /// The line without its timestamp (the two lines are written microseconds apart).
    fn untimed(line: &[u8]) -> String {
        let text = String::from_utf8(line.to_vec()).expect("utf-8");
        let at = text.find("Z\",").expect("a timestamp");
        text[at..].to_owned()
    }

    #[test]
    fn the_direct_line_is_the_line_the_tracing_event_makes() {
        let cases = [
            ("GET", "/hello/{name}", None, 200, 0.123),
            ("POST", "", Some("/no/such \"route\"/é"), 404, 12.5),
            ("_OTHER", "/a\\b", None, 503, 1500.0),
            ("DELETE", "/x", Some("/x"), 204, 0.000_1),
        ];
        let ids = TraceIds {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(ids.trace_id),
            SpanId::from_bytes(ids.span_id),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        for traced in [false, true] {
            for (method, route, path, status, duration_ms) in cases {
                let capture = Capture::default();
                let subscriber = tracing_subscriber::registry()
                    .with(JsonLogLayer::new("svc \"q\"", capture.clone()));
                tracing::subscriber::with_default(subscriber, || {
                    let _entered = traced.then(|| {
                        opentelemetry::Context::new()
                            .with_remote_span_context(remote.clone())
                            .attach()
                    });
                    emit_event(method, route, path, status, duration_ms);
                });
                let event = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
                let mut direct = Vec::new();
                format_access_line(
                    &mut direct,
                    &json_string("svc \"q\""),
                    &AccessFields {
                        method,
                        route,
                        path,
                        status,
                        duration_ms,
                        at: SystemTime::now(),
                    },
                    traced.then_some(&ids),
                );
                assert_eq!(
                    untimed(&direct),
                    untimed(&event),
                    "{method} {route} {path:?}"
                );
                assert!(direct.ends_with(b"}\n"));
            }
        }
    }
}
