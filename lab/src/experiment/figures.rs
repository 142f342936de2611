//! Times from the fault: each injected fault matched to the incident it caused, with the
//! DESIGN.md incident times — fault time T0 (when the lab injected it), failure start F (the
//! platform's first bad observation), detection D, recovery R — and the five figures
//! MTTD = D − F, MTTR = R − D, downtime = R − F, **MTTD from fault** = D − T0 and **downtime
//! from fault** = R − T0; then p50 / p95 per fault kind and per service.
//!
//! Percentiles are nearest-rank. Over fewer than [`FEW`] faults the nearest-rank p95 *is* the
//! largest value, so it is reported as such: `p95_is_max` and the label `max (n<20)`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use aiops_platform::common::time::rfc3339;

use super::chaos::FaultEvent;

/// Below this many values a p95 is a maximum, and is called one.
pub const FEW: usize = 20;

/// The fault kinds matched to incidents.
pub const MATCHED_KINDS: [&str; 5] = ["kill", "kill_watched", "hang", "error_rate", "latency"];

/// An incident's failure start may precede the fault's recorded time by this much (ns): a
/// probe sent just before a kill fails after it, and a scrape or span is stamped when its
/// interval started.
const EARLY_NS: u64 = 250_000_000;
/// A latency incident's failure start is the first request of the first slow second, up to a
/// second before the step (ns).
const EARLY_LATENCY_NS: u64 = 1_250_000_000;
/// How long after the fault (past its own length) its incident's failure start may come (ns).
const LATE_NS: u64 = 15_000_000_000;

/// The times of one incident, as matching reads them (ns since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentTimes {
    /// Its id.
    pub id: String,
    /// The service.
    pub service: String,
    /// Its signals.
    pub signals: Vec<String>,
    /// Failure start F.
    pub failure_start: u64,
    /// Detection D.
    pub detected: u64,
    /// Recovery R, once recovered.
    pub recovered: Option<u64>,
}

/// Matches each injected fault (of [`MATCHED_KINDS`], injected without error) to the first
/// incident of its service, not matched yet, whose failure start falls from a little before
/// the fault to 15 s after its end. `incidents` are in detection order. Answers, per incident,
/// the index of its fault, and the indexes of faults without an incident.
pub fn match_faults(
    faults: &[FaultEvent],
    incidents: &[IncidentTimes],
) -> (Vec<Option<usize>>, Vec<usize>) {
    let mut fault_of: Vec<Option<usize>> = vec![None; incidents.len()];
    let mut unmatched = Vec::new();
    for (fi, f) in faults.iter().enumerate() {
        if !f.ok || !MATCHED_KINDS.contains(&f.kind.as_str()) {
            continue;
        }
        let early = if f.kind == "latency" {
            EARLY_LATENCY_NS
        } else {
            EARLY_NS
        };
        let from = f.at_unix_nano.saturating_sub(early);
        let to = f.at_unix_nano + f.lasts_ms.unwrap_or(0) * 1_000_000 + LATE_NS;
        let hit = incidents.iter().enumerate().position(|(ii, inc)| {
            fault_of.get(ii).is_some_and(Option::is_none)
                && inc.service == f.service
                && (from..=to).contains(&inc.failure_start)
        });
        match hit.and_then(|ii| fault_of.get_mut(ii)) {
            Some(slot) => *slot = Some(fi),
            None => unmatched.push(fi),
        }
    }
    (fault_of, unmatched)
}

