//! Topology keys for supervision (part 2): how to run, probe, route and repair each service.
//!
//! These types hang off [`crate::config::ServiceConfig`] and [`crate::config::Topology`];
//! every section has defaults, so `command = [...]` alone is enough to supervise a program.
//! See `aiops-platform/examples/aiods.toml` for a commented example.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[[service]] health`: probe paths, timing and thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Liveness path (default `/health/live`); failing it `failure_threshold` times in a row
    /// means the instance is hung and is restarted.
    pub live: String,
    /// Readiness path (default `/health/ready`); an empty string means "use `live`".
    pub ready: String,
    /// Interval between probes (milliseconds, default 200).
    pub interval_ms: u64,
    /// Timeout of one probe (milliseconds, default 300).
    pub timeout_ms: u64,
    /// Consecutive liveness failures that declare an instance hung (default 3).
    pub failure_threshold: u32,
    /// Consecutive readiness failures that take an instance out of the gateway (default 2).
    pub ready_failure_threshold: u32,
    /// Time a fresh instance has to become ready before liveness counts (ms, default 10000).
    pub startup_grace_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            live: "/health/live".into(),
            ready: "/health/ready".into(),
            interval_ms: 200,
            timeout_ms: 300,
            failure_threshold: 3,
            ready_failure_threshold: 2,
            startup_grace_ms: 10_000,
        }
    }
}

impl HealthConfig {
    /// The readiness path, falling back to liveness.
    pub fn ready_path(&self) -> &str {
        if self.ready.is_empty() {
            &self.live
        } else {
            &self.ready
        }
    }

    /// Probe interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(10))
    }

    /// Probe timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(10))
    }
}

/// How recovery actions are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMode {
    /// Act at once (default).
    #[default]
    Auto,
    /// Record the action and wait for `POST /api/v1/incidents/{id}/approve`.
    Approval,
    /// Record what would be done, never act.
    DryRun,
}

/// What to do when a service burns its error budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBurnAction {
    /// Open the incident and notify only (default): a restart rarely fixes bad responses.
    #[default]
    Notify,
    /// Restart the service's instances one by one.
    Restart,
}

/// `[[service]] scale`: scale out on saturation, back in when quiet (off unless
/// `max_replicas` exceeds `replicas`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleConfig {
    /// Upper bound of instances (default 0: no scaling).
    pub max_replicas: u32,
    /// Saturated: gateway in-flight requests per ready instance above this (default 4).
    pub out_when_inflight_per_instance: f64,
    /// Or saturated: messages waiting for the service's durable consumers (JetStream pending
    /// plus unacknowledged, scraped from its instances) per live instance above this (default
    /// 100; 0: messages never scale).
    pub out_when_backlog_per_instance: f64,
    /// ... continuously for this long (ms, default 2000).
    pub out_for_ms: u64,
    /// Quiet (in-flight per ready instance at most half the threshold) this long: stop the
    /// newest extra instance (ms, default 30000).
    pub in_after_ms: u64,
    /// At most one scale action per service within this window (ms, default 5000).
    pub cooldown_ms: u64,
    /// At most this many scale-outs per service per `budget_window_secs` (default 6): a
    /// budget of its own, so scaling never spends the restarts crash repair needs.
    pub budget: u32,
    /// The scaling budget's window (s, default 600).
    pub budget_window_secs: u64,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        Self {
            max_replicas: 0,
            out_when_inflight_per_instance: 4.0,
            out_when_backlog_per_instance: 100.0,
            out_for_ms: 2000,
            in_after_ms: 30_000,
            cooldown_ms: 5000,
            budget: 6,
            budget_window_secs: 600,
        }
    }
}

/// `[[service]] recovery`: restart policy and its safety limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// `auto`, `approval` or `dry_run` (default: `[incidents] mode`).
    pub mode: Option<RecoveryMode>,
    /// Restart crashed instances (default true).
    pub restart: bool,
    /// First back-off after a repeated crash (ms, default 200); doubles per crash.
    pub backoff_initial_ms: u64,
    /// Back-off cap (ms, default 10000), like Kubernetes' CrashLoopBackOff.
    pub backoff_max_ms: u64,
    /// An instance up this long has its crash count reset (ms, default 10000).
    pub backoff_reset_ms: u64,
    /// At most this many restarts per service per `budget_window_secs` (default 10).
    pub restart_budget: u32,
    /// Window of the restart budget (seconds, default 300).
    pub budget_window_secs: u64,
    /// Grace between SIGTERM and SIGKILL when killing a hung instance (ms, default 300).
    pub kill_grace_ms: u64,
    /// What an error-rate burn triggers (default `notify`).
    pub on_error_burn: ErrorBurnAction,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            mode: None,
            restart: true,
            backoff_initial_ms: 200,
            backoff_max_ms: 10_000,
            backoff_reset_ms: 10_000,
            restart_budget: 10,
            budget_window_secs: 300,
            kill_grace_ms: 300,
            on_error_burn: ErrorBurnAction::Notify,
        }
    }
}

