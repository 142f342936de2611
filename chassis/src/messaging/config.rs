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
    /// one repeats). From the environment as a comma-separated list:
    /// `AIODS_MESSAGING__BACKOFF_MS=100,500,2000`.
    #[serde(deserialize_with = "millis_list")]
    pub backoff_ms: Vec<u64>,
    /// JetStream's ack wait: how long a delivered message may stay unsettled before the
    /// broker delivers it again, in milliseconds (default 3000). The messages of a killed
    /// instance come back to the others after it; a handler that runs longer is not
    /// redelivered meanwhile, since the chassis sends an in-progress ack every half ack wait
    /// (JetStream's own default, 30 s, would hold a killed instance's messages for 30 s).
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
            ack_wait_ms: 3_000,
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

/// A list of milliseconds from TOML (`[100, 500]`), or from the environment as one number
/// (`100`) or a comma-separated text (`100,500`).
fn millis_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Number(u64),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Item>),
        One(Item),
    }
    let items = match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::One(Item::Text(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Item::Text(s.to_owned()))
            .collect(),
        Raw::One(n) => vec![n],
    };
    items
        .into_iter()
        .map(|item| match item {
            Item::Number(n) => Ok(n),
            Item::Text(t) => t.trim().parse::<u64>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "backoff_ms: {t:?} is not a number of milliseconds"
                ))
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<MessagingConfig, config::ConfigError> {
        let mut env = std::collections::HashMap::new();
        for (k, v) in pairs {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        config::Config::builder()
            .add_source(
                config::Environment::with_prefix("AIODS")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()?
            .get::<MessagingConfig>("messaging")
    }

    #[test]
    fn settings_come_from_the_environment_the_backoff_as_a_list() {
        let c = parse(&[
            ("AIODS_MESSAGING__URL", "nats://127.0.0.1:4222"),
            ("AIODS_MESSAGING__MAX_DELIVER", "3"),
            ("AIODS_MESSAGING__BACKOFF_MS", "50, 75,200"),
        ])
        .expect("valid");
        assert_eq!(c.url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(c.max_deliver, 3);
        assert_eq!(c.backoff_ms, vec![50, 75, 200]);
        assert_eq!(c.ack_wait_ms, 3_000);
        let one = parse(&[("AIODS_MESSAGING__BACKOFF_MS", "40")]).expect("valid");
        assert_eq!(one.backoff_ms, vec![40]);
        let err = parse(&[("AIODS_MESSAGING__BACKOFF_MS", "soon")]).expect_err("not numbers");
        assert!(err.to_string().contains("backoff_ms"), "{err}");
    }

    #[test]
    fn defaults_match_the_contract_and_zero_deliveries_is_refused() {
        let d = MessagingConfig::default();
        assert_eq!(d.url, None);
        assert_eq!(d.max_deliver, 5);
        assert_eq!(d.backoff_ms, vec![100, 500, 2000]);
        assert_eq!(d.stats_interval_ms, 1000);
        assert!(d.validate().is_ok());
        let zero = MessagingConfig {
            max_deliver: 0,
            ..d
        };
        assert!(zero.validate().is_err());
    }
}
