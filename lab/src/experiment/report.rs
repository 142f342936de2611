//! The experiment report: the seed's Table 4 (load) and Table 5 (per service), the fault
//! timeline matched to the platform's incidents, latency over time, the scalability line, and
//! the same as JSON and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use aiops_platform::incident::{Incident, IncidentStatus};
use aiops_platform::supervisor::InstanceView;

use super::chaos::FaultEvent;
use super::figures::{self, FaultFigure, FigureRow, IncidentTimes};
use super::load::{FailureNote, Outcome, Sample};
use crate::topology::Saga;

/// Mean, median and 95th percentile (nearest rank) of durations in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Stat {
    /// How many values.
    pub n: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

/// The `q` quantile of sorted values (nearest rank).
fn rank(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    sorted.get(i).copied()
}

impl Stat {
    /// Summarises `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        Self {
            n: values.len(),
            mean: Some(values.iter().sum::<f64>() / values.len() as f64),
            p50: rank(&values, 0.5),
            p95: rank(&values, 0.95),
            p99: rank(&values, 0.99),
            max: values.last().copied(),
        }
    }
}

/// The seed's Table 7: function, the service that does it here, MTTD and MTTR in seconds
/// (the seed prints 22 for "Authorize payment"'s MTTD, read as 2.2: the text gives
/// 1.5–2.2 s).
const SEED_TABLE_7: [(&str, &str, f64, f64); 4] = [
    ("Create order", "order", 2.1, 4.5),
    ("Verify consumer details", "consumer", 1.5, 2.0),
    ("Create kitchen ticket", "kitchen", 1.8, 1.5),
    ("Authorize payment", "accounting", 2.2, 1.7),
];

/// One service's row (the seed's Table 5, with percentiles).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    /// The service.
    pub name: String,
    /// Instances started during the run: replicas + restarts.
    pub instances_created: u64,
    /// Restarts during the run: by the platform (by the lab for a watched service).
    pub restarts: u64,
    /// Faults injected on it (kill, hang, soft).
    pub faults_injected: usize,
    /// Incidents opened on it during the run.
    pub incidents: usize,
    /// MTTD of those incidents.
    pub mttd_ms: Stat,
    /// MTTR of the resolved ones.
    pub mttr_ms: Stat,
    /// Downtime of the resolved ones.
    pub downtime_ms: Stat,
}

/// One incident of the run, times relative to the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// The service.
    pub service: String,
    /// The signals.
    pub signals: Vec<String>,
    /// `open` or `resolved`.
    pub status: String,
    /// Failure start, ms since the run started.
    pub failure_start_ms: f64,
    /// Detection, ms since the run started.
    pub detected_ms: f64,
    /// Recovery, ms since the run started.
    pub recovered_ms: Option<f64>,
    /// MTTD.
    pub mttd_ms: f64,
    /// MTTR.
    pub mttr_ms: Option<f64>,
    /// Downtime.
    pub downtime_ms: Option<f64>,
    /// Index in `faults` of the injected fault that caused it, when one did.
    pub fault: Option<usize>,
    /// The upstream blamed, when any.
    pub probable_root_cause: Option<String>,
}

/// Latency and errors over one time bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Bucket start, seconds since the run started.
    pub t_s: u64,
    /// Requests sent in it.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Latency median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// A fault-free load phase of the scalability line.
#[derive(Debug, Clone, Serialize)]
pub struct ScalabilityRow {
    /// Concurrent users.
    pub users: usize,
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Mean response time, ms.
    pub mean_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Throughput, requests per second.
    pub throughput_rps: f64,
}

/// What the platform's gateway counted for the services the scenario's requests go to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GatewayCount {
    /// Requests answered (all classes).
    pub requests: u64,
    /// By status class.
    pub by_class: BTreeMap<String, u64>,
    /// Retries the gateway made.
    pub retries: u64,
    /// Requests that found no ready instance within the hold time.
    pub no_instance: u64,
}