/// One injected fault with the incident it caused (times relative to the run's start, ms).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultFigure {
    /// Index in the report's `faults`.
    pub fault: usize,
    /// `kill` (a supervised instance), `kill_watched` (a watched service's process, killed and
    /// restarted by the lab), `hang`, `error_rate`, `latency`.
    pub kind: String,
    /// The service.
    pub service: String,
    /// The instance (or instances) hit.
    pub target: String,
    /// Fault time T0, ms since the run started.
    pub t0_ms: f64,
    /// Fault time T0 (RFC 3339).
    pub t0: String,
    /// The matched incident; none when the platform opened none.
    pub incident: Option<String>,
    /// Its signals.
    pub signals: Vec<String>,
    /// Failure start F, ms since the run started.
    pub failure_start_ms: Option<f64>,
    /// Detection D, ms since the run started.
    pub detected_ms: Option<f64>,
    /// Recovery R, ms since the run started.
    pub recovered_ms: Option<f64>,
    /// MTTD = D − F.
    pub mttd_ms: Option<f64>,
    /// MTTR = R − D.
    pub mttr_ms: Option<f64>,
    /// Downtime = R − F.
    pub downtime_ms: Option<f64>,
    /// MTTD from fault = D − T0.
    pub mttd_from_fault_ms: Option<f64>,
    /// Downtime from fault = R − T0.
    pub downtime_from_fault_ms: Option<f64>,
}

fn ms_between(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1e6
}

/// The figures of every matchable fault, in fault order; `fault_of` is [`match_faults`]'s.
pub fn fault_figures(
    faults: &[FaultEvent],
    incidents: &[IncidentTimes],
    fault_of: &[Option<usize>],
    start: u64,
) -> Vec<FaultFigure> {
    faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.ok && MATCHED_KINDS.contains(&f.kind.as_str()))
        .map(|(fi, f)| {
            let inc = fault_of
                .iter()
                .position(|x| *x == Some(fi))
                .and_then(|ii| incidents.get(ii));
            let t0 = f.at_unix_nano;
            let rel = |t: u64| ms_between(start, t);
            FaultFigure {
                fault: fi,
                kind: f.kind.clone(),
                service: f.service.clone(),
                target: f.instance.clone(),
                t0_ms: rel(t0),
                t0: rfc3339(t0),
                incident: inc.map(|i| i.id.clone()),
                signals: inc.map(|i| i.signals.clone()).unwrap_or_default(),
                failure_start_ms: inc.map(|i| rel(i.failure_start)),
                detected_ms: inc.map(|i| rel(i.detected)),
                recovered_ms: inc.and_then(|i| i.recovered).map(rel),
                mttd_ms: inc.map(|i| ms_between(i.failure_start, i.detected)),
                mttr_ms: inc.and_then(|i| Some(ms_between(i.detected, i.recovered?))),
                downtime_ms: inc.and_then(|i| Some(ms_between(i.failure_start, i.recovered?))),
                mttd_from_fault_ms: inc.map(|i| ms_between(t0, i.detected)),
                downtime_from_fault_ms: inc.and_then(|i| Some(ms_between(t0, i.recovered?))),
            }
        })
        .collect()
}

/// p50 and p95 (nearest rank) of some faults' values, ms.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// How many values.
    pub n: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile; the largest value when `n` < 20.
    pub p95: Option<f64>,
    /// True when `n` < 20: `p95` is then the maximum.
    pub p95_is_max: bool,
    /// `p95`, or `max (n<20)`.
    pub p95_label: String,
}

impl Percentiles {
    /// Of `values` (non-finite ones ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        // The platform's own nearest-rank summary (its report uses the same).
        let s = aiops_platform::incident::Summary::of(values.into_iter().collect());
        let few = s.n < FEW;
        Self {
            n: s.n,
            p50: s.p50_ms,
            p95: if few { s.max_ms } else { s.p95_ms },
            p95_is_max: few,
            p95_label: if few { "max (n<20)" } else { "p95" }.to_owned(),
        }
    }

    /// `p50 12 ms, p95 40 ms` or `p50 12 ms, max (n<20) 40 ms`; `–` with no value.
    pub fn text(&self) -> String {
        match (self.p50, self.p95) {
            (Some(a), Some(b)) => format!(
                "p50 {}, {} {}",
                super::report::ms(Some(a)),
                self.p95_label,
                super::report::ms(Some(b))
            ),
            _ => "–".into(),
        }
    }
}

