//! Management API under `/api/v1/` (JSON, bearer token, paginated with `limit` + `cursor`).
//!
//! Lists answer `{"items": [...], "next_cursor": "…" | null}`; pass `next_cursor` back as
//! `cursor` for the next page. A page holds at most [`MAX_LIMIT`] items and
//! [`MAX_PAGE_BYTES`] bytes of items (at least one item): a page cut short by its size has a
//! `next_cursor` like any other. Bad parameters answer 400 `application/problem+json`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::common::exposition::write_family;
use crate::common::problem::Problem;
use crate::common::time::{now_nanos, rfc3339};
use crate::store::{LogQuery, MetricQuery, Severity};
use crate::web::AppState;

const DEFAULT_LIMIT: usize = 100;
/// Most items in a page (`limit` above it is a 400).
pub const MAX_LIMIT: usize = 1000;
/// Most bytes of items in a page, as serialized (a page always holds one item when any
/// matches: no stored item is larger than [`crate::store::MAX_ITEM_BYTES`]).
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The `/api/v1` routes with their OpenAPI description (the token check is added by the caller).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(services))
        .routes(routes!(traces))
        .routes(routes!(trace))
        .routes(routes!(logs))
        .routes(routes!(exceptions))
        .routes(routes!(metrics))
        .routes(routes!(health))
}

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, when there may be one.
    pub next_cursor: Option<String>,
}

struct Params(HashMap<String, String>);

impl Params {
    fn new(q: HashMap<String, String>, allowed: &[&str]) -> Result<Self, Problem> {
        if let Some(unknown) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Problem::bad_request(format!(
                "unknown query parameter {unknown:?}; allowed: {}",
                allowed.join(", ")
            )));
        }
        Ok(Self(q))
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn number(&self, name: &str) -> Result<Option<u64>, Problem> {
        self.str(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Problem::bad_request(format!(
                        "{name} must be a non-negative integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    fn limit(&self) -> Result<usize, Problem> {
        match self.number("limit")? {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => Err(Problem::bad_request("limit must be at least 1")),
            Some(n) if n > MAX_LIMIT as u64 => Err(Problem::bad_request(format!(
                "limit must be at most {MAX_LIMIT}"
            ))),
            Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_LIMIT)),
        }
    }

    fn cursor(&self) -> Result<Option<u64>, Problem> {
        self.number("cursor")
    }
}

/// A page as JSON, its items serialized one by one and cut at [`MAX_PAGE_BYTES`] (after
/// the first item). `cursor_after(item, index)` is the cursor of what follows the item at
/// `index`; `more` says whether items follow the last one given.
fn capped_page<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    more: bool,
    cursor_after: impl Fn(&T, usize) -> String,
) -> Response {
    capped_page_within(items, more, cursor_after, MAX_PAGE_BYTES)
}

fn capped_page_within<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    more: bool,
    cursor_after: impl Fn(&T, usize) -> String,
    max_bytes: usize,
) -> Response {
    let mut body: Vec<u8> = b"{\"items\":[".to_vec();
    let mut last: Option<(T, usize)> = None;
    let mut cut = false;
    let mut used = 0usize;
    for (i, item) in items.into_iter().enumerate() {
        let json = match serde_json::to_vec(&item) {
            Ok(j) => j,
            Err(e) => {
                return Problem::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot serialize: {e}"),
                )
                .into_response();
            }
        };
        if last.is_some() && used + json.len() > max_bytes {
            cut = true;
            break;
        }
        if last.is_some() {
            body.push(b',');
        }
        used += json.len();
        body.extend_from_slice(&json);
        last = Some((item, i));
    }
    let next = last
        .filter(|_| cut || more)
        .map(|(item, i)| cursor_after(&item, i));
    body.extend_from_slice(b"],\"next_cursor\":");
    match next {
        Some(c) => body.extend_from_slice(&serde_json::to_vec(&c).unwrap_or_default()),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A page of `all` from `offset`: the cursor is the next offset.
pub(crate) fn offset_page<T: Serialize>(all: Vec<T>, offset: usize, limit: usize) -> Response {
    let total = all.len();
    let more = offset.saturating_add(limit) < total;
    capped_page(all.into_iter().skip(offset).take(limit), more, |_, i| {
        (offset + i + 1).to_string()
    })
}

#[cfg(test)]
mod probe_tests {
    use super::is_probe_span_name;

    #[test]
    fn probes_and_scrapes_are_recognised_by_their_route() {
        for name in [
            "GET /health",
            "GET /health/live",
            "GET /health/ready",
            "GET /metrics",
            "/health/ready",
            "GET /metrics?x=1",
        ] {
            assert!(is_probe_span_name(name), "{name}");
        }
        for name in [
            "GET /orders",
            "POST /orders/{id}",
            "GET /healthy",
            "GET /metrics/x",
            "health check",
            "",
        ] {
            assert!(!is_probe_span_name(name), "{name}");
        }
    }
}

fn valid_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The services that sent telemetry, paginated.
#[utoipa::path(get, path = "/services", tag = "telemetry",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of services: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn services(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["limit", "cursor"])?;
    let (limit, offset) = (p.limit()?, p.cursor()?.unwrap_or(0));
    let all = state.store.services.read().views();
    Ok(offset_page(
        all,
        usize::try_from(offset).unwrap_or(usize::MAX),
        limit,
    ))
}

