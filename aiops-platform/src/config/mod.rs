//! The topology file (`aiods.toml`): the platform's own settings and the services it watches.
//!
//! ```toml
//! [platform]
//! listen = "127.0.0.1:4318"
//! data_dir = ".aiops"
//! api_token = "change-me"
//! scrape_interval_ms = 1000
//!
//! [[service]]
//! name = "order"
//! url = "http://127.0.0.1:8081"
//! ```
//!
//! Unknown keys are rejected, so a typo is reported instead of silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;

pub mod topology;

/// Discovered services kept at most, unless the topology says otherwise.
pub const DEFAULT_MAX_DISCOVERED: usize = 200;

/// The label a Service selects on and the ReplicaSet does not: removing it routes a pod away
/// (a `[service.kubernetes] selector` must not use it).
pub const SERVING_LABEL: &str = "aiods.dev/serving";

pub use topology::{
    Balance, BurnAlert, DetectionConfig, ErrorBurnAction, GatewayConfig, HealthConfig,
    IncidentsConfig, RecoveryConfig, RecoveryMode, ScaleConfig, SloConfig,
};

/// Errors while reading or checking the topology file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a topology (syntax, type or unknown key).
    #[error("invalid topology file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        message: String,
    },
    /// The file parsed but a value is unusable.
    #[error("invalid topology: {0}")]
    Invalid(String),
}

/// The whole topology file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// `[platform]`: the platform's own settings.
    #[serde(default)]
    pub platform: PlatformConfig,
    /// `[[service]]`: the services the platform watches.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// `[gateway]`: the reverse proxy in front of supervised services.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[incidents]`: default recovery mode and webhook.
    #[serde(default)]
    pub incidents: IncidentsConfig,
}

impl Topology {
    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a topology from TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let topology: Topology = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        topology.validate()?;
        Ok(topology)
    }

    /// Checks values that the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for service in &self.services {
            if service.name.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "a [[service]] has an empty name".into(),
                ));
            }
            if !seen.insert(service.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "service {:?} is declared twice",
                    service.name
                )));
            }
            for target in service.scrape_targets() {
                if !(target.starts_with("http://") || target.starts_with("https://")) {
                    return Err(ConfigError::Invalid(format!(
                        "service {:?}: scrape target {target:?} must be an http(s) URL",
                        service.name
                    )));
                }
            }
        }
        let names: std::collections::HashSet<&str> =
            self.services.iter().map(|s| s.name.as_str()).collect();
        for service in &self.services {
            for dep in &service.depends_on {
                if !names.contains(dep.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "service {:?} depends on unknown service {dep:?}",
                        service.name
                    )));
                }
            }
            for route in &service.routes {
                if !route.starts_with('/') {
                    return Err(ConfigError::Invalid(format!(
                        "service {:?}: route {route:?} must start with '/'",
                        service.name
                    )));
                }
            }
            if let Some(k) = &service.kubernetes
                && let Err(what) = k.validate(service)
            {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: {what}",
                    service.name
                )));
            }
            if service.command.is_empty() && !service.routes.is_empty() && service.url.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "service {:?} has routes but neither a command nor a url",
                    service.name
                )));
            }
            if service.replicas == 0 && !service.command.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: replicas must be at least 1",
                    service.name
                )));
            }
            if let Some(what) = service.detection.replaced_keys() {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: {what}",
                    service.name
                )));
            }
            if let Err(what) = service.slo.validate() {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: {what}",
                    service.name
                )));
            }
            if service.health.failure_threshold == 0 || service.health.ready_failure_threshold == 0
            {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: failure thresholds must be at least 1",
                    service.name
                )));
            }
        }
        let p = &self.platform;
        if p.max_body_bytes == 0 || p.max_decompressed_bytes == 0 {
            return Err(ConfigError::Invalid(
                "body size limits must be positive".into(),
            ));
        }
        if p.scrape_interval_ms < 100 {
            return Err(ConfigError::Invalid(
                "scrape_interval_ms must be at least 100".into(),
            ));
        }
        if p.header_read_timeout_ms == 0 || p.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "header_read_timeout_ms and max_connections must be positive".into(),
            ));
        }
        if p.ingest_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(ConfigError::Invalid("ingest_keys has an empty key".into()));
        }
        self.gateway.validate()?;
        if p.otlp_ingest_header.is_some() != p.otlp_ingest_key.is_some() {
            return Err(ConfigError::Invalid(
                "otlp_ingest_header and otlp_ingest_key must be set together".into(),
            ));
        }
        Ok(())
    }
}

