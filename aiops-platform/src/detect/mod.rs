//! Detection from the telemetry contract, for every service the platform knows — declared in
//! the topology (supervised or watched) or discovered from the telemetry it sends — whether or
//! not the platform started it or routes its traffic.
//!
//! Every 250 ms, per service, the engine reads the service's per-second request buckets from
//! one source ([`RequestSource`] precedence: gateway, server spans, scraped histogram, pushed
//! OTLP histogram — so a fact reported twice is counted once) and judges:
//!
//! - **error budget** ([`read_alerts`]): multiwindow, multi-burn-rate alerts on `[service.slo]
//!   availability`; the failure start is the first failed request of the episode (its own
//!   timestamp, or the scrape that first reported it); the condition clears at the first
//!   interval with requests and no failure, once no alert fires and `quiet_ms` passed;
//! - **latency** ([`LatencyJudge`]): the service's per-second mean against its own robust
//!   baseline, by the same detector `aiops detect --detector robust-online` runs, and, when
//!   the SLO sets `latency_ms`, the latency objective's burn alerts;
//! - **exception bursts** from the Sentry ingest;
//! - **message consumers** ([`messaging`]): a stalled consumer instance, poison messages,
//!   consumer errors, from the messaging metrics scraped from each instance.
//!
//! Each state goes to the supervisor's controller as an [`Finding::State`] when it changes,
//! and every few seconds again (so an incident reloaded after a restart clears too).

mod burn;
mod exceptions;
mod latency;
pub mod messaging;
mod rootcause;
mod templates;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use burn::{AlertReading, MinEvidence, Objective, read_alerts};
#[cfg(test)]
pub(crate) use latency::test_series;
pub use latency::{LatencyJudge, LatencyReading};
pub use rootcause::rank_causes;
pub use templates::{NewTemplate, QUIET_SECS, TemplateBook, TemplateNews, TemplateWatch};

use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::config::{DetectionConfig, SloConfig, Topology};
use crate::incident::RootCause;
use crate::incident::Signal;
use crate::store::{Buckets, RequestSource, Store};

const TICK: Duration = Duration::from_millis(250);
/// Unchanged states are sent again this often.
const REFRESH_NS: u64 = 5_000_000_000;
/// An unchanged consumer backlog is sent again this often.
const BACKLOG_REFRESH_NS: u64 = 1_000_000_000;
/// Root causes of a service with an open request-level condition are ranked again this often.
pub const RANK_EVERY_NS: u64 = 2_000_000_000;

/// How a service is watched: its thresholds and objectives.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Detector thresholds.
    pub detection: DetectionConfig,
    /// Objectives and burn alerts.
    pub slo: SloConfig,
}

/// A detector's state for one service and one signal, sent every tick.
#[derive(Debug, Clone)]
pub struct DetectorState {
    /// The service.
    pub service: String,
    /// `ErrorRate`, `Latency` or `ExceptionBurst`.
    pub signal: Signal,
    /// Whether the condition holds now.
    pub active: bool,
    /// When the failure behind it started (when active).
    pub since: u64,
    /// The first success after the failure (when it ended).
    pub recovered_at: u64,
    /// What was measured.
    pub detail: serde_json::Value,
}

/// What the detectors tell the supervisor: a condition's state, evidence for an open incident,
/// candidate root causes. The supervisor's loop turns each into one of its events.
#[derive(Debug, Clone)]
pub enum Finding {
    /// A detector's state for one service and one signal (sent when it changes).
    State(DetectorState),
    /// Supporting evidence (log templates): attached to the open incident, if any.
    Evidence {
        /// The service.
        service: String,
        /// The signal.
        signal: Signal,
        /// The instance.
        instance: Option<InstanceId>,
        /// Details.
        detail: serde_json::Value,
    },
    /// Candidate root causes of the service's open incident, most likely first.
    RootCauses {
        /// The service.
        service: String,
        /// The ranking.
        causes: Vec<RootCause>,
    },
    /// Messages waiting for the service's durable consumers (sent when it changes, and every
    /// second while there are consumers).
    ConsumerBacklog {
        /// The service.
        service: String,
        /// Pending plus unacknowledged, summed over its durable consumers.
        backlog: f64,
    },
    /// A message consumer instance stalled, or is no longer stalled.
    ConsumerStall {
        /// The service.
        service: String,
        /// What changed.
        change: messaging::StallChange,
    },
}

