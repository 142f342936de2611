//! Message consumers judged from the telemetry contract's messaging metrics, scraped from
//! each instance's `/metrics` (`docs/telemetry-contract.md`, "Messaging"):
//!
//! - **stalled consumer** (per instance and durable consumer): the instance has work waiting —
//!   messages it received and has not settled (`aiods_messaging_consumer_in_flight`), or
//!   messages no instance has been given yet (`aiods_messaging_consumer_pending`) — and finishes
//!   none (`messaging_client_consumed_messages_total` flat) for `consumer_stall_ms`. Messages
//!   delivered and unacknowledged (`_ack_pending`) do not count: after a crash they belong to
//!   the dead process until the ack wait gives them back, and a new instance with nothing to
//!   do is not stalled. Since: the first scrape with work waiting after the instance's last
//!   finished message. Over when it finishes one, when nothing waits, or when it restarts.
//! - **poison messages** (per service): at least `poison_dead_letters` messages dead-lettered
//!   (`aiods_messaging_dead_letters_total`) within [`POISON_WINDOW_NS`]. Since: the first scrape
//!   that showed one of them. Over when the window holds fewer.
//! - **consumer errors** (per service): within [`ERROR_WINDOW_NS`], at least `min_requests`
//!   messages finished, at least `min_bad` of them not acknowledged (`outcome` `nak` or
//!   `dead_letter`), and that share at least `consumer_error_ratio`.
//!
//! [`ConsumerWatch::tick`] is pure: it folds the latest scraped values into the watch and
//! answers what changed; the detection loop turns that into findings.

use std::collections::{HashMap, VecDeque};

use crate::config::DetectionConfig;
use crate::store::LatestSample;

/// Messages waiting for the durable consumer (JetStream `num_pending`).
pub const PENDING: &str = "aiods_messaging_consumer_pending";
/// Messages delivered and not yet acknowledged (JetStream `num_ack_pending`).
pub const ACK_PENDING: &str = "aiods_messaging_consumer_ack_pending";
/// Messages this instance received and has not settled (in a handler or waiting for one).
pub const IN_FLIGHT: &str = "aiods_messaging_consumer_in_flight";
/// Messages the instance finished, by `outcome`.
pub const CONSUMED: &str = "messaging_client_consumed_messages_total";
/// Messages the instance dead-lettered, by `reason`.
pub const DEAD_LETTERS: &str = "aiods_messaging_dead_letters_total";
/// When the instance's process started (seconds since the epoch).
pub const PROCESS_START: &str = "process_start_time_seconds";
/// The metrics this module reads.
pub const NAMES: [&str; 6] = [
    PENDING,
    ACK_PENDING,
    IN_FLIGHT,
    CONSUMED,
    DEAD_LETTERS,
    PROCESS_START,
];

/// The label naming the durable consumer.
const GROUP_LABEL: &str = "messaging_consumer_group_name";
/// The label naming the scraped instance (added by the scraper).
const INSTANCE_LABEL: &str = "instance";
/// Dead letters counted over this window (60 s).
pub const POISON_WINDOW_NS: u64 = 60_000_000_000;
/// Handler outcomes counted over this window (30 s).
pub const ERROR_WINDOW_NS: u64 = 30_000_000_000;
/// An instance not scraped for this long is forgotten (60 s).
const FORGET_NS: u64 = 60_000_000_000;
/// A consumer first seen on a process younger than this (60 s) counts its counters from zero:
/// they started with the process, so what they hold happened since (the poison messages that
/// a restarted consumer meets at once, say). On an older process (the platform restarted),
/// what they hold is history, not news.
const YOUNG_PROCESS_NS: u64 = 60_000_000_000;

