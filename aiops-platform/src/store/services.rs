//! Services seen from any signal, with the last time per signal.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::common::time::rfc3339;

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
    /// Named in the topology (else discovered from its telemetry alone).
    pub declared: bool,
}

impl ServiceSeen {
    /// The last time seen from any signal (its first sighting when none).
    pub fn last_seen(&self) -> u64 {
        [
            self.traces,
            self.logs,
            self.metrics,
            self.scrape,
            self.exceptions,
        ]
        .into_iter()
        .flatten()
        .fold(self.first_seen, u64::max)
    }
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
    /// Known only from its telemetry: no topology entry.
    pub discovered: bool,
}

pub use crate::config::DEFAULT_MAX_DISCOVERED;

/// Longest service name a discovered service may have (bytes); longer ones are refused.
pub const MAX_SERVICE_NAME_BYTES: usize = 255;

/// All services seen: the topology's, and up to a cap of discovered ones.
#[derive(Debug)]
pub struct ServiceRegistry {
    services: BTreeMap<String, ServiceSeen>,
    discovered: usize,
    max_discovered: usize,
    refused: u64,
}

impl Default for ServiceRegistry {
    fn default() -> Self {
        Self::with_max_discovered(DEFAULT_MAX_DISCOVERED)
    }
}

impl ServiceRegistry {
    /// A registry keeping at most `max` discovered services.
    pub fn with_max_discovered(max: usize) -> Self {
        Self {
            services: BTreeMap::new(),
            discovered: 0,
            max_discovered: max,
            refused: 0,
        }
    }

    /// Telemetry of new services refused because the discovered cap was reached.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Whether `name` is known (declared or discovered within the cap).
    pub fn contains(&self, name: &str) -> bool {
        self.services.contains_key(name)
    }

    /// Names of every known service.
    pub fn names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Marks `name` as seen for `signal` at `at`. Answers false when `name` is a new
    /// service past the discovered cap, or longer than [`MAX_SERVICE_NAME_BYTES`] (counted,
    /// not kept).
    pub fn touch(&mut self, name: &str, signal: Signal, at: u64) -> bool {
        if !self.services.contains_key(name) {
            if self.discovered >= self.max_discovered || name.len() > MAX_SERVICE_NAME_BYTES {
                self.refused += 1;
                return false;
            }
            self.discovered += 1;
        }
        let seen = self
            .services
            .entry(name.to_string())
            .or_insert(ServiceSeen {
                first_seen: at,
                ..Default::default()
            });
        let slot = match signal {
            Signal::Traces => &mut seen.traces,
            Signal::Logs => &mut seen.logs,
            Signal::Metrics => &mut seen.metrics,
            Signal::Scrape => &mut seen.scrape,
            Signal::Exceptions => &mut seen.exceptions,
        };
        *slot = Some(slot.map_or(at, |t| t.max(at)));
        seen.first_seen = seen.first_seen.min(at);
        true
    }

    /// Forgets the discovered services last seen before `cutoff` (declared ones stay), so
    /// their places under the cap are free again; answers their names.
    pub fn forget_idle(&mut self, cutoff: u64) -> Vec<String> {
        let idle: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| !s.declared && s.last_seen() < cutoff)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &idle {
            self.services.remove(name);
        }
        self.discovered = self.discovered.saturating_sub(idle.len());
        idle
    }

    /// Marks a configured service as known even before any telemetry.
    pub fn declare(&mut self, name: &str, at: u64) {
        let existed = self.services.contains_key(name);
        let seen = self
            .services
            .entry(name.to_string())
            .or_insert(ServiceSeen {
                first_seen: at,
                ..Default::default()
            });
        if !seen.declared {
            seen.declared = true;
            if existed {
                // It was counted as discovered before the topology named it.
                self.discovered = self.discovered.saturating_sub(1);
            }
        }
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
                    discovered: !s.declared,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_services_are_capped_and_refusals_counted() {
        let mut r = ServiceRegistry::with_max_discovered(2);
        r.declare("declared", 1);
        assert!(r.touch("a", Signal::Traces, 1));
        assert!(r.touch("b", Signal::Logs, 1));
        assert!(!r.touch("c", Signal::Traces, 1), "past the cap");
        assert!(r.touch("a", Signal::Metrics, 2), "known ones still count");
        assert!(
            r.touch("declared", Signal::Traces, 2),
            "declared ones are not capped"
        );
        assert_eq!(r.refused(), 1);
        assert_eq!(r.names(), ["a", "b", "declared"]);
        let views = r.views();
        assert!(views.iter().any(|v| v.name == "a" && v.discovered));
        assert!(views.iter().any(|v| v.name == "declared" && !v.discovered));
        // A discovered service the topology names later frees its place.
        r.declare("a", 3);
        assert!(r.touch("c", Signal::Traces, 3));
    }

    #[test]
    fn idle_discovered_services_are_forgotten_and_free_their_place() {
        let mut r = ServiceRegistry::with_max_discovered(2);
        r.declare("declared", 1);
        assert!(r.touch("old", Signal::Logs, 1));
        assert!(r.touch("recent", Signal::Logs, 1));
        assert!(r.touch("recent", Signal::Traces, 50));
        assert!(!r.touch("new", Signal::Logs, 60), "full");
        assert_eq!(r.forget_idle(10), ["old"]);
        assert_eq!(r.names(), ["declared", "recent"]);
        assert!(
            r.touch("new", Signal::Logs, 60),
            "the forgotten one's place"
        );
        assert!(!r.touch("newer", Signal::Logs, 60), "still capped");
        r.forget_idle(55);
        assert!(
            !r.touch(&"n".repeat(256), Signal::Logs, 60),
            "name too long"
        );
        assert!(r.touch(&"n".repeat(255), Signal::Logs, 60));
        assert_eq!(
            r.forget_idle(100).len(),
            2,
            "declared services are never forgotten"
        );
        assert_eq!(r.names(), ["declared"]);
    }
}
