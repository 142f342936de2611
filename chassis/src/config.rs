//! Layered configuration: `config/default.toml` < `config/{AIODS_ENV}.toml` < `AIODS_*`
//! environment variables.
//!
//! The chassis reads its own keys ([`ChassisConfig`]) at the top level; a service reads its own
//! typed sections with [`Settings::section`]. Nested keys come from the environment with a
//! double underscore: `AIODS_ORDERS__MAX_ITEMS=10` sets `orders.max_items`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A configuration that could not be loaded or does not fit its type.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or the environment could not be read or parsed.
    #[error("invalid configuration: {0}")]
    Load(#[source] config::ConfigError),
    /// A key has a value its type does not accept.
    #[error("invalid configuration in `{section}`: {source}")]
    Invalid {
        /// The section (or `chassis` for top-level chassis keys).
        section: String,
        /// What is wrong, naming the key.
        #[source]
        source: config::ConfigError,
    },
    /// A value is of the right type but out of range.
    #[error("invalid configuration: `{key}` {reason}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

/// The loaded configuration of a service: the chassis keys and the service's own sections.
#[derive(Debug, Clone)]
pub struct Settings {
    raw: config::Config,
    chassis: ChassisConfig,
}

impl Settings {
    /// Loads the layers from the working directory (or `AIODS_CONFIG_DIR`) and the process
    /// environment.
    pub fn load() -> Result<Self, ConfigError> {
        let env = std::env::var("AIODS_ENV").unwrap_or_else(|_| "development".to_owned());
        let dir = std::env::var_os("AIODS_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let raw = config::Config::builder()
            .add_source(config::File::from(dir.join("default")).required(false))
            .add_source(config::File::from(dir.join(&env)).required(false))
            .add_source(
                config::Environment::with_prefix("AIODS")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(ConfigError::Load)?;
        Self::from_config(raw)
    }

    /// Builds settings from an already assembled [`config::Config`] (useful in tests).
    pub fn from_config(raw: config::Config) -> Result<Self, ConfigError> {
        let chassis: ChassisConfig =
            raw.clone()
                .try_deserialize()
                .map_err(|source| ConfigError::Invalid {
                    section: "chassis".into(),
                    source,
                })?;
        chassis.validate()?;
        Ok(Self { raw, chassis })
    }

    /// The chassis's own settings.
    pub fn chassis(&self) -> &ChassisConfig {
        &self.chassis
    }

    /// Reads the section `key` (for example `"orders"`) as `T`.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Orders { max_items: u32 }
    ///
    /// let raw = config::Config::builder()
    ///     .set_override("orders.max_items", 10).unwrap()
    ///     .build().unwrap();
    /// let settings = aiods::Settings::from_config(raw).unwrap();
    /// let orders: Orders = settings.section("orders").unwrap();
    /// assert_eq!(orders.max_items, 10);
    /// ```
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.raw
            .get::<T>(key)
            .map_err(|source| ConfigError::Invalid {
                section: key.to_owned(),
                source,
            })
    }

    /// Reads the section `key` as `T`, or `T::default()` when the section is absent.
    pub fn section_or_default<T: DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, ConfigError> {
        match self.raw.get::<T>(key) {
            Ok(v) => Ok(v),
            Err(config::ConfigError::NotFound(_)) => Ok(T::default()),
            Err(source) => Err(ConfigError::Invalid {
                section: key.to_owned(),
                source,
            }),
        }
    }

    /// The underlying layered configuration.
    pub fn raw(&self) -> &config::Config {
        &self.raw
    }
}

/// The body limit axum's extractors apply when no `DefaultBodyLimit` is set (`axum-core`'s
/// `DEFAULT_LIMIT`, not exported): the default here, and the one the service need not set
/// (`chassis/tests/errors.rs` checks a larger body is refused either way).
pub(crate) const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The chassis's own configuration keys (top level).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ChassisConfig {
    /// The address to bind (`AIODS_HOST`), default `127.0.0.1`.
    pub host: String,
    /// The port to bind (`AIODS_PORT`), default 8080; 0 picks a free port.
    pub port: u16,
    /// The environment name (`AIODS_ENV`), default `development`.
    pub env: String,
    /// The instance id (`AIODS_INSTANCE_ID`), default `service.instance.id` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else a random UUID.
    pub instance_id: Option<String>,
    /// How long in-flight requests may take to finish after SIGTERM (`AIODS_SHUTDOWN_GRACE`).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long to keep serving with readiness DOWN after SIGTERM before draining, so load
    /// balancers stop routing first (`AIODS_SHUTDOWN_DELAY`), default 0.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// How long readiness results are reused (`AIODS_HEALTH_CACHE`).
    #[serde(with = "humantime_serde")]
    pub health_cache: Duration,
    /// Default timeout of a readiness check (`AIODS_HEALTH_TIMEOUT`).
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Liveness settings (`[health]`, `AIODS_HEALTH__MAX_LAG_MS`).
    pub health: HealthConfig,
    /// Log format: `json` (default) or `text`.
    pub log_format: LogFormat,
    /// Whether each request is logged (`AIODS_ACCESS_LOG`), default true.
    pub access_log: bool,
    /// Whether the chassis's probe and scrape endpoints (`/health`, `/health/live`,
    /// `/health/ready`, `/metrics`) get server spans too (`AIODS_TRACE_PROBES`), default false.
    pub trace_probes: bool,
    /// Base URLs of other services, by name (`AIODS_UPSTREAMS__KITCHEN=http://…`).
    pub upstreams: std::collections::BTreeMap<String, String>,
    /// Timeout of a call through the chassis client (`AIODS_CLIENT_TIMEOUT`).
    #[serde(with = "humantime_serde")]
    pub client_timeout: Duration,
    /// Largest request body accepted, in bytes (`AIODS_BODY_LIMIT`).
    pub body_limit: usize,
    /// Fault injection (`AIODS_FAULTS__ENABLED`, `AIODS_FAULTS__TOKEN`).
    pub faults: crate::faults::FaultConfig,
    /// The chassis client's retries and circuit breaker (`[client]`).
    pub client: crate::client::ClientConfig,
    /// The listener's timeouts and connection cap (`[server]`, `AIODS_SERVER__*`).
    pub server: ServerConfig,
}

/// `[server]`: the listener's limits (`AIODS_SERVER__HEADER_READ_TIMEOUT=10s`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Longest wait for a complete request head, also the longest a keep-alive connection
    /// waits for its next request (`AIODS_SERVER__HEADER_READ_TIMEOUT`, default 10s).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed, whatever it is
    /// doing (`AIODS_SERVER__IDLE_TIMEOUT`, default 60s; 0s: never). Keep it above the
    /// slowest handler.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed at once and counted in
    /// `aiods_listener_connections_refused_total` (`AIODS_SERVER__MAX_CONNECTIONS`, default
    /// 4096; the process's open-file limit must allow them).
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// Liveness settings (`[health]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// How late the runtime may run its heartbeat task before liveness is DOWN, in
    /// milliseconds (`AIODS_HEALTH__MAX_LAG_MS`), default 1000; 0 turns the check off.
    pub max_lag_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            max_lag_ms: u64::try_from(crate::liveness::DEFAULT_MAX_LAG.as_millis()).unwrap_or(1000),
        }
    }
}