/// Recent traces, newest first. Traces of probes and scrapes (a root span of a `/health*` or
/// `/metrics` route) are left out unless `include_probes=true`.
#[utoipa::path(get, path = "/traces", tag = "telemetry",
    params(("service" = Option<String>, Query, description = "Only this service"),
        ("include_probes" = Option<bool>, Query, description = "Include traces of health probes and metrics scrapes (default false)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of trace summaries: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn traces(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["service", "limit", "cursor", "include_probes"])?;
    let limit = p.limit()?;
    let include_probes = match p.str("include_probes") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "include_probes must be true or false, got {other:?}"
            )));
        }
    };
    let service = p.str("service");
    let mut before = p.cursor()?;
    let mut items = Vec::with_capacity(limit);
    let mut scanned_all = false;
    // Probe traces are skipped without shortening the page: read on, a bounded number of
    // pages, and hand back where the scan stopped as the cursor.
    for _ in 0..MAX_TRACE_SCAN_PAGES {
        let batch = state.store.traces.read().list(service, before, limit);
        let full = batch.len() == limit;
        before = batch.last().map(|t| t.seq).or(before);
        items.extend(
            batch
                .into_iter()
                .filter(|t| include_probes || !is_probe_span_name(&t.root_name)),
        );
        if !full {
            scanned_all = true;
            break;
        }
        if items.len() >= limit {
            break;
        }
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|t| t.seq.to_string())
    } else if scanned_all {
        None
    } else {
        before.map(|b| b.to_string())
    };
    // The page is also cut at MAX_PAGE_BYTES: then it continues after its last item.
    let (more, n) = (next_cursor.is_some(), items.len());
    Ok(capped_page(items, more, move |t, i| match &next_cursor {
        Some(c) if i + 1 == n => c.clone(),
        _ => t.seq.to_string(),
    }))
}

/// How many store pages one trace-list request reads at most while skipping probe traces.
const MAX_TRACE_SCAN_PAGES: usize = 20;

/// Whether a span name is that of a health probe or a metrics scrape: `GET /health`,
/// `GET /health/live`, `/metrics`, … (the route is the name's last word, query string aside).
pub fn is_probe_span_name(name: &str) -> bool {
    let route = name.split_whitespace().last().unwrap_or_default();
    let path = route.split('?').next().unwrap_or_default();
    path == "/metrics" || path == "/health" || path.starts_with("/health/")
}

/// One trace: its spans as a tree.
#[utoipa::path(get, path = "/traces/{trace_id}", tag = "telemetry",
    params(("trace_id" = String, Path, pattern = "^[0-9a-fA-F]{32}$", description = "The trace id, 32 hex digits")),
    responses((status = 200, description = "The trace", body = Object),
        (status = 400, description = "Not a trace id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Never received, or past retention", body = Problem, content_type = "application/problem+json")))]
async fn trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Response, Problem> {
    let id = trace_id.to_ascii_lowercase();
    if !valid_hex(&id, 32) {
        return Err(Problem::bad_request(format!(
            "trace id {trace_id:?} must be 32 hex digits"
        )));
    }
    let (spans, span_count) = state
        .store
        .traces
        .read()
        .spans_within(&id, MAX_PAGE_BYTES)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "trace {id} not found (never received, or past retention)"
            ))
        })?;
    let mut services: Vec<String> = Vec::new();
    for s in &spans {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
    }
    let truncated = spans.len() < span_count;
    let tree = crate::store::traces_tree(spans);
    Ok(Json(serde_json::json!({
        "trace_id": id,
        "span_count": span_count,
        "truncated": truncated,
        "services": services,
        "spans": tree,
    }))
    .into_response())
}

