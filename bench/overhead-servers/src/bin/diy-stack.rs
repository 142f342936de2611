//! The hello route with the stack a Rust user would wire by hand: tower-http `TraceLayer`, a
//! `metrics` histogram middleware with a Prometheus exporter, and a JSON `tracing-subscriber`
//! access log on stdout. With `OTEL_EXPORTER_OTLP_ENDPOINT` set it also exports every request's
//! span through `tracing-opentelemetry` and the SDK's batch exporter, and with `SENTRY_DSN` it
//! adds `sentry-tower` — the hand-wired equivalent of the chassis with everything on.
//!
//! Sentry does the same work as in the chassis: errors only. `sentry-tower` gives each request
//! its own hub with the request's data (so an error carries its request, as the chassis's
//! capture carries route and trace id), and no performance transaction is started: the
//! chassis sends none either, so a 200 sends nothing to Sentry in both stacks.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Built before the runtime: the exporter's blocking HTTP client must not live in it.
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(_) => {
            // Protobuf, as the chassis sends: with both of the crate's HTTP encodings built
            // in, its default here is (pretty-printed) JSON.
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .map_err(std::io::Error::other)?;
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .build(),
            )
        }
        Err(_) => None,
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("diy")));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer().json())
        .with(otel_layer)
        .init();
    let _sentry = std::env::var("SENTRY_DSN").ok().map(|dsn| {
        let mut options = sentry::ClientOptions::new();
        options.dsn = dsn.parse().ok();
        sentry::init(options)
    });
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(_sentry.is_some()));
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    result
}

async fn serve(sentry_on: bool) -> std::io::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let app = Router::new()
        .route("/hello/{name}", get(hello))
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .layer(middleware::from_fn(track_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(tower::util::option_layer(
            sentry_on.then(sentry::integrations::tower::SentryHttpLayer::new),
        ))
        .layer(tower::util::option_layer(sentry_on.then(
            sentry::integrations::tower::NewSentryLayer::new_from_top,
        )));
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
