//! `aiods-lab mttr`: measures the platform's MTTD and MTTR on this machine, one failure at a
//! time. It runs the platform in this process with a topology (the built-in food-delivery one
//! by default), then for each supervised service (or `--target`) kills its first instance with
//! SIGKILL `--rounds` times and hangs it through fault injection `--hang-rounds` times, waiting
//! each time for the incident to resolve, and prints p50 / p95 of MTTD and MTTR per service and
//! failure kind.
//!
//! Failures are spaced `--gap` apart (1.2 s); the built-in topology sets
//! `backoff_reset_ms = 1000`, so each one is a first crash, restarted at once — closer failures
//! would be a crash loop and back off, by design. With `-c`, make the gap longer than the
//! topology's `backoff_reset_ms`.
//!
//! ```sh
//! cargo run --release -p aiods-lab -- mttr --rounds 10 --hang-rounds 3
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aiops_platform::incident::{Incident, IncidentStatus};
use aiops_platform::supervisor::{InstanceStatus, InstanceView, Supervision};
use serde_json::json;

use crate::duration::parse_duration;
use crate::experiment::{self, ExperimentError};

/// Flags of `aiods-lab mttr`.
#[derive(Debug, Clone, clap::Args)]
pub struct MttrArgs {
    /// Topology file; without it, the built-in food-delivery topology.
    #[arg(short = 'c', long = "topology", visible_alias = "config")]
    pub topology: Option<PathBuf>,
    /// Kills (SIGKILL) per service.
    #[arg(long, env = "AIOPS_MTTR_ROUNDS", default_value_t = 10)]
    pub rounds: usize,
    /// Hangs (fault injection; the service must honour `/admin/faults`) per service.
    #[arg(long, env = "AIOPS_MTTR_HANG_ROUNDS", default_value_t = 3)]
    pub hang_rounds: usize,
    /// Services to measure (default: every supervised one).
    #[arg(long = "target", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Pause after each repair, longer than the topology's `backoff_reset_ms`.
    #[arg(long, value_parser = parse_duration, default_value = "1.2s")]
    pub gap: Duration,
    /// The platform's listener (default: a free port; for `-c`, the topology's).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Nearest-rank percentile (NaN when empty).
fn percentile(v: &[f64], p: f64) -> f64 {
    // The platform's nearest-rank summary: p50 and p95 are all this harness prints.
    let s = aiops_platform::incident::Summary::of(v.to_vec());
    let value = if p <= 0.5 { s.p50_ms } else { s.p95_ms };
    value.unwrap_or(f64::NAN)
}

fn row(service: &str, kind: &str, values: &[(f64, f64)]) -> String {
    let d: Vec<f64> = values.iter().map(|x| x.0).collect();
    let r: Vec<f64> = values.iter().map(|x| x.1).collect();
    format!(
        "{service:<13} {kind:<6} {:>3} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms",
        values.len(),
        percentile(&d, 0.5),
        percentile(&d, 0.95),
        percentile(&r, 0.5),
        percentile(&r, 0.95)
    )
}

fn first_instance(sup: &Supervision, service: &str) -> Option<InstanceView> {
    sup.instances()
        .into_iter()
        .filter(|i| i.service == service && i.managed)
        .min_by_key(|i| i.index)
}

fn resolved(sup: &Supervision, service: &str) -> Vec<Incident> {
    let mut list: Vec<Incident> = sup
        .incidents()
        .into_iter()
        .filter(|i| i.service == service && i.status == IncidentStatus::Resolved)
        .collect();
    list.sort_by_key(|i| i.detected_unix_nano);
    list
}

async fn ready(sup: &Supervision, service: &str) -> Result<InstanceView, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = first_instance(sup, service)
            && i.status == InstanceStatus::Ready
            && i.pid.is_some()
        {
            return Ok(i);
        }
        if Instant::now() >= deadline {
            return Err(format!("{service}: no ready instance within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Injects one failure and answers (MTTD, MTTR) of the incident it caused.
async fn one(
    sup: &Supervision,
    client: &reqwest::Client,
    token: &str,
    service: &str,
    hang: bool,
) -> Result<(f64, f64), String> {
    let inst = ready(sup, service).await?;
    let before = resolved(sup, service).len();
    if hang {
        experiment::chaos::faults(client, &inst.url, token, Some(json!({"hang": true})))
            .await
            .map_err(|e| format!("{service}: cannot hang {}: {e}", inst.id))?;
    } else {
        let pid = inst.pid.ok_or_else(|| format!("{}: no pid", inst.id))?;
        experiment::chaos::kill9(pid)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let list = resolved(sup, service);
        if list.len() > before
            && let Some(newest) = list.last()
        {
            return Ok((newest.mttd_ms, newest.mttr_ms.unwrap_or(f64::NAN)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "{service}: the incident did not resolve within 30 s"
    ))
}

async fn measure(args: MttrArgs) -> Result<ExitCode, ExperimentError> {
    aiops_platform::common::install_crypto_provider();
    let tmp = tempfile::Builder::new()
        .prefix("aiods-lab-mttr-")
        .tempdir()
        .map_err(|source| ExperimentError::Io {
            what: "cannot create a temporary directory".into(),
            source,
        })?;
    let (mut topology, name) = experiment::topology(
        args.topology.as_deref(),
        args.listen,
        None,
        tmp.path(),
        Some(1000),
    )?;
    let token = experiment::enable_faults(&mut topology);
    let supervised = experiment::supervised(&topology);
    let targets = experiment::targets(&args.targets, &supervised)?;
    let started = experiment::start_platform(topology).await?;
    let sup = started.running.sup.clone();
    let stop = experiment::stop_signal();
    eprintln!(
        "aiods-lab: mttr on {name}; waiting for {} service(s)…",
        supervised.len()
    );
    let outcome = async {
        experiment::wait_ready(&sup, &stop, Duration::from_secs(60)).await?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        println!(
            "{:<13} {:<6} {:>3} {:>10} {:>10} {:>10} {:>10}",
            "service", "kind", "n", "MTTD p50", "MTTD p95", "MTTR p50", "MTTR p95"
        );
        let (mut all_crash, mut all_hang) = (Vec::new(), Vec::new());
        for s in &targets {
            for (kind, n, hang) in [
                ("kill-9", args.rounds, false),
                ("hang", args.hang_rounds, true),
            ] {
                let mut values = Vec::new();
                for _ in 0..n {
                    if *stop.borrow() {
                        return Err(ExperimentError::Interrupted);
                    }
                    let v = one(&sup, &client, &token, s, hang)
                        .await
                        .map_err(ExperimentError::Invalid)?;
                    values.push(v);
                    tokio::time::sleep(args.gap).await;
                }
                if !values.is_empty() {
                    println!("{}", row(s, kind, &values));
                }
                if hang {
                    all_hang.extend(values);
                } else {
                    all_crash.extend(values);
                }
            }
        }
        for (kind, v) in [("kill-9", &all_crash), ("hang", &all_hang)] {
            if !v.is_empty() {
                println!("{}", row("ALL", kind, v));
            }
        }
        Ok(())
    }
    .await;
    started.running.stop().await;
    drop(tmp);
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Runs `aiods-lab mttr`.
pub fn run(args: MttrArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aiods-lab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(measure(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aiods-lab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert!(row("order", "kill-9", &[(0.2, 50.0)]).contains("0.2ms"));
    }
}