/// Log records, newest first.
#[utoipa::path(get, path = "/logs", tag = "telemetry",
    params(("service" = Option<String>, Query, description = "Only this service"),
        ("trace_id" = Option<String>, Query, pattern = "^[0-9a-fA-F]{32}$", description = "Only records of this trace"),
        ("level" = Option<String>, Query, description = "Least severity: trace, debug, info, warn, error or fatal"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of log records: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn logs(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["service", "trace_id", "level", "limit", "cursor"])?;
    let limit = p.limit()?;
    let min_level = p
        .str("level")
        .map(|l| {
            Severity::parse(l).ok_or_else(|| {
                Problem::bad_request(format!(
                    "level {l:?} is not one of trace, debug, info, warn, error, fatal"
                ))
            })
        })
        .transpose()?;
    let trace_id = p.str("trace_id").map(str::to_ascii_lowercase);
    if let Some(t) = &trace_id
        && !valid_hex(t, 32)
    {
        return Err(Problem::bad_request(format!(
            "trace_id {t:?} must be 32 hex digits"
        )));
    }
    let query = LogQuery {
        service: p.str("service"),
        trace_id: trace_id.as_deref(),
        min_level,
        before: p.cursor()?,
        limit,
    };
    let (items, cut) = state.store.logs.read().query(&query, MAX_PAGE_BYTES);
    let more = cut || items.len() == limit;
    // Serialized outside the lock, from the shared records.
    Ok(capped_page(items.iter().map(|r| &**r), more, |l, _| {
        l.seq.to_string()
    }))
}

/// Exception groups.
#[utoipa::path(get, path = "/exceptions", tag = "telemetry",
    params(("service" = Option<String>, Query, description = "Only this service"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of exception groups: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn exceptions(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["service", "limit", "cursor"])?;
    let (limit, offset) = (p.limit()?, p.cursor()?.unwrap_or(0));
    let all = state.store.exceptions.read().list(p.str("service"));
    Ok(offset_page(
        all,
        usize::try_from(offset).unwrap_or(usize::MAX),
        limit,
    ))
}

/// Metric series and their latest points.
#[utoipa::path(get, path = "/metrics", tag = "telemetry",
    params(("service" = Option<String>, Query, description = "Only this service"),
        ("name" = Option<String>, Query, description = "Only this metric"),
        ("points" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Points per series (default 60)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of series: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn metrics(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["service", "name", "limit", "cursor", "points"])?;
    let limit = p.limit()?;
    let offset = usize::try_from(p.cursor()?.unwrap_or(0)).unwrap_or(usize::MAX);
    let points = match p.number("points")? {
        None => 60,
        Some(n) if (1..=10_000).contains(&n) => usize::try_from(n).unwrap_or(60),
        Some(_) => return Err(Problem::bad_request("points must be between 1 and 10000")),
    };
    let query = MetricQuery {
        service: p.str("service"),
        name: p.str("name"),
        offset,
        limit,
        points,
    };
    let (items, total) = state.store.metrics.read().query(&query);
    let more = offset.saturating_add(items.len()) < total;
    Ok(capped_page(items, more, |_, i| {
        (offset + i + 1).to_string()
    }))
}

/// The platform's state: what it stores, its counters, retention, scrape targets.
#[utoipa::path(get, path = "/health", tag = "platform",
    responses((status = 200, description = "The platform's state", body = Object)))]
async fn health(State(state): State<AppState>) -> Response {
    let now = now_nanos();
    Json(serde_json::json!({
        "status": "UP",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(state.started_at),
        "uptime_secs": now.saturating_sub(state.started_at) / 1_000_000_000,
        "stored": state.store.counts(),
        "counters": state.store.stats.snapshot(),
        "retention": {
            "max_spans": state.store.retention.max_spans,
            "max_logs": state.store.retention.max_logs,
            "max_series": state.store.retention.max_series,
            "max_points_per_series": state.store.retention.max_points_per_series,
            "max_age_secs": state.store.retention.max_age_secs,
            "max_span_bytes": state.store.retention.max_span_bytes,
            "max_log_bytes": state.store.retention.max_log_bytes,
            "max_metric_bytes": state.store.retention.max_metric_bytes,
            "max_exception_bytes": state.store.retention.max_exception_bytes,
            "max_item_bytes": state.store.max_item_bytes(),
            "max_discovered_services": state.store.retention.max_discovered_services,
            "discovered_service_ttl_secs": state.store.retention.discovered_service_ttl_secs,
        },
        "durable": state.db.is_some(),
        "scrape_targets": state.scraper.statuses(),
    }))
    .into_response()
}

/// `GET /metrics`: the platform's own counters in Prometheus text format.
pub async fn self_metrics(State(state): State<AppState>) -> Response {
    let stats = serde_json::to_value(state.store.stats.snapshot()).unwrap_or_default();
    let counts = serde_json::to_value(state.store.counts()).unwrap_or_default();
    let mut out = String::new();
    type Help = fn(&str) -> Option<&'static str>;
    let families: [(&str, &str, &serde_json::Value, Help); 2] = [
        (
            "aiops_",
            "counter",
            &stats,
            crate::store::StatsSnapshot::help,
        ),
        (
            "aiops_stored_",
            "gauge",
            &counts,
            crate::store::StoredCounts::help,
        ),
    ];
    for (prefix, kind, value, help) in families {
        if let Some(map) = value.as_object() {
            for (k, v) in map {
                let suffix = if kind == "counter" { "_total" } else { "" };
                let name = format!("{prefix}{k}{suffix}");
                write_family(&mut out, &name, kind, help(k).unwrap_or("Undocumented."));
                out.push_str(&format!("{name} {v}\n"));
            }
        }
    }
    let refused = state.store.requests.refusals();
    let services_refused = state.store.services.read().refused();
    let undecodable = state
        .supervision
        .as_ref()
        .and_then(|s| s.db.as_ref())
        .map_or(0, |db| db.undecodable_rows());
    for (name, help, v) in [
        (
            "aiops_incident_rows_undecodable_total",
            "Stored open incidents that could not be decoded at start, set aside with status 'undecodable'.",
            undecodable,
        ),
        (
            "aiops_services_refused_total",
            "Telemetry of new services refused: the discovered-services cap was reached.",
            services_refused,
        ),
        (
            "aiops_request_series_refused_total",
            "Request-histogram series refused by the detection accounting's cap.",
            refused.series,
        ),
        (
            "aiops_request_services_refused_total",
            "Request facts of services past the detection accounting's cap.",
            refused.services,
        ),
    ] {
        write_family(&mut out, name, "counter", help);
        out.push_str(&format!("{name} {v}\n"));
    }
    let mut listeners = vec![("platform", &*state.listener)];
    if let Some(s) = &state.supervision {
        s.stats.render(&mut out);
        listeners.push(("gateway", &*s.stats.listener));
    }
    render_listeners(&mut out, &listeners);
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

/// One exposed series: name, type, help, and its value in the counts.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&aiods_serve::ListenerCounts) -> u64,
);

/// Appends the Prometheus exposition of each listener's counts as `aiops_listener_*` series
/// labelled `listener` (for example `platform`, `gateway`).
fn render_listeners(out: &mut String, listeners: &[(&str, &aiods_serve::ListenerStats)]) {
    let counts: Vec<(&str, aiods_serve::ListenerCounts)> =
        listeners.iter().map(|(n, s)| (*n, s.counts())).collect();
    let series: [Series; 6] = [
        (
            "connections_accepted_total",
            "counter",
            "connections accepted",
            |c| c.accepted,
        ),
        (
            "connections_refused_total",
            "counter",
            "connections closed at once: max_connections were open",
            |c| c.refused,
        ),
        (
            "header_timeouts_total",
            "counter",
            "connections closed: no complete request head within header_read_timeout_ms",
            |c| c.header_timeouts,
        ),
        (
            "idle_closed_total",
            "counter",
            "connections closed: no byte moved within idle_timeout_ms",
            |c| c.idle_closed,
        ),
        (
            "dropped_at_shutdown_total",
            "counter",
            "connections still open when the shutdown grace ran out",
            |c| c.dropped_at_shutdown,
        ),
        ("connections_open", "gauge", "connections open now", |c| {
            c.open
        }),
    ];
    for (name, kind, help, value) in series {
        out.push_str(&format!(
            "# HELP aiops_listener_{name} {help}\n# TYPE aiops_listener_{name} {kind}\n"
        ));
        for (listener, c) in &counts {
            out.push_str(&format!(
                "aiops_listener_{name}{{listener=\"{listener}\"}} {}\n",
                value(c)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn page(r: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&body).unwrap_or_default()
    }

    #[tokio::test]
    async fn pages_are_cut_by_their_size_with_a_cursor() {
        let items = vec!["a".repeat(10), "b".repeat(10), "c".repeat(10)];
        // Each item is 12 bytes serialized: two fit in 25.
        let p = page(capped_page_within(
            items.clone(),
            false,
            |_, i| (i + 1).to_string(),
            25,
        ))
        .await;
        assert_eq!(p["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(p["next_cursor"], "2");
        // A single item over the cap still makes a page of one.
        let p = page(capped_page_within(
            items.clone(),
            false,
            |_, i| (i + 1).to_string(),
            1,
        ))
        .await;
        assert_eq!(p["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(p["next_cursor"], "1");
        // Not cut: the cursor only when more follow.
        let p = page(capped_page_within(
            items.clone(),
            false,
            |_, i| (i + 1).to_string(),
            100,
        ))
        .await;
        assert_eq!(p["items"].as_array().map(Vec::len), Some(3));
        assert!(p["next_cursor"].is_null());
        let p = page(offset_page(items, 1, 1)).await;
        assert_eq!(p["items"][0], "b".repeat(10));
        assert_eq!(p["next_cursor"], "2");
    }
}