/// The whole report (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// `built-in food-delivery topology` or the file.
    pub topology: String,
    /// The saga variant of the food-delivery services (`http` or `events`).
    pub saga: Saga,
    /// The scenario's name (what the virtual users sent).
    pub scenario: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Concurrent users.
    pub users: usize,
    /// Open loop rate, when used.
    pub rate: Option<f64>,
    /// Length of the loaded run, seconds.
    pub duration_s: f64,
    /// Replicas per service, when overridden.
    pub replicas: Option<u32>,
    /// Share of invalid requests in the scenario's mix (expected to be refused).
    pub invalid_share: f64,
    /// The chaos schedule, in words.
    pub chaos: String,
    /// Requests sent (a request with a follow-up counts once, however many polls it took).
    pub requests: u64,
    /// Follow-up polls sent besides `requests`.
    pub follow_up_requests: u64,
    /// Valid requests answered as the scenario expects (and brought to a final value).
    pub ok: u64,
    /// Invalid requests answered as expected (a 4xx, say; not failures).
    pub rejected_as_expected: u64,
    /// Failed requests: connection error, timeout, unexpected status.
    pub errors: u64,
    /// Requests answered as expected whose follow-up found no final value within its
    /// timeout, or whose poll answered an unexpected status (orders not settled), counted
    /// apart from `errors`.
    pub unsettled: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// Requests per second.
    pub throughput_rps: f64,
    /// Response time of every request, ms.
    pub latency_ms: Stat,
    /// With follow-ups: the time from the request to its final value, of the requests that
    /// reached one (an order's latency from `POST` to APPROVED or REJECTED), ms.
    pub settled_latency_ms: Option<Stat>,
    /// The services the scenario's requests go to.
    pub entry_services: Vec<String>,
    /// What the platform's gateway counted on those services during the run (requests and
    /// follow-up polls, and the calls other services make to them through it).
    pub gateway: GatewayCount,
    /// Per service.
    pub services: Vec<ServiceRow>,
    /// Every incident of all services, together.
    pub all_services: ServiceRow,
    /// Faults injected, in order.
    pub faults: Vec<FaultEvent>,
    /// Incidents opened during the run.
    pub incidents: Vec<IncidentRow>,
    /// Indexes in `faults` of faults (kills, hangs, error bursts, latency steps) no incident
    /// was found for.
    pub unmatched_faults: Vec<usize>,
    /// What detection ran with: probe and scrape intervals, gateway, watched services.
    pub conditions: String,
    /// Every injected fault with its incident's times and the five figures (MTTD, MTTR,
    /// downtime, MTTD from fault, downtime from fault).
    pub fault_figures: Vec<FaultFigure>,
    /// The figures per fault kind.
    pub figures_by_kind: Vec<FigureRow>,
    /// The figures per service.
    pub figures_by_service: Vec<FigureRow>,
    /// Width of the latency buckets, seconds.
    pub bucket_s: u64,
    /// Latency over time.
    pub timeline: Vec<Bucket>,
    /// Mean response time at 1, 100 and 1000 users (with `--scalability`).
    pub scalability: Vec<ScalabilityRow>,
    /// The first failed requests.
    pub failures: Vec<FailureNote>,
}

/// Inputs of [`build`].
pub(crate) struct Inputs<'a> {
    pub(crate) command: String,
    pub(crate) saga: Saga,
    pub(crate) topology: String,
    pub(crate) scenario: String,
    pub(crate) started_at: String,
    pub(crate) start_unix_nano: u64,
    pub(crate) users: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) replicas: Option<u32>,
    pub(crate) invalid_share: f64,
    pub(crate) chaos: String,
    pub(crate) conditions: String,
    pub(crate) elapsed_s: f64,
    pub(crate) samples: &'a [Sample],
    pub(crate) failures: Vec<FailureNote>,
    pub(crate) follow_up_requests: u64,
    pub(crate) entry_services: Vec<String>,
    pub(crate) faults: Vec<FaultEvent>,
    pub(crate) incidents: Vec<Incident>,
    pub(crate) instances_before: Vec<InstanceView>,
    pub(crate) instances_after: Vec<InstanceView>,
    pub(crate) services: Vec<String>,
    /// Watched services (one instance each, run by the lab) and the lab's restarts of them.
    pub(crate) lab_restarts: BTreeMap<String, u64>,
    pub(crate) gateway: GatewayCount,
    pub(crate) scalability: Vec<ScalabilityRow>,
}

fn rel_ms(at: u64, start: u64) -> f64 {
    (at as f64 - start as f64) / 1e6
}

/// Mean and p95 of sample latencies in ms.
pub(crate) fn latency_stat(samples: &[Sample]) -> Stat {
    Stat::of(
        samples
            .iter()
            .map(|s| s.latency_us as f64 / 1000.0)
            .collect(),
    )
}

