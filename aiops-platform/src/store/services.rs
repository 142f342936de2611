//! Services seen from any signal, with the last time per signal.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rfc3339;

/// A telemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// OTLP spans or Sentry transactions.
    Traces,
    /// OTLP log records.
    Logs,
    /// OTLP metrics.
    Metrics,
    /// Prometheus scrapes.
    Scrape,
    /// Sentry events.
    Exceptions,
}

/// When a service was last seen, per signal (nanoseconds since the epoch).
#[derive(Debug, Clone, Default)]
pub struct ServiceSeen {
    /// First time seen at all.
    pub first_seen: u64,
    /// Last span.
    pub traces: Option<u64>,
    /// Last log record.
    pub logs: Option<u64>,
    /// Last OTLP metric.
    pub metrics: Option<u64>,
    /// Last successful scrape.
    pub scrape: Option<u64>,
    /// Last exception.
    pub exceptions: Option<u64>,
}

/// A service as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen from any signal (RFC 3339).
    pub last_seen: String,
    /// Last seen per signal (RFC 3339), only signals seen.
    pub last_seen_by_signal: BTreeMap<&'static str, String>,
}

/// All services seen.
#[derive(Debug, Default)]
pub struct ServiceRegistry {
    services: BTreeMap<String, ServiceSeen>,
}

impl ServiceRegistry {
    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Marks `name` as seen for `signal` at `at`.
    pub fn touch(&mut self, name: &str, signal: Signal, at: u64) {
        let seen = match self.services.get_mut(name) {
            Some(s) => s,
            None => self
                .services
                .entry(name.to_string())
                .or_insert(ServiceSeen {
                    first_seen: at,
                    ..Default::default()
                }),
        };
        let slot = match signal {
            Signal::Traces => &mut seen.traces,
            Signal::Logs => &mut seen.logs,
            Signal::Metrics => &mut seen.metrics,
            Signal::Scrape => &mut seen.scrape,
            Signal::Exceptions => &mut seen.exceptions,
        };
        *slot = Some(slot.map_or(at, |t| t.max(at)));
        seen.first_seen = seen.first_seen.min(at);
    }

    /// Marks a configured service as known even before any telemetry.
    pub fn declare(&mut self, name: &str, at: u64) {
        self.services
            .entry(name.to_string())
            .or_insert(ServiceSeen {
                first_seen: at,
                ..Default::default()
            });
    }

    /// All services by name.
    pub fn views(&self) -> Vec<ServiceView> {
        self.services
            .iter()
            .map(|(name, s)| {
                let mut by = BTreeMap::new();
                let mut last = s.first_seen;
                for (k, v) in [
                    ("traces", s.traces),
                    ("logs", s.logs),
                    ("metrics", s.metrics),
                    ("scrape", s.scrape),
                    ("exceptions", s.exceptions),
                ] {
                    if let Some(v) = v {
                        by.insert(k, rfc3339(v));
                        last = last.max(v);
                    }
                }
                ServiceView {
                    name: name.clone(),
                    first_seen: rfc3339(s.first_seen),
                    last_seen: rfc3339(last),
                    last_seen_by_signal: by,
                }
            })
            .collect()
    }
}
