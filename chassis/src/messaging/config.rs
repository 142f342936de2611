//! `[messaging]`: where the broker is and how consumers settle messages.

use std::time::Duration;

use serde::Deserialize;

/// The `[messaging]` section (`AIODS_MESSAGING__URL`, `AIODS_MESSAGING__MAX_DELIVER`, ...).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MessagingConfig {
    /// The broker, e.g. `nats://127.0.0.1:4222` (`AIODS_MESSAGING__URL`); none: messaging is
    /// off and [`crate::ServiceContext::messaging`] says so.
    pub url: Option<String>,
    /// Deliveries of a message before a failing one is dead-lettered (default 5).
    pub max_deliver: u32,
    /// Nak delays by delivery count, in milliseconds (default `[100, 500, 2000]`; the last
    /// one repeats).
    pub backoff_ms: Vec<u64>,
    /// JetStream's ack wait: how long a delivered message may stay unsettled before the
    /// broker delivers it again, in milliseconds (default 30000).
    pub ack_wait_ms: u64,
    /// How often each consumer's info (pending, ack pending, redelivered) is read into the
    /// gauges, in milliseconds (default 1000).
    pub stats_interval_ms: u64,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_deliver: 5,
            backoff_ms: vec![100, 500, 2000],
            ack_wait_ms: 30_000,
            stats_interval_ms: 1000,
        }
    }
}

impl MessagingConfig {
    /// The configuration for a broker at `url`, other keys at their defaults.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// The ack wait.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms)
    }

    /// The stats interval.
    pub fn stats_interval(&self) -> Duration {
        Duration::from_millis(self.stats_interval_ms.max(10))
    }

    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_deliver == 0 {
            return Err("messaging.max_deliver must be at least 1".into());
        }
        if self.ack_wait_ms == 0 {
            return Err("messaging.ack_wait_ms must be positive".into());
        }
        if self.backoff_ms.iter().any(|ms| *ms > 3_600_000) {
            return Err("messaging.backoff_ms values must be at most 3600000 (1h)".into());
        }
        Ok(())
    }
}