/// One service's detectors.
#[derive(Debug, Default)]
pub struct ServiceDetection {
    errors_active: bool,
    latency: LatencyJudge,
    exceptions: exceptions::ExceptionWatch,
    sent: HashMap<Signal, (bool, u64)>,
    latency_active: bool,
    messaging: messaging::ConsumerWatch,
    /// The consumer backlog last sent, and when.
    backlog_sent: Option<(f64, u64)>,
    /// When causes were last ranked, and the order and scores then.
    ranked: Option<(u64, Vec<String>)>,
}

/// Starts the detection task: topology services with their settings, discovered ones with
/// the defaults; known log templates live in `pool`.
pub fn spawn(
    topology: &Topology,
    store: Arc<Store>,
    report: impl Fn(Finding) -> bool + Send + 'static,
    pool: Option<sqlx::SqlitePool>,
) -> tokio::task::JoinHandle<()> {
    let declared_edges: Vec<(String, String)> = topology
        .services
        .iter()
        .flat_map(|s| s.depends_on.iter().map(|d| (s.name.clone(), d.clone())))
        .collect();
    let captured: std::collections::HashSet<String> = topology
        .services
        .iter()
        .filter(|s| !s.command.is_empty())
        .map(|s| s.name.clone())
        .collect();
    let declared: HashMap<String, Watch> = topology
        .services
        .iter()
        .map(|s| {
            let watch = Watch {
                detection: s.detection.clone(),
                slo: s.slo.clone(),
            };
            (s.name.clone(), watch)
        })
        .collect();
    tokio::spawn(async move {
        let book = match TemplateBook::open(pool).await {
            Ok(b) => b,
            Err(error) => {
                tracing::error!(%error, "log templates: no SQLite table, known for this run only");
                TemplateBook::in_memory()
            }
        };
        let mut templates = TemplateWatch::new(book, captured, now_nanos()).await;
        let default = Watch::default();
        let mut state: HashMap<String, ServiceDetection> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let now = now_nanos();
            let detection_of = |s: &str| {
                declared
                    .get(s)
                    .map(|w| w.detection.clone())
                    .unwrap_or_default()
            };
            let mut news = templates.tick(&store, detection_of, now);
            // Bounded: the registry caps discovered services.
            let names = store.services.read().names();
            let consumers = messaging::readings(&store.metrics.read().latest_of(&messaging::NAMES));
            for service in names {
                let watch = declared.get(&service).unwrap_or(&default);
                let st = state.entry(service.clone()).or_default();
                let mut out: Vec<Finding> = st
                    .evaluate(&service, watch, &store, now)
                    .into_iter()
                    .map(Finding::State)
                    .collect();
                out.extend(st.consumers(
                    &service,
                    consumers.get(&service).map_or(&[], Vec::as_slice),
                    watch,
                    now,
                ));
                if let Some(n) = news.remove(&service) {
                    out.extend(st.templates(&service, n, now));
                }
                out.extend(st.root_causes(&service, &store, &declared_edges, now));
                for e in out {
                    if !report(e) {
                        return;
                    }
                }
            }
        }
    })
}

impl ServiceDetection {
    /// Judges `service` at `now`; answers the states to send (changed, or due again).
    pub fn evaluate(
        &mut self,
        service: &str,
        watch: &Watch,
        store: &Store,
        now: u64,
    ) -> Vec<DetectorState> {
        let longest = watch
            .slo
            .burn_alerts
            .iter()
            .map(|a| a.long_secs)
            .max()
            .unwrap_or(30);
        let mut states = Vec::with_capacity(3);
        if let Some(source) = store.requests.preferred_source(service, now, longest) {
            let judged = store.requests.with_buckets(service, source, |b| {
                [
                    self.errors(service, watch, b, source, now),
                    self.latency(service, watch, b, source, now),
                ]
            });
            states.extend(judged.into_iter().flatten().flatten());
        }
        let e = self.exceptions.tick(service, &watch.detection, store, now);
        if self.due(Signal::ExceptionBurst, e.active, now) {
            states.push(DetectorState {
                service: service.to_owned(),
                signal: Signal::ExceptionBurst,
                active: e.active,
                since: e.since,
                recovered_at: if e.last_event > 0 { e.last_event } else { now },
                detail: e.detail,
            });
        }
        states
    }

