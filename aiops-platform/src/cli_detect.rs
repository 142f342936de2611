//! `aiops detect`: score a `timestamp,value` CSV with a streaming anomaly detector.

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
    let mut rows: Vec<(String, String, i64, f64)> = Vec::new();
    let malformed = |line: usize, reason: String| DetectCliError::Malformed {
        path: in_name.clone(),
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
    let io_out = |source| DetectCliError::Io {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = if out_name == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(File::create(&args.output).map_err(io_out)?))
    };
    let mut detector = kind.build();
    writeln!(out, "timestamp,value,anomaly_score").map_err(io_out)?;
    for (ts_raw, value_raw, ts, value) in &rows {
        let score = detector.update(*ts, *value);
        writeln!(out, "{ts_raw},{value_raw},{score:.6}").map_err(io_out)?;
    }
    out.flush().map_err(io_out)?;
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

/// Parses epoch seconds (integer or fractional; values above 10^11 are taken as milliseconds)
/// or an ISO 8601 date-time (`YYYY-MM-DD[T ]hh:mm[:ss[.frac]][Z|±hh[:mm]]`, or a bare date)
/// into epoch seconds. Date-times without an offset are taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        let v: f64 = s.parse().map_err(|_| "not a number".to_string())?;
        let v = if v.abs() >= 1e11 { v / 1000.0 } else { v };
        return Ok(v.floor() as i64);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or("too short")?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("expected digits at column {}", from + 1));
        }
        part.parse::<i64>().map_err(|e| e.to_string())
    };
    let sep = |at: usize, chars: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if chars.contains(c) => Ok(()),
            _ => Err(format!(
                "expected one of {:?} at column {}",
                String::from_utf8_lossy(chars),
                at + 1
            )),
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("date out of range".into());
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if b.len() == 10 {
        return Ok(secs);
    }
    sep(10, b"T t")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    let mut pos = 16;
    let mut second = 0;
    if b.get(pos) == Some(&b':') {
        second = num(17, 2)?;
        pos = 19;
        if matches!(b.get(pos), Some(b'.') | Some(b',')) {
            pos += 1;
            while b.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                pos += 1;
            }
        }
    }
    if hour > 24 || minute > 59 || second > 60 {
        return Err("time out of range".into());
    }
    secs += hour * 3600 + minute * 60 + second;
    let rest = s[pos..].trim_start();
    match rest.as_bytes().first() {
        None => Ok(secs),
        Some(b'Z') | Some(b'z') if rest.len() == 1 => Ok(secs),
        Some(&c @ (b'+' | b'-')) => {
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if !(digits.len() == 2 || digits.len() == 4)
                || !digits.bytes().all(|d| d.is_ascii_digit())
            {
                return Err(format!("bad UTC offset `{rest}`"));
            }
            let oh: i64 = digits[..2].parse().map_err(|_| "bad offset")?;
            let om: i64 = if digits.len() == 4 {
                digits[2..].parse().map_err(|_| "bad offset")?
            } else {
                0
            };
            let off = oh * 3600 + om * 60;
            Ok(if c == b'+' { secs - off } else { secs + off })
        }
        _ => Err(format!("unexpected trailing text `{rest}`")),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp("2014-04-01 00:05:00"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("2014-04-01T00:05:00Z"), Ok(1_396_310_700));
        assert_eq!(
            parse_timestamp("2014-04-01T02:05:00+02:00"),
            Ok(1_396_310_700)
        );
        assert_eq!(
            parse_timestamp("2014-04-01T00:05:00.123"),
            Ok(1_396_310_700)
        );
        assert_eq!(parse_timestamp("2014-04-01T00:05"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("1396310700"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("1396310700000"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("2000-03-01"), Ok(951_868_800));
        assert!(parse_timestamp("2014-13-01 00:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2014-04-01 00:05:00 junk").is_err());
    }
}