/// One durable consumer on one instance, at one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerReading {
    /// The scraped instance (`host:port`).
    pub instance: String,
    /// The durable consumer's name.
    pub group: String,
    /// When it was scraped (ns since the epoch).
    pub at: u64,
    /// Messages no instance has been given yet (JetStream `num_pending`).
    pub pending: f64,
    /// Messages delivered to some instance and not acknowledged yet (`num_ack_pending`).
    pub ack_pending: f64,
    /// Messages this instance holds unsettled, when it says.
    pub in_flight: Option<f64>,
    /// Messages finished since the instance started, whatever the outcome.
    pub finished: f64,
    /// Of them, not acknowledged (`nak`, `dead_letter`).
    pub failed: f64,
    /// Messages dead-lettered since the instance started.
    pub dead_letters: f64,
    /// When the instance's process started (`process_start_time_seconds`), when it says.
    pub process_start: Option<u64>,
}

/// Groups the latest messaging samples into readings, per service.
pub fn readings(samples: &[LatestSample]) -> HashMap<String, Vec<ConsumerReading>> {
    let mut by_key: HashMap<(String, String, String), ConsumerReading> = HashMap::new();
    let mut started: HashMap<(&str, &str), u64> = HashMap::new();
    for s in samples.iter().filter(|s| s.name == PROCESS_START) {
        if let Some(instance) = s.labels.get(INSTANCE_LABEL)
            && s.point.value.is_finite()
            && s.point.value > 0.0
        {
            let ns = (s.point.value * 1e9) as u64;
            started.insert((s.service.as_str(), instance.as_str()), ns);
        }
    }
    for s in samples {
        let (Some(instance), Some(group)) =
            (s.labels.get(INSTANCE_LABEL), s.labels.get(GROUP_LABEL))
        else {
            continue;
        };
        if !s.point.value.is_finite() {
            continue;
        }
        let r = by_key
            .entry((s.service.clone(), instance.clone(), group.clone()))
            .or_insert_with(|| ConsumerReading {
                instance: instance.clone(),
                group: group.clone(),
                at: 0,
                pending: 0.0,
                ack_pending: 0.0,
                in_flight: None,
                finished: 0.0,
                failed: 0.0,
                dead_letters: 0.0,
                process_start: started
                    .get(&(s.service.as_str(), instance.as_str()))
                    .copied(),
            });
        r.at = r.at.max(s.point.time_unix_nano);
        let v = s.point.value;
        match s.name.as_str() {
            PENDING => r.pending += v,
            ACK_PENDING => r.ack_pending += v,
            IN_FLIGHT => r.in_flight = Some(r.in_flight.unwrap_or(0.0) + v),
            CONSUMED => {
                r.finished += v;
                if s.labels.get("outcome").is_some_and(|o| o != "ack") {
                    r.failed += v;
                }
            }
            DEAD_LETTERS => r.dead_letters += v,
            _ => {}
        }
    }
    let mut out: HashMap<String, Vec<ConsumerReading>> = HashMap::new();
    for ((service, _, _), r) in by_key {
        out.entry(service).or_default().push(r);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| (&a.instance, &a.group).cmp(&(&b.instance, &b.group)));
    }
    out
}

/// A stalled consumer's state change.
#[derive(Debug, Clone, PartialEq)]
pub struct StallChange {
    /// The scraped instance (`host:port`).
    pub instance: String,
    /// The durable consumer.
    pub group: String,
    /// Whether it is stalled now.
    pub stalled: bool,
    /// When the stall began (stalled) or ended (not stalled).
    pub at: u64,
    /// Work waiting for the instance at the last scrape (what it holds unsettled, and what
    /// nobody was given yet).
    pub backlog: f64,
}

/// A service-level condition's state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowCondition {
    /// Whether it holds.
    pub active: bool,
    /// When the failures behind it began (when active) or when it ended.
    pub at: u64,
    /// Messages dead-lettered, or failed, in the window.
    pub bad: f64,
    /// Messages finished in the window (consumer errors only).
    pub total: f64,
}

/// What one tick found for one service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerVerdict {
    /// Consumers that stalled or recovered at this tick.
    pub stalls: Vec<StallChange>,
    /// Poison messages.
    pub poison: WindowCondition,
    /// Consumer errors.
    pub errors: WindowCondition,
    /// Messages waiting for the service's durable consumers (each durable consumer counted
    /// once: the largest of its instances' readings), when it has any consumer.
    pub backlog: Option<f64>,
}