/// Builds the report.
pub(crate) fn build(i: Inputs<'_>) -> Report {
    let requests = i.samples.len() as u64;
    let count = |o: Outcome| i.samples.iter().filter(|s| s.outcome == o).count() as u64;
    let errors = count(Outcome::Failed);
    let ok = count(Outcome::Ok);
    let rejected = count(Outcome::Rejected);
    let unsettled = count(Outcome::Unsettled);
    let start = i.start_unix_nano;
    // Incidents of this run, oldest first.
    let mut incidents: Vec<&Incident> = i
        .incidents
        .iter()
        .filter(|x| x.detected_unix_nano >= start)
        .collect();
    incidents.sort_by_key(|x| x.detected_unix_nano);
    // Match each fault to the incident of its service that started with it.
    let times: Vec<IncidentTimes> = incidents
        .iter()
        .map(|x| IncidentTimes {
            id: x.id.clone(),
            service: x.service.clone(),
            signals: x.signals.iter().map(ToString::to_string).collect(),
            failure_start: x.failure_start_unix_nano,
            detected: x.detected_unix_nano,
            recovered: x.recovered_unix_nano,
        })
        .collect();
    let (fault_of, unmatched) = figures::match_faults(&i.faults, &times);
    let fault_figures = figures::fault_figures(&i.faults, &times, &fault_of, start);
    let figures_by_kind = figures::rows_by(&fault_figures, |f| f.kind.as_str());
    let figures_by_service = figures::rows_by(&fault_figures, |f| f.service.as_str());
    let rows: Vec<IncidentRow> = incidents
        .iter()
        .zip(&fault_of)
        .map(|(inc, fault)| IncidentRow {
            id: inc.id.clone(),
            service: inc.service.clone(),
            signals: inc.signals.iter().map(ToString::to_string).collect(),
            status: match inc.status {
                IncidentStatus::Open => "open".into(),
                IncidentStatus::Resolved => "resolved".into(),
            },
            failure_start_ms: rel_ms(inc.failure_start_unix_nano, start),
            detected_ms: rel_ms(inc.detected_unix_nano, start),
            recovered_ms: inc.recovered_unix_nano.map(|r| rel_ms(r, start)),
            mttd_ms: inc.mttd_ms,
            mttr_ms: inc.mttr_ms,
            downtime_ms: inc.downtime_ms,
            fault: *fault,
            probable_root_cause: inc.probable_root_cause.clone(),
        })
        .collect();
    let generations = |list: &[InstanceView], s: &str| -> u64 {
        list.iter()
            .filter(|v| v.service == s)
            .map(|v| v.generation)
            .sum()
    };
    let row = |name: &str, filter: &dyn Fn(&str) -> bool| -> ServiceRow {
        let mine: Vec<&IncidentRow> = rows.iter().filter(|r| filter(&r.service)).collect();
        let before: u64 = i
            .services
            .iter()
            .filter(|s| filter(s))
            .map(|s| generations(&i.instances_before, s))
            .sum();
        let after: u64 = i
            .services
            .iter()
            .filter(|s| filter(s))
            .map(|s| generations(&i.instances_after, s))
            .sum();
        let watched: Vec<u64> = i
            .lab_restarts
            .iter()
            .filter(|(s, _)| filter(s))
            .map(|(_, n)| *n)
            .collect();
        let replicas = i
            .instances_after
            .iter()
            .filter(|v| filter(&v.service) && v.managed)
            .count() as u64
            + watched.len() as u64;
        let restarts = after.saturating_sub(before) + watched.iter().sum::<u64>();
        ServiceRow {
            name: name.to_owned(),
            instances_created: replicas + restarts,
            restarts,
            faults_injected: i
                .faults
                .iter()
                .filter(|f| filter(&f.service) && f.kind != "clear" && f.kind != "skipped")
                .count(),
            incidents: mine.len(),
            mttd_ms: Stat::of(mine.iter().map(|r| r.mttd_ms).collect()),
            mttr_ms: Stat::of(mine.iter().filter_map(|r| r.mttr_ms).collect()),
            downtime_ms: Stat::of(mine.iter().filter_map(|r| r.downtime_ms).collect()),
        }
    };
    let services: Vec<ServiceRow> = i
        .services
        .iter()
        .map(|s| row(s, &|x: &str| x == s))
        .collect();
    let all_services = row("all", &|_| true);

    let bucket_s = if i.elapsed_s <= 120.0 { 1 } else { 5 };
    let mut buckets: BTreeMap<u64, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for s in i.samples {
        let b = buckets
            .entry(s.at_ms / 1000 / bucket_s * bucket_s)
            .or_default();
        b.0 += 1;
        if s.outcome == Outcome::Failed {
            b.1 += 1;
        }
        b.2.push(s.latency_us as f64 / 1000.0);
    }
    let timeline = buckets
        .into_iter()
        .map(|(t_s, (requests, errors, mut lat))| {
            lat.sort_by(f64::total_cmp);
            Bucket {
                t_s,
                requests,
                errors,
                p50_ms: rank(&lat, 0.5).unwrap_or(0.0),
                p95_ms: rank(&lat, 0.95).unwrap_or(0.0),
                p99_ms: rank(&lat, 0.99).unwrap_or(0.0),
            }
        })
        .collect();
    Report {
        command: i.command,
        saga: i.saga,
        topology: i.topology,
        scenario: i.scenario,
        started_at: i.started_at,
        users: i.users,
        rate: i.rate,
        duration_s: i.elapsed_s,
        replicas: i.replicas,
        invalid_share: i.invalid_share,
        chaos: i.chaos,
        requests,
        follow_up_requests: i.follow_up_requests,
        ok,
        rejected_as_expected: rejected,
        errors,
        unsettled,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        throughput_rps: if i.elapsed_s > 0.0 {
            requests as f64 / i.elapsed_s
        } else {
            0.0
        },
        latency_ms: latency_stat(i.samples),
        settled_latency_ms: (i.follow_up_requests > 0).then(|| {
            let settled: Vec<Sample> = i
                .samples
                .iter()
                .filter(|s| s.outcome == Outcome::Ok)
                .copied()
                .collect();
            latency_stat(&settled)
        }),
        entry_services: i.entry_services,
        gateway: i.gateway,
        services,
        all_services,
        faults: i.faults,
        incidents: rows,
        unmatched_faults: unmatched,
        conditions: i.conditions,
        fault_figures,
        figures_by_kind,
        figures_by_service,
        bucket_s,
        timeline,
        scalability: i.scalability,
        failures: i.failures,
    }
}

