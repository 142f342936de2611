//! `/api/v1/report`: per service, like the seed's Table 5 (incidents, restarts, mean / p50 /
//! p95 MTTD and MTTR, downtime).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Incident, IncidentStatus};

/// Summary statistics of a list of durations (milliseconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// How many values.
    pub n: usize,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile (nearest rank).
    pub p95_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

impl Summary {
    /// Summarises `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            mean_ms: Some(values.iter().sum::<f64>() / n as f64),
            p50_ms: Some(rank(0.5)),
            p95_ms: Some(rank(0.95)),
            max_ms: values.last().copied(),
        }
    }
}

/// One service's row.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// The service.
    pub service: String,
    /// Incidents in total.
    pub incidents: usize,
    /// Still open.
    pub open: usize,
    /// Instance restarts made by the platform.
    pub restarts: u64,
    /// MTTD over all incidents.
    pub mttd: Summary,
    /// MTTR over resolved incidents.
    pub mttr: Summary,
    /// Downtime over resolved incidents.
    pub downtime: Summary,
    /// Total downtime, milliseconds.
    pub downtime_total_ms: f64,
}

/// Builds the report from incidents.
pub fn report<'a>(incidents: impl Iterator<Item = &'a Incident>) -> Vec<ServiceReport> {
    let mut by: BTreeMap<&str, Vec<&Incident>> = BTreeMap::new();
    for i in incidents {
        by.entry(i.service.as_str()).or_default().push(i);
    }
    by.into_iter()
        .map(|(service, list)| {
            let downtimes: Vec<f64> = list.iter().filter_map(|i| i.downtime_ms).collect();
            ServiceReport {
                service: service.to_owned(),
                incidents: list.len(),
                open: list
                    .iter()
                    .filter(|i| i.status == IncidentStatus::Open)
                    .count(),
                restarts: list.iter().map(|i| u64::from(i.restarts)).sum(),
                mttd: Summary::of(list.iter().map(|i| i.mttd_ms).collect()),
                mttr: Summary::of(list.iter().filter_map(|i| i.mttr_ms).collect()),
                downtime_total_ms: downtimes.iter().sum(),
                downtime: Summary::of(downtimes),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s = Summary::of((1..=20).map(f64::from).collect());
        assert_eq!(s.p50_ms, Some(10.0));
        assert_eq!(s.p95_ms, Some(19.0));
        assert_eq!(s.mean_ms, Some(10.5));
        assert_eq!(Summary::of(vec![]).n, 0);
    }
}