    /// The message consumers' stalls (as they change) and the poison-message and
    /// consumer-error states (changed, or due again).
    fn consumers(
        &mut self,
        service: &str,
        readings: &[messaging::ConsumerReading],
        watch: &Watch,
        now: u64,
    ) -> Vec<Finding> {
        let verdict = self.messaging.tick(readings, &watch.detection, now);
        let mut out: Vec<Finding> = Vec::new();
        if let Some(backlog) = verdict.backlog {
            let changed = self
                .backlog_sent
                .is_none_or(|(b, at)| b != backlog || now.saturating_sub(at) >= BACKLOG_REFRESH_NS);
            if changed {
                self.backlog_sent = Some((backlog, now));
                out.push(Finding::ConsumerBacklog {
                    service: service.to_owned(),
                    backlog,
                });
            }
        }
        out.extend(
            verdict
                .stalls
                .into_iter()
                .map(|change| Finding::ConsumerStall {
                    service: service.to_owned(),
                    change,
                }),
        );
        for (signal, c) in [
            (Signal::PoisonMessages, verdict.poison),
            (Signal::ConsumerErrors, verdict.errors),
        ] {
            if self.due(signal, c.active, now) {
                let detail = match signal {
                    Signal::PoisonMessages => serde_json::json!({
                        "dead_letters_60s": c.bad, "threshold": watch.detection.poison_dead_letters,
                    }),
                    _ => serde_json::json!({
                        "failed_30s": c.bad, "finished_30s": c.total,
                        "ratio_threshold": watch.detection.consumer_error_ratio,
                    }),
                };
                out.push(Finding::State(DetectorState {
                    service: service.to_owned(),
                    signal,
                    active: c.active,
                    since: c.at,
                    recovered_at: c.at,
                    detail,
                }));
            }
        }
        out
    }