impl HealthConfig {
    /// The allowed lag, `None` when the check is off.
    pub fn max_lag(&self) -> Option<Duration> {
        (self.max_lag_ms > 0).then(|| Duration::from_millis(self.max_lag_ms))
    }
}

/// The format of log lines on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the telemetry contract).
    Json,
    /// Human-readable text, for development.
    Text,
}

impl Default for ChassisConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            env: "development".into(),
            instance_id: None,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            health_cache: Duration::from_millis(500),
            health_timeout: Duration::from_secs(2),
            health: HealthConfig::default(),
            log_format: LogFormat::Json,
            access_log: true,
            trace_probes: false,
            upstreams: Default::default(),
            client_timeout: Duration::from_secs(5),
            body_limit: AXUM_BODY_LIMIT,
            faults: Default::default(),
            client: Default::default(),
            server: ServerConfig::default(),
        }
    }
}

impl ChassisConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.host.parse::<std::net::IpAddr>().is_err() && self.host != "localhost" {
            return Err(ConfigError::OutOfRange {
                key: "host",
                reason: format!("must be an IP address or `localhost`, got {:?}", self.host),
            });
        }
        if self.shutdown_grace > Duration::from_secs(3600) {
            return Err(ConfigError::OutOfRange {
                key: "shutdown_grace",
                reason: "must be at most 1h".into(),
            });
        }
        if self.health.max_lag_ms > 3_600_000 {
            return Err(ConfigError::OutOfRange {
                key: "health.max_lag_ms",
                reason: "must be at most 3600000 (1h)".into(),
            });
        }
        if self.server.header_read_timeout.is_zero() || self.server.max_connections == 0 {
            return Err(ConfigError::OutOfRange {
                key: "server",
                reason: "header_read_timeout and max_connections must be positive".into(),
            });
        }
        if self.faults.enabled && self.faults.token.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::OutOfRange {
                key: "faults.token",
                reason: "is required when faults.enabled is true".into(),
            });
        }
        for (name, url) in &self.upstreams {
            if reqwest::Url::parse(url).is_err() {
                return Err(ConfigError::OutOfRange {
                    key: "upstreams",
                    reason: format!("`{name}` is not a URL: {url:?}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut b = config::Config::builder();
        for (k, v) in pairs {
            b = b.set_override(*k, *v).map_err(ConfigError::Load)?;
        }
        Settings::from_config(b.build().map_err(ConfigError::Load)?)
    }

    #[test]
    fn defaults_apply() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.chassis().port, 8080);
        assert_eq!(s.chassis().shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn invalid_port_names_the_key() {
        let err = settings(&[("port", "eighty")]).expect_err("not a port");
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn durations_are_human() {
        let s = settings(&[("shutdown_grace", "250ms")]).expect("valid");
        assert_eq!(s.chassis().shutdown_grace, Duration::from_millis(250));
    }

    #[test]
    fn the_liveness_lag_defaults_to_a_second_and_zero_turns_it_off() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.chassis().health.max_lag(), Some(Duration::from_secs(1)));
        let s = settings(&[("health.max_lag_ms", "0")]).expect("valid");
        assert_eq!(s.chassis().health.max_lag(), None);
        let err = settings(&[("health.max_lag_ms", "-5")]).expect_err("negative");
        assert!(err.to_string().contains("max_lag_ms"), "{err}");
    }

    #[test]
    fn server_limits_read_from_their_section() {
        let s = settings(&[
            ("server.header_read_timeout", "250ms"),
            ("server.max_connections", "8"),
        ])
        .expect("valid");
        assert_eq!(
            s.chassis().server.header_read_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(s.chassis().server.max_connections, 8);
        assert_eq!(s.chassis().server.idle_timeout, Duration::from_secs(60));
        assert!(settings(&[("server.max_connections", "0")]).is_err());
    }

    #[test]
    fn bad_upstream_url_is_refused() {
        let err = settings(&[("upstreams.kitchen", "not a url")]).expect_err("bad url");
        assert!(err.to_string().contains("kitchen"), "{err}");
    }
}