/// `[platform]`: listener, storage, limits and security.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformConfig {
    /// The listener for receivers and API (default `127.0.0.1:4318`).
    pub listen: SocketAddr,
    /// Directory for durable data (default `.aiops`).
    pub data_dir: PathBuf,
    /// SQLite file (default `<data_dir>/aiops.db`).
    pub database: Option<PathBuf>,
    /// Bearer token for `/api/v1/*` (else `AIOPS_API_TOKEN`, else generated at start).
    pub api_token: Option<String>,
    /// Largest accepted request body, as sent (bytes).
    pub max_body_bytes: usize,
    /// Largest accepted request body after decompression (bytes).
    pub max_decompressed_bytes: usize,
    /// Timeout for any request (milliseconds).
    pub request_timeout_ms: u64,
    /// Longest wait for a complete request head on a connection, also the longest a
    /// keep-alive connection waits for its next request (milliseconds, default 10000).
    pub header_read_timeout_ms: u64,
    /// A connection with no byte read or written for this long is closed (milliseconds,
    /// default 60000; 0: never). Keep it above `request_timeout_ms`.
    pub idle_timeout_ms: u64,
    /// Most connections open at once; more are closed at once and counted
    /// (`aiops_listener_connections_refused_total`, default 1024).
    pub max_connections: usize,
    /// How long shutdown waits for open connections before closing them (milliseconds,
    /// default 5000); the supervised services are stopped after it.
    pub shutdown_grace_ms: u64,
    /// Interval between Prometheus scrapes (milliseconds).
    pub scrape_interval_ms: u64,
    /// Timeout of one scrape (milliseconds).
    pub scrape_timeout_ms: u64,
    /// Ingest keys: when any is set, OTLP requests must carry `Authorization: Bearer <key>`
    /// (what `OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<key>` sends) and Sentry
    /// requests one of them (or of `sentry_keys`) as their DSN public key. Checked before the
    /// body is read.
    pub ingest_keys: Vec<String>,
    /// Accept unauthenticated ingest on a non-loopback listener (default false: such a
    /// listener needs `ingest_keys`, or both `otlp_ingest_key` and `sentry_keys`).
    pub allow_open_ingest: bool,
    /// When set with `otlp_ingest_key`, OTLP requests must carry this header with that value
    /// (an older form of `ingest_keys`, still accepted beside it).
    pub otlp_ingest_header: Option<String>,
    /// The value required in `otlp_ingest_header`.
    pub otlp_ingest_key: Option<String>,
    /// Sentry DSN public keys accepted; empty accepts any key.
    pub sentry_keys: Vec<String>,
    /// Sentry project ids accepted (default `[1]`), besides each service's `sentry_project`.
    pub sentry_projects: Vec<u64>,
    /// Retention of recent telemetry in memory.
    pub retention: RetentionConfig,
    /// `[platform.kubernetes]`: discovery of annotated Deployments.
    pub kubernetes: PlatformKubernetesConfig,
}

/// `[platform.kubernetes]`: every Deployment annotated `aiods.dev/watch: "true"` in these
/// namespaces becomes a service, unless a `[[service]]` has its name: listed at start, then
/// watched (annotated later: added; deleted or un-annotated: let go).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformKubernetesConfig {
    /// The namespaces searched.
    pub watch_namespaces: Vec<String>,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            data_dir: PathBuf::from(".aiops"),
            database: None,
            api_token: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
            shutdown_grace_ms: 5_000,
            scrape_interval_ms: 1_000,
            scrape_timeout_ms: 2_000,
            ingest_keys: Vec::new(),
            allow_open_ingest: false,
            otlp_ingest_header: None,
            otlp_ingest_key: None,
            sentry_keys: Vec::new(),
            sentry_projects: vec![1],
            retention: RetentionConfig::default(),
            kubernetes: PlatformKubernetesConfig::default(),
        }
    }
}