/// `0.3 ms`, `123 ms`, `1.24 s`.
pub(crate) fn ms(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v < 1.0 => format!("{v:.2} ms"),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) if v < 1000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.2} s", v / 1000.0),
    }
}

fn three(s: &Stat) -> String {
    if s.n == 0 {
        return "–".into();
    }
    format!("{} / {} / {}", ms(s.mean), ms(s.p50), ms(s.p95))
}

fn secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// The seed's use case 1 (EKS, Table 4 and 5) beside this run.
    fn beside_use_case_1(&self, o: &mut String) {
        let a = &self.all_services;
        let _ = writeln!(
            o,
            "## Beside the seed (EKS, 100 users, 22 min, crashes every 5 min)\n\n| figure | seed | this run |\n|---|---|---|\n| failed requests | 0.49 % | {:.4} % |\n| MTTD per service | 15.2–24.5 s | mean {}, p95 {} |\n| MTTR per service | 5.1–9.9 s | mean {}, p95 {} |\n| downtime per failure | 20.3–34.4 s | mean {}, p95 {} |\n",
            self.error_rate * 100.0,
            ms(a.mttd_ms.mean),
            ms(a.mttd_ms.p95),
            ms(a.mttr_ms.mean),
            ms(a.mttr_ms.p95),
            ms(a.downtime_ms.mean),
            ms(a.downtime_ms.p95),
        );
    }

    /// The seed's use case 2 (AWS Lambda and SQS, Tables 6 and 7) beside this run. The seed
    /// measured its MTTR from the failure to the next successful request: the nearest of
    /// this run's figures is the downtime from the fault (R − T0).
    fn beside_use_case_2(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "## Beside the seed's use case 2 (AWS Lambda and SQS, 100 users, 22 min, a crash every 5 min; Tables 6 and 7)\n\n| figure | seed | this run |\n|---|---|---|\n| failed requests (`POST /orders` answered non-2xx or not at all) | 0.0477 % | {:.4} % |\n| unsettled orders (not APPROVED or REJECTED within 30 s) | not measured | {} of {} |\n| order latency, request to settled | not measured | p50 {}, p99 {} |\n",
            self.error_rate * 100.0,
            thousands(self.unsettled),
            thousands(self.requests),
            ms(self.settled_latency_ms.as_ref().and_then(|s| s.p50)),
            ms(self.settled_latency_ms.as_ref().and_then(|s| s.p99)),
        );
        let _ = writeln!(
            o,
            "| function (service) | seed MTTD | this run: MTTD from fault, p50 / p95 | seed MTTR (failure to next success) | this run: downtime from fault, p50 / p95 | faults |\n|---|---|---|---|---|---|"
        );
        for (function, service, mttd, mttr) in SEED_TABLE_7 {
            let row = self.figures_by_service.iter().find(|r| r.name == service);
            let pair = |p: Option<&figures::Percentiles>| {
                p.map_or_else(
                    || "—".to_owned(),
                    |p| format!("{} / {} ({})", ms(p.p50), ms(p.p95), p.p95_label),
                )
            };
            let _ = writeln!(
                o,
                "| {function} ({service}) | {mttd} s | {} | {mttr} s | {} | {} |",
                pair(row.map(|r| &r.mttd_from_fault_ms)),
                pair(row.map(|r| &r.downtime_from_fault_ms)),
                row.map_or(0, |r| r.faults),
            );
        }
        o.push('\n');
    }
}

