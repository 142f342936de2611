//! Management API under `/api/v1/` (JSON, bearer token, paginated with `limit` + `cursor`).
//!
//! Lists answer `{"items": [...], "next_cursor": "…" | null}`; pass `next_cursor` back as
//! `cursor` for the next page. A page holds at most [`MAX_LIMIT`] items and
//! [`MAX_PAGE_BYTES`] bytes of items (at least one item): a page cut short by its size has a
//! `next_cursor` like any other. Bad parameters answer 400 `application/problem+json`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::exposition::write_family;
use crate::problem::Problem;
use crate::store::{LogQuery, MetricQuery, Severity, now_nanos, rfc3339};

const DEFAULT_LIMIT: usize = 100;
/// Most items in a page (`limit` above it is a 400).
pub const MAX_LIMIT: usize = 1000;
/// Most bytes of items in a page, as serialized (a page always holds one item when any
/// matches: no stored item is larger than [`crate::store::MAX_ITEM_BYTES`]).
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The `/api/v1` routes (the token check is added by the caller).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(services))
        .route("/traces", get(traces))
        .route("/traces/{trace_id}", get(trace))
        .route("/logs", get(logs))
        .route("/exceptions", get(exceptions))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
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

fn valid_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

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

async fn traces(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let p = Params::new(q, &["service", "limit", "cursor"])?;
    let limit = p.limit()?;
    let items = state
        .store
        .traces
        .read()
        .list(p.str("service"), p.cursor()?, limit);
    let more = items.len() == limit;
    Ok(capped_page(items, more, |t, _| t.seq.to_string()))
}

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
    crate::listener::render(&mut out, &listeners);
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
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
