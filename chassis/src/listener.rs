//! The service's HTTP listener: [`aiods_serve::serve`] (a header-read timeout, an idle
//! timeout, a connection cap and a shutdown that closes whatever is left once its grace period
//! is over; the same code serves the platform and its gateway) with the process's counters,
//! exposed as the `aiods_listener_*` series.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use aiods_serve::ListenerStats;
use axum::Router;
use tokio::net::TcpListener;

pub use aiods_serve::{ListenerCounts, ListenerLimits};

/// The process's listener (a service has one).
static STATS: LazyLock<Arc<ListenerStats>> = LazyLock::new(Arc::default);

/// What the process's listener did so far.
pub fn counts() -> ListenerCounts {
    STATS.counts()
}

/// Sets the `aiods_listener_*` series from the counts (called on each scrape).
pub(crate) fn record_metrics() {
    let c = counts();
    for (name, v) in [
        ("aiods_listener_connections_accepted_total", c.accepted),
        ("aiods_listener_connections_refused_total", c.refused),
        ("aiods_listener_header_timeouts_total", c.header_timeouts),
        ("aiods_listener_idle_closed_total", c.idle_closed),
        (
            "aiods_listener_dropped_at_shutdown_total",
            c.dropped_at_shutdown,
        ),
    ] {
        metrics::counter!(name).absolute(v);
    }
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("aiods_listener_connections_open").set(c.open as f64);
}

/// Describes the `aiods_listener_*` series.
pub(crate) fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "aiods_listener_connections_accepted_total",
        "Connections accepted."
    );
    describe_counter!(
        "aiods_listener_connections_refused_total",
        "Connections closed at once: server.max_connections were open."
    );
    describe_counter!(
        "aiods_listener_header_timeouts_total",
        "Connections closed: no complete request head within server.header_read_timeout."
    );
    describe_counter!(
        "aiods_listener_idle_closed_total",
        "Connections closed: no byte moved within server.idle_timeout."
    );
    describe_counter!(
        "aiods_listener_dropped_at_shutdown_total",
        "Connections still open when the shutdown grace ran out."
    );
    describe_gauge!("aiods_listener_connections_open", "Connections open now.");
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves and the grace is over.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    aiods_serve::serve(listener, app, limits, STATS.clone(), shutdown).await;
}
