//! The platform's shared state and its HTTP router (receivers, management API, own health).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::db::Database;
use crate::ingest::{otlp, secret_eq, sentry};
use crate::problem::Problem;
use crate::scrape::Scraper;
use crate::store::Store;

/// Everything handlers share. Part 2 (supervisor, incidents) adds its parts here.
#[derive(Debug)]
pub struct PlatformShared {
    /// Telemetry storage.
    pub store: Arc<Store>,
    /// The durable database, when open.
    pub db: Option<Database>,
    /// Prometheus scrape targets and their status.
    pub scraper: Arc<Scraper>,
    /// Bearer token for `/api/v1/*`.
    pub api_token: String,
    /// Ingest keys: accepted as `Authorization: Bearer` on OTLP and as Sentry public keys.
    pub ingest_keys: Vec<String>,
    /// OTLP ingest key: (header name, value), the older form beside `ingest_keys`.
    pub otlp_ingest_key: Option<(String, String)>,
    /// Accepted Sentry public keys (with `ingest_keys`; both empty: any).
    pub sentry_keys: Vec<String>,
    /// What the listener did (connections accepted, refused, timed out).
    pub listener: Arc<crate::listener::ListenerStats>,
    /// Accepted Sentry project ids.
    pub sentry_projects: HashSet<u64>,
    /// Largest body as sent.
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Start time, nanoseconds since the epoch.
    pub started_at: u64,
    /// The supervisor (instances, gateway, incidents), when the topology has services.
    pub supervision: Option<Arc<crate::supervisor::Supervision>>,
}

/// Handler state.
pub type AppState = Arc<PlatformShared>;

/// Request limits applied to every route.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body as sent.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The full router.
pub fn router(state: AppState, limits: Limits) -> Router {
    let (api, doc) = api_router();
    let api = api.layer(middleware::from_fn_with_state(state.clone(), require_token));
    let doc = Arc::new(doc);
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/logs", post(otlp::logs))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/api/{project_id}/envelope/", post(sentry::envelope))
        .route("/api/{project_id}/envelope", post(sentry::envelope))
        .route("/api/{project_id}/store/", post(sentry::store))
        .route("/api/{project_id}/store", post(sentry::store))
        .merge(api)
        .route("/health/live", get(live))
        .route("/health/ready", get(live))
        .route("/metrics", get(crate::api::self_metrics))
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // Receivers drain a little past the limit before answering 413 (see `read_body`);
        // beyond that, the connection is refused outright.
        .layer(RequestBodyLimitLayer::new(
            limits
                .max_body_bytes
                .saturating_add(crate::ingest::body::OVERSIZE_DRAIN_BYTES),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The `/api/v1` routes (without the token check) and the OpenAPI document describing exactly
/// those routes, both made from the same route declarations.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    let routes = crate::api::router()
        .merge(crate::api_incidents::router())
        .merge(crate::dashboard::api_router());
    let (router, mut doc) =
        utoipa_axum::router::OpenApiRouter::with_openapi(crate::openapi::PlatformApi::openapi())
            .nest("/api/v1", routes)
            .split_for_parts();
    crate::openapi::finish(&mut doc);
    (router, doc)
}

async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "UP" }))
}

async fn not_found(req: Request) -> Problem {
    Problem::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        None => Problem::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <AIOPS_API_TOKEN>",
        )
        .into_response(),
        Some(t) if secret_eq(t, &state.api_token) => next.run(req).await,
        Some(_) => Problem::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response(),
    }
}