impl PlatformConfig {
    /// The limits of the platform's listener.
    pub fn listener_limits(&self) -> aiods_serve::ListenerLimits {
        aiods_serve::ListenerLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }

    /// What is left open on OTLP and Sentry ingest (empty: both need a key).
    pub fn open_ingest(&self) -> Vec<&'static str> {
        let mut open = Vec::new();
        if self.ingest_keys.is_empty() && self.otlp_ingest_key.is_none() {
            open.push("OTLP");
        }
        if self.ingest_keys.is_empty() && self.sentry_keys.is_empty() {
            open.push("Sentry");
        }
        open
    }

    /// The SQLite file path.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("aiops.db"))
    }
}

const MIB: usize = 1024 * 1024;

/// `[platform.retention]`: how much recent telemetry is kept in memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Most spans kept.
    pub max_spans: usize,
    /// Most log records kept.
    pub max_logs: usize,
    /// Most metric series kept.
    pub max_series: usize,
    /// Most points kept per series.
    pub max_points_per_series: usize,
    /// Oldest age of anything kept (seconds).
    pub max_age_secs: u64,
    /// Most exception groups kept in memory (all are in SQLite).
    pub max_exception_groups: usize,
    /// Most services known only from their telemetry (no topology entry); telemetry of
    /// further new names is refused and counted (`aiops_services_refused_total`).
    pub max_discovered_services: usize,
    /// A discovered service with no telemetry for this long (seconds) is forgotten, so its
    /// place under `max_discovered_services` is free again; declared services never are.
    pub discovered_service_ttl_secs: u64,
    /// Bytes of log records kept at most (estimated), oldest evicted first.
    pub max_log_bytes: usize,
    /// Bytes of spans kept at most (estimated), oldest evicted first.
    pub max_span_bytes: usize,
    /// Bytes of metric series and their points kept at most (estimated), least recently
    /// updated series evicted first.
    pub max_metric_bytes: usize,
    /// Bytes of exception groups (with their sample events) kept in memory at most
    /// (estimated), least recently seen evicted first.
    pub max_exception_bytes: usize,
    /// Largest single item (log record, span, exception event, metric labels) accepted
    /// (estimated bytes); larger ones are rejected and counted. At most 1 MiB.
    pub max_item_bytes: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_spans: 200_000,
            max_logs: 200_000,
            max_series: 50_000,
            max_points_per_series: 360,
            max_age_secs: 3_600,
            max_exception_groups: 10_000,
            max_discovered_services: DEFAULT_MAX_DISCOVERED,
            discovered_service_ttl_secs: 3_600,
            max_log_bytes: 32 * MIB,
            max_span_bytes: 32 * MIB,
            max_metric_bytes: 32 * MIB,
            max_exception_bytes: 16 * MIB,
            max_item_bytes: MIB,
        }
    }
}