/// `[[service]] detection`: thresholds of the request-level detectors (the error budget and
/// its burn alerts are in [`SloConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Fewest requests in an alert's short window to judge its burn (default 10).
    pub min_requests: u64,
    /// Fewest bad requests (failed, or slower than the objective) in the short window for an
    /// alert to fire (default 3): one stray failure among a few requests is not an incident.
    pub min_bad: u64,
    /// An error episode is over after this long without a failed request (ms, default 2000).
    pub quiet_ms: u64,
    /// Latency degradation: the robust detector's score of the current second's mean
    /// latency, against the service's own recent seconds, at least this (default 0.3, about
    /// one in a thousand)…
    pub latency_score: f64,
    /// …and the short window's mean at least `latency_factor` × the baseline median
    /// (default 3)…
    pub latency_factor: f64,
    /// …and at least this much slower (ms, default 50).
    pub latency_min_ms: f64,
    /// Exception events of one group within 10 s that make a burst (default 5).
    pub exception_burst: u64,
    /// A new ERROR-level log template opens an incident (default true), once the service
    /// has been seen for `learning_secs`.
    pub new_error_templates: bool,
    /// Seconds a service is watched before new log templates count as news (default 60).
    pub learning_secs: u64,
    /// A message consumer instance with work waiting that finishes nothing for this long is
    /// stalled (ms, default 3000; 0 turns the detector off).
    pub consumer_stall_ms: u64,
    /// Messages dead-lettered within 60 s that make a poison-message incident (default 3;
    /// 0 turns the detector off).
    pub poison_dead_letters: u64,
    /// Share of a consumer's messages not acknowledged within 30 s (with at least
    /// `min_requests` messages and `min_bad` failures) that makes a consumer-error incident
    /// (default 0.5).
    pub consumer_error_ratio: f64,
    /// Replaced by `[service.slo]`: rejected with a message saying so.
    error_rate_threshold: Option<f64>,
    /// Replaced by `[service.slo] burn_alerts`.
    short_window_secs: Option<u64>,
    /// Replaced by `[service.slo] burn_alerts`.
    long_window_secs: Option<u64>,
    /// Replaced by `latency_score`.
    latency_mads: Option<f64>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            min_requests: 10,
            min_bad: 3,
            quiet_ms: 2_000,
            latency_score: 0.3,
            latency_factor: 3.0,
            latency_min_ms: 50.0,
            exception_burst: 5,
            new_error_templates: true,
            learning_secs: 60,
            consumer_stall_ms: 3_000,
            poison_dead_letters: 3,
            consumer_error_ratio: 0.5,
            error_rate_threshold: None,
            short_window_secs: None,
            long_window_secs: None,
            latency_mads: None,
        }
    }
}

impl DetectionConfig {
    /// What to change when a topology still uses keys of the first detection release.
    pub fn replaced_keys(&self) -> Option<String> {
        let mut found = Vec::new();
        if self.error_rate_threshold.is_some() {
            found.push("error_rate_threshold (use [service.slo] availability, e.g. 0.999)");
        }
        if self.short_window_secs.is_some() || self.long_window_secs.is_some() {
            found.push(
                "short_window_secs / long_window_secs (use [service.slo] burn_alerts = \
                 [{ long_secs = 30, short_secs = 5, factor = 14.4 }])",
            );
        }
        if self.latency_mads.is_some() {
            found.push("latency_mads (use latency_score, an anomaly score in [0, 1])");
        }
        (!found.is_empty()).then(|| format!("detection keys replaced: {}", found.join("; ")))
    }
}

/// One multiwindow burn-rate alert (the SRE workbook's shape): it fires while the error
/// budget burns at least `factor` times too fast over both windows.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BurnAlert {
    /// The long window (seconds): confirms the burn is real.
    pub long_secs: u64,
    /// The short window (seconds): confirms it is still happening.
    pub short_secs: u64,
    /// Burn-rate factor (error ratio ÷ error budget).
    pub factor: f64,
}

/// `[service.slo]`: the service's objectives, judged on its requests from telemetry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloConfig {
    /// Share of requests that must succeed (not 5xx), default 0.999.
    pub availability: f64,
    /// A request slower than this (ms) is bad for the latency objective (default: none,
    /// latency is then judged only against the service's own baseline).
    pub latency_ms: Option<f64>,
    /// Share of requests that must be faster than `latency_ms` (default 0.99).
    pub latency_target: f64,
    /// The burn alerts, default `[{30 s, 5 s, 14.4}, {300 s, 30 s, 6}]` (the workbook's
    /// 1 h/5 min at 14.4 and 6 h/30 min at 6, scaled down).
    pub burn_alerts: Vec<BurnAlert>,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability: 0.999,
            latency_ms: None,
            latency_target: 0.99,
            burn_alerts: vec![
                BurnAlert {
                    long_secs: 30,
                    short_secs: 5,
                    factor: 14.4,
                },
                BurnAlert {
                    long_secs: 300,
                    short_secs: 30,
                    factor: 6.0,
                },
            ],
        }
    }
}

