//! The `aiops` command line, as a library function so other binaries (the end-to-end tests
//! package) can run the very same program: [`run`].

pub mod client;
pub mod detect;
pub mod log_format;
pub mod logs;
pub mod rca;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::client::{
    ExceptionsArgs, HealthArgs, LogsListArgs, MetricsArgs, ServicesArgs, TraceArgs, TracesArgs,
};
use crate::cli::log_format::LogFormat;
use crate::config::Topology;
use crate::platform::{Platform, TokenSource};
use clap::{Args, Parser, Subcommand};

/// The aiods AIOps platform.
#[derive(Debug, Parser)]
#[command(name = "aiops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a `timestamp,value` CSV for anomalies.
    Detect(crate::cli::detect::DetectArgs),
    /// Rank the root causes of an incident at a node from metrics and a call graph (CSV).
    Rca(crate::cli::rca::RcaArgs),
    /// The synthetic root-cause benchmark: top-1 and top-3 per fault family.
    #[command(name = "rca-bench", hide = true)]
    RcaBench(crate::cli::rca::RcaBenchArgs),
    /// Run the platform: OTLP and Sentry receivers, Prometheus scraping, management API.
    Up(UpArgs),
    /// Services seen from any signal.
    Services(ServicesArgs),
    /// Recent traces.
    Traces(TracesArgs),
    /// One trace as a span tree.
    Trace(TraceArgs),
    /// Log records (`aiops logs --service X` or `aiops logs list ...`).
    Logs(LogsArgs),
    /// Exception groups.
    Exceptions(ExceptionsArgs),
    /// Incidents with their MTTD and MTTR.
    Incidents(client::IncidentsArgs),
    /// Metric series (OTLP-pushed and scraped).
    Metrics(MetricsArgs),
    /// The platform's health and counters.
    Health(HealthArgs),
}

/// `aiops up`.
#[derive(Debug, Args)]
struct UpArgs {
    /// Topology file (TOML); defaults apply without one.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Listener address, overriding `[platform] listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json` (one object per
    /// line, as the services write).
    #[arg(long, value_enum, env = "AIOPS_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `aiops logs`: a group, so other log verbs can sit beside the listing.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct LogsArgs {
    #[command(subcommand)]
    command: Option<LogsCommand>,
    #[command(flatten)]
    list: LogsListArgs,
}

#[derive(Debug, Subcommand)]
enum LogsCommand {
    /// Log records, newest first (the default).
    List(LogsListArgs),
    /// Mine templates from a log file: `template_id<TAB>template` per input line, in order.
    Templates(crate::cli::logs::TemplatesArgs),
}

/// Parses the command line and runs `aiops`.
pub fn run() -> ExitCode {
    if let Some(verb) = moved_to_the_lab() {
        eprintln!(
            "aiops: error: `aiops {verb}` moved to the lab beside the platform: \
             `cargo run --release -p aiods-lab -- {verb}` (or `aiods-lab {verb}`); \
             in a topology file, replace a command `[\"aiops\", \"serve\", …]` with \
             `[\"aiods-lab\", \"serve\", …]`"
        );
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // reqwest and sentry are built without a default TLS provider.
    crate::common::install_crypto_provider();
    match cli.command {
        Command::Detect(a) => local(crate::cli::detect::run(&a)),
        Command::Rca(a) => local(crate::cli::rca::run(&a)),
        Command::RcaBench(a) => local(crate::cli::rca::bench(&a)),
        Command::Up(args) => up(args),
        Command::Services(a) => read(client::services(&a)),
        Command::Traces(a) => read(client::traces(&a)),
        Command::Trace(a) => read(client::trace(&a)),
        Command::Logs(LogsArgs { command, list }) => match command {
            None => read(client::logs(&list)),
            Some(LogsCommand::List(a)) => read(client::logs(&a)),
            Some(LogsCommand::Templates(a)) => local(crate::cli::logs::templates(&a)),
        },
        Command::Exceptions(a) => read(client::exceptions(&a)),
        Command::Incidents(a) => read(client::incidents(&a)),
        Command::Metrics(a) => read(client::metrics(&a)),
        Command::Health(a) => read(client::health(&a)),
    }
}

/// The verbs `aiops` had before the demo moved to `aiods-lab`: named, so that an old
/// command line or topology file fails with what to run instead of "unrecognized subcommand".
fn moved_to_the_lab() -> Option<&'static str> {
    let verb = std::env::args().nth(1)?;
    ["demo", "experiment", "serve"]
        .into_iter()
        .find(|v| *v == verb)
}

/// Reports the result of a local (offline) command.
fn local<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiops: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi: bool) -> Option<tokio::runtime::Runtime> {
    let built = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    built
        .map_err(|e| eprintln!("aiops: cannot start the async runtime: {e}"))
        .ok()
}

fn read(fut: impl Future<Output = Result<(), client::ClientError>>) -> ExitCode {
    let Some(rt) = runtime(false) else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiops: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(args: UpArgs) -> ExitCode {
    crate::cli::log_format::install(args.log_format);
    let mut topology = match &args.config {
        Some(path) => match Topology::load(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("aiops: {e}");
                return ExitCode::from(2);
            }
        },
        None => Topology::default(),
    };
    if let Some(listen) = args.listen {
        topology.platform.listen = listen;
    }
    // Ingest keys from the environment too (a Kubernetes Secret), beside the topology's.
    if let Ok(keys) = std::env::var("AIOPS_INGEST_KEYS") {
        topology.platform.ingest_keys.extend(
            keys.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
        );
    }
    let Some(rt) = runtime(true) else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let env_token = std::env::var("AIOPS_API_TOKEN").ok();
        let platform = match Platform::build(topology, env_token).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("aiops: {e}");
                return ExitCode::from(2);
            }
        };
        let addr = platform.local_addr;
        if platform.token_source == TokenSource::Generated {
            // Printed once, so a user can copy it; never logged.
            println!("{}", serde_json::json!({ "event": "api_token", "token": platform.api_token() }));
        }
        // Logged first: whoever waits for the machine-readable line finds the log line written.
        tracing::info!(%addr, "aiops platform listening");
        println!(
            "{}",
            serde_json::json!({ "event": "listening", "addr": addr.to_string(), "url": format!("http://{addr}") })
        );
        // A link that signs in by itself (the token in the fragment, never sent to the server),
        // when the token was generated or a person is watching; a configured token is not
        // copied into a redirected log.
        let dashboard = if platform.token_source == TokenSource::Generated
            || std::io::IsTerminal::is_terminal(&std::io::stdout())
        {
            crate::web::dashboard::sign_in_link(addr, platform.api_token())
        } else {
            crate::web::dashboard::dashboard_url(addr)
        };
        println!(
            "{}",
            serde_json::json!({ "event": "dashboard", "url": dashboard })
        );
        match platform.serve(async {
            let signal = aiods_serve::shutdown_signal().await;
            tracing::info!(%signal, "shutdown started");
        }).await {
            Ok(()) => {
                tracing::info!("aiops platform stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aiops: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