    /// While a request-level condition holds, the ranked root causes (every
    /// [`RANK_EVERY_NS`], sent when their order or scores changed).
    fn root_causes(
        &mut self,
        service: &str,
        store: &Store,
        declared: &[(String, String)],
        now: u64,
    ) -> Option<Finding> {
        if !self.errors_active && !self.latency_active {
            self.ranked = None;
            return None;
        }
        if self
            .ranked
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_sub(*at) < RANK_EVERY_NS)
        {
            return None;
        }
        let metric = if self.latency_active {
            "latency"
        } else {
            "error_rate"
        };
        let causes = rank_causes(store, declared, service, metric, now)?;
        // Order and scores (to two decimals): an early ranking over a short anomalous
        // stretch is refined as the stretch grows.
        let order: Vec<String> = causes
            .iter()
            .map(|c| format!("{}={:.2}", c.node, c.score))
            .collect();
        let changed = self.ranked.as_ref().is_none_or(|(_, o)| *o != order);
        self.ranked = Some((now, order));
        changed.then(|| Finding::RootCauses {
            service: service.to_owned(),
            causes,
        })
    }

    /// The new-template condition and rate-jump evidence of one tick.
    fn templates(&mut self, service: &str, news: TemplateNews, now: u64) -> Vec<Finding> {
        let mut out: Vec<Finding> = news
            .jumps
            .into_iter()
            .map(|(template, count, baseline)| Finding::Evidence {
                service: service.to_owned(),
                signal: Signal::LogTemplate,
                instance: None,
                detail: serde_json::json!({
                    "kind": "error_template_rate_jump", "template": template,
                    "count": count, "baseline_per_10s": baseline
                }),
            })
            .collect();
        let state = DetectorState {
            service: service.to_owned(),
            signal: Signal::LogTemplate,
            active: news.open.is_some(),
            since: news.open.as_ref().map_or(now, |o| o.since),
            recovered_at: news.closed_at.unwrap_or(now),
            detail: match &news.open {
                Some(o) => serde_json::json!({
                    "kind": "new_error_template", "template": o.template, "example": o.example,
                }),
                None => serde_json::Value::Null,
            },
        };
        if self.due(state.signal, state.active, now) {
            out.push(Finding::State(state));
        }
        out
    }

    /// Whether `s` changed since it was last sent, or is due again.
    /// (Checked before the state's evidence is built: most ticks send nothing.)
    fn due(&mut self, signal: Signal, active: bool, now: u64) -> bool {
        let due = match self.sent.get(&signal) {
            Some((was, at)) => *was != active || now.saturating_sub(*at) >= REFRESH_NS,
            None => active,
        };
        if due || !self.sent.contains_key(&signal) {
            self.sent.insert(signal, (active, now));
        }
        due
    }

    fn errors(
        &mut self,
        service: &str,
        watch: &Watch,
        b: &Buckets,
        source: RequestSource,
        now: u64,
    ) -> Option<DetectorState> {
        let cfg = &watch.detection;
        let readings = read_alerts(
            b,
            now,
            &watch.slo,
            Objective::Availability,
            MinEvidence::of(cfg),
        )
        .unwrap_or_default();
        let firing = readings.iter().any(|r| r.firing);
        let last_error = b.last_error();
        let quiet_ns = cfg.quiet_ms.saturating_mul(1_000_000);
        // Cleared by requests that succeed, never by silence: `quiet_ms` of reported
        // requests (the source's own times, not the clock) after the last failure, and a
        // success among them. A source that stops reporting keeps the condition.
        let reported = b.latest_observation().unwrap_or(0);
        let quiet =
            last_error.is_none_or(|(t, ok)| ok.is_some() && reported.saturating_sub(t) >= quiet_ns);
        if firing {
            self.errors_active = true;
        } else if self.errors_active && quiet {
            self.errors_active = false;
        }
        if !self.due(Signal::ErrorRate, self.errors_active, now) {
            return None;
        }
        let quiet_secs = cfg.quiet_ms.div_ceil(1000).max(1);
        Some(DetectorState {
            service: service.to_owned(),
            signal: Signal::ErrorRate,
            active: self.errors_active,
            since: b.episode_start(quiet_secs).unwrap_or(now),
            recovered_at: last_error.and_then(|(_, ok)| ok).unwrap_or(now),
            detail: burn_detail(source, watch.slo.availability, &readings),
        })
    }

    fn latency(
        &mut self,
        service: &str,
        watch: &Watch,
        b: &Buckets,
        source: RequestSource,
        now: u64,
    ) -> Option<DetectorState> {
        let reading = self.latency.tick(b.iter(), now, &watch.detection);
        let slo = read_alerts(
            b,
            now,
            &watch.slo,
            Objective::Latency,
            MinEvidence::of(&watch.detection),
        );
        let slo_firing = slo.as_ref().is_some_and(|r| r.iter().any(|a| a.firing));
        let slo_since = slo_firing.then(|| first_slow(b, now, &watch.slo)).flatten();
        let active = reading.active || slo_firing;
        self.latency_active = active;
        if !self.due(Signal::Latency, active, now) {
            return None;
        }
        let since = match (reading.active, slo_since) {
            (true, Some(s)) => reading.since.min(s),
            (true, None) => reading.since,
            (false, Some(s)) => s,
            (false, None) => now,
        };
        Some(DetectorState {
            service: service.to_owned(),
            signal: Signal::Latency,
            active,
            since,
            recovered_at: if reading.recovered_at > 0 {
                reading.recovered_at
            } else {
                now
            },
            detail: serde_json::json!({
                "source": source,
                "baseline": reading,
                "slo_latency_ms": watch.slo.latency_ms,
                "slo_alerts": slo,
            }),
        })
    }
}

