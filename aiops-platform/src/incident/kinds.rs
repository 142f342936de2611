//! The typed vocabulary of incidents: which [`Signal`] produced evidence, which
//! [`ConditionKey`] keeps an incident open, which [`ActionKind`] was taken, and the
//! [`ActionRef`] that links an action back to its incident.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::common::instance::InstanceId;

/// What kind of observation a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A process (or pod) ended.
    ProcessExit,
    /// Liveness probes failed.
    Liveness,
    /// Readiness probes failed.
    Readiness,
    /// The error rate of requests burned the error budget.
    ErrorRate,
    /// Request latency degraded.
    Latency,
    /// A burst of one exception group.
    ExceptionBurst,
    /// A log template new or bursting.
    LogTemplate,
    /// An upstream dependency has its own incident.
    Dependency,
    /// More in-flight requests per instance than the service should carry.
    Saturation,
    /// A message consumer instance has work waiting and finishes none.
    ConsumerStalled,
    /// Messages dead-lettered after their last delivery, or redelivered again and again.
    PoisonMessages,
    /// A consumer's handlers fail on a large share of the messages.
    ConsumerErrors,
}

impl Signal {
    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessExit => "process_exit",
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
            Self::ErrorRate => "error_rate",
            Self::Latency => "latency",
            Self::ExceptionBurst => "exception_burst",
            Self::LogTemplate => "log_template",
            Self::Dependency => "dependency",
            Self::Saturation => "saturation",
            Self::ConsumerStalled => "consumer_stalled",
            Self::PoisonMessages => "poison_messages",
            Self::ConsumerErrors => "consumer_errors",
        }
    }

    const ALL: [Self; 12] = [
        Self::ProcessExit,
        Self::Liveness,
        Self::Readiness,
        Self::ErrorRate,
        Self::Latency,
        Self::ExceptionBurst,
        Self::LogTemplate,
        Self::Dependency,
        Self::Saturation,
        Self::ConsumerStalled,
        Self::PoisonMessages,
        Self::ConsumerErrors,
    ];
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no known signal or condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}")]
pub struct UnknownKind {
    /// `signal`, `condition`, `action`.
    pub what: &'static str,
    /// The text.
    pub text: String,
}

impl FromStr for Signal {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind {
                what: "signal",
                text: s.to_owned(),
            })
    }
}

/// What keeps an incident open. Rendered as text (`instance:order#0`, `ready:order#0`,
/// `error_rate`, `saturation`) in the API and the stored incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionKey {
    /// The instance is down: exited, or failing its liveness probes.
    Down(InstanceId),
    /// The instance fails its readiness probes.
    NotReady(InstanceId),
    /// A request-level detector holds (error rate, latency, exception burst).
    Detector(Signal),
    /// The service is saturated.
    Saturation,
}

impl fmt::Display for ConditionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Down(id) => write!(f, "instance:{id}"),
            Self::NotReady(id) => write!(f, "ready:{id}"),
            Self::Detector(s) => f.write_str(s.as_str()),
            Self::Saturation => f.write_str("saturation"),
        }
    }
}

impl FromStr for ConditionKey {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownKind {
            what: "condition",
            text: s.to_owned(),
        };
        if let Some(id) = s.strip_prefix("instance:") {
            return id.parse().map(Self::Down).map_err(|_| unknown());
        }
        if let Some(id) = s.strip_prefix("ready:") {
            return id.parse().map(Self::NotReady).map_err(|_| unknown());
        }
        match s.parse::<Signal>() {
            Ok(Signal::Saturation) => Ok(Self::Saturation),
            Ok(signal) => Ok(Self::Detector(signal)),
            Err(_) => Err(unknown()),
        }
    }
}

impl Serialize for ConditionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConditionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Start an instance that exited again.
    Restart,
    /// Stop a hung instance, then start it again.
    KillAndRestart,
    /// Start a replacement for a hung instance, then stop the hung one.
    Replace,
    /// Add an instance.
    ScaleOut,
    /// Remove an instance.
    ScaleIn,
}

impl ActionKind {
    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::KillAndRestart => "kill_and_restart",
            Self::Replace => "replace",
            Self::ScaleOut => "scale_out",
            Self::ScaleIn => "scale_in",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action of an incident: which incident, which action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionRef {
    /// The incident's id.
    pub incident: String,
    /// The action's id.
    pub action: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_keys_keep_their_text_form() {
        let id = InstanceId::new("order", 0);
        for (key, text) in [
            (ConditionKey::Down(id.clone()), "instance:order#0"),
            (ConditionKey::NotReady(id), "ready:order#0"),
            (ConditionKey::Detector(Signal::ErrorRate), "error_rate"),
            (ConditionKey::Saturation, "saturation"),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<ConditionKey>(), Ok(key.clone()));
            let json = serde_json::to_string(&key).unwrap_or_default();
            assert_eq!(json, format!("\"{text}\""));
        }
        assert!("instance:nope".parse::<ConditionKey>().is_err());
        assert!("bogus".parse::<ConditionKey>().is_err());
    }

    #[test]
    fn signals_and_actions_serialize_snake_case() {
        for s in Signal::ALL {
            assert_eq!(s.as_str().parse::<Signal>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        assert_eq!(
            serde_json::to_value(ActionKind::KillAndRestart).ok(),
            Some(serde_json::json!("kill_and_restart"))
        );
    }
}