/// The figures of a group of faults (one kind, or one service).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FigureRow {
    /// The kind or the service.
    pub name: String,
    /// Faults injected.
    pub faults: usize,
    /// Of which matched to an incident.
    pub matched: usize,
    /// MTTD = D − F.
    pub mttd_ms: Percentiles,
    /// MTTR = R − D (recovered incidents).
    pub mttr_ms: Percentiles,
    /// Downtime = R − F.
    pub downtime_ms: Percentiles,
    /// MTTD from fault = D − T0.
    pub mttd_from_fault_ms: Percentiles,
    /// Downtime from fault = R − T0.
    pub downtime_from_fault_ms: Percentiles,
}

impl FigureRow {
    fn of(name: String, figures: &[&FaultFigure]) -> Self {
        let p = |get: fn(&FaultFigure) -> Option<f64>| {
            Percentiles::of(figures.iter().filter_map(|f| get(f)))
        };
        Self {
            name,
            faults: figures.len(),
            matched: figures.iter().filter(|f| f.incident.is_some()).count(),
            mttd_ms: p(|f| f.mttd_ms),
            mttr_ms: p(|f| f.mttr_ms),
            downtime_ms: p(|f| f.downtime_ms),
            mttd_from_fault_ms: p(|f| f.mttd_from_fault_ms),
            downtime_from_fault_ms: p(|f| f.downtime_from_fault_ms),
        }
    }
}

/// One row per distinct `key` of the figures (sorted), in that order.
pub fn rows_by(figures: &[FaultFigure], key: fn(&FaultFigure) -> &str) -> Vec<FigureRow> {
    let mut groups: BTreeMap<&str, Vec<&FaultFigure>> = BTreeMap::new();
    for f in figures {
        groups.entry(key(f)).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|(name, list)| FigureRow::of(name.to_owned(), &list))
        .collect()
}

/// The Markdown section: definitions, per kind, per service, per fault, unmatched faults.
pub fn markdown(
    o: &mut String,
    figures: &[FaultFigure],
    by_kind: &[FigureRow],
    by_service: &[FigureRow],
    conditions: &str,
) {
    let _ = writeln!(o, "## Time to detect and repair, from the fault\n");
    if figures.is_empty() {
        let _ = writeln!(o, "No fault injected.\n");
        return;
    }
    let _ = writeln!(
        o,
        "T0 = fault time (the lab injected it), F = failure start (the platform's first bad observation), D = detection (incident opened), R = recovery (first success after the repair). MTTD = D − F, MTTR = R − D, downtime = R − F, **MTTD from fault** = D − T0, **downtime from fault** = R − T0. Nearest-rank percentiles; over fewer than 20 faults the p95 is the maximum and is labelled `max (n<20)`. Conditions: {conditions}.\n"
    );
    for (title, rows) in [("kind", by_kind), ("service", by_service)] {
        let _ = writeln!(
            o,
            "| {title} | faults | matched | MTTD | MTTR | downtime | MTTD from fault | downtime from fault |\n|---|---|---|---|---|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.faults,
                r.matched,
                r.mttd_ms.text(),
                r.mttr_ms.text(),
                r.downtime_ms.text(),
                r.mttd_from_fault_ms.text(),
                r.downtime_from_fault_ms.text(),
            );
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "Per fault (T0, F, D, R in seconds since the run started):\n\n| # | kind | target | T0 | incident | signals | F | D | R | MTTD | MTTR | downtime | MTTD from fault | downtime from fault |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let s = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{:.3}", x / 1000.0));
    let m = |v: Option<f64>| super::report::ms(v);
    for f in figures {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.fault,
            f.kind,
            f.target,
            f.t0_ms / 1000.0,
            f.incident.as_deref().unwrap_or("**none**"),
            f.signals.join(", "),
            s(f.failure_start_ms),
            s(f.detected_ms),
            s(f.recovered_ms),
            m(f.mttd_ms),
            m(f.mttr_ms),
            m(f.downtime_ms),
            m(f.mttd_from_fault_ms),
            m(f.downtime_from_fault_ms),
        );
    }
    o.push('\n');
    let unmatched: Vec<&FaultFigure> = figures.iter().filter(|f| f.incident.is_none()).collect();
    if !unmatched.is_empty() {
        let _ = writeln!(o, "Faults without an incident:\n");
        for f in unmatched {
            let _ = writeln!(
                o,
                "- #{} {} of {} at {:.3} s",
                f.fault,
                f.kind,
                f.target,
                f.t0_ms / 1000.0
            );
        }
        o.push('\n');
    }
}

