//! Exception groups: events with the same fingerprint in the same service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::time::rfc3339;

/// One exception event, already fingerprinted.
#[derive(Debug, Clone)]
pub struct ExceptionEvent {
    /// Service it is attributed to.
    pub service: String,
    /// Grouping fingerprint.
    pub fingerprint: String,
    /// Short title (`Type: value` or the message).
    pub title: String,
    /// Exception type, when the event has one.
    pub exception_type: Option<String>,
    /// Level (`error`, `fatal`...).
    pub level: String,
    /// When, nanoseconds since the epoch.
    pub time_unix_nano: u64,
    /// Trace id, when known.
    pub trace_id: Option<String>,
    /// The event as received.
    pub event: serde_json::Value,
}

/// A group's count and times, without its sample event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTally {
    /// Grouping fingerprint.
    pub fingerprint: String,
    /// Title of the latest event.
    pub title: String,
    /// Events so far.
    pub count: u64,
    /// First event (ns).
    pub first_seen_unix_nano: u64,
    /// Latest event (ns).
    pub last_seen_unix_nano: u64,
}

/// An exception group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExceptionGroup {
    /// Service.
    pub service: String,
    /// Grouping fingerprint.
    pub fingerprint: String,
    /// Title of the latest event.
    pub title: String,
    /// Exception type.
    pub exception_type: Option<String>,
    /// Level of the latest event.
    pub level: String,
    /// Number of events.
    pub count: u64,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
    /// First seen, nanoseconds since the epoch.
    pub first_seen_unix_nano: u64,
    /// Last seen, nanoseconds since the epoch.
    pub last_seen_unix_nano: u64,
    /// Trace id of the latest event, when known.
    pub last_trace_id: Option<String>,
    /// The latest event, as received.
    pub sample_event: serde_json::Value,
}

impl ExceptionEvent {
    /// Estimated bytes of the event (what `max_item_bytes` bounds).
    pub fn approx_bytes(&self) -> usize {
        super::size::RECORD_OVERHEAD
            + self.service.len()
            + self.fingerprint.len()
            + self.title.len()
            + self.exception_type.as_ref().map_or(0, String::len)
            + self.level.len()
            + self.trace_id.as_ref().map_or(0, String::len)
            + super::size::json_bytes(&self.event)
    }
}

impl ExceptionGroup {
    /// Estimated bytes held for the group with its sample event (what
    /// `max_exception_bytes` counts).
    pub fn approx_bytes(&self) -> usize {
        super::size::RECORD_OVERHEAD
            + 2 * (self.service.len() + self.fingerprint.len())
            + self.title.len()
            + self.exception_type.as_ref().map_or(0, String::len)
            + self.level.len()
            + self.first_seen.len()
            + self.last_seen.len()
            + self.last_trace_id.as_ref().map_or(0, String::len)
            + super::size::json_bytes(&self.sample_event)
    }
}

/// Groups in memory (all of them also in SQLite).
#[derive(Debug)]
pub struct ExceptionStore {
    max: usize,
    max_bytes: usize,
    bytes: usize,
    /// By (service, fingerprint): one service's groups are one range.
    groups: BTreeMap<(String, String), ExceptionGroup>,
}

impl ExceptionStore {
    /// An empty store holding at most `max` groups and `max_bytes` estimated bytes.
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            max: max.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            groups: BTreeMap::new(),
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The least recently seen group other than `keep`, removed.
    fn evict_oldest(&mut self, keep: &(String, String)) -> Option<(String, String)> {
        let oldest = self
            .groups
            .iter()
            .filter(|(k, _)| *k != keep)
            .min_by_key(|(_, g)| g.last_seen_unix_nano)
            .map(|(k, _)| k.clone())?;
        let g = self.groups.remove(&oldest)?;
        self.bytes -= g.approx_bytes();
        Some(oldest)
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Adds an event to its group; returns the updated group and the groups evicted to make
    /// room for it (service, fingerprint): by the count limit, then by the byte budget, least
    /// recently seen first.
    pub fn record(&mut self, e: ExceptionEvent) -> (ExceptionGroup, Vec<(String, String)>) {
        let key = (e.service.clone(), e.fingerprint.clone());
        let mut evicted = Vec::new();
        if !self.groups.contains_key(&key) && self.groups.len() >= self.max {
            // Rare (a flood of distinct groups): evict the least recently seen.
            evicted.extend(self.evict_oldest(&key));
        }
        let before = self
            .groups
            .get(&key)
            .map_or(0, ExceptionGroup::approx_bytes);
        let group = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| ExceptionGroup {
                service: e.service.clone(),
                fingerprint: e.fingerprint.clone(),
                title: String::new(),
                exception_type: None,
                level: String::new(),
                count: 0,
                first_seen: rfc3339(e.time_unix_nano),
                last_seen: String::new(),
                first_seen_unix_nano: e.time_unix_nano,
                last_seen_unix_nano: 0,
                last_trace_id: None,
                sample_event: serde_json::Value::Null,
            });
        group.count += 1;
        if e.time_unix_nano < group.first_seen_unix_nano {
            group.first_seen_unix_nano = e.time_unix_nano;
            group.first_seen = rfc3339(e.time_unix_nano);
        }
        if e.time_unix_nano >= group.last_seen_unix_nano {
            group.last_seen_unix_nano = e.time_unix_nano;
            group.last_seen = rfc3339(e.time_unix_nano);
            group.title = e.title;
            group.exception_type = e.exception_type;
            group.level = e.level;
            group.last_trace_id = e.trace_id;
            group.sample_event = e.event;
        }
        let group = group.clone();
        self.bytes = self.bytes - before + group.approx_bytes();
        while self.bytes > self.max_bytes {
            match self.evict_oldest(&key) {
                Some(k) => evicted.push(k),
                None => break,
            }
        }
        (group, evicted)
    }

