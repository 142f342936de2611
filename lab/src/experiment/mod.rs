//! `aiods-lab experiment`, `demo` and `load`: run a topology (the built-in food-delivery one
//! by default) under the load of a scenario and a chaos schedule, and report what clients saw
//! beside what the platform recorded — the seed's Tables 4 and 5, latency over time, the
//! scalability line.
//!
//! The platform runs in this process (`aiops-platform` as a library); the services are
//! separate processes it supervises (for the built-in topology, this very program as
//! `aiods-lab serve <service>`), killed with real signals.

pub mod chaos;
pub mod figures;
pub mod load;
pub mod report;
mod watched;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aiops_platform::common::time::{now_nanos, rfc3339};
use aiops_platform::config::{ConfigError, Topology};
use aiops_platform::incident::IncidentStatus;
use aiops_platform::platform::{Platform, PlatformError};
use aiops_platform::supervisor::{InstanceStatus, Supervision};
use tokio::sync::watch;

use crate::broker::{Broker, BrokerError};
use crate::duration::parse_duration;
use crate::scenario::{Scenario, ScenarioError};
use crate::topology::{
    BUILT_IN_NAME, Saga, adopt_old_serve_commands, built_in_topology, use_events,
};

pub use report::Report;
use watched::Watched;

/// Errors of an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The topology is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The platform did not start.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The scenario is unusable, or does not fit the topology.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A flag is out of range.
    #[error("{0}")]
    Invalid(String),
    /// An I/O step failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    /// The services did not become ready.
    #[error("the services did not become ready within {0:?}: {1}")]
    NotReady(Duration, String),
    /// Interrupted before the load started.
    #[error("interrupted")]
    Interrupted,
    /// The broker of the event-driven variant did not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Flags of `aiods-lab experiment` and `aiods-lab demo` (the demo has defaults for about a
