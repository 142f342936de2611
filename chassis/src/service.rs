//! Running a service: configuration, telemetry, the chassis routes and layers, serving and
//! graceful shutdown. `#[aiods::service]` expands to a call of [`run`].

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::client::Client;
use crate::config::{ConfigError, Settings};
use crate::context::ServiceContext;
use crate::faults::FaultState;
use crate::health::HealthRegistry;
use crate::info::ServiceInfo;
use crate::layers::RequestLayer;
use crate::routes::{ChassisState, chassis_routes};

/// A boxed error, as returned by a failing service function.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a service function returns: its router, and the OpenAPI document of its routes.
pub type ServiceParts = (Router, Option<utoipa::openapi::OpenApi>);

/// Telemetry gets at least this long to drain at exit, even when draining requests used
/// the whole grace.
const FLUSH_AT_LEAST: Duration = Duration::from_millis(500);

/// Exit code for an invalid configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: u8 = 78;

/// What a `#[aiods::service]` function may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a `#[aiods::service]` function can return",
    label = "this return type is not supported",
    note = "return `axum::Router`, `utoipa_axum::router::OpenApiRouter`, or `aiods::Result` of one of them"
)]
pub trait IntoServiceRouter {
    /// Splits into the router and its OpenAPI document, or the error that stops the start.
    fn into_service_parts(self) -> Result<ServiceParts, BoxError>;
}

impl IntoServiceRouter for Router {
    fn into_service_parts(self) -> Result<ServiceParts, BoxError> {
        Ok((self, None))
    }
}

impl IntoServiceRouter for OpenApiRouter {
    fn into_service_parts(self) -> Result<ServiceParts, BoxError> {
        let (router, api) = self.split_for_parts();
        Ok((router, Some(api)))
    }
}

impl<T: IntoServiceRouter, E: Into<BoxError>> IntoServiceRouter for Result<T, E> {
    fn into_service_parts(self) -> Result<ServiceParts, BoxError> {
        self.map_err(Into::into)?.into_service_parts()
    }
}