/// The evidence of an error-budget burn: the source, the objective, the alert that fired (or
/// came closest) with both windows' counts, and every alert's reading.
fn burn_detail(source: RequestSource, slo: f64, readings: &[AlertReading]) -> serde_json::Value {
    let top = readings
        .iter()
        .filter(|r| r.firing)
        .chain(readings.iter())
        .max_by(|a, b| {
            (a.firing, a.short_burn.min(a.long_burn))
                .partial_cmp(&(b.firing, b.short_burn.min(b.long_burn)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let mut detail = serde_json::json!({
        "source": source,
        "objective": "availability",
        "slo": slo,
        "error_budget": 1.0 - slo,
        "alerts": readings,
    });
    if let (Some(r), Some(map)) = (top, detail.as_object_mut()) {
        for (k, v) in [
            ("short_window_secs", serde_json::json!(r.alert.short_secs)),
            ("short_requests", serde_json::json!(r.short.total)),
            ("short_errors", serde_json::json!(r.short.errors)),
            (
                "short_error_share",
                serde_json::json!(r.short.error_ratio()),
            ),
            ("short_burn_rate", serde_json::json!(r.short_burn)),
            ("long_window_secs", serde_json::json!(r.alert.long_secs)),
            ("long_requests", serde_json::json!(r.long.total)),
            ("long_errors", serde_json::json!(r.long.errors)),
            ("long_error_share", serde_json::json!(r.long.error_ratio())),
            ("long_burn_rate", serde_json::json!(r.long_burn)),
            ("burn_factor", serde_json::json!(r.alert.factor)),
        ] {
            map.insert(k.to_owned(), v);
        }
    }
    detail
}

/// The first request of the earliest second, in the current run of seconds with requests
/// slower than the objective, within the longest alert window.
fn first_slow(b: &Buckets, now: u64, slo: &SloConfig) -> Option<u64> {
    let ms = slo.latency_ms?;
    let longest = slo.burn_alerts.iter().map(|a| a.long_secs).max()?;
    let now_s = now / 1_000_000_000;
    b.iter()
        .rev()
        .take_while(|x| x.second + longest > now_s)
        .take_while(|x| x.slower_than(ms) > 0 || x.total == 0)
        .filter(|x| x.total > 0)
        .last()
        .map(|x| x.first_slower_than(ms).unwrap_or(x.first_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetentionConfig;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_discovered_service_gets_an_error_incident_from_its_spans_alone() {
        let store = Store::new(RetentionConfig::default(), None);
        let watch = Watch::default();
        let mut d = ServiceDetection::default();
        let t0 = 1_000 * S;
        let mut first_failure = None;
        let mut opened = None;
        for s in 0..60 {
            for i in 0..20u64 {
                let at = t0 + s * S + i * 40_000_000;
                let failed = s >= 40 && i % 3 == 0;
                if failed && first_failure.is_none() {
                    first_failure = Some(at);
                }
                store
                    .requests
                    .record_request("py", RequestSource::Spans, at, failed, Some(5.0));
            }
            let now = t0 + (s + 1) * S;
            for st in d.evaluate("py", &watch, &store, now) {
                if st.signal == Signal::ErrorRate && st.active && opened.is_none() {
                    opened = Some((now, st.since));
                }
            }
        }
        let (at, since) = opened.unwrap_or_else(|| panic!("no error incident"));
        assert_eq!(
            Some(since),
            first_failure,
            "failure start is the first failed span"
        );
        assert!(
            at - since < 3 * S,
            "detected {} ms after",
            (at - since) / 1_000_000
        );
    }

    #[test]
    fn silence_never_clears_an_error_condition_and_reported_successes_do() {
        let store = Store::new(RetentionConfig::default(), None);
        let watch = Watch::default();
        let mut d = ServiceDetection::default();
        let t0 = 1_000 * S;
        let record = |s: u64, failed: &dyn Fn(u64) -> bool| {
            for i in 0..20u64 {
                let at = t0 + s * S + i * 40_000_000;
                store.requests.record_request(
                    "svc",
                    RequestSource::Spans,
                    at,
                    failed(i),
                    Some(5.0),
                );
            }
        };
        for s in 0..10 {
            record(s, &|i| s >= 5 && i % 3 == 0);
        }
        let active = |d: &mut ServiceDetection, now| {
            d.evaluate("svc", &watch, &store, now);
            d.errors_active
        };
        assert!(active(&mut d, t0 + 10 * S));
        // The telemetry stops (a stalled exporter): the condition stays.
        for k in 0..40 {
            assert!(
                active(&mut d, t0 + 10 * S + k * S / 4),
                "cleared by silence"
            );
        }
        // Successes reported until no alert's short window (30 s at most) holds a failure:
        // cleared.
        for s in 20..42 {
            record(s, &|_| false);
        }
        assert!(!active(&mut d, t0 + 42 * S));
    }

    #[test]
    fn an_exception_burst_recovers_at_its_last_event_not_when_its_window_empties() {
        let store = Store::new(RetentionConfig::default(), None);
        let watch = Watch::default();
        let mut d = ServiceDetection::default();
        let t0 = 1_000 * S;
        d.evaluate("svc", &watch, &store, t0);
        let mut last_event = 0;
        let mut opened = false;
        let mut recovered = None;
        for k in 0..80u64 {
            let now = t0 + k * S / 4;
            // One exception every 250 ms for the first 3 s, then none.
            if k < 12 {
                last_event = now;
                store.record_exception(crate::store::ExceptionEvent {
                    service: "svc".into(),
                    fingerprint: "fp".into(),
                    title: "Boom".into(),
                    exception_type: Some("Boom".into()),
                    level: "error".into(),
                    time_unix_nano: now,
                    trace_id: None,
                    event: serde_json::json!({}),
                });
            }
            for st in d.evaluate("svc", &watch, &store, now + 1) {
                if st.signal != Signal::ExceptionBurst {
                    continue;
                }
                if st.active {
                    opened = true;
                } else if opened && recovered.is_none() {
                    recovered = Some(st.recovered_at);
                }
            }
        }
        assert!(opened, "no burst");
        assert_eq!(
            recovered,
            Some(last_event),
            "recovery is the last event's time"
        );
    }

    #[test]
    fn unchanged_states_are_sent_again_only_when_due() {
        let mut d = ServiceDetection::default();
        let e = Signal::ErrorRate;
        assert!(!d.due(e, false, 0), "nothing to say yet");
        assert!(d.due(e, true, S));
        assert!(!d.due(e, true, 2 * S));
        assert!(d.due(e, true, 7 * S));
        assert!(d.due(e, false, 8 * S));
    }

    #[test]
    fn dead_letters_scraped_from_a_consumer_open_a_poison_condition() {
        let store = Store::new(RetentionConfig::default(), None);
        let watch = Watch::default();
        let mut d = ServiceDetection::default();
        let t0 = 1_000 * S;
        let exposition = |dead: u64, acked: u64| {
            let mut text = String::from(
                "# TYPE aiods_messaging_consumer_pending gauge\n\
                 aiods_messaging_consumer_pending{messaging_system=\"nats\",messaging_consumer_group_name=\"kitchen-create-ticket\",messaging_stream_name=\"CONSUMERS\"} 0\n\
                 # TYPE messaging_client_consumed_messages_total counter\n",
            );
            text.push_str(&format!(
                "messaging_client_consumed_messages_total{{messaging_system=\"nats\",messaging_consumer_group_name=\"kitchen-create-ticket\",messaging_destination_name=\"consumers.verified\",outcome=\"ack\"}} {acked}\n"
            ));
            if dead > 0 {
                text.push_str(&format!(
                    "messaging_client_consumed_messages_total{{messaging_system=\"nats\",messaging_consumer_group_name=\"kitchen-create-ticket\",messaging_destination_name=\"consumers.verified\",outcome=\"dead_letter\"}} {dead}\n\
                     # TYPE aiods_messaging_dead_letters_total counter\n\
                     aiods_messaging_dead_letters_total{{messaging_system=\"nats\",messaging_consumer_group_name=\"kitchen-create-ticket\",messaging_destination_name=\"consumers.verified\",reason=\"malformed\"}} {dead}\n"
                ));
            }
            text
        };
        let mut states = Vec::new();
        for (k, dead) in [0, 0, 4, 4].into_iter().enumerate() {
            let at = t0 + k as u64 * S;
            let samples = crate::receive::scrape::parse_exposition(
                &exposition(dead, 1),
                "kitchen",
                "127.0.0.1:9",
                at,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            store.metrics.write().insert(samples, at);
            let consumers = messaging::readings(&store.metrics.read().latest_of(&messaging::NAMES));
            let readings = consumers.get("kitchen").map_or(&[][..], Vec::as_slice);
            states.extend(d.consumers("kitchen", readings, &watch, at + S / 10));
        }
        let poison = states
            .iter()
            .find_map(|f| match f {
                Finding::State(s) if s.signal == Signal::PoisonMessages => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no poison state: {states:?}"));
        assert!(poison.active);
        assert_eq!(poison.since, t0 + 2 * S);
    }
}