    /// Puts groups read from SQLite back, the most recently seen first, up to the cap;
    /// answers the groups left out (to be deleted from SQLite too).
    pub fn restore(&mut self, mut groups: Vec<ExceptionGroup>) -> Vec<(String, String)> {
        groups.sort_by_key(|g| std::cmp::Reverse(g.last_seen_unix_nano));
        let mut dropped = Vec::new();
        for g in groups {
            let key = (g.service.clone(), g.fingerprint.clone());
            let bytes = g.approx_bytes();
            let over = self.bytes + bytes > self.max_bytes;
            if (self.groups.len() >= self.max || over) && !self.groups.contains_key(&key) {
                dropped.push(key);
            } else {
                self.bytes += bytes;
                if let Some(old) = self.groups.insert(key, g) {
                    self.bytes -= old.approx_bytes();
                }
            }
        }
        dropped
    }

    /// Each group's count and times for one service, without its sample event: what the
    /// exception detector reads every tick.
    pub fn tallies(&self, service: &str) -> Vec<GroupTally> {
        self.groups
            .range((service.to_owned(), String::new())..)
            .map(|(_, g)| g)
            .take_while(|g| g.service == service)
            .map(|g| GroupTally {
                fingerprint: g.fingerprint.clone(),
                title: g.title.clone(),
                count: g.count,
                first_seen_unix_nano: g.first_seen_unix_nano,
                last_seen_unix_nano: g.last_seen_unix_nano,
            })
            .collect()
    }

    /// Groups, most recently seen first.
    pub fn list(&self, service: Option<&str>) -> Vec<ExceptionGroup> {
        let mut out: Vec<ExceptionGroup> = self
            .groups
            .values()
            .filter(|g| service.is_none_or(|s| g.service == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.last_seen_unix_nano
                .cmp(&a.last_seen_unix_nano)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_are_one_services_groups_only() {
        let mut store = ExceptionStore::new(100, usize::MAX);
        for (service, fingerprint) in [("a", "x"), ("ab", "x"), ("a", "y"), ("b", "x"), ("", "z")] {
            store.record(ExceptionEvent {
                service: service.into(),
                fingerprint: fingerprint.into(),
                title: fingerprint.into(),
                exception_type: None,
                level: "error".into(),
                time_unix_nano: 1,
                trace_id: None,
                event: serde_json::Value::Null,
            });
        }
        let of = |s: &str| -> Vec<String> {
            store
                .tallies(s)
                .into_iter()
                .map(|t| t.fingerprint)
                .collect()
        };
        assert_eq!(of("a"), ["x", "y"]);
        assert_eq!(of("ab"), ["x"]);
        assert_eq!(of("b"), ["x"]);
        assert!(of("c").is_empty());
    }

    #[test]
    fn bytes_are_bounded_least_recently_seen_evicted_first() {
        let mut store = ExceptionStore::new(100, 50_000);
        let mut evicted = Vec::new();
        for (t, f) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let (_, gone) = store.record(ExceptionEvent {
                service: "s".into(),
                fingerprint: (*f).into(),
                title: (*f).into(),
                exception_type: None,
                level: "error".into(),
                time_unix_nano: t as u64,
                trace_id: None,
                event: serde_json::json!({"message": "m".repeat(15_000)}),
            });
            evicted.extend(gone.into_iter().map(|(_, f)| f));
        }
        assert!(store.bytes() <= 50_000, "{}", store.bytes());
        assert_eq!(evicted, ["a", "b"]);
        assert_eq!(store.len(), 3);
    }
}