impl SloConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.availability > 0.0 && self.availability < 1.0) {
            return Err("slo.availability must be between 0 and 1 (exclusive)".into());
        }
        if !(self.latency_target > 0.0 && self.latency_target < 1.0) {
            return Err("slo.latency_target must be between 0 and 1 (exclusive)".into());
        }
        if self.latency_ms.is_some_and(|l| l.is_nan() || l <= 0.0) {
            return Err("slo.latency_ms must be positive".into());
        }
        if self.burn_alerts.is_empty() {
            return Err("slo.burn_alerts needs at least one alert".into());
        }
        for a in &self.burn_alerts {
            if a.short_secs == 0 || a.short_secs > a.long_secs || a.long_secs > 300 {
                return Err(format!(
                    "slo.burn_alerts: need 0 < short_secs <= long_secs <= 300, got {}/{}",
                    a.short_secs, a.long_secs
                ));
            }
            if a.factor.is_nan() || a.factor <= 0.0 {
                return Err("slo.burn_alerts: factor must be positive".into());
            }
        }
        Ok(())
    }
}

/// Gateway routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Least in-flight requests, ties by rotation (default).
    #[default]
    LeastRequests,
    /// Plain rotation.
    RoundRobin,
}

/// `[gateway]`: the platform's reverse proxy in front of supervised services.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Whether to run it (default true when any service has `routes`).
    pub enabled: Option<bool>,
    /// Its listener (default `127.0.0.1:0`, a free port; printed and in `/api/v1/instances`).
    pub listen: SocketAddr,
    /// Balancing policy.
    pub balance: Balance,
    /// How long a request waits for a ready instance when none is (ms, default 3000).
    pub hold_ms: u64,
    /// Timeout of one proxied request (ms, default 30000).
    pub request_timeout_ms: u64,
    /// Largest request body buffered for a retry (bytes, default 4 MiB).
    pub max_body_bytes: usize,
    /// Point `AIODS_UPSTREAMS__*` of supervised services at the gateway (default true) rather
    /// than at the first instance of the dependency.
    pub upstreams_via_gateway: bool,
    /// Longest wait for a request body (ms, default 10000): a stalled upload gets 408.
    pub body_read_timeout_ms: u64,
    /// Most requests proxied at once (default 2048; each may buffer `max_body_bytes`): more
    /// get 503 at once and are counted (`aiops_gateway_shed_total`).
    pub max_concurrent_requests: usize,
    /// Longest wait for a complete request head (ms, default 10000).
    pub header_read_timeout_ms: u64,
    /// A connection with no byte moving for this long is closed (ms, default 60000; 0: never).
    pub idle_timeout_ms: u64,
    /// Most connections open at once (default 4096); more are closed at once and counted.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before closing them (ms, default 5000).
    pub shutdown_grace_ms: u64,
}

impl GatewayConfig {
    /// The limits of the gateway's listener.
    pub fn listener_limits(&self) -> aiods_serve::ListenerLimits {
        aiods_serve::ListenerLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        if self.header_read_timeout_ms == 0
            || self.max_connections == 0
            || self.body_read_timeout_ms == 0
            || self.max_concurrent_requests == 0
        {
            return Err(crate::config::ConfigError::Invalid(
                "[gateway] header_read_timeout_ms, body_read_timeout_ms, max_connections and \
                 max_concurrent_requests must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            balance: Balance::LeastRequests,
            hold_ms: 3_000,
            request_timeout_ms: 30_000,
            max_body_bytes: 4 * 1024 * 1024,
            upstreams_via_gateway: true,
            body_read_timeout_ms: 10_000,
            max_concurrent_requests: 2048,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
            shutdown_grace_ms: 5_000,
        }
    }
}

/// `[incidents]`: notification and the default recovery mode.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Default recovery mode for every service (default `auto`).
    pub mode: RecoveryMode,
    /// Webhook URL notified (JSON with a Slack-compatible `text`) on open and resolve.
    pub webhook: Option<String>,
}

/// Replaces `{service}`, `{index}`, `{port}`, `{data_dir}`, `{NAME}` and `{name}`.
pub fn expand(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders() {
        assert_eq!(
            expand(
                "AIODS_UPSTREAMS__{NAME}={name}:{port}",
                &[("NAME", "KITCHEN"), ("name", "kitchen"), ("port", "1")]
            ),
            "AIODS_UPSTREAMS__KITCHEN=kitchen:1"
        );
    }
}
