//! The platform's shared state and its HTTP router (receivers, management API, own health).

pub mod api;
pub mod dashboard;
pub mod incidents;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::common::problem::Problem;
use crate::common::token::secret_eq;
use crate::receive::Receivers;
use crate::receive::scrape::Scraper;
use crate::store::Store;
use crate::store::durable::Database;

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
    /// What the listener did (connections accepted, refused, timed out).
    pub listener: Arc<aiods_serve::ListenerStats>,
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

/// The full router: the receivers (with their own state), the management API, the dashboard
/// and the platform's own health and metrics.
pub fn router(state: AppState, receivers: Arc<Receivers>, limits: Limits) -> Router {
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
        .merge(crate::receive::router(receivers))
        .merge(api)
        .route("/health/live", get(live))
        .route("/health/ready", get(live))
        .route("/metrics", get(crate::web::api::self_metrics))
        .merge(crate::web::dashboard::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // Receivers drain a little past the limit before answering 413 (see `read_body`);
        // beyond that, the connection is refused outright.
        .layer(RequestBodyLimitLayer::new(
            limits
                .max_body_bytes
                .saturating_add(crate::receive::body::OVERSIZE_DRAIN_BYTES),
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
    let routes = crate::web::api::router()
        .merge(crate::web::incidents::router())
        .merge(crate::web::dashboard::api_router());
    let (router, mut doc) = utoipa_axum::router::OpenApiRouter::with_openapi(
        crate::web::openapi::PlatformApi::openapi(),
    )
    .nest("/api/v1", routes)
    .split_for_parts();
    crate::web::openapi::finish(&mut doc);
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