/// minute).
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentArgs {
    /// Topology file; without it, the built-in food-delivery topology (five services, each
    /// run as `aiods-lab serve <service>` with a fresh database in a temporary directory).
    #[arg(short = 'c', long = "topology", visible_alias = "config")]
    pub topology: Option<PathBuf>,
    /// Scenario file: what the virtual users send (docs/experiments.md); without it, the
    /// built-in food-delivery orders (`lab/scenarios/food-delivery.toml`).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Concurrent virtual users (demo: 20, experiment: 10).
    #[arg(long)]
    pub users: Option<usize>,
    /// How long to load (`90s`, `3m`; demo: 60s, experiment: 30s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Open loop: send this many requests per second (at most `--users` in flight).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Share of the scenario's `invalid` requests (expected to be refused, not failures);
    /// default: the scenario's own weights (built-in: 0.1).
    #[arg(long)]
    pub invalid_share: Option<f64>,
    /// Kill -9 an instance this often, services in turn (demo: 15s; `0s` for none).
    #[arg(long, value_parser = parse_duration)]
    pub crash_every: Option<Duration>,
    /// Hang an instance (fault injection) this often.
    #[arg(long, value_parser = parse_duration)]
    pub hang_every: Option<Duration>,
    /// Inject this share of 500s into a service for `--soft-for`, every `--soft-every`.
    #[arg(long)]
    pub error_rate: Option<f64>,
    /// Inject this much latency (ms) into a service for `--soft-for`, every `--soft-every`.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Interval of error-rate / latency faults (default: a third of the run).
    #[arg(long, value_parser = parse_duration)]
    pub soft_every: Option<Duration>,
    /// Length of one error-rate / latency fault.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub soft_for: Duration,
    /// Pick the service of each fault at random with this seed (default: in turn).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Services to inject faults into (default: every supervised and watched one).
    #[arg(long = "target", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Run these services as *watched*: the lab starts their command itself and the platform
    /// only gets their `url` (probes, scrapes, telemetry; no restart). `--crash-every` kills
    /// of them are the lab's: SIGKILL, then a restart after `--watched-restart-after`.
    #[arg(long = "watched", value_delimiter = ',')]
    pub watched: Vec<String>,
    /// How long a killed watched service stays down before the lab starts it again.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub watched_restart_after: Duration,
    /// Stop injecting after this many faults, and end the run once their incidents are
    /// resolved (or at `--duration`).
    #[arg(long)]
    pub faults: Option<usize>,
    /// No fault before this (default: the first interval). Latency detection judges a
    /// service against its own baseline, learnt over its first 30 seconds with traffic.
    #[arg(long, value_parser = parse_duration)]
    pub faults_after: Option<Duration>,
    /// Replicas of every supervised service (overrides the topology).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Where to write report.json, report.md and latency.svg.
    #[arg(long, default_value = "aiops-report")]
    pub out: PathBuf,
    /// The saga variant of the built-in topology: `http`, orchestrated (the seed's use case
    /// one), or `events`, choreographed over NATS JetStream (use case two: the lab starts
    /// `nats-server -js`, and the built-in scenario polls each order until APPROVED or
    /// REJECTED, 30 s at most, *unsettled* past that).
    #[arg(long, value_enum, default_value = "http", conflicts_with = "topology")]
    pub saga: crate::topology::Saga,
    /// First run fault-free phases at 1, 100 and 1000 users (the seed's scalability line).
    #[arg(long)]
    pub scalability: bool,
    /// Length of each scalability phase.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub scalability_phase: Duration,
    /// Timeout of one request.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// The platform's listener (default: a free port; for `-c`, the topology's).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// `demo`: exit after the report instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `aiods-lab load`: the experiment's load with no fault, through the platform —
/// or, with `--url`, straight at a running service with no platform at all.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Send to this base URL (`http://127.0.0.1:8080`) instead of starting a topology.
    #[arg(long, conflicts_with_all = ["topology", "replicas", "listen"])]
    pub url: Option<String>,
    /// Topology file; without it (and without `--url`), the built-in food-delivery one.
    #[arg(short = 'c', long = "topology", visible_alias = "config")]
    pub topology: Option<PathBuf>,
    /// Scenario file; without it, the built-in food-delivery orders.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 32)]
    pub users: usize,
    /// How long to load.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after this many requests instead of a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Open loop: send this many requests per second (at most `--users` in flight).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Share of the scenario's `invalid` requests (default: the scenario's weights).
    #[arg(long)]
    pub invalid_share: Option<f64>,
    /// Seed of the request mix.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replicas of every supervised service (overrides the topology).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Where to write the report (not with `--url`, which prints a summary).
    #[arg(long, default_value = "aiops-report")]
    pub out: PathBuf,
    /// Timeout of one request.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// The platform's listener (default: a free port; for `-c`, the topology's).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The saga variant (see `aiods-lab experiment --saga`); with `--url`, only the built-in
    /// scenario follows it.
    #[arg(long, value_enum, default_value = "http", conflicts_with = "topology")]
    pub saga: Saga,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl From<LoadArgs> for ExperimentArgs {
    fn from(a: LoadArgs) -> Self {
        Self {
            topology: a.topology,
            scenario: a.scenario,
            users: Some(a.users),
            duration: Some(a.duration),
            requests: a.requests,
            rate: a.rate,
            invalid_share: a.invalid_share,
            crash_every: Some(Duration::ZERO),
            hang_every: None,
            error_rate: None,
            latency_ms: None,
            soft_every: None,
            soft_for: Duration::from_secs(10),
            seed: a.seed,
            targets: Vec::new(),
            watched: Vec::new(),
            watched_restart_after: Duration::from_secs(1),
            faults: None,
            faults_after: None,
            replicas: a.replicas,
            out: a.out,
            scalability: false,
            scalability_phase: Duration::from_secs(10),
            timeout: a.timeout,
            listen: a.listen,
            saga: a.saga,
            no_wait: true,
            quiet: a.quiet,
        }
    }
}

/// Which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `aiods-lab demo`: about a minute, then keeps the platform up until Ctrl-C.
    Demo,
    /// `aiods-lab experiment`.
    Experiment,
    /// `aiods-lab load`: no fault.
    Load,
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Enables fault injection on every supervised service (keeping a token the topology set).
pub(crate) fn enable_faults(topology: &mut Topology) -> String {
    let existing = topology
        .services
        .iter()
        .find_map(|s| s.env.get("AIODS_FAULTS__TOKEN").cloned());
    let token = existing.unwrap_or_else(random_token);
    for s in topology
        .services
        .iter_mut()
        .filter(|s| !s.command.is_empty())
    {
        s.env
            .entry("AIODS_FAULTS__ENABLED".into())
            .or_insert_with(|| "true".into());
        s.env
            .entry("AIODS_FAULTS__TOKEN".into())
            .or_insert_with(|| token.clone());
    }
    token
}

pub(crate) fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        aiods_serve::shutdown_signal().await;
        let _ = tx.send(true);
        // Keep the sender so receivers do not see a closed channel as a stop.
        std::future::pending::<()>().await;
    });
    rx
}

/// Runs `aiods-lab experiment` / `demo` / `load`; the command line is for the report.
pub fn run(args: ExperimentArgs, mode: Mode, command: String) -> ExitCode {
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
    match rt.block_on(run_async(args, mode, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aiods-lab: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Reads the scenario (the built-in one without a file), with `--invalid-share` applied.
pub fn scenario(
    file: Option<&Path>,
    invalid_share: Option<f64>,
    saga: Saga,
) -> Result<(Scenario, String), ExperimentError> {
    let (mut s, origin) = match (file, saga) {
        (Some(path), _) => (Scenario::load(path)?, path.display().to_string()),
        (None, Saga::Http) => (Scenario::food_delivery()?, "built-in".to_owned()),
        (None, Saga::Events) => (Scenario::food_delivery_events()?, "built-in".to_owned()),
    };
    if let Some(share) = invalid_share {
        s.set_invalid_share(share)
            .map_err(ExperimentError::Invalid)?;
    }
    Ok((s, origin))
}

pub(crate) struct Running {
    pub(crate) sup: Arc<Supervision>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), PlatformError>>,
}

impl Running {
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(20), &mut self.task).await {
            Ok(Ok(Err(e))) => eprintln!("aiods-lab: platform: {e}"),
            Ok(_) => {}
            Err(_) => eprintln!("aiods-lab: the platform did not stop within 20 s"),
        }
    }
}