#[derive(Debug, Clone)]
struct Track {
    at: u64,
    finished: f64,
    failed: f64,
    dead_letters: f64,
    /// The first scrape with work waiting since the last finished message.
    waiting_since: Option<u64>,
    stalled: bool,
}

impl Track {
    /// The memory of a consumer first seen in `r`: from zero on a young process (the
    /// reading is then judged as news), else from what `r` holds.
    fn first(r: &ConsumerReading) -> Self {
        let young = r
            .process_start
            .is_some_and(|s| r.at.saturating_sub(s) < YOUNG_PROCESS_NS);
        if young {
            return Self {
                at: 0,
                finished: 0.0,
                failed: 0.0,
                dead_letters: 0.0,
                waiting_since: None,
                stalled: false,
            };
        }
        Self {
            at: r.at,
            finished: r.finished,
            failed: r.failed,
            dead_letters: r.dead_letters,
            waiting_since: (r.waiting() > 0.0).then_some(r.at),
            stalled: false,
        }
    }
}

impl ConsumerReading {
    /// Messages waiting for the durable consumer: pending plus delivered and unacknowledged
    /// (the same on every instance).
    pub fn backlog(&self) -> f64 {
        self.pending + self.ack_pending
    }

    /// The work this instance has waiting: what it holds unsettled and what nobody was
    /// given yet.
    pub fn waiting(&self) -> f64 {
        self.in_flight.unwrap_or(0.0) + self.pending
    }
}

/// The messaging detectors' memory for one service.
#[derive(Debug, Default)]
pub struct ConsumerWatch {
    tracks: HashMap<(String, String), Track>,
    /// (scrape time, messages dead-lettered since the previous scrape).
    dead: VecDeque<(u64, f64)>,
    /// (scrape time, finished, failed since the previous scrape).
    outcomes: VecDeque<(u64, f64, f64)>,
    poison: WindowCondition,
    errors: WindowCondition,
}

/// The growth of a counter from `before` to `now`; a counter that went down restarted.
fn growth(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

impl ConsumerWatch {
    /// Folds `readings` (one service's latest values) into the watch at `now`.
    pub fn tick(
        &mut self,
        readings: &[ConsumerReading],
        cfg: &DetectionConfig,
        now: u64,
    ) -> ConsumerVerdict {
        let stall_ns = cfg.consumer_stall_ms.saturating_mul(1_000_000);
        let mut verdict = ConsumerVerdict::default();
        for r in readings {
            let key = (r.instance.clone(), r.group.clone());
            let t = self.tracks.entry(key).or_insert_with(|| Track::first(r));
            if r.at <= t.at {
                continue; // not scraped again yet
            }
            let finished = growth(t.finished, r.finished);
            let restarted = r.finished < t.finished;
            let failed = growth(t.failed, r.failed);
            let dead = growth(t.dead_letters, r.dead_letters);
            if dead > 0.0 {
                self.dead.push_back((r.at, dead));
            }
            if finished > 0.0 {
                self.outcomes.push_back((r.at, finished, failed));
            }
            let progressed = finished > 0.0 || restarted;
            t.waiting_since = match (r.waiting() > 0.0, progressed, t.waiting_since) {
                (false, _, _) => None,
                (true, true, _) => Some(r.at),
                (true, false, since) => Some(since.unwrap_or(r.at)),
            };
            let stalled = !progressed
                && t.waiting_since
                    .is_some_and(|w| stall_ns > 0 && r.at.saturating_sub(w) >= stall_ns);
            if stalled != t.stalled {
                verdict.stalls.push(StallChange {
                    instance: r.instance.clone(),
                    group: r.group.clone(),
                    stalled,
                    at: if stalled {
                        t.waiting_since.unwrap_or(r.at)
                    } else {
                        r.at
                    },
                    backlog: r.waiting(),
                });
            }
            *t = Track {
                at: r.at,
                finished: r.finished,
                failed: r.failed,
                dead_letters: r.dead_letters,
                waiting_since: t.waiting_since,
                stalled,
            };
        }
        self.tracks
            .retain(|_, t| now.saturating_sub(t.at) < FORGET_NS);
        while self
            .dead
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) > POISON_WINDOW_NS)
        {
            self.dead.pop_front();
        }
        while self
            .outcomes
            .front()
            .is_some_and(|(at, _, _)| now.saturating_sub(*at) > ERROR_WINDOW_NS)
        {
            self.outcomes.pop_front();
        }
        let dead: f64 = self.dead.iter().map(|(_, n)| n).sum();
        let poison = cfg.poison_dead_letters > 0 && dead >= cfg.poison_dead_letters as f64;
        self.poison = WindowCondition {
            active: poison,
            at: if poison {
                self.dead.front().map_or(now, |(at, _)| *at)
            } else if self.poison.active {
                now
            } else {
                self.poison.at
            },
            bad: dead,
            total: 0.0,
        };
        let (total, failed) = self
            .outcomes
            .iter()
            .fold((0.0, 0.0), |(t, f), (_, n, b)| (t + n, f + b));
        let errors = total >= cfg.min_requests as f64
            && failed >= cfg.min_bad as f64
            && failed / total >= cfg.consumer_error_ratio;
        self.errors = WindowCondition {
            active: errors,
            at: if errors {
                self.outcomes
                    .iter()
                    .find(|(_, _, b)| *b > 0.0)
                    .map_or(now, |(at, _, _)| *at)
            } else if self.errors.active {
                now
            } else {
                self.errors.at
            },
            bad: failed,
            total,
        };
        verdict.poison = self.poison;
        verdict.errors = self.errors;
        verdict.backlog = backlog(readings);
        verdict
    }
}