/// `[[service]]`: one watched service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Its name, as in `service.name` / the Sentry `service` tag.
    pub name: String,
    /// Its base URL (scraped at `<url><metrics_path>` unless `scrape` is given).
    #[serde(default)]
    pub url: Option<String>,
    /// Explicit scrape URLs (full URLs of `/metrics` endpoints).
    #[serde(default)]
    pub scrape: Vec<String>,
    /// Path of the metrics endpoint under `url` (default `/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// A Sentry project id for this service's DSN.
    #[serde(default)]
    pub sentry_project: Option<u64>,
    /// The program and its arguments; absent: not started by the platform (probed at `url`).
    #[serde(default)]
    pub command: Vec<String>,
    /// Instances to run (default 1).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Extra environment. Values may use `{service}`, `{index}`, `{port}`, `{data_dir}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The variable that tells an instance its port (default `AIODS_PORT`).
    #[serde(default = "default_port_env")]
    pub port_env: String,
    /// The variable naming each dependency's URL (default `AIODS_UPSTREAMS__{NAME}`; `{NAME}`
    /// is the dependency's name upper-cased with `-` as `_`, `{name}` as written).
    #[serde(default = "default_upstream_env")]
    pub upstream_env: String,
    /// Working directory (default: the platform's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Services this one calls (for upstream URLs and root-cause correlation).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Gateway path prefixes routed to this service (`["/orders"]`).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Health probing.
    #[serde(default)]
    pub health: HealthConfig,
    /// Recovery policy.
    #[serde(default)]
    pub recovery: RecoveryConfig,
    /// Request-level detectors.
    #[serde(default)]
    pub detection: DetectionConfig,
    /// Objectives: availability and latency, with their burn alerts.
    #[serde(default)]
    pub slo: SloConfig,
    /// Scale out on saturation and back in (default off).
    #[serde(default)]
    pub scale: ScaleConfig,
    /// `[service.kubernetes]`: the service runs as pods on Kubernetes (instead of `command`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesServiceConfig>,
}

impl ServiceConfig {
    /// A service with `name` and every other key at its default (as if the topology said
    /// only `name = "..."`): the one definition of the defaults is serde's.
    pub fn named(name: &str) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        table.insert("name".to_owned(), toml::Value::String(name.to_owned()));
        Self::deserialize(table).map_err(|e| ConfigError::Invalid(format!("service {name}: {e}")))
    }
}

/// `[service.kubernetes]`: where a service's pods are.
///
/// ```toml
/// [service.kubernetes]
/// namespace = "aiods"
/// deployment = "order-service"   # or: selector = "app.kubernetes.io/name=order-service"
/// port = 8080                    # probed and scraped on each pod IP
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesServiceConfig {
    /// The namespace.
    pub namespace: String,
    /// The Deployment (its selector finds the pods; scaling patches it).
    #[serde(default)]
    pub deployment: Option<String>,
    /// A label selector, instead of a Deployment's (no scaling then).
    #[serde(default)]
    pub selector: Option<String>,
    /// The container port probed (`/health/live`, `/health/ready`) and scraped (`/metrics`).
    pub port: u16,
}

impl KubernetesServiceConfig {
    /// Checks what the types cannot.
    fn validate(&self, service: &ServiceConfig) -> Result<(), String> {
        if !service.command.is_empty() {
            return Err("give either command or [service.kubernetes], not both".into());
        }
        if self.deployment.is_none() && self.selector.is_none() {
            return Err("[service.kubernetes] needs a deployment or a selector".into());
        }
        if self.namespace.trim().is_empty() {
            return Err("[service.kubernetes] namespace is empty".into());
        }
        if self.port == 0 {
            return Err("[service.kubernetes] port must be positive".into());
        }
        let serving = SERVING_LABEL;
        if self
            .selector
            .as_deref()
            .is_some_and(|s| s.contains(serving))
        {
            return Err(format!(
                "[service.kubernetes] selector must not use {serving}: routing a pod away removes it"
            ));
        }
        if !service.routes.is_empty() {
            return Err(
                "gateway routes are not supported for [service.kubernetes]: route through its Kubernetes Service"
                    .into(),
            );
        }
        Ok(())
    }
}

fn default_replicas() -> u32 {
    1
}

fn default_port_env() -> String {
    "AIODS_PORT".into()
}

