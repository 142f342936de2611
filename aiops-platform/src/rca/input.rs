//! Reading `aiops rca`'s two CSV inputs, with `file:line: reason` errors.
//!
//! - Metrics, long format: `timestamp,node,metric,value`. Timestamps in epoch seconds
//!   (fractions allowed) or ISO 8601; a header row is optional (when present, its column
//!   names may come in any order); an empty value or `NaN`/`null`/`NA` is a gap and is
//!   skipped; blank lines and lines starting with `#` are ignored.
//! - Graph: `caller,callee` per line (the caller depends on the callee); an optional header
//!   (`caller,callee`, `source,target`, `src,dst`, `from,to` or `parent,child`).
//!
//! Fields may be wrapped in double quotes (without commas inside). Inputs are bounded: lines
//! longer than [`MAX_LINE`] bytes, names longer than [`MAX_NAME`], more than [`MAX_ROWS`]
//! points or [`MAX_SERIES`] series fail cleanly instead of exhausting memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::graph::CallGraph;
use super::series::MetricSeries;

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest accepted node or metric name, in bytes.
pub const MAX_NAME: usize = 512;
/// Most points accepted in one metrics file (about 16 bytes each in memory).
pub const MAX_ROWS: usize = 20_000_000;
/// Most distinct `(node, metric)` series accepted.
pub const MAX_SERIES: usize = 200_000;
/// Most edges accepted in one graph file.
pub const MAX_EDGES: usize = 2_000_000;

/// Errors reading an input file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The metrics file has no data row.
    #[error("{path}: no data rows (expected `timestamp,node,metric,value` lines)")]
    NoRows {
        /// The file.
        path: String,
    },
}

/// Reads a metrics file (see the module docs for the format).
pub fn read_metrics(path: &Path) -> Result<MetricSeries, InputError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    parse_metrics(BufReader::new(file), &name)
}

/// Reads a graph file (see the module docs for the format).
pub fn read_graph(path: &Path) -> Result<CallGraph, InputError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    parse_graph(BufReader::new(file), &name)
}

/// The metrics columns, by position.
#[derive(Debug, Clone, Copy)]
struct Columns {
    timestamp: usize,
    node: usize,
    metric: usize,
    value: usize,
}

impl Columns {
    const IN_ORDER: Self = Self {
        timestamp: 0,
        node: 1,
        metric: 2,
        value: 3,
    };

    /// The columns named by a header row, if it is one.
    fn from_header(fields: &[&str]) -> Option<Self> {
        let find = |names: &[&str]| {
            fields
                .iter()
                .position(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
        };
        Some(Self {
            timestamp: find(&["timestamp", "time", "ts"])?,
            node: find(&["node", "service", "component"])?,
            metric: find(&["metric", "name", "kpi"])?,
            value: find(&["value", "val"])?,
        })
    }
}

/// Parses metrics from a reader; `name` is used in error messages.
pub fn parse_metrics(reader: impl BufRead, name: &str) -> Result<MetricSeries, InputError> {
    let mut series = MetricSeries::new();
    let mut columns: Option<Columns> = None;
    for_each_line(reader, name, |_, text| {
        let fields: Vec<&str> = text.split(',').map(unquote).collect();
        if fields.len() != 4 {
            return Err(format!(
                "expected 4 fields `timestamp,node,metric,value`, got {}",
                fields.len()
            ));
        }
        let cols = match columns {
            Some(c) => c,
            None => {
                // The first row: a header naming the columns, or data in the documented order.
                if let Some(header) = Columns::from_header(&fields) {
                    columns = Some(header);
                    return Ok(());
                }
                columns = Some(Columns::IN_ORDER);
                Columns::IN_ORDER
            }
        };
        let raw_ts = fields[cols.timestamp];
        let ts = parse_time(raw_ts).map_err(|e| format!("bad timestamp `{raw_ts}`: {e}"))?;
        let node = name_field(fields[cols.node], "node")?;
        let metric = name_field(fields[cols.metric], "metric")?;
        let raw = fields[cols.value];
        let Some(value) = parse_value(raw).map_err(|e| format!("bad value `{raw}`: {e}"))? else {
            return Ok(()); // a gap
        };
        if series.len() >= MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} points"));
        }
        if series.series_count() >= MAX_SERIES && series.points(node, metric).is_none() {
            return Err(format!("more than {MAX_SERIES} (node, metric) series"));
        }
        series.push(node, metric, ts, value);
        Ok(())
    })?;
    if series.is_empty() {
        return Err(InputError::NoRows {
            path: name.to_owned(),
        });
    }
    series.sort();
    Ok(series)
}

/// Parses a graph from a reader; `name` is used in error messages.
pub fn parse_graph(reader: impl BufRead, name: &str) -> Result<CallGraph, InputError> {
    let mut graph = CallGraph::new();
    let mut edges = 0usize;
    let mut first = true;
    for_each_line(reader, name, |_, text| {
        let fields: Vec<&str> = text.split(',').map(unquote).collect();
        if fields.len() != 2 {
            return Err(format!(
                "expected 2 fields `caller,callee`, got {}",
                fields.len()
            ));
        }
        if std::mem::take(&mut first) && is_graph_header(fields[0], fields[1]) {
            return Ok(());
        }
        let caller = name_field(fields[0], "caller")?;
        let callee = name_field(fields[1], "callee")?;
        edges += 1;
        if edges > MAX_EDGES {
            return Err(format!("more than {MAX_EDGES} edges"));
        }
        graph.add_edge(caller, callee);
        Ok(())
    })?;
    Ok(graph)
}