/// Messages waiting, per service: every instance of a durable consumer reads the same
/// JetStream numbers, so each consumer counts once (its largest reading).
fn backlog(readings: &[ConsumerReading]) -> Option<f64> {
    let mut by_group: HashMap<&str, f64> = HashMap::new();
    for r in readings {
        let b = by_group.entry(r.group.as_str()).or_insert(0.0);
        *b = b.max(r.backlog());
    }
    (!by_group.is_empty()).then(|| by_group.values().sum())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::MetricPoint;

    const S: u64 = 1_000_000_000;

    fn reading(at_s: u64, backlog: f64, finished: f64, failed: f64, dead: f64) -> ConsumerReading {
        ConsumerReading {
            instance: "127.0.0.1:9000".into(),
            group: "kitchen".into(),
            at: at_s * S,
            pending: backlog,
            ack_pending: 0.0,
            in_flight: None,
            finished,
            failed,
            dead_letters: dead,
            process_start: None,
        }
    }

    fn cfg() -> DetectionConfig {
        let mut c = DetectionConfig::default();
        c.consumer_stall_ms = 3_000;
        c
    }

    #[test]
    fn a_consumer_with_work_waiting_and_nothing_finished_stalls_then_recovers() {
        let mut w = ConsumerWatch::default();
        let c = cfg();
        assert!(
            w.tick(&[reading(10, 0.0, 100.0, 0.0, 0.0)], &c, 10 * S)
                .stalls
                .is_empty()
        );
        assert!(
            w.tick(&[reading(11, 0.0, 120.0, 0.0, 0.0)], &c, 11 * S)
                .stalls
                .is_empty()
        );
        // Wedged from 11 s: work arrives at 12 s, nothing finishes.
        for at in 12..15 {
            let v = w.tick(&[reading(at, 5.0, 120.0, 0.0, 0.0)], &c, at * S);
            assert!(v.stalls.is_empty(), "not yet at {at} s");
        }
        let v = w.tick(&[reading(15, 9.0, 120.0, 0.0, 0.0)], &c, 15 * S);
        assert_eq!(
            v.stalls,
            vec![StallChange {
                instance: "127.0.0.1:9000".into(),
                group: "kitchen".into(),
                stalled: true,
                at: 12 * S,
                backlog: 9.0,
            }]
        );
        // Said once.
        assert!(
            w.tick(&[reading(16, 9.0, 120.0, 0.0, 0.0)], &c, 16 * S)
                .stalls
                .is_empty()
        );
        // The same tick again (no new scrape) changes nothing.
        assert!(
            w.tick(&[reading(16, 9.0, 120.0, 0.0, 0.0)], &c, 16 * S + 1)
                .stalls
                .is_empty()
        );
        assert_eq!(v.backlog, Some(9.0));
        // Restarted: its counter starts again from zero, which is progress.
        let v = w.tick(&[reading(17, 9.0, 2.0, 0.0, 0.0)], &c, 17 * S);
        assert_eq!(v.stalls.len(), 1);
        assert!(!v.stalls[0].stalled);
        assert_eq!(v.stalls[0].at, 17 * S);
    }

    #[test]
    fn a_young_process_counts_its_first_readings_from_zero_and_an_old_one_does_not() {
        let c = cfg();
        let young = ConsumerReading {
            process_start: Some(5 * S),
            ..reading(6, 0.0, 5.0, 4.0, 4.0)
        };
        let mut w = ConsumerWatch::default();
        assert!(
            w.tick(std::slice::from_ref(&young), &c, 6 * S)
                .poison
                .active,
            "met at once"
        );
        let old = ConsumerReading {
            process_start: Some(S),
            ..reading(600, 0.0, 5.0, 4.0, 4.0)
        };
        let mut w = ConsumerWatch::default();
        assert!(
            !w.tick(std::slice::from_ref(&old), &c, 600 * S)
                .poison
                .active,
            "history"
        );
        let unknown = ConsumerReading {
            process_start: None,
            ..young
        };
        let mut w = ConsumerWatch::default();
        assert!(!w.tick(&[unknown], &c, 6 * S).poison.active);
    }

    #[test]
    fn messages_a_dead_instance_held_do_not_stall_its_successor_and_held_ones_do() {
        let c = cfg();
        // After a restart: 3 messages delivered to the killed process (ack pending), none
        // pending, the new instance holds nothing: not stalled, however long.
        let mut w = ConsumerWatch::default();
        for at in 0..20 {
            let r = ConsumerReading {
                pending: 0.0,
                ack_pending: 3.0,
                in_flight: Some(0.0),
                ..reading(at, 3.0, 7.0, 0.0, 0.0)
            };
            assert!(w.tick(&[r], &c, at * S).stalls.is_empty(), "at {at} s");
        }
        // A wedged instance holding two messages, nothing pending: stalled.
        let mut w = ConsumerWatch::default();
        let mut stalled = false;
        for at in 0..10 {
            let r = ConsumerReading {
                pending: 0.0,
                ack_pending: 2.0,
                in_flight: Some(2.0),
                ..reading(at, 2.0, 7.0, 0.0, 0.0)
            };
            stalled |= w.tick(&[r], &c, at * S).stalls.iter().any(|s| s.stalled);
        }
        assert!(stalled);
    }

    #[test]
    fn a_busy_consumer_or_an_idle_one_never_stalls() {
        let mut w = ConsumerWatch::default();
        let c = cfg();
        for at in 0..30 {
            // Always work waiting, always finishing some.
            let v = w.tick(&[reading(at, 50.0, at as f64 * 10.0, 0.0, 0.0)], &c, at * S);
            assert!(v.stalls.is_empty());
        }
        let mut idle = ConsumerWatch::default();
        for at in 0..30 {
            let v = idle.tick(&[reading(at, 0.0, 7.0, 0.0, 0.0)], &c, at * S);
            assert!(v.stalls.is_empty());
        }
        // A stall threshold of 0 turns the detector off.
        let mut off = cfg();
        off.consumer_stall_ms = 0;
        let mut w = ConsumerWatch::default();
        for at in 0..30 {
            assert!(
                w.tick(&[reading(at, 5.0, 1.0, 0.0, 0.0)], &off, at * S)
                    .stalls
                    .is_empty()
            );
        }
    }

    #[test]
    fn dead_letters_make_a_poison_condition_for_the_window() {
        let mut w = ConsumerWatch::default();
        let c = cfg(); // poison_dead_letters = 3
        w.tick(&[reading(0, 0.0, 10.0, 0.0, 0.0)], &c, 0);
        let v = w.tick(&[reading(1, 0.0, 12.0, 2.0, 2.0)], &c, S);
        assert!(!v.poison.active);
        let v = w.tick(&[reading(2, 0.0, 13.0, 3.0, 3.0)], &c, 2 * S);
        assert!(v.poison.active);
        assert_eq!(v.poison.at, S, "since the first dead letter in the window");
        assert_eq!(v.poison.bad, 3.0);
        // Still within 60 s of the first: held; after, over.
        let v = w.tick(&[reading(40, 0.0, 30.0, 3.0, 3.0)], &c, 40 * S);
        assert!(v.poison.active);
        let v = w.tick(&[reading(62, 0.0, 40.0, 3.0, 3.0)], &c, 62 * S);
        assert!(!v.poison.active);
        assert_eq!(v.poison.at, 62 * S);
    }

    #[test]
    fn a_high_share_of_failed_messages_is_a_consumer_error_condition() {
        let mut w = ConsumerWatch::default();
        let c = cfg(); // min_requests 10, min_bad 3, ratio 0.5
        w.tick(&[reading(0, 0.0, 0.0, 0.0, 0.0)], &c, 0);
        // 8 finished, 6 failed: too few messages to judge.
        let v = w.tick(&[reading(1, 0.0, 8.0, 6.0, 0.0)], &c, S);
        assert!(!v.errors.active);
        let v = w.tick(&[reading(2, 0.0, 14.0, 10.0, 0.0)], &c, 2 * S);
        assert!(v.errors.active);
        assert_eq!(v.errors.at, S);
        assert_eq!((v.errors.bad, v.errors.total), (10.0, 14.0));
        // Then many successes: below the ratio, over.
        let v = w.tick(&[reading(3, 0.0, 40.0, 10.0, 0.0)], &c, 3 * S);
        assert!(!v.errors.active);
        // A few failures among many successes never make one.
        let mut w = ConsumerWatch::default();
        for at in 0..20u64 {
            let v = w.tick(
                &[reading(at, 0.0, at as f64 * 20.0, at as f64, 0.0)],
                &c,
                at * S,
            );
            assert!(!v.errors.active);
        }
    }

    #[test]
    fn readings_sum_outcomes_and_backlog_per_instance_and_consumer() {
        let sample = |name: &str, labels: &[(&str, &str)], v: f64| LatestSample {
            service: "kitchen".into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            point: MetricPoint {
                time_unix_nano: 5,
                value: v,
            },
        };
        let a = [("instance", "h:1"), (GROUP_LABEL, "kitchen")];
        let samples = vec![
            sample(PENDING, &a, 4.0),
            sample(ACK_PENDING, &a, 1.0),
            sample(IN_FLIGHT, &a, 2.0),
            sample(CONSUMED, &[a[0], a[1], ("outcome", "ack")], 10.0),
            sample(CONSUMED, &[a[0], a[1], ("outcome", "nak")], 3.0),
            sample(CONSUMED, &[a[0], a[1], ("outcome", "dead_letter")], 1.0),
            sample(DEAD_LETTERS, &[a[0], a[1], ("reason", "malformed")], 1.0),
            sample(PROCESS_START, &[a[0]], 2.0),
            // No consumer label: not a consumer's series.
            sample(PENDING, &[("instance", "h:1")], 99.0),
            sample(
                PENDING,
                &[("instance", "h:2"), (GROUP_LABEL, "kitchen")],
                f64::NAN,
            ),
        ];
        let got = readings(&samples);
        assert_eq!(
            got["kitchen"],
            vec![ConsumerReading {
                instance: "h:1".into(),
                group: "kitchen".into(),
                at: 5,
                pending: 4.0,
                ack_pending: 1.0,
                in_flight: Some(2.0),
                finished: 14.0,
                failed: 4.0,
                dead_letters: 1.0,
                process_start: Some(2_000_000_000),
            }]
        );
    }
}