fn default_upstream_env() -> String {
    "AIODS_UPSTREAMS__{NAME}".into()
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

impl ServiceConfig {
    /// The URLs to scrape for this service.
    pub fn scrape_targets(&self) -> Vec<String> {
        if !self.scrape.is_empty() {
            return self.scrape.clone();
        }
        match &self.url {
            Some(url) => vec![format!(
                "{}{}",
                url.trim_end_matches('/'),
                self.metrics_path
            )],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let t = Topology::parse("").expect("empty is valid");
        assert_eq!(t.platform.listen.port(), 4318);
        assert!(t.services.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Topology::parse("[platform]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n")
            .expect_err("typo must fail");
        assert!(err.to_string().contains("listne"), "{err}");
        let err = Topology::parse("[[service]]\nname = \"a\"\nurll = \"x\"\n").expect_err("typo");
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn listener_and_ingest_settings() {
        let t = Topology::parse(
            "[platform]\nheader_read_timeout_ms = 500\nmax_connections = 8\n\
             ingest_keys = [\"k\"]\n[gateway]\nbody_read_timeout_ms = 100\n",
        )
        .expect("valid");
        let limits = t.platform.listener_limits();
        assert_eq!(limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(limits.max_connections, 8);
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert!(t.platform.open_ingest().is_empty());
        assert_eq!(t.gateway.body_read_timeout_ms, 100);
        let open = Topology::parse("[platform]\nsentry_keys = [\"s\"]\n").expect("valid");
        assert_eq!(open.platform.open_ingest(), ["OTLP"]);
        for bad in [
            "[platform]\nmax_connections = 0\n",
            "[platform]\ningest_keys = [\" \"]\n",
            "[gateway]\nmax_concurrent_requests = 0\n",
        ] {
            assert!(Topology::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn services_and_targets() {
        let t = Topology::parse(
            "[[service]]\nname = \"order\"\nurl = \"http://127.0.0.1:8081/\"\n\
             [[service]]\nname = \"kitchen\"\nscrape = [\"http://h:1/m\"]\n",
        )
        .expect("valid");
        assert_eq!(
            t.services[0].scrape_targets(),
            ["http://127.0.0.1:8081/metrics"]
        );
        assert_eq!(t.services[1].scrape_targets(), ["http://h:1/m"]);
        assert!(Topology::parse("[[service]]\nname = \"a\"\n[[service]]\nname = \"a\"\n").is_err());
    }

    #[test]
    fn kubernetes_services_parse_with_clear_errors() {
        let ok = "[[service]]\nname = \"order\"\n[service.kubernetes]\nnamespace = \"aiods\"\n\
                  deployment = \"order-service\"\nport = 8080\n";
        let t = Topology::parse(ok).expect("valid");
        let k = t.services[0].kubernetes.clone().expect("kubernetes");
        assert_eq!((k.namespace.as_str(), k.port), ("aiods", 8080));
        assert_eq!(k.deployment.as_deref(), Some("order-service"));
        let t = Topology::parse("[platform.kubernetes]\nwatch_namespaces = [\"aiods\"]\n")
            .expect("valid");
        assert_eq!(t.platform.kubernetes.watch_namespaces, ["aiods"]);
        assert!(Topology::parse("[platform.kubernetes]\nnamespaces = []\n").is_err());

        let cases = [
            (
                "command = [\"x\"]\n",
                "deployment = \"d\"\nport = 1\n",
                "not both",
            ),
            ("", "port = 1\n", "deployment or a selector"),
            (
                "",
                "selector = \"app=a,aiods.dev/serving=true\"\nport = 1\n",
                "must not use",
            ),
            ("", "deployment = \"d\"\nport = 0\n", "port"),
            (
                "routes = [\"/a\"]\n",
                "deployment = \"d\"\nport = 1\n",
                "routes",
            ),
            ("", "deployment = \"d\"\nport = 1\nreplica = 2\n", "replica"),
        ];
        for (service, kube, expected) in cases {
            let text = format!(
                "[[service]]\nname = \"a\"\n{service}[service.kubernetes]\nnamespace = \"n\"\n{kube}"
            );
            let err = Topology::parse(&text).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_commented_example_parses() {
        let text = include_str!("../../examples/aiods.toml");
        let t = super::Topology::parse(text).expect("examples/aiods.toml is valid");
        assert_eq!(t.services.len(), 5);
        assert_eq!(t.services[0].depends_on.len(), 4);
        // Scaling is documented there but off.
        assert_eq!(t.services[0].scale.max_replicas, 0);
        assert_eq!(t.services[0].scale.cooldown_ms, 5000);
        assert_eq!(t.services[1].scale.max_replicas, 0);
    }
}
