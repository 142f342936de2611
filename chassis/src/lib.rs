//! # aiods — a microservice chassis for axum
//!
//! One attribute turns an axum router into an observable, self-describing service that the
//! aiods platform (or any OpenTelemetry / Prometheus / Sentry stack) can watch and repair:
//!
//! ```no_run
//! use aiods::prelude::*;
//!
//! #[aiods::service]
//! async fn main() -> Router {
//!     Router::new().route("/hello/{name}", get(hello))
//! }
//!
//! async fn hello(Path(name): Path<String>) -> String {
//!     format!("hello {name}")
//! }
//! ```
//!
//! The generated `main` loads the configuration, starts JSON logging and metrics, calls your
//! function, adds the chassis endpoints and layers, serves on `AIODS_HOST:AIODS_PORT`, and
//! drains gracefully on SIGTERM/SIGINT. Every service then answers:
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /health/live` | 200 `{"status":"UP"}` while the runtime runs its tasks in time ([`liveness`]) |
//! | `GET /health/ready` | 200 when every readiness check passes, else 503 with each check |
//! | `GET /health` | both, like Spring Boot Actuator |
//! | `GET /metrics` | Prometheus text, HTTP metrics per the OpenTelemetry conventions |
//! | `GET /openapi.json`, `GET /docs` | OpenAPI 3.1 of the service, and a docs page |
//! | `GET /info` | name, version, instance id, start time |
//!
//! ## Taking the context, failing at start
//!
//! The function may take a [`ServiceContext`] (or any [`FromServiceContext`] type) and may
//! return [`Result`]; an error stops the start with a message and a non-zero exit:
//!
//! ```no_run
//! use aiods::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Db { path: String }
//!
//! #[aiods::service(name = "greeter")]
//! async fn main(ctx: ServiceContext) -> aiods::Result<Router> {
//!     let db: Db = ctx.settings().section("db")?;
//!     let path = db.path.clone();
//!     ctx.health().register("db-file", move || {
//!         let path = path.clone();
//!         async move { tokio::fs::metadata(&path).await.map(|_| ()) }
//!     });
//!     Ok(Router::new().route("/", get(|| async { "hi" })))
//! }
//! ```
//!
//! ## Errors
//!
//! Handlers return [`Error`], which becomes an RFC 7807 `application/problem+json` response;
//! axum's own rejections, unknown routes and panics come out the same way.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use aiods::prelude::*;
//! use axum::body::Body;
//! use tower::ServiceExt;
//!
//! async fn order(Path(id): Path<u64>) -> aiods::Result<String> {
//!     Err(aiods::Error::not_found(format!("no order {id}")))
//! }
//!
//! let app = Router::new().route("/orders/{id}", get(order));
//! let res = app
//!     .oneshot(axum::http::Request::get("/orders/7").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 404);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! # });
//! # mod tokio_test_shim {
//! #     pub fn run(f: impl std::future::Future<Output = ()>) {
//! #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! #     }
//! # }
//! ```
//!
//! ## Configuration
//!
//! `config/default.toml` < `config/{AIODS_ENV}.toml` < `AIODS_*` environment variables; see
//! [`ChassisConfig`] for the chassis's keys (`AIODS_HOST`, `AIODS_PORT`, …).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod exceptions;
pub mod faults;
pub mod health;
pub mod info;
pub mod layers;
pub mod listener;
pub mod liveness;
pub mod log_writer;
pub mod logging;
#[cfg(feature = "nats")]
pub mod messaging;
pub mod metrics;
pub mod observability;
mod openapi;
pub mod otel;
mod routes;
pub mod service;
pub mod telemetry;

pub use aiods_chassis_macros::service;
pub use client::Client;
pub use config::{ChassisConfig, ConfigError, Settings};
pub use context::{FromServiceContext, ServiceContext};
pub use error::{Error, Problem, Result};
pub use health::HealthRegistry;
pub use info::ServiceInfo;
pub use service::IntoServiceRouter;

// The exact versions we build against, so users never fight version skew.
pub use axum;
pub use opentelemetry;
pub use tokio;
pub use tracing;
pub use utoipa;
pub use utoipa_axum;

/// The names most services need: `use aiods::prelude::*;`.
pub mod prelude {
    pub use crate::{Client, Error, HealthRegistry, ServiceContext, Settings};
    pub use axum::Router;
    pub use axum::extract::{Json, Path, Query, State};
    pub use axum::routing::{delete, get, patch, post, put};
}

/// Used by the code `#[aiods::service]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::service::{BoxError, ServiceParts, ServiceSpec, run};

    /// Gives an argument of the service function from the context.
    pub fn from_context<T: crate::FromServiceContext>(ctx: &crate::ServiceContext) -> T {
        T::from_context(ctx)
    }

    /// Converts what the service function returned.
    pub fn into_parts<T: crate::IntoServiceRouter>(value: T) -> Result<ServiceParts, BoxError> {
        value.into_service_parts()
    }
}