fn is_graph_header(a: &str, b: &str) -> bool {
    const HEADERS: [(&str, &str); 5] = [
        ("caller", "callee"),
        ("source", "target"),
        ("src", "dst"),
        ("from", "to"),
        ("parent", "child"),
    ];
    HEADERS
        .iter()
        .any(|(x, y)| a.eq_ignore_ascii_case(x) && b.eq_ignore_ascii_case(y))
}

/// Calls `row(line_number, text)` for every non-blank, non-comment line, bounding line length
/// and turning a row's `Err(reason)` into `file:line: reason`.
fn for_each_line(
    mut reader: impl BufRead,
    name: &str,
    mut row: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<(), InputError> {
    let malformed = |line, reason| InputError::Malformed {
        path: name.to_owned(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| InputError::Io {
                path: name.to_owned(),
                source,
            })?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            return Err(malformed(
                line,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(malformed(line, "not valid UTF-8".into()));
        };
        let text = text
            .trim_end_matches(['\n', '\r'])
            .trim_start_matches('\u{feff}');
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        row(line, text).map_err(|reason| malformed(line, reason))?;
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .trim()
}

fn name_field<'a>(s: &'a str, what: &str) -> Result<&'a str, String> {
    if s.is_empty() {
        Err(format!("empty {what}"))
    } else if s.len() > MAX_NAME {
        Err(format!("{what} longer than {MAX_NAME} bytes"))
    } else {
        Ok(s)
    }
}

/// Epoch seconds (fractions allowed) or an ISO 8601 date-time.
fn parse_time(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() {
            Ok(v)
        } else {
            Err("not a finite number".into())
        };
    }
    crate::common::time::parse_timestamp(s)
        .map(|t| t as f64)
        .map_err(|_| "expected epoch seconds or an ISO 8601 date-time".into())
}

/// A finite value, `None` for a gap, or why not.
fn parse_value(s: &str) -> Result<Option<f64>, String> {
    if s.is_empty()
        || ["nan", "null", "na", "none"]
            .iter()
            .any(|g| s.eq_ignore_ascii_case(g))
    {
        return Ok(None);
    }
    let v: f64 = s.parse().map_err(|_| "not a number".to_string())?;
    if v.is_finite() {
        Ok(Some(v))
    } else {
        Err("not a finite number".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(text: &str) -> Result<MetricSeries, InputError> {
        parse_metrics(text.as_bytes(), "m.csv")
    }

    fn graph(text: &str) -> Result<CallGraph, InputError> {
        parse_graph(text.as_bytes(), "g.csv")
    }

    fn error(r: Result<impl std::fmt::Debug, InputError>) -> String {
        r.expect_err("should fail").to_string()
    }

    #[test]
    fn metrics_with_and_without_header_gaps_and_fractions() {
        let m = metrics("timestamp,node,metric,value\n1.5,a,latency,3\n\n0,a,latency,2\n2,a,latency,\n# c\n3,b,error_rate,NaN\n")
            .expect("parsed");
        assert_eq!(
            m.points("a", "latency"),
            Some(&[(0.0, 2.0), (1.5, 3.0)][..])
        );
        assert_eq!(m.len(), 2);
        let m = metrics("10,a,latency,1\r\n11,\"a\",latency,2\r\n").expect("no header");
        assert_eq!(m.len(), 2);
        let m = metrics("node,value,metric,timestamp\na,5,latency,2024-01-01T00:00:00Z\n")
            .expect("reordered header");
        assert_eq!(
            m.points("a", "latency"),
            Some(&[(1_704_067_200.0, 5.0)][..])
        );
    }

    #[test]
    fn malformed_metrics_name_file_and_line() {
        assert_eq!(
            error(metrics(
                "timestamp,node,metric,value\n1,a,latency,1\n2,a,latency\n"
            )),
            "m.csv:3: expected 4 fields `timestamp,node,metric,value`, got 3"
        );
        assert_eq!(
            error(metrics("1,a,latency,1\nxx,a,latency,1\n")),
            "m.csv:2: bad timestamp `xx`: expected epoch seconds or an ISO 8601 date-time"
        );
        assert_eq!(
            error(metrics("1,a,latency,abc\n")),
            "m.csv:1: bad value `abc`: not a number"
        );
        assert_eq!(
            error(metrics("1,a,latency,inf\n")),
            "m.csv:1: bad value `inf`: not a finite number"
        );
        assert_eq!(error(metrics("1,,latency,1\n")), "m.csv:1: empty node");
        assert!(error(metrics("when,who,what,how\n")).starts_with("m.csv:1: bad timestamp `when`"));
        assert_eq!(
            error(metrics("timestamp,node,metric,value\n")),
            "m.csv: no data rows (expected `timestamp,node,metric,value` lines)"
        );
        let long = format!("1,{},latency,1\n", "n".repeat(MAX_LINE));
        assert_eq!(
            error(metrics(&long)),
            format!("m.csv:1: line longer than {MAX_LINE} bytes")
        );
        assert_eq!(
            error(parse_metrics(&b"1,a,l,\xff\n"[..], "m.csv")),
            "m.csv:1: not valid UTF-8"
        );
    }

    #[test]
    fn graphs_with_optional_header() {
        let g = graph("caller,callee\nweb,api\napi,db\n").expect("parsed");
        assert_eq!(g.dependencies_of("web"), ["api", "db"]);
        let g = graph("web,api\n").expect("no header");
        assert!(g.contains("web") && !g.contains("caller"));
        assert_eq!(
            error(graph("web,api\nweb\n")),
            "g.csv:2: expected 2 fields `caller,callee`, got 1"
        );
        assert_eq!(
            error(graph("web,api,3\n")),
            "g.csv:1: expected 2 fields `caller,callee`, got 3"
        );
        assert_eq!(error(graph("web,\n")), "g.csv:1: empty callee");
        assert_eq!(graph("").expect("empty graph").node_count(), 0);
    }
}
