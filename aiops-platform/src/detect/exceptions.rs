//! Exception bursts: at least `exception_burst` events of one group (Sentry ingest) within
//! 10 s. The failure start is the first event of the burst window.

use std::collections::{HashMap, VecDeque};

use crate::config::DetectionConfig;
use crate::store::Store;

const NS: u64 = 1_000_000_000;
const BURST_WINDOW_NS: u64 = 10 * NS;

/// Per-service exception counts between ticks.
#[derive(Debug, Default)]
pub(super) struct ExceptionWatch {
    active: bool,
    counts: HashMap<String, u64>,
    deltas: VecDeque<(u64, String, u64)>,
    primed: bool,
    last_event: u64,
}

/// What the watch says now.
#[derive(Debug)]
pub(super) struct ExceptionReading {
    pub(super) active: bool,
    pub(super) since: u64,
    /// The newest event seen (ns): the recovery time when the burst is over (exceptions
    /// have no successes to observe).
    pub(super) last_event: u64,
    pub(super) detail: serde_json::Value,
}

impl ExceptionWatch {
    pub(super) fn tick(
        &mut self,
        service: &str,
        cfg: &DetectionConfig,
        store: &Store,
        now: u64,
    ) -> ExceptionReading {
        let groups = store.exceptions.read().tallies(service);
        for g in &groups {
            let prev = self.counts.insert(g.fingerprint.clone(), g.count);
            // The first look only learns the counts (groups restored from SQLite are old news).
            let delta = match prev {
                Some(p) => g.count.saturating_sub(p),
                None if self.primed => g.count,
                None => 0,
            };
            if delta > 0 {
                // The event's own time when the group's last event is this one.
                let at = g.last_seen_unix_nano.min(now);
                self.last_event = self.last_event.max(at);
                self.deltas.push_back((at, g.fingerprint.clone(), delta));
            }
        }
        self.primed = true;
        while self
            .deltas
            .front()
            .is_some_and(|(t, _, _)| now.saturating_sub(*t) > BURST_WINDOW_NS)
        {
            self.deltas.pop_front();
        }
        let mut per_group: HashMap<&str, u64> = HashMap::new();
        for (_, fp, d) in &self.deltas {
            *per_group.entry(fp.as_str()).or_default() += d;
        }
        let top = per_group.iter().max_by_key(|(_, n)| **n);
        if top.is_some_and(|(_, n)| *n >= cfg.exception_burst) {
            self.active = true;
        } else if self.deltas.is_empty() {
            self.active = false;
        }
        let detail = match top {
            Some((fp, n)) => {
                let g = groups.iter().find(|g| g.fingerprint == *fp);
                serde_json::json!({
                    "fingerprint": fp, "events_in_10s": n,
                    "title": g.map(|g| g.title.clone()),
                    "new_group": g.is_some_and(|g| now.saturating_sub(g.first_seen_unix_nano) < 60 * NS),
                })
            }
            None => serde_json::Value::Null,
        };
        ExceptionReading {
            last_event: self.last_event,
            active: self.active,
            since: self.deltas.front().map_or(now, |(t, _, _)| *t),
            detail,
        }
    }
}
