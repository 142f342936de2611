//! A telemetry sink for the overhead benchmark: accepts OTLP/HTTP and Sentry envelope posts,
//! reads each body whole and answers 200, as a collector would, at the least cost.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let app = Router::new()
        .route("/v1/traces", post(accept))
        .route("/v1/logs", post(accept))
        .route("/v1/metrics", post(accept))
        .route("/api/{project}/envelope/", post(accept));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn accept(body: Bytes) -> &'static str {
    std::hint::black_box(body.len());
    "{}"
}