impl Report {
    /// The report as Markdown.
    pub fn markdown(&self, chart: Option<&str>) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# aiods-lab experiment report\n");
        let _ = writeln!(o, "`{}`\n", self.command);
        let _ = writeln!(
            o,
            "Topology: {}. Scenario: {}. Started {}. Load: {} virtual users{}, {} % invalid requests (expected to be refused, not failures). Chaos: {}.\n",
            self.topology,
            self.scenario,
            self.started_at,
            self.users,
            self.rate
                .map(|r| format!(", open loop at {r} req/s"))
                .unwrap_or_else(|| ", closed loop".into()),
            (self.invalid_share * 100.0).round(),
            self.chaos
        );
        let _ = writeln!(o, "## Load (the seed's Table 4)\n");
        let _ = writeln!(
            o,
            "| parallel users | time | requests | errors | failed requests |\n|---|---|---|---|---|"
        );
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.4} % |\n",
            self.users,
            secs(self.duration_s),
            thousands(self.requests),
            thousands(self.errors),
            self.error_rate * 100.0
        );
        let _ = writeln!(
            o,
            "{} requests answered as expected{}, {} invalid requests rejected as expected; {:.0} requests/s; response time mean {}, p50 {}, p95 {}, p99 {}, max {}. The gateway counted {} requests to {} ({} retried for the client, {} held past the hold time).\n",
            thousands(self.ok),
            if self.follow_up_requests > 0 {
                format!(
                    " (with {} follow-up polls to a final state; response time runs to that state; {} unsettled: no final state within the follow-up's timeout or a poll answered an unexpected status, not counted as failed)",
                    thousands(self.follow_up_requests),
                    thousands(self.unsettled)
                )
            } else {
                String::new()
            },
            thousands(self.rejected_as_expected),
            self.throughput_rps,
            ms(self.latency_ms.mean),
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p95),
            ms(self.latency_ms.p99),
            ms(self.latency_ms.max),
            thousands(self.gateway.requests),
            self.entry_services.join(", "),
            self.gateway.retries,
            self.gateway.no_instance,
        );
        if let Some(st) = &self.settled_latency_ms {
            let _ = writeln!(
                o,
                "From the request to its final value (the requests that reached one): p50 {}, p99 {}, max {}.\n",
                ms(st.p50),
                ms(st.p99),
                ms(st.max),
            );
        }
        let _ = writeln!(
            o,
            "## Services (the seed's Table 5)\n\nTimes as mean / p50 / p95. Instances created = replicas + restarts.\n"
        );
        let _ = writeln!(
            o,
            "| service | instances created | faults | incidents | downtime | MTTD | MTTR |\n|---|---|---|---|---|---|---|"
        );
        for s in self
            .services
            .iter()
            .chain(std::iter::once(&self.all_services))
        {
            let name = if s.name == "all" {
                "**all**".to_owned()
            } else {
                s.name.clone()
            };
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                s.instances_created,
                s.faults_injected,
                s.incidents,
                three(&s.downtime_ms),
                three(&s.mttd_ms),
                three(&s.mttr_ms)
            );
        }
        o.push('\n');
        let _ = writeln!(o, "## Faults and incidents\n");
        if self.faults.is_empty() && self.incidents.is_empty() {
            let _ = writeln!(o, "None.\n");
        } else {
            let _ = writeln!(
                o,
                "| t | fault | instance | incident | signals | MTTD | MTTR | downtime |\n|---|---|---|---|---|---|---|---|"
            );
            for (fi, f) in self.faults.iter().enumerate() {
                if f.kind == "clear" {
                    continue;
                }
                let inc = self.incidents.iter().find(|r| r.fault == Some(fi));
                let _ = writeln!(
                    o,
                    "| {:.1} s | {} {} | {} | {} | {} | {} | {} | {} |",
                    f.at_ms as f64 / 1000.0,
                    f.kind,
                    if f.ok { "" } else { "(failed)" },
                    f.instance,
                    inc.map_or("–".into(), |r| r.id.clone()),
                    inc.map_or("–".into(), |r| r.signals.join(", ")),
                    ms(inc.map(|r| r.mttd_ms)),
                    ms(inc.and_then(|r| r.mttr_ms)),
                    ms(inc.and_then(|r| r.downtime_ms)),
                );
            }
            for r in self.incidents.iter().filter(|r| r.fault.is_none()) {
                let _ = writeln!(
                    o,
                    "| {:.1} s | (none injected{}) | {} | {} | {} | {} | {} | {} |",
                    r.detected_ms / 1000.0,
                    r.probable_root_cause
                        .as_ref()
                        .map(|c| format!("; root cause {c}"))
                        .unwrap_or_default(),
                    r.service,
                    r.id,
                    r.signals.join(", "),
                    ms(Some(r.mttd_ms)),
                    ms(r.mttr_ms),
                    ms(r.downtime_ms),
                );
            }
            o.push('\n');
            if !self.unmatched_faults.is_empty() {
                let _ = writeln!(
                    o,
                    "**{} injected fault(s) without an incident** (indexes {:?}).\n",
                    self.unmatched_faults.len(),
                    self.unmatched_faults
                );
            }
        }
        figures::markdown(
            &mut o,
            &self.fault_figures,
            &self.figures_by_kind,
            &self.figures_by_service,
            &self.conditions,
        );
        let _ = writeln!(o, "## Latency over time ({} s buckets)\n", self.bucket_s);
        if let Some(c) = chart {
            let _ = writeln!(
                o,
                "Chart: `{c}` (p50 / p95 / p99; faults as red lines, recoveries as green ones).\n"
            );
        }
        let _ = writeln!(
            o,
            "| t | requests | errors | p50 | p95 | p99 |\n|---|---|---|---|---|---|"
        );
        for b in &self.timeline {
            let _ = writeln!(
                o,
                "| {} s | {} | {} | {} | {} | {} |",
                b.t_s,
                b.requests,
                b.errors,
                ms(Some(b.p50_ms)),
                ms(Some(b.p95_ms)),
                ms(Some(b.p99_ms))
            );
        }
        o.push('\n');
        if !self.scalability.is_empty() {
            let _ = writeln!(
                o,
                "## Scalability (fault-free phases)\n\n| users | requests | errors | mean response time | p95 | requests/s |\n|---|---|---|---|---|---|"
            );
            for s in &self.scalability {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.0} |",
                    s.users,
                    thousands(s.requests),
                    s.errors,
                    ms(Some(s.mean_ms)),
                    ms(Some(s.p95_ms)),
                    s.throughput_rps
                );
            }
            o.push('\n');
        }
        match self.saga {
            Saga::Http => self.beside_use_case_1(&mut o),
            Saga::Events => self.beside_use_case_2(&mut o),
        }
        if !self.failures.is_empty() {
            let _ = writeln!(o, "## First failed requests\n");
            for f in self.failures.iter().take(10) {
                let _ = writeln!(
                    o,
                    "- {:.3} s, {} ({}), {}: {}",
                    f.at_ms as f64 / 1000.0,
                    f.request,
                    if f.valid { "valid" } else { "invalid" },
                    f.status
                        .map_or("no answer".to_owned(), |s| format!("status {s}")),
                    f.detail.replace('\n', " ")
                );
            }
            o.push('\n');
        }
        o
    }

    /// Latency p50/p95/p99 over time with faults (red) and recoveries (green), as SVG.
    pub fn svg(&self) -> String {
        self.svg_laid_out().0
    }

    /// The SVG and the box of every text in it. Each text is placed through a [`TextLayout`]:
    /// axis labels, the title and the legend always; a fault's label only where it overlaps
    /// nothing already placed (its marker keeps the tooltip).
    fn svg_laid_out(&self) -> (String, Vec<TextBox>) {
        let (w, h) = (960.0_f64, 400.0_f64);
        let (l, r, t, b) = (70.0, 20.0, 40.0, 50.0);
        let pw = w - l - r;
        let ph = h - t - b;
        let x_max = self.duration_s.max(1.0);
        let y_max = self
            .timeline
            .iter()
            .map(|b| b.p99_ms)
            .fold(1.0_f64, f64::max)
            * 1.1;
        let x = |s: f64| l + (s / x_max).clamp(0.0, 1.0) * pw;
        let y = |v: f64| t + ph - (v / y_max).clamp(0.0, 1.0) * ph;
        let mut o = String::new();
        let mut layout = TextLayout::new(w, h);
        let title = format!(
            "Response time (p50 / p95 / p99 per {} s), {} users; {} requests, {:.4} % failed",
            self.bucket_s,
            self.users,
            self.requests,
            self.error_rate * 100.0
        );
        layout.force(TextBox::horizontal(l, 22.0, &title, 15.0));
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            o,
            r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{l}" y="22" font-size="15" font-weight="bold">{title}</text>"##,
        );
        // Axes and grid.
        for k in 0..=5 {
            let v = y_max * f64::from(k) / 5.0;
            let yy = y(v);
            let label = if v >= 1000.0 {
                format!("{:.1} s", v / 1000.0)
            } else {
                format!("{v:.0} ms")
            };
            layout.force(TextBox::horizontal_end(l - 6.0, yy + 4.0, &label, 12.0));
            let _ = writeln!(
                o,
                r##"<line x1="{l}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                l + pw,
                l - 6.0,
                yy + 4.0,
                label
            );
        }
        let step = [1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
            .into_iter()
            .find(|s| x_max / s <= 12.0)
            .unwrap_or(600.0);
        let mut s = 0.0;
        while s <= x_max + 0.001 {
            let xx = x(s);
            layout.force(TextBox::horizontal_middle(
                xx,
                t + ph + 20.0,
                &format!("{s:.0} s"),
                12.0,
            ));
            let _ = writeln!(
                o,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{s:.0} s</text>"##,
                t + ph,
                t + ph + 5.0,
                t + ph + 20.0
            );
            s += step;
        }
        let _ = writeln!(
            o,
            r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        // Legend.
        let lx = l + pw - 250.0;
        for (k, (name, color)) in [
            ("p50", "#1f77b4"),
            ("p95", "#ff7f0e"),
            ("p99", "#9467bd"),
            ("fault", "#d62728"),
            ("recovered", "#2ca02c"),
        ]
        .into_iter()
        .enumerate()
        {
            let xx = lx + 50.0 * k as f64;
            layout.force(TextBox::horizontal(xx + 15.0, h - 10.0, name, 10.0));
            let _ = writeln!(
                o,
                r#"<line x1="{xx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="10">{name}</text>"#,
                h - 14.0,
                xx + 12.0,
                h - 14.0,
                xx + 15.0,
                h - 10.0
            );
        }
        // Faults (a label reading down from the top of the plot, right of its marker, where it
        // overlaps nothing) and recoveries.
        for f in self.faults.iter().filter(|f| f.kind != "clear" && f.ok) {
            let xx = x(f.at_ms as f64 / 1000.0);
            let _ = writeln!(
                o,
                r##"<line x1="{xx:.1}" y1="{t}" x2="{xx:.1}" y2="{:.1}" stroke="#d62728" stroke-width="1.5"><title>{} {} at {:.1} s</title></line>"##,
                t + ph,
                f.kind,
                f.instance,
                f.at_ms as f64 / 1000.0,
            );
            let label = format!("{} {}", f.kind, f.service);
            let (lx, ly) = (xx + 2.0, t + 4.0);
            if layout.try_place(TextBox::reading_down(lx, ly, &label, 10.0)) {
                let _ = writeln!(
                    o,
                    r##"<text x="{lx:.1}" y="{ly:.1}" fill="#d62728" font-size="10" transform="rotate(90 {lx:.1} {ly:.1})">{label}</text>"##,
                );
            }
        }
        for r in &self.incidents {
            if let Some(rec) = r.recovered_ms {
                let xx = x(rec / 1000.0);
                let _ = writeln!(
                    o,
                    r##"<line x1="{xx:.1}" y1="{t}" x2="{xx:.1}" y2="{:.1}" stroke="#2ca02c" stroke-dasharray="4 3"><title>{} recovered at {:.2} s (MTTD {}, MTTR {})</title></line>"##,
                    t + ph,
                    r.service,
                    rec / 1000.0,
                    ms(Some(r.mttd_ms)),
                    ms(r.mttr_ms)
                );
            }
        }
        // Error buckets.
        for bk in self.timeline.iter().filter(|b| b.errors > 0) {
            let xx = x(bk.t_s as f64);
            let _ = writeln!(
                o,
                r##"<circle cx="{xx:.1}" cy="{:.1}" r="4" fill="#d62728"><title>{} failed at {} s</title></circle>"##,
                t + ph - 6.0,
                bk.errors,
                bk.t_s
            );
        }
        let half = self.bucket_s as f64 / 2.0;
        for (name, color, get) in [
            (
                "p99",
                "#9467bd",
                (|b: &Bucket| b.p99_ms) as fn(&Bucket) -> f64,
            ),
            ("p95", "#ff7f0e", |b: &Bucket| b.p95_ms),
            ("p50", "#1f77b4", |b: &Bucket| b.p50_ms),
        ] {
            let pts: Vec<String> = self
                .timeline
                .iter()
                .map(|b| format!("{:.1},{:.1}", x(b.t_s as f64 + half), y(get(b))))
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"><title>{name}</title></polyline>"#,
                pts.join(" ")
            );
        }
        o.push_str("</svg>\n");
        (o, layout.placed)
    }
}