/// The console summary: one line per kind.
pub fn summary(by_kind: &[FigureRow]) -> String {
    let mut o = String::new();
    for r in by_kind {
        let _ = writeln!(
            o,
            "{}: {} faults, {} matched; MTTD from fault {}; downtime from fault {}; MTTD {}; MTTR {}; downtime {}",
            r.name,
            r.faults,
            r.matched,
            r.mttd_from_fault_ms.text(),
            r.downtime_from_fault_ms.text(),
            r.mttd_ms.text(),
            r.mttr_ms.text(),
            r.downtime_ms.text(),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const START: u64 = 1_000_000 * 1_000_000_000;

    fn fault(kind: &str, service: &str, at_ms: u64) -> FaultEvent {
        FaultEvent {
            at_ms,
            at_unix_nano: START + at_ms * MS,
            service: service.into(),
            instance: format!("{service}#0"),
            kind: kind.into(),
            detail: String::new(),
            ok: true,
            lasts_ms: (kind == "error_rate" || kind == "latency").then_some(5_000),
        }
    }

    fn incident(id: &str, service: &str, f: u64, d: u64, r: Option<u64>) -> IncidentTimes {
        IncidentTimes {
            id: id.into(),
            service: service.into(),
            signals: vec!["process_exit".into()],
            failure_start: START + f * MS,
            detected: START + d * MS,
            recovered: r.map(|r| START + r * MS),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_and_a_p95_of_few_is_a_max() {
        let twenty = Percentiles::of((1..=20).map(f64::from));
        assert_eq!(
            (twenty.n, twenty.p50, twenty.p95),
            (20, Some(10.0), Some(19.0))
        );
        assert!(!twenty.p95_is_max);
        assert_eq!(twenty.p95_label, "p95");
        assert!(twenty.text().contains("p95 19 ms"), "{}", twenty.text());

        let few = Percentiles::of([3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((few.n, few.p50, few.p95), (3, Some(2.0), Some(3.0)));
        assert!(few.p95_is_max);
        assert_eq!(few.p95_label, "max (n<20)");
        assert_eq!(few.text(), "p50 2.0 ms, max (n<20) 3.0 ms");

        // 19 values: the nearest-rank p95 is the 19th, the maximum.
        let nineteen = Percentiles::of((1..=19).map(f64::from));
        assert_eq!(nineteen.p95, Some(19.0));
        assert!(nineteen.p95_is_max);

        let none = Percentiles::of([]);
        assert_eq!((none.n, none.p50, none.p95), (0, None, None));
        assert_eq!(none.text(), "–");
    }

    #[test]
    fn each_fault_gets_the_first_incident_of_its_service_that_follows_it() {
        let faults = vec![
            fault("kill", "a", 1_000),
            fault("clear", "a", 1_500),
            fault("kill", "b", 2_000),
            fault("error_rate", "a", 10_000),
            fault("latency", "c", 20_000),
            fault("kill_watched", "d", 30_000),
        ];
        let incidents = vec![
            // Before any fault: no match.
            incident("i0", "a", 500, 600, Some(700)),
            incident("i1", "a", 1_000, 1_001, Some(1_100)),
            // A probe sent just before the kill fails after it.
            incident("i2", "b", 1_900, 2_300, Some(2_900)),
            incident("i3", "a", 10_100, 11_500, Some(16_000)),
            // The first slow second started before the step.
            incident("i4", "c", 19_400, 21_000, Some(26_000)),
        ];
        let (fault_of, unmatched) = match_faults(&faults, &incidents);
        assert_eq!(fault_of, vec![None, Some(0), Some(2), Some(3), Some(4)]);
        assert_eq!(unmatched, vec![5], "the watched kill found no incident");

        let figs = fault_figures(&faults, &incidents, &fault_of, START);
        assert_eq!(figs.len(), 5, "clear is not a fault");
        let kill = &figs[0];
        assert_eq!(kill.incident.as_deref(), Some("i1"));
        assert_eq!(kill.mttd_ms, Some(1.0));
        assert_eq!(kill.mttr_ms, Some(99.0));
        assert_eq!(kill.downtime_ms, Some(100.0));
        assert_eq!(kill.mttd_from_fault_ms, Some(1.0));
        assert_eq!(kill.downtime_from_fault_ms, Some(100.0));
        let probe = &figs[1];
        assert_eq!(probe.mttd_ms, Some(400.0));
        assert_eq!(
            probe.mttd_from_fault_ms,
            Some(300.0),
            "F before T0: less from the fault"
        );
        let latency = &figs[3];
        assert_eq!(latency.t0_ms, 20_000.0);
        assert_eq!(latency.failure_start_ms, Some(19_400.0));
        assert_eq!(latency.mttd_from_fault_ms, Some(1_000.0));
        assert_eq!(latency.downtime_from_fault_ms, Some(6_000.0));
        let watched = &figs[4];
        assert_eq!(watched.incident, None);
        assert_eq!(watched.mttd_from_fault_ms, None);

        let by_kind = rows_by(&figs, |f| f.kind.as_str());
        let names: Vec<&str> = by_kind.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["error_rate", "kill", "kill_watched", "latency"],
            "sorted"
        );
        let kills = &by_kind[1];
        assert_eq!((kills.faults, kills.matched), (2, 2));
        assert_eq!(kills.mttd_from_fault_ms.p95, Some(300.0));
        assert_eq!(kills.mttd_from_fault_ms.p95_label, "max (n<20)");
        let watched = &by_kind[2];
        assert_eq!((watched.faults, watched.matched), (1, 0));
        assert_eq!(watched.mttd_ms.n, 0);

        let mut md = String::new();
        let by_service = rows_by(&figs, |f| f.service.as_str());
        markdown(&mut md, &figs, &by_kind, &by_service, "probes every 200 ms");
        assert!(md.contains("MTTD from fault"), "{md}");
        assert!(md.contains("max (n<20)"), "{md}");
        assert!(md.contains("Faults without an incident"), "{md}");
        assert!(md.contains("#5 kill_watched of d#0"), "{md}");
        assert!(summary(&by_kind).contains("kill: 2 faults, 2 matched"));
    }

    #[test]
    fn a_fault_too_late_or_on_another_service_stays_unmatched() {
        let faults = vec![fault("kill", "a", 1_000), fault("hang", "a", 40_000)];
        // F 20 s after the kill: not its incident.
        let incidents = vec![
            incident("i1", "a", 21_000, 21_100, None),
            incident("i2", "b", 40_001, 40_002, None),
        ];
        let (fault_of, unmatched) = match_faults(&faults, &incidents);
        assert_eq!(fault_of, vec![None, None]);
        assert_eq!(unmatched, vec![0, 1]);
        let mut failed = fault("kill", "a", 20_000);
        failed.ok = false;
        let (_, unmatched) = match_faults(&[failed], &incidents);
        assert!(unmatched.is_empty(), "a failed injection is not a fault");
    }
}
