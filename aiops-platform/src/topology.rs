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
    /// ... continuously for this long (ms, default 2000).
    pub out_for_ms: u64,
    /// Quiet (in-flight per ready instance at most half the threshold) this long: stop the
    /// newest extra instance (ms, default 30000).
    pub in_after_ms: u64,
    /// At most one scale action per service within this window (ms, default 5000).
    pub cooldown_ms: u64,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        Self {
            max_replicas: 0,
            out_when_inflight_per_instance: 4.0,
            out_for_ms: 2000,
            in_after_ms: 30_000,
            cooldown_ms: 5000,
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

/// `[[service]] detection`: thresholds of the request-level detectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// 5xx share over the short window that fires (default 0.1).
    pub error_rate_threshold: f64,
    /// Short window (seconds, default 5).
    pub short_window_secs: u64,
    /// Long window (seconds, default 30); must also exceed half the threshold.
    pub long_window_secs: u64,
    /// Fewest requests in the short window to judge (default 10).
    pub min_requests: u64,
    /// The burn is over after this long without a 5xx (ms, default 2000).
    pub quiet_ms: u64,
    /// Latency degradation: current median above baseline median + `latency_mads` x MAD…
    pub latency_mads: f64,
    /// …and above `latency_factor` x baseline median (default 3)…
    pub latency_factor: f64,
    /// …and at least this much slower (ms, default 50).
    pub latency_min_ms: f64,
    /// Exception events of one group within 10 s that make a burst (default 5).
    pub exception_burst: u64,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            error_rate_threshold: 0.1,
            short_window_secs: 5,
            long_window_secs: 30,
            min_requests: 10,
            quiet_ms: 2_000,
            latency_mads: 6.0,
            latency_factor: 3.0,
            latency_min_ms: 50.0,
            exception_burst: 5,
        }
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