/// The box a text takes on the chart, estimated from its length: sans-serif glyphs average
/// under 0.6 em wide; a line is 1.2 em high.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TextBox {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl TextBox {
    fn extent(text: &str, size: f64) -> f64 {
        text.chars().count() as f64 * size * 0.6
    }

    /// Left-aligned, `baseline` its y.
    fn horizontal(x: f64, baseline: f64, text: &str, size: f64) -> Self {
        Self {
            x,
            y: baseline - size,
            w: Self::extent(text, size),
            h: size * 1.2,
        }
    }

    /// `text-anchor="end"` at `x`.
    fn horizontal_end(x: f64, baseline: f64, text: &str, size: f64) -> Self {
        let w = Self::extent(text, size);
        Self::horizontal(x - w, baseline, text, size)
    }

    /// `text-anchor="middle"` at `x`.
    fn horizontal_middle(x: f64, baseline: f64, text: &str, size: f64) -> Self {
        let w = Self::extent(text, size);
        Self::horizontal(x - w / 2.0, baseline, text, size)
    }

    /// Rotated by 90° about its start `(x, y)`: it reads downward, its glyphs right of `x`.
    fn reading_down(x: f64, y: f64, text: &str, size: f64) -> Self {
        Self {
            x,
            y,
            w: size * 1.2,
            h: Self::extent(text, size),
        }
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    fn inside(&self, w: f64, h: f64) -> bool {
        self.x >= 0.0 && self.y >= 0.0 && self.x + self.w <= w && self.y + self.h <= h
    }
}

