//! [`ServiceContext`]: what a `#[aiods::service]` function can ask for.

use std::sync::Arc;

use crate::client::Client;
use crate::config::Settings;
use crate::health::HealthRegistry;
use crate::info::ServiceInfo;

/// The service's context: its configuration, readiness checks, HTTP client and identity.
/// Cheap to clone.
///
/// ```no_run
/// use aiods::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Greeting { word: String }
///
/// #[aiods::service(name = "greeter")]
/// async fn main(ctx: ServiceContext) -> aiods::Result<Router> {
///     let greeting: Greeting = ctx.settings().section("greeting")?;
///     ctx.health().register("always", || async { Ok::<(), String>(()) });
///     let word = greeting.word;
///     Ok(Router::new().route("/", get(move || async move { word })))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub(crate) settings: Arc<Settings>,
    pub(crate) health: HealthRegistry,
    pub(crate) client: Client,
    pub(crate) info: Arc<ServiceInfo>,
    #[cfg(feature = "nats")]
    pub(crate) messaging: crate::messaging::MessagingSlot,
}

impl ServiceContext {
    /// The layered configuration.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The readiness check registry.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// The instrumented client for calling other services.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The service's name, version and instance.
    pub fn info(&self) -> &ServiceInfo {
        &self.info
    }

    /// The messaging connection (feature `nats`), made on the first call from `[messaging]`:
    /// its readiness check (`nats`) is registered and its consumers stop and drain on SIGTERM.
    /// An error when `messaging.url` is not set or the broker cannot be reached.
    ///
    /// See [`crate::messaging`] for an example.
    #[cfg(feature = "nats")]
    pub async fn messaging(
        &self,
    ) -> Result<crate::messaging::Messaging, crate::messaging::MessagingError> {
        self.messaging.get().await
    }
}

impl From<crate::config::ConfigError> for crate::Error {
    fn from(e: crate::config::ConfigError) -> Self {
        crate::Error::internal(e)
    }
}

/// A value that a `#[aiods::service]` function can take as an argument.
#[diagnostic::on_unimplemented(
    message = "a `#[aiods::service]` function cannot be given a `{Self}`",
    label = "this argument cannot be provided",
    note = "take `aiods::ServiceContext`, `aiods::Settings`, `aiods::HealthRegistry` or `aiods::Client`"
)]
pub trait FromServiceContext: Sized {
    /// Extracts the value from the context.
    fn from_context(ctx: &ServiceContext) -> Self;
}

impl FromServiceContext for ServiceContext {
    fn from_context(ctx: &ServiceContext) -> Self {
        ctx.clone()
    }
}

impl FromServiceContext for HealthRegistry {
    fn from_context(ctx: &ServiceContext) -> Self {
        ctx.health.clone()
    }
}

impl FromServiceContext for Client {
    fn from_context(ctx: &ServiceContext) -> Self {
        ctx.client.clone()
    }
}

impl FromServiceContext for Arc<Settings> {
    fn from_context(ctx: &ServiceContext) -> Self {
        ctx.settings.clone()
    }
}

impl FromServiceContext for Settings {
    fn from_context(ctx: &ServiceContext) -> Self {
        ctx.settings.as_ref().clone()
    }
}
