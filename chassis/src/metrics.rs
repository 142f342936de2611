//! Prometheus metrics: the recorder behind the `metrics` facade, and `/metrics`.
//!
//! The metric names and buckets are defined in [`crate::telemetry`] (re-exported here); the
//! drop counters rendered on each scrape are read from there too.
//!
//! HTTP server metrics follow the OpenTelemetry semantic conventions, rendered the Prometheus
//! way: `http.server.request.duration` becomes `http_server_request_duration_seconds` with the
//! labels `http_request_method`, `http_route` (the route *template*) and
//! `http_response_status_code`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::telemetry::dropped::Signal;
pub use crate::telemetry::{
    DURATION_BUCKETS, EXCEPTIONS, HTTP_CLIENT_DURATION, HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION,
    TELEMETRY_DROPPED,
};

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
}

/// Renders the exposition text: the recorder's metrics plus the process metrics.
pub fn render(handle: &PrometheusHandle) -> String {
    for signal in Signal::ALL {
        metrics::counter!(TELEMETRY_DROPPED, "signal" => signal.label()).absolute(signal.dropped());
    }
    crate::listener::record_metrics();
    let mut text = handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    process::render(&process::collect(), &mut text);
    text
}

/// Process CPU, memory and start time, read from `/proc` on each scrape and rendered as text
/// beside the recorder's: the `metrics` facade's counters are integers, and CPU seconds are not,
/// yet `process_cpu_seconds_total` must be typed `counter` (promtool refuses a `_total` gauge,
/// and `rate()` needs a counter).
mod process {
    use std::fmt::Write as _;
    use std::sync::OnceLock;

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

    /// One process metric family: name, type, help, value.
    pub(super) struct Family {
        pub(super) name: &'static str,
        pub(super) kind: &'static str,
        pub(super) help: &'static str,
        pub(super) value: f64,
    }

    /// Reads the process metrics; a value `/proc` does not give is left out.
    pub(super) fn collect() -> Vec<Family> {
        mark_start();
        let mut out = Vec::with_capacity(6);
        let mut push = |name, kind, help, value: Option<f64>| {
            if let Some(value) = value {
                out.push(Family {
                    name,
                    kind,
                    help,
                    value,
                });
            }
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the parenthesised command name; see proc(5).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        // Linux reports these in clock ticks (USER_HZ, 100 on every mainstream platform).
        const TICKS: f64 = 100.0;
        push(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            field(14).zip(field(15)).map(|(u, s)| (u + s) / TICKS),
        );
        push(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            field(24).map(|pages| pages * 4096.0),
        );
        push(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            field(23),
        );
        push(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            START.get().copied(),
        );
        push(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|fds| fds.count() as f64),
        );
        push(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            field(20),
        );
        out
    }

    /// Appends the families in the Prometheus text format.
    pub(super) fn render(families: &[Family], out: &mut String) {
        for f in families {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n",
                name = f.name,
                help = f.help,
                kind = f.kind,
                value = f.value
            );
        }
    }
}

pub(crate) use process::mark_start;

#[cfg(test)]
mod tests {
    #[test]
    fn process_cpu_is_a_counter_and_every_family_has_help() {
        let families = super::process::collect();
        let cpu = families
            .iter()
            .find(|f| f.name == "process_cpu_seconds_total")
            .expect("cpu time on Linux");
        assert_eq!(cpu.kind, "counter");
        let mut text = String::new();
        super::process::render(&families, &mut text);
        for f in &families {
            assert!(text.contains(&format!("# HELP {} ", f.name)), "{text}");
            assert!(text.contains(&format!("# TYPE {} {}\n", f.name, f.kind)));
        }
    }
}
