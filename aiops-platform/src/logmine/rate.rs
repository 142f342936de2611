//! Turning template observations into incident evidence.

use std::collections::HashMap;

use super::miner::{Observation, TemplateId};
use super::token::for_each_token;

/// Severity of a log line, as far as evidence is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Warnings.
    Warn,
    /// Errors and worse (fatal, critical, panic, severe).
    Error,
}

/// Finds a warn/error level marker among the first tokens of a line (plain `ERROR`, `[warn]`,
/// `level=error`, JSON `"level":"ERROR"`, syslog `<3>`-free words such as `crit`).
pub fn detect_level(line: &str) -> Option<Level> {
    let mut found = None;
    let mut n = 0;
    for_each_token(line, |t, _| {
        n += 1;
        if found.is_some() || n > 12 {
            return;
        }
        let t = t.trim_matches(|c: char| !c.is_ascii_alphabetic());
        if t.len() < 4 || t.len() > 8 {
            return;
        }
        let lower = t.to_ascii_lowercase();
        found = match lower.as_str() {
            "error" | "fatal" | "crit" | "critical" | "severe" | "panic" | "alert" | "emerg" => {
                Some(Level::Error)
            }
            "warn" | "warning" => Some(Level::Warn),
            _ => None,
        };
    });
    found
}

/// Evidence for the incident detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Evidence {
    /// A template never seen before, at warn or error level.
    NewTemplate {
        /// The template.
        id: TemplateId,
        /// Its level.
        level: Level,
    },
    /// A template's count in the current bucket jumped against its baseline.
    RateJump {
        /// The template.
        id: TemplateId,
        /// Lines in the current bucket so far.
        count: u64,
        /// Baseline lines per bucket.
        baseline: f64,
    },
}

#[derive(Debug, Clone, Default)]
struct Rate {
    bucket: i64,
    count: u64,
    mean: f64,
    var: f64,
    buckets: u32,
    flagged: bool,
}

/// Per-template rate tracker over fixed time buckets (e.g. one minute).
///
/// Baselines are exponentially weighted means/variances of per-bucket counts (empty buckets
/// count as zero). A template jumps when its count in the current bucket reaches
/// `max(min_count, factor x baseline, baseline + 4 sd)` after at least `warmup` buckets of
/// history; each template is flagged at most once per bucket.
#[derive(Debug, Clone)]
pub struct RateTracker {
    bucket_secs: i64,
    min_count: u64,
    factor: f64,
    warmup: u32,
    rates: HashMap<TemplateId, Rate>,
}

impl Default for RateTracker {
    fn default() -> Self {
        Self::new(60)
    }
}

impl RateTracker {
    /// A tracker with `bucket_secs`-second buckets and default sensitivity.
    pub fn new(bucket_secs: i64) -> Self {
        Self {
            bucket_secs: bucket_secs.max(1),
            min_count: 10,
            factor: 3.0,
            warmup: 5,
            rates: HashMap::new(),
        }
    }

    /// Records one line (`ts` in epoch seconds) and returns evidence if any.
    pub fn observe(
        &mut self,
        ts: i64,
        obs: &Observation,
        level: Option<Level>,
    ) -> Option<Evidence> {
        let bucket = ts.div_euclid(self.bucket_secs);
        let is_new_here = !self.rates.contains_key(&obs.id);
        let r = self.rates.entry(obs.id).or_insert_with(|| Rate {
            bucket,
            ..Rate::default()
        });
        if bucket > r.bucket {
            // close the current bucket and any empty ones in between
            let gaps = (bucket - r.bucket).min(1000);
            for k in 0..gaps {
                let x = if k == 0 { r.count as f64 } else { 0.0 };
                r.buckets += 1;
                let alpha = (1.0 / r.buckets as f64).max(0.05);
                let d = x - r.mean;
                r.mean += alpha * d;
                r.var = (1.0 - alpha) * (r.var + alpha * d * d);
            }
            r.bucket = bucket;
            r.count = 0;
            r.flagged = false;
        }
        r.count += 1;
        if (obs.is_new || is_new_here)
            && let Some(level) = level
        {
            return Some(Evidence::NewTemplate { id: obs.id, level });
        }
        if r.buckets >= self.warmup && !r.flagged {
            let need = (self.min_count as f64)
                .max(self.factor * r.mean)
                .max(r.mean + 4.0 * r.var.max(0.0).sqrt());
            if r.count as f64 >= need {
                r.flagged = true;
                return Some(Evidence::RateJump {
                    id: obs.id,
                    count: r.count,
                    baseline: r.mean,
                });
            }
        }
        None
    }
}
