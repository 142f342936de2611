//! Incident routes of the management API: `incidents`, `incidents/{id}`,
//! `incidents/{id}/approve`, `report`, `instances`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::common::problem::Problem;
use crate::incident::IncidentStatus;
use crate::supervisor::{ApproveError, Supervision};
use crate::web::AppState;
use crate::web::api::offset_page;

/// The routes (nested under `/api/v1`, behind the token check).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(incidents))
        .routes(routes!(incident))
        .routes(routes!(approve))
        .routes(routes!(report))
        .routes(routes!(instances))
}

fn supervision(state: &AppState) -> Result<&std::sync::Arc<Supervision>, Problem> {
    state.supervision.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is not running",
        )
    })
}

/// Incidents, paginated.
#[utoipa::path(get, path = "/incidents", tag = "incidents",
    params(("service" = Option<String>, Query, description = "Only this service's"),
        ("status" = Option<String>, Query, pattern = "^(open|resolved)?$", description = "`open` or `resolved`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of incidents: `items`, `next_cursor`", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"), (status = 503, description = "The supervisor is not running", body = Problem, content_type = "application/problem+json")))]
async fn incidents(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    const ALLOWED: [&str; 4] = ["service", "status", "limit", "cursor"];
    if let Some(k) = q.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(Problem::bad_request(format!(
            "unknown query parameter {k:?}; allowed: {}",
            ALLOWED.join(", ")
        )));
    }
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "status must be open or resolved, got {other:?}"
            )));
        }
    };
    let number = |k: &str, default: usize| -> Result<usize, Problem> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| Problem::bad_request(format!("{k} must be a non-negative integer"))),
        }
    };
    let limit = number("limit", 100)?;
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be 1 to 1000"));
    }
    let offset = number("cursor", 0)?;
    let service = q.get("service").filter(|s| !s.is_empty());
    let all: Vec<_> = supervision(&state)?
        .incidents()
        .into_iter()
        .filter(|i| service.is_none_or(|s| &i.service == s))
        .filter(|i| status.is_none_or(|s| i.status == s))
        .collect();
    Ok(offset_page(all, offset, limit))
}

/// One incident: its evidence, diagnosis and actions.
#[utoipa::path(get, path = "/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    responses((status = 200, description = "The incident", body = Object), (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"), (status = 503, description = "The supervisor is not running", body = Problem, content_type = "application/problem+json")))]
async fn incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    supervision(&state)?
        .incident(&id)
        .map(|i| Json(i).into_response())
        .ok_or_else(|| Problem::not_found(format!("no incident {id}")))
}

/// Approves the incident's pending action (the approver goes into the audit record).
#[utoipa::path(post, path = "/incidents/{id}/approve", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id"),
        ("x-aiops-user" = Option<String>, Header, max_length = 100, description = "Who approves, for the audit record")),
    responses((status = 200, description = "The incident, its action approved", body = Object), (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing awaits approval", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The supervisor is not running or stopping", body = Problem, content_type = "application/problem+json")))]
async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    // Who approved goes into the audit record; the token proved the right to.
    let by = headers
        .get("x-aiops-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .map_or_else(|| "api".to_owned(), |u| format!("api:{u}"));
    match supervision(&state)?.approve(&id, &by).await {
        Ok(i) => Ok(Json(i).into_response()),
        Err(e @ ApproveError::NotFound(_)) => Err(Problem::not_found(e.to_string())),
        Err(e @ ApproveError::NothingPending(_)) => {
            Err(Problem::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ ApproveError::Stopped) => {
            Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
}

/// Per-service MTTD, MTTR and downtime over the incidents.
#[utoipa::path(get, path = "/report", tag = "incidents",
    responses((status = 200, description = "The report and its definitions", body = Object), (status = 503, description = "The supervisor is not running", body = Problem, content_type = "application/problem+json")))]
async fn report(State(state): State<AppState>) -> Result<Response, Problem> {
    let s = supervision(&state)?;
    let incidents = s.incidents();
    let services = crate::incident::report(incidents.iter());
    let all = crate::incident::report(
        incidents
            .iter()
            .map(|i| {
                let mut i = i.clone();
                "all".clone_into(&mut i.service);
                i
            })
            .collect::<Vec<_>>()
            .iter(),
    );
    Ok(Json(serde_json::json!({
        "services": services,
        "total": all.into_iter().next(),
        "definitions": {
            "mttd": "detection - failure start (first failed request or probe, or process exit)",
            "mttr": "first successful request or probe after the repair - detection",
            "downtime": "first success after the repair - failure start",
        }
    }))
    .into_response())
}

/// The supervised instances and the gateway's address.
#[utoipa::path(get, path = "/instances", tag = "incidents",
    responses((status = 200, description = "The gateway and the instances", body = Object), (status = 503, description = "The supervisor is not running", body = Problem, content_type = "application/problem+json")))]
async fn instances(State(state): State<AppState>) -> Result<Response, Problem> {
    let s = supervision(&state)?;
    Ok(Json(serde_json::json!({
        "gateway": s.gateway_url(),
        "items": s.instances(),
    }))
    .into_response())
}
