//! Prometheus metrics: the recorder behind the `metrics` facade, and `/metrics`.
//!
//! HTTP server metrics follow the OpenTelemetry semantic conventions, rendered the Prometheus
//! way: `http.server.request.duration` becomes `http_server_request_duration_seconds` with the
//! labels `http_request_method`, `http_route` (the route *template*) and
//! `http_response_status_code`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `http.server.request.duration`, in seconds.
pub const HTTP_SERVER_DURATION: &str = "http_server_request_duration_seconds";
/// `http.server.active_requests`.
pub const HTTP_SERVER_ACTIVE: &str = "http_server_active_requests";
/// `http.client.request.duration`, in seconds.
pub const HTTP_CLIENT_DURATION: &str = "http_client_request_duration_seconds";
/// Telemetry items dropped (label `signal`).
pub const TELEMETRY_DROPPED: &str = "aiods_telemetry_dropped_total";
/// Exceptions captured (labels `type`, `http_route`).
pub const EXCEPTIONS: &str = "aiods_exceptions_total";

/// The bucket boundaries the OpenTelemetry HTTP conventions advise for durations.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process) and
/// returns its handle. `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            let upkeep = handle.clone();
            // Histograms keep raw samples until drained; drain them even when nobody scrapes.
            std::thread::Builder::new()
                .name("aiods-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        HTTP_SERVER_DURATION,
        Unit::Seconds,
        "Duration of HTTP server requests."
    );
    describe_gauge!(HTTP_SERVER_ACTIVE, "Number of active HTTP server requests.");
    describe_histogram!(
        HTTP_CLIENT_DURATION,
        Unit::Seconds,
        "Duration of HTTP client requests."
    );
    describe_counter!(
        TELEMETRY_DROPPED,
        "Telemetry items dropped because a queue was full or a backend failed."
    );
    describe_counter!(EXCEPTIONS, "Exceptions captured (panics and 5xx errors).");
    crate::listener::describe_metrics();
    process::describe();
}

/// Renders the exposition text: the recorder's metrics plus the process metrics.
pub fn render(handle: &PrometheusHandle) -> String {
    process::collect();
    metrics::counter!(TELEMETRY_DROPPED, "signal" => "logs")
        .absolute(crate::logging::dropped_lines());
    metrics::counter!(TELEMETRY_DROPPED, "signal" => "spans")
        .absolute(crate::otel::dropped_spans());
    metrics::counter!(TELEMETRY_DROPPED, "signal" => "otlp_logs")
        .absolute(crate::otel::dropped_log_records());
    metrics::counter!(TELEMETRY_DROPPED, "signal" => "exceptions")
        .absolute(crate::exceptions::dropped_events());
    crate::listener::record_metrics();
    handle.render()
}

/// Process CPU, memory and start time, read from `/proc` on each scrape.
mod process {
    use std::sync::OnceLock;

    pub(super) fn describe() {
        use metrics::{Unit, describe_gauge};
        describe_gauge!(
            "process_cpu_seconds_total",
            Unit::Seconds,
            "Total user and system CPU time spent in seconds."
        );
        describe_gauge!(
            "process_resident_memory_bytes",
            Unit::Bytes,
            "Resident memory size in bytes."
        );
        describe_gauge!(
            "process_virtual_memory_bytes",
            Unit::Bytes,
            "Virtual memory size in bytes."
        );
        describe_gauge!(
            "process_start_time_seconds",
            Unit::Seconds,
            "Start time of the process since unix epoch in seconds."
        );
        describe_gauge!("process_open_fds", "Number of open file descriptors.");
        describe_gauge!("process_threads", "Number of OS threads in the process.");
    }

    static START: OnceLock<f64> = OnceLock::new();

    /// Records when the process started (called early in `main`).
    pub(crate) fn mark_start() {
        let _ = START.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        });
    }

    pub(super) fn collect() {
        mark_start();
        if let Some(start) = START.get() {
            metrics::gauge!("process_start_time_seconds").set(*start);
        }
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the parenthesised command name; see proc(5).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        // Linux reports these in clock ticks (USER_HZ, 100 on every mainstream platform).
        const TICKS: f64 = 100.0;
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            // A gauge because the `metrics` facade's counters are integers; the value only grows.
            metrics::gauge!("process_cpu_seconds_total").set((utime + stime) / TICKS);
        }
        if let Some(threads) = field(20) {
            metrics::gauge!("process_threads").set(threads);
        }
        if let Some(vsize) = field(23) {
            metrics::gauge!("process_virtual_memory_bytes").set(vsize);
        }
        if let Some(rss_pages) = field(24) {
            metrics::gauge!("process_resident_memory_bytes").set(rss_pages * 4096.0);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!("process_open_fds").set(fds.count() as f64);
        }
    }
}

pub(crate) use process::mark_start;

/// Counts one captured exception of `kind` in `aiods_exceptions_total`.
pub(crate) fn count_exception(kind: &'static str) {
    metrics::counter!(EXCEPTIONS, "type" => kind).increment(1);
}
