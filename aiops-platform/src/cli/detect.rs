//! `aiops detect`: score a `timestamp,value` CSV with a streaming anomaly detector.

use crate::common::time::parse_timestamp;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use crate::anomaly::{AnomalyError, DetectorKind};

/// Arguments of `aiops detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Input CSV with a header line and `timestamp,value` rows; timestamps in ISO 8601
    /// (`2024-01-31T12:00:00Z`, `2024-01-31 12:00:00`, ...) or epoch seconds. `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Output CSV (`timestamp,value,anomaly_score`); `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// Detector: residual (default), ensemble, robust, spectral, novelty, robust-online or
    /// windowed-gaussian (NAB's baseline).
    #[arg(long, short, default_value = "residual")]
    pub detector: String,
}

/// Errors of `aiops detect`.
#[derive(Debug, thiserror::Error)]
pub enum DetectCliError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A row could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The input file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The detector name is unknown.
    #[error(transparent)]
    Detector(#[from] AnomalyError),
}

/// Runs `aiops detect`.
pub fn run(args: &DetectArgs) -> Result<(), DetectCliError> {
    let kind: DetectorKind = args.detector.parse()?;
    let in_name = args.input.display().to_string();
    let out_name = args.output.display().to_string();
    let io_in = |source| DetectCliError::Io {
        path: in_name.clone(),
        source,
    };
    let reader: Box<dyn BufRead> = if in_name == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        Box::new(BufReader::new(File::open(&args.input).map_err(io_in)?))
    };
    // Parse everything before writing so a malformed row leaves no partial output file.
    let rows = read_rows(reader, &in_name)?;
    let io_out = |source| DetectCliError::Io {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = if out_name == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(File::create(&args.output).map_err(io_out)?))
    };
    write_scores(&rows, kind, &mut out).map_err(io_out)?;
    out.flush().map_err(io_out)?;
    Ok(())
}

/// One input row: the timestamp and value as written, and as parsed (epoch seconds, value).
pub type Row = (String, String, i64, f64);

/// Reads `timestamp,value` rows (a header line is optional; blank lines are skipped);
/// `path` names the input in errors.
pub fn read_rows(reader: impl BufRead, path: &str) -> Result<Vec<Row>, DetectCliError> {
    let io_in = |source| DetectCliError::Io {
        path: path.to_owned(),
        source,
    };
    let mut rows: Vec<Row> = Vec::new();
    let malformed = |line: usize, reason: String| DetectCliError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut saw_header = false;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io_in)?;
        let lineno = i + 1;
        let text = line.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        let (ts_raw, value_raw) = match text.split_once(',') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => {
                if !saw_header {
                    saw_header = true;
                    continue;
                }
                return Err(malformed(
                    lineno,
                    "expected two columns `timestamp,value`".into(),
                ));
            }
        };
        if !saw_header {
            saw_header = true;
            if parse_value(value_raw).is_err() {
                continue; // the header line
            }
        }
        if value_raw.contains(',') {
            return Err(malformed(
                lineno,
                format!("expected two columns, got `{text}`"),
            ));
        }
        let ts = parse_timestamp(unquote(ts_raw))
            .map_err(|e| malformed(lineno, format!("bad timestamp `{ts_raw}`: {e}")))?;
        let value = parse_value(value_raw)
            .map_err(|e| malformed(lineno, format!("bad value `{value_raw}`: {e}")))?;
        rows.push((ts_raw.to_string(), value_raw.to_string(), ts, value));
    }
    Ok(rows)
}

/// Scores `rows` with a detector of `kind` and writes `timestamp,value,anomaly_score` lines.
pub fn write_scores(rows: &[Row], kind: DetectorKind, out: &mut impl Write) -> io::Result<()> {
    let mut detector = kind.build();
    writeln!(out, "timestamp,value,anomaly_score")?;
    for (ts_raw, value_raw, ts, value) in rows {
        let score = detector.update(*ts, *value);
        writeln!(out, "{ts_raw},{value_raw},{score:.6}")?;
    }
    Ok(())
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_value(s: &str) -> Result<f64, String> {
    let v: f64 = unquote(s)
        .trim()
        .parse()
        .map_err(|_| "not a number".to_string())?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("not a finite number".into())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::DetectionConfig;
    use crate::detect::LatencyJudge;
    use crate::detect::test_series::series;

    const NS: u64 = 1_000_000_000;

    #[test]
    fn the_online_judge_scores_like_aiops_detect() {
        // The per-second means the judge learns, scored offline through the CLI's code path.
        let cfg = DetectionConfig::default();
        let b = series(10_000, 200);
        let mut judge = LatencyJudge::default();
        for now in 1..200 {
            judge.tick(b.iter(), now * NS, &cfg);
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let input = dir.path().join("in.csv");
        let output = dir.path().join("out.csv");
        let mut csv = String::from("timestamp,value\n");
        for bucket in b.iter().filter(|x| x.second < 199) {
            let mean = bucket.mean_latency_ms().unwrap_or_default();
            csv.push_str(&format!("{},{mean}\n", bucket.second));
        }
        std::fs::write(&input, csv).unwrap_or_else(|e| panic!("{e}"));
        super::run(&super::DetectArgs {
            input,
            output: output.clone(),
            detector: "robust-online".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let offline: Vec<f64> = std::fs::read_to_string(output)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.rsplit(',').next()?.parse().ok())
            .collect();
        assert_eq!(offline.len(), judge.scores().len());
        for (i, (a, b)) in offline.iter().zip(judge.scores()).enumerate() {
            assert!((a - b).abs() < 1e-4, "point {i}: offline {a}, online {b}");
        }
    }
}