pub(crate) async fn wait_ready(
    sup: &Supervision,
    stop: &watch::Receiver<bool>,
    max: Duration,
) -> Result<(), ExperimentError> {
    let deadline = Instant::now() + max;
    loop {
        let list = sup.instances();
        let pending: Vec<String> = list
            .iter()
            .filter(|i| i.managed && i.status != InstanceStatus::Ready)
            .map(|i| format!("{} {}", i.id, i.status))
            .collect();
        if pending.is_empty() && !list.is_empty() {
            return Ok(());
        }
        if *stop.borrow() {
            return Err(ExperimentError::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(ExperimentError::NotReady(max, pending.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gateway's counters for `services` together, read from its Prometheus text.
fn gateway_count(sup: &Supervision, services: &[String]) -> report::GatewayCount {
    let mut text = String::new();
    sup.stats.render(&mut text);
    let mut c = report::GatewayCount::default();
    let labels: Vec<String> = services
        .iter()
        .map(|s| format!("service=\"{s}\""))
        .collect();
    for line in text
        .lines()
        .filter(|l| labels.iter().any(|label| l.contains(label.as_str())))
    {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let v: u64 = value.parse::<f64>().map(|f| f as u64).unwrap_or(0);
        if head.starts_with("aiops_gateway_requests_total") {
            if let Some(class) = head
                .split("status_class=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                *c.by_class.entry(class.to_owned()).or_default() += v;
            }
            c.requests += v;
        } else if head.starts_with("aiops_gateway_retries_total") {
            c.retries += v;
        } else if head.starts_with("aiops_gateway_no_instance_total") {
            c.no_instance += v;
        }
    }
    c
}

fn delta(after: &report::GatewayCount, before: &report::GatewayCount) -> report::GatewayCount {
    report::GatewayCount {
        requests: after.requests.saturating_sub(before.requests),
        by_class: after
            .by_class
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.saturating_sub(before.by_class.get(k).copied().unwrap_or(0)),
                )
            })
            .collect(),
        retries: after.retries.saturating_sub(before.retries),
        no_instance: after.no_instance.saturating_sub(before.no_instance),
    }
}

fn progress(quiet: bool, len: u64, unit: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} [{{elapsed_precise}}] [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb
}

/// Checks the flags; answers (users, duration, crash_every) with the mode's defaults.
fn checked(
    args: &ExperimentArgs,
    mode: Mode,
) -> Result<(usize, Duration, Option<Duration>), ExperimentError> {
    let users = args
        .users
        .unwrap_or(if mode == Mode::Demo { 20 } else { 10 });
    let duration = args.duration.unwrap_or(if mode == Mode::Demo {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(30)
    });
    let crash_every = match mode {
        Mode::Demo => args.crash_every.or(Some(Duration::from_secs(15))),
        Mode::Experiment => args.crash_every,
        Mode::Load => None,
    };
    if users == 0 {
        return Err(ExperimentError::Invalid(
            "--users must be at least 1".into(),
        ));
    }
    if let Some(f) = args.error_rate
        && !(0.0..=1.0).contains(&f)
    {
        return Err(ExperimentError::Invalid(
            "--error-rate must be between 0 and 1".into(),
        ));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(ExperimentError::Invalid("--rate must be positive".into()));
    }
    if args.replicas == Some(0) {
        return Err(ExperimentError::Invalid(
            "--replicas must be at least 1".into(),
        ));
    }
    Ok((users, duration, crash_every))
}

/// The topology to run (`file`, or the built-in one with its data in `tmp`) and how the
/// report names it.
pub(crate) fn topology(
    file: Option<&Path>,
    listen: Option<SocketAddr>,
    replicas: Option<u32>,
    tmp: &Path,
    backoff_reset_ms: Option<u64>,
) -> Result<(Topology, String), ExperimentError> {
    let exe = std::env::current_exe().map_err(|source| ExperimentError::Io {
        what: "cannot find this program's path".into(),
        source,
    })?;
    let (mut topology, name) = match file {
        Some(path) => {
            let mut t = Topology::load(path)?;
            for note in adopt_old_serve_commands(&mut t, &exe) {
                eprintln!("aiods-lab: note: {}: {note}", path.display());
            }
            (t, path.display().to_string())
        }
        None => (
            built_in_topology(&exe, tmp, backoff_reset_ms)?,
            BUILT_IN_NAME.to_owned(),
        ),
    };
    if let Some(listen) = listen {
        topology.platform.listen = listen;
    }
    if let Some(r) = replicas {
        for s in topology
            .services
            .iter_mut()
            .filter(|s| !s.command.is_empty())
        {
            s.replicas = r;
        }
    }
    Ok((topology, name))
}

/// `a` when every value is `a`, else `a–b`.
fn span<T: Ord + Copy + std::fmt::Display>(values: impl Iterator<Item = T>) -> String {
    let v: Vec<T> = values.collect();
    match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "–".into(),
    }
}

/// What detection runs with, in words, for the report: probe and scrape intervals, the
/// gateway, the objectives, the watched services.
pub(crate) fn conditions(topology: &Topology, watched: Option<&Watched>) -> String {
    let s = &topology.services;
    let h = |f: fn(&aiops_platform::config::ServiceConfig) -> u64| span(s.iter().map(f));
    let routed = s.iter().any(|x| !x.routes.is_empty());
    let gateway = if !routed {
        "no gateway route: detection reads spans, scrapes and pushed metrics".to_owned()
    } else {
        format!(
            "load through the platform's gateway (it retries refused connections and holds \
             requests up to {} ms while no instance is ready; detection reads its counters \
             first){}",
            topology.gateway.hold_ms,
            if topology.gateway.upstreams_via_gateway {
                ", calls between services through it too"
            } else {
                ""
            }
        )
    };
    let slo: std::collections::BTreeSet<String> =
        s.iter().map(|x| x.slo.availability.to_string()).collect();
    let slo = slo.into_iter().collect::<Vec<_>>().join(" / ");
    let alerts = s.first().map_or(String::new(), |x| {
        x.slo
            .burn_alerts
            .iter()
            .map(|a| format!("{} s/{} s at {}×", a.long_secs, a.short_secs, a.factor))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let mut out = format!(
        "probes every {} ms (timeout {} ms; readiness fails after {}, liveness after {} \
         failures in a row), scrapes every {} ms, {gateway}; availability SLO {}, \
         burn alerts {alerts}",
        h(|x| x.health.interval_ms),
        h(|x| x.health.timeout_ms),
        h(|x| u64::from(x.health.ready_failure_threshold)),
        h(|x| u64::from(x.health.failure_threshold)),
        topology.platform.scrape_interval_ms,
        slo,
    );
    if let Some(w) = watched {
        out.push_str(&format!(
            "; watched (started and restarted by the lab, {:?} after a kill): {}",
            w.restart_after(),
            w.names().join(", ")
        ));
    }
    out
}

/// The platform, started in this process for `topology`.
/// The line the demo prints once the platform listens: the dashboard link that signs in by
/// itself (token in the URL fragment), and the API.
fn startup_line(addr: SocketAddr, api_token: &str, services: usize) -> String {
    let dashboard = aiops_platform::web::dashboard::sign_in_link(addr, api_token);
    format!(
        "aiods-lab: platform at {dashboard} (dashboard, signs in by itself), API http://{addr}/api/v1/ (token {api_token}); starting {services} service(s)…"
    )
}

pub(crate) struct Started {
    pub(crate) running: Running,
    pub(crate) addr: SocketAddr,
    pub(crate) api_token: String,
}

pub(crate) async fn start_platform(topology: Topology) -> Result<Started, ExperimentError> {
    let env_token = std::env::var("AIOPS_API_TOKEN").ok();
    let mut platform = Platform::build(topology, env_token).await?;
    platform.announce = false;
    let addr = platform.local_addr;
    let api_token = platform.api_token().to_owned();
    let Some(sup) = platform.state.supervision.clone() else {
        return Err(ExperimentError::Invalid(
            "the topology supervises no service (give services a `command`)".into(),
        ));
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(platform.serve(async move {
        let _ = shutdown_rx.await;
    }));
    Ok(Started {
        running: Running {
            sup,
            shutdown: Some(shutdown_tx),
            task,
        },
        addr,
        api_token,
    })
}

pub(crate) fn supervised(topology: &Topology) -> Vec<String> {
    topology
        .services
        .iter()
        .filter(|s| !s.command.is_empty())
        .map(|s| s.name.clone())
        .collect()
}

/// `--target`, checked against the supervised services (all of them without it).
pub(crate) fn targets(
    asked: &[String],
    supervised: &[String],
) -> Result<Vec<String>, ExperimentError> {
    if asked.is_empty() {
        return Ok(supervised.to_vec());
    }
    for t in asked {
        if !supervised.contains(t) {
            return Err(ExperimentError::Invalid(format!(
                "--target {t:?} is not a supervised or watched service (one of {})",
                supervised.join(", ")
            )));
        }
    }
    Ok(asked.to_vec())
}

async fn run_async(
    args: ExperimentArgs,
    mode: Mode,
    command: String,
) -> Result<ExitCode, ExperimentError> {
    aiops_platform::common::install_crypto_provider();
    let (users, duration, crash_every) = checked(&args, mode)?;
    let (scenario, scenario_origin) =
        scenario(args.scenario.as_deref(), args.invalid_share, args.saga)?;

    // The topology.
    let tmp = tempfile::Builder::new()
        .prefix("aiods-lab-")
        .tempdir()
        .map_err(|source| ExperimentError::Io {
            what: "cannot create a temporary directory".into(),
            source,
        })?;
    let (mut topology, mut topology_name) = topology(
        args.topology.as_deref(),
        args.listen,
        args.replicas,
        tmp.path(),
        None,
    )?;
    // The event-driven variant: a broker for the run, stopped with it.
    let _broker = match args.saga {
        Saga::Http => None,
        Saga::Events => {
            let broker = Broker::start(&tmp.path().join("nats"))?;
            use_events(&mut topology, &broker.url());
            topology_name.push_str(", event-driven saga over NATS JetStream (nats-server -js)");
            Some(broker)
        }
    };
    // Every path of the scenario must reach a service before anything starts.
    let entry_services =
        scenario.services(&scenario_origin, &crate::topology::routes(&topology))?;
    let fault_token = enable_faults(&mut topology);
    let watched = if args.watched.is_empty() {
        None
    } else {
        Some(Watched::take_over(
            &mut topology,
            &args.watched,
            args.watched_restart_after,
        )?)
    };
    let supervised = supervised(&topology);
    let mut services = supervised.clone();
    services.extend(watched.as_ref().map(|w| w.names()).unwrap_or_default());
    let targets = targets(&args.targets, &services)?;
    let conditions = conditions(&topology, watched.as_deref());
    let upstreams_via_gateway = topology.gateway.upstreams_via_gateway;
    let replicas_desc = topology
        .services
        .iter()
        .filter(|s| !s.command.is_empty())
        .map(|s| s.replicas)
        .max()
        .unwrap_or(1);

    // The platform, in this process.
    let Started {
        running,
        addr,
        api_token,
    } = start_platform(topology).await?;
    let stop = stop_signal();
    let dashboard = aiops_platform::web::dashboard::sign_in_link(addr, &api_token);
    eprintln!("{}", startup_line(addr, &api_token, supervised.len()));
    let first_path = scenario
        .requests
        .first()
        .map(|r| r.path.literal_prefix().to_owned())
        .unwrap_or_default();
    let result = experiment(
        &args,
        mode,
        command,
        &running.sup,
        stop.clone(),
        Plan {
            users,
            duration,
            crash_every,
            targets,
            fault_token,
            entry_services,
            scenario: Arc::new(scenario),
            topology_name,
            services,
            replicas: args.replicas.or(Some(replicas_desc)),
            watched: watched.clone(),
            platform_addr: addr,
            upstreams_via_gateway,
            conditions,
        },
    )
    .await;
    let code = match result {
        Ok(report) => {
            let code = if report.requests == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            if mode == Mode::Demo && !args.no_wait && !*stop.borrow() {
                println!(
                    "The platform is still running:\n  dashboard  {dashboard}\n  API        http://{addr}/api/v1/incidents   (Authorization: Bearer {api_token})\n  report     http://{addr}/api/v1/report\n  gateway    {}{first_path}\nPress Ctrl-C to stop (every service stops with it).",
                    running.sup.gateway_url().unwrap_or_default()
                );
                let mut s = stop.clone();
                let _ = s.wait_for(|v| *v).await;
            }
            code
        }
        Err(ExperimentError::Interrupted) => {
            eprintln!("aiods-lab: interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("aiods-lab: error: {e}");
            ExitCode::from(2)
        }
    };
    eprintln!("aiods-lab: stopping the platform and its services…");
    if let Some(w) = &watched {
        w.stop_all().await;
    }
    running.stop().await;
    drop(tmp);
    Ok(code)
}

struct Plan {
    users: usize,
    duration: Duration,
    crash_every: Option<Duration>,
    targets: Vec<String>,
    fault_token: String,
    /// The services the scenario's requests go to (the gateway's counts are theirs).
    entry_services: Vec<String>,
    scenario: Arc<Scenario>,
    topology_name: String,
    /// Supervised and watched services: the report's rows.
    services: Vec<String>,
    replicas: Option<u32>,
    /// Services the lab runs itself.
    watched: Option<Arc<Watched>>,
    /// The platform's listener (the watched services' telemetry endpoint).
    platform_addr: SocketAddr,
    /// Upstream URLs of watched services are the gateway's.
    upstreams_via_gateway: bool,
    /// What detection ran with, in words.
    conditions: String,
}

#[allow(clippy::too_many_lines)]
async fn experiment(
    args: &ExperimentArgs,
    _mode: Mode,
    command: String,
    sup: &Arc<Supervision>,
    stop: watch::Receiver<bool>,
    plan: Plan,
) -> Result<Report, ExperimentError> {
    wait_ready(sup, &stop, Duration::from_secs(60)).await?;
    let gateway = sup
        .gateway_url()
        .ok_or_else(|| ExperimentError::Invalid("the gateway is not running".into()))?;
    let max_users = if args.scalability {
        plan.users.max(1000)
    } else {
        plan.users
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(max_users)
        .tcp_nodelay(true)
        .build()?;
    let run_id = random_token();
    if let Some(w) = &plan.watched {
        let upstreams = plan.upstreams_via_gateway.then(|| gateway.clone());
        w.start_all(plan.platform_addr, upstreams, &client).await?;
        eprintln!(
            "aiods-lab: watched service(s) {} started by the lab",
            w.names().join(", ")
        );
    }

    // The scalability line: fault-free phases, valid requests only.
    let valid_only = {
        let mut s = (*plan.scenario).clone();
        if s.requests.iter().any(|r| !r.invalid) {
            s.requests.retain(|r| !r.invalid);
        }
        Arc::new(s)
    };
    let mut scalability = Vec::new();
    if args.scalability {
        for n in [1usize, 100, 1000] {
            if *stop.borrow() {
                return Err(ExperimentError::Interrupted);
            }
            eprintln!(
                "aiods-lab: scalability phase: {n} user(s) for {:?}",
                args.scalability_phase
            );
            let counters = Arc::new(load::Counters::default());
            let (rec, elapsed) = load::run(
                load::LoadConfig {
                    base_url: gateway.clone(),
                    scenario: valid_only.clone(),
                    users: n,
                    until: load::Until::Time(args.scalability_phase),
                    rate: None,
                    timeout: args.timeout,
                    seed: args.seed.unwrap_or(7),
                    run_id: format!("{run_id}-s{n}"),
                },
                client.clone(),
                counters,
                stop.clone(),
            )
            .await;
            let lat = report::latency_stat(&rec.samples);
            scalability.push(report::ScalabilityRow {
                users: n,
                requests: rec.samples.len() as u64,
                errors: rec
                    .samples
                    .iter()
                    .filter(|s| s.outcome == load::Outcome::Failed)
                    .count() as u64,
                mean_ms: lat.mean.unwrap_or(0.0),
                p95_ms: lat.p95.unwrap_or(0.0),
                throughput_rps: rec.samples.len() as f64 / elapsed.as_secs_f64().max(0.001),
            });
            // Let the services' pools drain before the next phase.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The main phase.
    let until = match args.requests {
        Some(n) => load::Until::Requests(n),
        None => load::Until::Time(plan.duration),
    };
    let mut soft = Vec::new();
    if let Some(f) = args.error_rate.filter(|f| *f > 0.0) {
        soft.push(chaos::SoftFault::ErrorRate(f));
    }
    if let Some(ms) = args.latency_ms.filter(|m| *m > 0) {
        soft.push(chaos::SoftFault::Latency(ms));
    }
    let nominal = match until {
        load::Until::Time(d) => d,
        load::Until::Requests(_) => Duration::from_secs(3600),
    };
    let chaos_cfg = chaos::ChaosConfig {
        crash_every: plan.crash_every,
        hang_every: args.hang_every,
        soft,
        soft_every: args.soft_every.unwrap_or(nominal / 3),
        soft_for: args.soft_for,
        targets: plan.targets.clone(),
        seed: args.seed,
        fault_token: plan.fault_token.clone(),
        // Leave time for the last repair inside the run.
        last_at: nominal.saturating_sub(Duration::from_secs(2)),
        first_at: args.faults_after.unwrap_or(Duration::ZERO),
        max_faults: args.faults,
        watched: plan.watched.clone(),
    };
    let mut chaos_desc = Vec::new();
    if let Some(d) = plan.crash_every.filter(|d| !d.is_zero()) {
        chaos_desc.push(format!("kill -9 every {d:?}"));
    }
    if let Some(w) = &plan.watched {
        chaos_desc.push(format!(
            "watched (started, killed and restarted after {:?} by the lab): {}",
            w.restart_after(),
            w.names().join(", ")
        ));
    }
    if let Some(n) = args.faults {
        chaos_desc.push(format!("at most {n} faults"));
    }
    if let Some(d) = args.faults_after {
        chaos_desc.push(format!("none before {d:?}"));
    }
    if let Some(d) = args.hang_every.filter(|d| !d.is_zero()) {
        chaos_desc.push(format!("hang every {d:?}"));
    }
    if !chaos_cfg.soft.is_empty() {
        chaos_desc.push(format!(
            "{:?} for {:?} every {:?}",
            chaos_cfg.soft, chaos_cfg.soft_for, chaos_cfg.soft_every
        ));
    }
    let chaos_text = if chaos_desc.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{} ({} over {})",
            chaos_desc.join(", "),
            if args.seed.is_some() {
                "random"
            } else {
                "in turn"
            },
            plan.targets.join(", ")
        )
    };

    let instances_before = sup.instances();
    let gateway_before = gateway_count(sup, &plan.entry_services);
    let start_unix_nano = now_nanos();
    let started_at = rfc3339(start_unix_nano);
    let start = Instant::now();
    let counters = Arc::new(load::Counters::default());
    let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
    // The load ends on its own; chaos ends with it.
    let (load_done_tx, load_done_rx) = watch::channel(false);
    let chaos_task = tokio::spawn(chaos::run(
        chaos_cfg,
        sup.clone(),
        client.clone(),
        start,
        load_done_rx,
        events.clone(),
    ));
    // The load ends at its time, on Ctrl-C, or once `--faults` faults were injected and
    // every incident of the run is resolved.
    let (load_stop_tx, load_stop_rx) = watch::channel(false);
    let load_stop_tx = Arc::new(load_stop_tx);
    let stopper = {
        let tx = load_stop_tx.clone();
        let mut global = stop.clone();
        let sup = sup.clone();
        let events = events.clone();
        let max = args.faults;
        // Past the last fault's own length (a soft fault, a watched service's restart).
        let settle = Duration::from_secs(3)
            + if args.error_rate.is_some() || args.latency_ms.is_some() {
                args.soft_for
            } else {
                args.watched_restart_after
            };
        tokio::spawn(async move {
            let mut all_in: Option<Instant> = None;
            loop {
                tokio::select! {
                    r = global.changed() => {
                        if r.is_err() || *global.borrow() {
                            let _ = tx.send(true);
                            return;
                        }
                    }
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                let Some(max) = max else { continue };
                let injected = events
                    .lock()
                    .iter()
                    .filter(|e| e.ok && figures::MATCHED_KINDS.contains(&e.kind.as_str()))
                    .count();
                if injected < max {
                    continue;
                }
                let since = *all_in.get_or_insert_with(Instant::now);
                let open = sup.incidents().iter().any(|i| {
                    i.status == IncidentStatus::Open && i.detected_unix_nano >= start_unix_nano
                });
                if since.elapsed() >= settle && !open {
                    let _ = tx.send(true);
                    return;
                }
            }
        })
    };
    let load_task = tokio::spawn(load::run(
        load::LoadConfig {
            base_url: gateway.clone(),
            scenario: plan.scenario.clone(),
            users: plan.users,
            until,
            rate: args.rate,
            timeout: args.timeout,
            seed: args.seed.unwrap_or(42),
            run_id,
        },
        client.clone(),
        counters.clone(),
        load_stop_rx,
    ));
    let (len, unit) = match until {
        load::Until::Time(d) => (d.as_secs(), "s"),
        load::Until::Requests(n) => (n, "requests"),
    };
    let pb = progress(args.quiet, len, unit);
    let ticker = {
        let pb = pb.clone();
        let counters = counters.clone();
        let sup = sup.clone();
        let events = events.clone();
        tokio::spawn(async move {
            loop {
                let done = counters.done.load(Ordering::Relaxed);
                let failed = counters.failed.load(Ordering::Relaxed);
                match until {
                    load::Until::Time(_) => pb.set_position(start.elapsed().as_secs().min(len)),
                    load::Until::Requests(_) => pb.set_position(done.min(len)),
                }
                let open = sup
                    .incidents()
                    .iter()
                    .filter(|i| i.status == IncidentStatus::Open)
                    .count();
                let faults = events.lock().iter().filter(|e| e.kind != "clear").count();
                pb.set_message(format!(
                    "| {done} requests, {failed} failed ({:.3} %) | faults {faults} | incidents open {open}",
                    if done == 0 {
                        0.0
                    } else {
                        failed as f64 * 100.0 / done as f64
                    }
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let (recorded, elapsed) = match load_task.await {
        Ok(r) => r,
        Err(e) => {
            return Err(ExperimentError::Invalid(format!(
                "the load task failed: {e}"
            )));
        }
    };
    stopper.abort();
    let _ = load_done_tx.send(true);
    let _ = chaos_task.await;
    // Let open incidents of the last faults resolve, so their MTTR counts.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline
        && !*stop.borrow()
        && sup
            .incidents()
            .iter()
            .any(|i| i.status == IncidentStatus::Open && i.detected_unix_nano >= start_unix_nano)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ticker.abort();
    pb.finish_and_clear();
    let gateway_after = gateway_count(sup, &plan.entry_services);
    let faults = std::mem::take(&mut *events.lock());
    let report = report::build(report::Inputs {
        command,
        saga: args.saga,
        topology: plan.topology_name,
        scenario: plan.scenario.name.clone(),
        started_at,
        start_unix_nano,
        users: plan.users,
        rate: args.rate,
        replicas: plan.replicas,
        invalid_share: plan.scenario.invalid_share(),
        chaos: chaos_text,
        conditions: plan.conditions.clone(),
        elapsed_s: elapsed.as_secs_f64(),
        samples: &recorded.samples,
        failures: recorded.failures,
        follow_up_requests: counters.polls.load(Ordering::Relaxed),
        entry_services: plan.entry_services.clone(),
        faults,
        incidents: sup.incidents(),
        instances_before,
        instances_after: sup.instances(),
        services: plan.services,
        lab_restarts: plan
            .watched
            .as_ref()
            .map(|w| w.restarts().into_iter().collect())
            .unwrap_or_default(),
        gateway: delta(&gateway_after, &gateway_before),
        scalability,
    });
    write_report(&report, &args.out)?;
    let chart = args.out.join("latency.svg");
    print!("{}", report.markdown(Some(&chart.display().to_string())));
    if !report.figures_by_kind.is_empty() {
        eprint!(
            "aiods-lab: from the fault ({}):\n{}",
            report.conditions,
            figures::summary(&report.figures_by_kind)
        );
    }
    eprintln!(
        "aiods-lab: report written to {} (report.md, report.json, latency.svg)",
        args.out.display()
    );
    Ok(report)
}

fn write_report(report: &Report, out: &Path) -> Result<(), ExperimentError> {
    let io = |what: String| move |source| ExperimentError::Io { what, source };
    std::fs::create_dir_all(out).map_err(io(format!("cannot create {}", out.display())))?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| ExperimentError::Invalid(format!("cannot encode the report: {e}")))?;
    let files = [
        ("report.json", json),
        ("report.md", report.markdown(Some("latency.svg"))),
        ("latency.svg", report.svg()),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(io(format!("cannot write {}", path.display())))?;
    }
    Ok(())
}

/// Runs `aiods-lab load`: through the platform (a topology, no fault, the full report), or
/// with `--url` straight at a running service (a summary on stdout; exit 1 if any failed).
pub fn run_load(args: LoadArgs, command: String) -> ExitCode {
    let Some(url) = args.url.clone() else {
        return run(args.into(), Mode::Load, command);
    };
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
    match rt.block_on(load_url(args, url.trim_end_matches('/').to_owned())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aiods-lab: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn load_url(args: LoadArgs, base_url: String) -> Result<ExitCode, ExperimentError> {
    aiops_platform::common::install_crypto_provider();
    if args.users == 0 {
        return Err(ExperimentError::Invalid(
            "--users must be at least 1".into(),
        ));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(ExperimentError::Invalid("--rate must be positive".into()));
    }
    let (scenario, _) = scenario(args.scenario.as_deref(), args.invalid_share, args.saga)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.users)
        .tcp_nodelay(true)
        .build()?;
    let counters = Arc::new(load::Counters::default());
    let until = match args.requests {
        Some(n) => load::Until::Requests(n),
        None => load::Until::Time(args.duration),
    };
    let (recorded, elapsed) = load::run(
        load::LoadConfig {
            base_url: base_url.clone(),
            scenario: Arc::new(scenario.clone()),
            users: args.users,
            until,
            rate: args.rate,
            timeout: args.timeout,
            seed: args.seed.unwrap_or(42),
            run_id: random_token(),
        },
        client,
        counters.clone(),
        stop_signal(),
    )
    .await;
    let count = |o: load::Outcome| recorded.samples.iter().filter(|s| s.outcome == o).count();
    let (ok, rejected, failed, unsettled) = (
        count(load::Outcome::Ok),
        count(load::Outcome::Rejected),
        count(load::Outcome::Failed),
        count(load::Outcome::Unsettled),
    );
    let lat = report::latency_stat(&recorded.samples);
    let secs = elapsed.as_secs_f64().max(0.001);
    let summary = serde_json::json!({
        "url": base_url,
        "scenario": scenario.name,
        "seconds": elapsed.as_secs_f64(),
        "users": args.users,
        "requests": recorded.samples.len(),
        "follow_up_requests": counters.polls.load(Ordering::Relaxed),
        "ok": ok,
        "rejected_as_expected": rejected,
        "errors": failed,
        "unsettled": unsettled,
        "ok_per_second": ok as f64 / secs,
        "latency_ms": lat,
        "failures": recorded.failures,
    });
    println!(
        "{} requests in {:.1}s from {} users: {:.1} answered as expected/s, {rejected} rejected as expected, {failed} failed, {unsettled} unsettled; latency mean {} p50 {} p95 {} p99 {}",
        recorded.samples.len(),
        elapsed.as_secs_f64(),
        args.users,
        ok as f64 / secs,
        report::ms(lat.mean),
        report::ms(lat.p50),
        report::ms(lat.p95),
        report::ms(lat.p99),
    );
    println!("{summary}");
    Ok(if failed > 0 || recorded.samples.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod startup_line_tests {
    #[test]
    fn the_printed_line_has_a_dashboard_link_that_signs_in() {
        let addr = "127.0.0.1:4318".parse().expect("addr");
        let line = super::startup_line(addr, "tok123", 5);
        assert!(
            line.contains("http://127.0.0.1:4318/#token=tok123 "),
            "{line}"
        );
    }
}
