//! `aiops rca`: rank the root causes of an incident from metrics and a call graph (CSV), and
//! `aiops rca-bench`: the synthetic benchmark of that ranking.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use crate::rca::bench::{self, BenchOptions, FaultFamily, UnknownFamily};
use crate::rca::input::{self, InputError};
use crate::rca::{self, RankOptions, RcaError};

/// Arguments of `aiops rca`.
#[derive(Debug, Clone, clap::Args)]
pub struct RcaArgs {
    /// Long-format metrics: `timestamp,node,metric,value` rows (epoch seconds, header optional).
    #[arg(long, value_name = "m.csv")]
    pub metrics: PathBuf,
    /// Call graph: `caller,callee` rows (the caller depends on the callee).
    #[arg(long, value_name = "g.csv")]
    pub graph: PathBuf,
    /// The node where the incident shows; candidates are it and everything it depends on.
    #[arg(long, value_name = "NODE")]
    pub target: String,
    /// The target's metric that shows the incident (e.g. `latency`, `error_rate`).
    #[arg(long, value_name = "M")]
    pub target_metric: Option<String>,
    /// Start of the incident window (epoch seconds); without it each series finds its own
    /// change point.
    #[arg(long, value_name = "TS")]
    pub since: Option<f64>,
    /// Print a JSON array of `{rank,node,score}` instead of CSV.
    #[arg(long)]
    pub json: bool,
}

/// Errors of `aiops rca` and `aiops rca-bench`.
#[derive(Debug, thiserror::Error)]
pub enum RcaCliError {
    /// An input file is missing or malformed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The target or target metric is unknown.
    #[error(transparent)]
    Rank(#[from] RcaError),
    /// `--since` is not a finite number.
    #[error("--since must be a finite number of epoch seconds")]
    Since,
    /// A fault family name is unknown.
    #[error(transparent)]
    Family(#[from] UnknownFamily),
    /// Writing the output failed.
    #[error("{what}: {source}")]
    Write {
        /// What was being written.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Runs `aiops rca`.
pub fn run(args: &RcaArgs) -> Result<(), RcaCliError> {
    if args.since.is_some_and(|s| !s.is_finite()) {
        return Err(RcaCliError::Since);
    }
    let metrics = input::read_metrics(&args.metrics)?;
    let graph = input::read_graph(&args.graph)?;
    let options = RankOptions {
        target_metric: args.target_metric.clone(),
        since: args.since,
        ..RankOptions::default()
    };
    let ranked = rca::rank(&metrics, &graph, &args.target, &options)?;
    let stdout = |source| RcaCliError::Write {
        what: "stdout".into(),
        source,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        let rows: Vec<JsonRow<'_>> = ranked
            .iter()
            .map(|c| JsonRow {
                rank: c.rank,
                node: &c.node,
                score: round(c.score),
            })
            .collect();
        serde_json::to_writer(&mut out, &rows).map_err(|e| stdout(e.into()))?;
        writeln!(out).map_err(stdout)?;
    } else {
        writeln!(out, "rank,node,score").map_err(stdout)?;
        for c in &ranked {
            writeln!(out, "{},{},{:.6}", c.rank, c.node, c.score).map_err(stdout)?;
        }
    }
    out.flush().map_err(stdout)
}

/// One element of `--json` output, fields in the CSV's order.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    rank: usize,
    node: &'a str,
    score: f64,
}

/// Six decimals, like the CSV.
fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Arguments of `aiops rca-bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct RcaBenchArgs {
    /// Number of generated cases (families in turn).
    #[arg(long, default_value_t = 500)]
    pub cases: usize,
    /// Seed of the run.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Comma-separated fault families: latency, errors, saturation, cpu.
    #[arg(long, default_value = "latency,errors,saturation,cpu")]
    pub families: String,
    /// Give the scorer the fault time as `--since`.
    #[arg(long)]
    pub since_known: bool,
    /// Also write every case as `DIR/case-NNNN/{metrics,graph}.csv` plus `DIR/cases.csv`
    /// (`case,family,target,target_metric,root,fault_time`), ready for `aiops rca`.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
    /// Print every case whose root did not rank first to stderr, with the top three.
    #[arg(long)]
    pub failures: bool,
}

/// Runs `aiops rca-bench`: prints the accuracy table (CSV) on stdout.
pub fn bench(args: &RcaBenchArgs) -> Result<(), RcaCliError> {
    let families = args
        .families
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<FaultFamily>, _>>()?;
    let options = BenchOptions {
        cases: args.cases,
        seed: args.seed,
        families,
        since_known: args.since_known,
        ..BenchOptions::default()
    };
    if let Some(dir) = &args.write {
        write_cases(&options, dir)?;
    }
    if args.failures {
        print_failures(&options);
    }
    let report = bench::run(&options);
    let mut out = io::stdout().lock();
    write!(out, "{report}").map_err(|source| RcaCliError::Write {
        what: "stdout".into(),
        source,
    })
}

fn write_cases(options: &BenchOptions, dir: &std::path::Path) -> Result<(), RcaCliError> {
    let failed = |source| RcaCliError::Write {
        what: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut index = BufWriter::new(std::fs::File::create(dir.join("cases.csv")).map_err(failed)?);
    writeln!(index, "case,family,target,target_metric,root,fault_time").map_err(failed)?;
    for id in 0..options.cases {
        let Some(case) = bench::case(options, id) else {
            break;
        };
        let name = format!("case-{id:04}");
        case.write(&dir.join(&name)).map_err(failed)?;
        writeln!(
            index,
            "{name},{},{},{},{},{}",
            case.family, case.target, case.target_metric, case.root, case.fault_time
        )
        .map_err(failed)?;
    }
    index.flush().map_err(failed)
}

fn print_failures(options: &BenchOptions) {
    for id in 0..options.cases {
        let Some(case) = bench::case(options, id) else {
            break;
        };
        let mut rank_options = options.rank.clone().with_target_metric(&case.target_metric);
        if options.since_known {
            rank_options.since = Some(case.fault_time);
        }
        let Ok(ranked) = rca::rank(&case.metrics, &case.graph, &case.target, &rank_options) else {
            continue;
        };
        let position = ranked.iter().position(|c| c.node == case.root);
        if position == Some(0) {
            continue;
        }
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|c| match &c.evidence {
                Some(e) => format!(
                    "{}={:.3}({} z={:.1} at {:.0})",
                    c.node,
                    c.score,
                    e.metric,
                    e.z,
                    e.onset - case.fault_time
                ),
                None => format!("{}={:.3}", c.node, c.score),
            })
            .collect();
        eprintln!(
            "case {id} {}: root {} at {:?}, target {}; top {}",
            case.family,
            case.root,
            position.map(|p| p + 1),
            case.target,
            top.join(" ")
        );
    }
}