/// The identity the macro gives a service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The name from the attribute, or the package name.
    pub name: &'static str,
    /// The package version.
    pub version: &'static str,
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] Box<ConfigError>),
    /// The service function failed.
    #[error("the service failed to start: {0}")]
    Service(#[source] BoxError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Telemetry could not be set up (an invalid `SENTRY_DSN`, say).
    #[error("invalid telemetry configuration: {0}")]
    Telemetry(#[from] crate::observability::TelemetryError),
    /// The service's routes clash with the chassis's.
    #[error("the service's routes clash with the chassis endpoints: {0}")]
    Routes(String),
    /// The runtime could not be built or the server failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl StartError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) | Self::Telemetry(_) => ExitCode::from(EXIT_CONFIG),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Builds a Tokio runtime and runs the service to completion; the body of the `main` that
/// `#[aiods::service]` generates.
pub fn run<F, Fut>(spec: ServiceSpec, service: F) -> ExitCode
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<ServiceParts, BoxError>>,
{
    crate::metrics::mark_start();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(spec, service)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "service failed");
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Runs the service on the current runtime until SIGTERM/SIGINT, then drains and returns.
pub async fn serve<F, Fut>(spec: ServiceSpec, service: F) -> Result<(), StartError>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<ServiceParts, BoxError>>,
{
    let name = crate::info::pick(
        std::env::var("OTEL_SERVICE_NAME").ok(),
        crate::otel::resource_attribute("service.name"),
        || spec.name.to_owned(),
    );
    // reqwest and sentry are built without a default TLS provider; ring is ours. An error
    // only means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Configuration first: an invalid value stops us before anything is bound.
    let settings = Arc::new(Settings::load().map_err(Box::new)?);
    let cfg = settings.chassis().clone();
    let info = Arc::new(ServiceInfo {
        name: name.clone(),
        version: spec.version.to_owned(),
        instance_id: crate::info::pick(
            cfg.instance_id.clone(),
            crate::otel::resource_attribute("service.instance.id"),
            || uuid::Uuid::new_v4().to_string(),
        ),
        start_time: now_rfc3339(),
        env: cfg.env.clone(),
    });
    let telemetry = crate::observability::init(&info, &cfg)?;
    let metrics = crate::metrics::install();
    let health = HealthRegistry::new(cfg.health_cache, cfg.health_timeout);
    if let Some(max_lag) = cfg.health.max_lag() {
        health.watch_runtime(max_lag);
    }
    let client = Client::new(&cfg.upstreams, cfg.client_timeout, &cfg.client)
        .map_err(|e| StartError::Service(Box::new(e)))?;
    let faults = Arc::new(FaultState::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    #[cfg(feature = "nats")]
    let messaging = crate::messaging::MessagingSlot::new(
        messaging_config(&settings)?,
        info.name.clone(),
        health.clone(),
        faults.clone(),
        stop_rx.clone(),
    );
    let ctx = ServiceContext {
        settings: settings.clone(),
        health: health.clone(),
        client,
        info: info.clone(),
        #[cfg(feature = "nats")]
        messaging: messaging.clone(),
    };

    let (user_router, user_api) = service(ctx).await.map_err(StartError::Service)?;
    let app = assemble(
        user_router,
        user_api,
        ChassisState {
            health: health.clone(),
            info: info.clone(),
            metrics,
        },
        faults,
        &cfg,
    )?;

    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(
        address = %local,
        port = local.port(),
        version = spec.version,
        instance_id = %info.instance_id,
        "service started"
    );

    tokio::spawn(wait_for_shutdown(
        health.clone(),
        cfg.shutdown_delay,
        stop_tx,
    ));
    let limits = crate::listener::ListenerLimits {
        header_read_timeout: cfg.server.header_read_timeout,
        idle_timeout: cfg.server.idle_timeout,
        max_connections: cfg.server.max_connections,
        shutdown_grace: cfg.shutdown_grace,
    };
    let draining = Arc::new(std::sync::OnceLock::new());
    let graceful = {
        let (mut rx, draining) = (stop_rx, draining.clone());
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
            let _ = draining.set(std::time::Instant::now());
        }
    };
    // Returns once every connection is closed, or the grace is over and the rest dropped.
    crate::listener::serve(listener, app, limits, graceful).await;
    // Consumers stopped fetching when the drain began; their in-flight messages finish and
    // are settled within what is left of the grace.
    #[cfg(feature = "nats")]
    {
        let spent = draining.get().map_or(Duration::ZERO, |t| t.elapsed());
        messaging
            .drain(cfg.shutdown_grace.saturating_sub(spent))
            .await;
    }
    // Telemetry (the exception queue included) drains within what is left of the grace.
    let spent = draining.get().map_or(Duration::ZERO, |t| t.elapsed());
    let flush_within = cfg.shutdown_grace.saturating_sub(spent).max(FLUSH_AT_LEAST);
    tracing::info!("service stopped");
    telemetry.shutdown_within(flush_within);
    Ok(())
}

/// Wires the service's router with the chassis's endpoints and layers.
fn assemble(
    user_router: Router,
    user_api: Option<utoipa::openapi::OpenApi>,
    state: ChassisState,
    faults: Arc<FaultState>,
    cfg: &crate::config::ChassisConfig,
) -> Result<Router, StartError> {
    let (mut chassis, chassis_api) = chassis_routes(state.clone());
    if cfg.faults.enabled {
        let token = cfg.faults.token.as_deref().unwrap_or_default();
        chassis = chassis.merge(crate::faults::admin_routes(faults.clone(), token));
        tracing::warn!(target: "aiods::faults", "fault injection is enabled at /admin/faults");
    }
    let mut api = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title(state.info.name.clone())
                .version(state.info.version.clone())
                .build(),
        )
        .build();
    if let Some(user_api) = user_api {
        let mut user_api = user_api;
        user_api.info = api.info.clone();
        api = user_api;
    }
    api.merge(chassis_api);
    crate::openapi::document_chassis_problems(&mut api);
    let docs: Router = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/openapi.json", api)
        .into();

    let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        user_router.merge(chassis).merge(docs)
    }))
    .map_err(|p| StartError::Routes(crate::exceptions::panic_message(p.as_ref())))?;
    // Handlers added to a stateless router stay boxed factories until a state is given:
    // without this, every request cloned its handler and applied the layer stack to it anew
    // (five allocations and ~3,000 instructions per request under callgrind, the overhead
    // benchmark's hello route). `axum::serve` does the same through `into_make_service`.
    let merged: Router = merged.with_state(());
    // One stack applied once: `Router::layer` boxes every route once per call, so separate
    // calls cost a boxed clone each per request. Outermost first: the request layer (span,
    // metrics, access log, exceptions, faults, problem+json) sees the answer the client gets.
    let stack = tower::ServiceBuilder::new()
        .layer(
            RequestLayer::new()
                .with_access_log(cfg.access_log)
                .with_probes(cfg.trace_probes)
                .with_faults(faults),
        )
        // axum's extractors apply this very limit when none is set: setting it anyway put one
        // more extension in every request (an allocation, ~300 instructions under callgrind).
        .option_layer(
            (cfg.body_limit != crate::config::AXUM_BODY_LIMIT)
                .then(|| DefaultBodyLimit::max(cfg.body_limit)),
        );
    Ok(merged.layer(stack))
}

/// The `[messaging]` section, checked.
#[cfg(feature = "nats")]
fn messaging_config(settings: &Settings) -> Result<crate::messaging::MessagingConfig, StartError> {
    let config: crate::messaging::MessagingConfig =
        settings.section_or_default("messaging").map_err(Box::new)?;
    config.validate().map_err(|reason| {
        StartError::Config(Box::new(ConfigError::OutOfRange {
            key: "messaging",
            reason,
        }))
    })?;
    Ok(config)
}

async fn wait_for_shutdown(health: HealthRegistry, delay: Duration, stop: watch::Sender<bool>) {
    let signal = aiods_serve::shutdown_signal().await.name();
    health.set_shutting_down();
    tracing::info!(
        signal,
        "shutdown started: readiness is DOWN, draining requests"
    );
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let _ = stop.send(true);
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
