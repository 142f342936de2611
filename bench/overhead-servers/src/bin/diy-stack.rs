//! The hello route with the stack a Rust user would wire by hand: tower-http `TraceLayer`, a
//! `metrics` histogram middleware with a Prometheus exporter, and a JSON `tracing-subscriber`
//! access log on stdout. With `OTEL_EXPORTER_OTLP_ENDPOINT` set it also exports every request's
//! span through `tracing-opentelemetry` and the SDK's batch exporter, and with `SENTRY_DSN` it
//! adds `sentry-tower` — the hand-wired equivalent of the chassis with everything on.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let app = Router::new()
        .route("/hello/{name}", get(hello))
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .layer(middleware::from_fn(track_metrics))
        .layer(TraceLayer::new_for_http().on_response(DefaultOnResponse::new().level(Level::INFO)));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_server_request_duration_seconds",
        "http_request_method" => method, "http_route" => route, "http_response_status_code" => status)
    .record(start.elapsed().as_secs_f64());
    response
}

async fn hello(Path(name): Path<String>) -> String {
    format!("hello {name}")
}