/// The texts placed so far on a `w` × `h` chart.
struct TextLayout {
    w: f64,
    h: f64,
    placed: Vec<TextBox>,
}

impl TextLayout {
    fn new(w: f64, h: f64) -> Self {
        Self {
            w,
            h,
            placed: Vec::new(),
        }
    }

    /// Places a text that must appear (titles, axes, legend).
    fn force(&mut self, b: TextBox) {
        self.placed.push(b);
    }

    /// Places an optional text when it fits the chart and overlaps nothing placed.
    fn try_place(&mut self, b: TextBox) -> bool {
        let free = b.inside(self.w, self.h) && !self.placed.iter().any(|p| p.overlaps(&b));
        if free {
            self.placed.push(b);
        }
        free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(at_ms: u64, service: &str) -> FaultEvent {
        FaultEvent {
            at_ms,
            at_unix_nano: 0,
            service: service.to_owned(),
            instance: format!("{service}#0"),
            kind: "kill".to_owned(),
            detail: String::new(),
            ok: true,
            lasts_ms: None,
        }
    }

    /// A 3-minute run with a fault every 30 s and three faults 200 ms apart (their labels
    /// would sit on each other), p99 up to a few seconds.
    fn report() -> Report {
        let mut faults: Vec<FaultEvent> = (1..6)
            .map(|k| fault(k * 30_000, "notification-service"))
            .collect();
        faults.extend([100_000, 100_200, 100_400].map(|at| fault(at, "accounting-service")));
        let timeline = (0..36)
            .map(|k| Bucket {
                t_s: k * 5,
                requests: 500,
                errors: u64::from(k % 6 == 0),
                p50_ms: 10.0,
                p95_ms: 40.0,
                p99_ms: 100.0 + 100.0 * k as f64,
            })
            .collect();
        let row = ServiceRow {
            name: "all".to_owned(),
            instances_created: 0,
            restarts: 0,
            faults_injected: 0,
            incidents: 0,
            mttd_ms: Stat::default(),
            mttr_ms: Stat::default(),
            downtime_ms: Stat::default(),
        };
        Report {
            command: String::new(),
            saga: Saga::Http,
            topology: String::new(),
            scenario: String::new(),
            started_at: String::new(),
            users: 100,
            rate: None,
            duration_s: 180.0,
            replicas: None,
            invalid_share: 0.0,
            chaos: String::new(),
            requests: 36_916,
            follow_up_requests: 0,
            ok: 36_916,
            rejected_as_expected: 0,
            errors: 0,
            unsettled: 0,
            error_rate: 0.0,
            throughput_rps: 205.0,
            latency_ms: Stat::default(),
            settled_latency_ms: None,
            entry_services: Vec::new(),
            gateway: GatewayCount::default(),
            services: Vec::new(),
            all_services: row,
            faults,
            incidents: Vec::new(),
            unmatched_faults: Vec::new(),
            conditions: String::new(),
            fault_figures: Vec::new(),
            figures_by_kind: Vec::new(),
            figures_by_service: Vec::new(),
            bucket_s: 5,
            timeline,
            scalability: Vec::new(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn no_two_chart_labels_overlap_and_each_stays_on_the_chart() {
        let (svg, boxes) = report().svg_laid_out();
        assert_eq!(
            svg.matches("<text").count(),
            boxes.len(),
            "every text of the chart went through the layout"
        );
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.inside(960.0, 400.0), "label {i} leaves the chart: {a:?}");
            for (j, b) in boxes.iter().enumerate().skip(i + 1) {
                assert!(!a.overlaps(b), "labels {i} and {j} overlap: {a:?} {b:?}");
            }
        }
        // The five spaced faults are labelled; of the three 200 ms apart, only the first.
        assert_eq!(svg.matches("kill notification-service</text>").count(), 5);
        assert_eq!(svg.matches("kill accounting-service</text>").count(), 1);
        // Every fault keeps its marker and tooltip.
        assert_eq!(svg.matches("<title>kill ").count(), 8);
    }

    #[test]
    fn the_event_driven_report_puts_the_seeds_tables_6_and_7_beside_its_figures() {
        let fig = |service: &str, d: f64, r: f64| figures::FaultFigure {
            fault: 0,
            kind: "kill".into(),
            service: service.into(),
            target: format!("{service}#0"),
            t0_ms: 0.0,
            t0: String::new(),
            incident: Some("inc".into()),
            signals: vec!["process_exit".into()],
            failure_start_ms: Some(10.0),
            detected_ms: Some(d),
            recovered_ms: Some(r),
            mttd_ms: Some(d - 10.0),
            mttr_ms: Some(r - d),
            downtime_ms: Some(r - 10.0),
            mttd_from_fault_ms: Some(d),
            downtime_from_fault_ms: Some(r),
        };
        let figs = [fig("consumer", 40.0, 900.0), fig("kitchen", 55.0, 700.0)];
        let mut r = report();
        r.saga = Saga::Events;
        r.unsettled = 3;
        r.settled_latency_ms = Some(Stat::of(vec![20.0, 30.0, 400.0]));
        r.figures_by_service = figures::rows_by(&figs, |f| f.service.as_str());
        let md = r.markdown(None);
        assert!(md.contains("Tables 6 and 7"), "{md}");
        assert!(!md.contains("EKS"), "not use case 1's comparison: {md}");
        assert!(md.contains("| 0.0477 % |"), "{md}");
        assert!(md.contains("| not measured | 3 of "), "{md}");
        let consumer = md
            .lines()
            .find(|l| l.starts_with("| Verify consumer details (consumer)"))
            .unwrap_or_else(|| panic!("the consumer's row: {md}"));
        assert!(
            consumer.contains("| 1.5 s |") && consumer.contains("| 2 s |"),
            "{consumer}"
        );
        assert!(
            consumer.contains("40 ms") && consumer.contains("900 ms"),
            "{consumer}"
        );
        // A function with no fault this run says so.
        let order = md
            .lines()
            .find(|l| l.starts_with("| Create order (order)"))
            .unwrap_or_else(|| panic!("the order's row: {md}"));
        assert!(order.ends_with("| 0 |"), "{order}");
        // The synchronous variant keeps its own comparison.
        r.saga = Saga::Http;
        assert!(r.markdown(None).contains("EKS"));
    }
}
