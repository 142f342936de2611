//! The chassis's own endpoints: health, metrics, info, OpenAPI and its docs page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::health::{HealthRegistry, Status};
use crate::info::ServiceInfo;

#[derive(Clone)]
pub(crate) struct ChassisState {
    pub(crate) health: HealthRegistry,
    pub(crate) info: Arc<ServiceInfo>,
    pub(crate) metrics: Option<PrometheusHandle>,
}

#[derive(utoipa::OpenApi)]
#[openapi(tags((name = "chassis", description = "Endpoints every aiods service exposes")))]
struct ChassisApi;

/// The chassis router, and the OpenAPI document of its endpoints.
pub(crate) fn chassis_routes(state: ChassisState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ChassisApi::openapi())
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(health))
        .routes(routes!(info))
        .routes(routes!(prometheus_metrics))
        .with_state(state)
        .split_for_parts()
}

/// Liveness: 200 while the runtime runs its tasks in time, else 503 with the reason.
#[utoipa::path(get, path = "/health/live", tag = "chassis",
    responses((status = 200, description = "The process is live"), (status = 503, description = "The process is not live: its runtime stalled beyond the allowed lag, or it declared itself not live")))]
async fn live(State(s): State<ChassisState>) -> Response {
    let verdict = s.health.liveness();
    match verdict.reason() {
        None => Json(json!({"status": Status::Up})).into_response(),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": Status::Down, "error": error})),
        )
            .into_response(),
    }
}

/// Readiness: 200 when every readiness check passes, else 503 with each check's result.
#[utoipa::path(get, path = "/health/ready", tag = "chassis",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready: a check failed or the service is shutting down")))]
async fn ready(State(s): State<ChassisState>) -> Response {
    let readiness = s.health.readiness().await;
    let code = match readiness.status {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(readiness)).into_response()
}

/// Liveness and readiness together, like Spring Boot Actuator's `/health`.
#[utoipa::path(get, path = "/health", tag = "chassis",
    responses((status = 200, description = "Live and ready"), (status = 503, description = "Not live or not ready")))]
async fn health(State(s): State<ChassisState>) -> Response {
    let verdict = s.health.liveness();
    let live = if verdict.is_up() {
        Status::Up
    } else {
        Status::Down
    };
    let readiness = s.health.readiness().await;
    let overall = if live == Status::Up && readiness.status == Status::Up {
        Status::Up
    } else {
        Status::Down
    };
    let code = match overall {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "status": overall,
        "components": {
            "liveness": match verdict.reason() {
                None => json!({"status": live}),
                Some(error) => json!({"status": live, "error": error}),
            },
            "readiness": readiness,
        }
    });
    (code, Json(body)).into_response()
}

/// The service's name, version, instance id and start time.
#[utoipa::path(get, path = "/info", tag = "chassis",
    responses((status = 200, description = "Service identity", body = ServiceInfo)))]
async fn info(State(s): State<ChassisState>) -> Json<ServiceInfo> {
    Json(s.info.as_ref().clone())
}

/// Prometheus text exposition of the service's metrics.
#[utoipa::path(get, path = "/metrics", tag = "chassis",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn prometheus_metrics(State(s): State<ChassisState>) -> Response {
    match &s.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::render(handle),
        )
            .into_response(),
        None => crate::Error::unavailable("another metrics recorder is installed in this process")
            .into_response(),
    }
}
