//! A parser for the Prometheus text exposition format (version 0.0.4), and the writer of a
//! family's `# HELP` / `# TYPE` lines.
//!
//! Why not `prometheus-parse`: version 0.2 cuts a sample's label set at the first `}`, so a
//! label value holding a brace — every route template the aiods chassis exports, such as
//! `http_route="/orders/{id}"` — loses its labels (checked in `scrape::route_label_tests`).
//! This parser follows the format's grammar: quoted label values with `\\`, `\"` and `\n`
//! escapes, `# TYPE` lines giving each family's kind, optional timestamps, `+Inf`/`-Inf`/`NaN`.

use std::collections::{BTreeMap, HashMap};

/// Writes the `# HELP` and `# TYPE` lines of a family: `promtool check metrics` wants both.
pub fn write_family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    // HELP text escapes only `\\` and newlines.
    out.push_str(&help.replace('\\', "\\\\").replace('\n', "\\n"));
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (`foo_bucket`, `foo_sum`, …).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
    /// The kind of its family: `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: &'static str,
}

/// A line that does not follow the format.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn kind_of(name: &str) -> &'static str {
    match name {
        "counter" => "counter",
        "gauge" => "gauge",
        "histogram" => "histogram",
        "summary" => "summary",
        _ => "untyped",
    }
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut kinds: HashMap<String, &'static str> = HashMap::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |reason: &str| ParseError {
            line: i + 1,
            reason: reason.to_owned(),
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.split_whitespace();
            if parts.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (parts.next(), parts.next())
            {
                kinds.insert(name.to_owned(), kind_of(kind));
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| err("a sample needs a value"))?;
        let name = &line[..name_end];
        if name.is_empty() {
            return Err(err("empty metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if rest.starts_with('{') {
            let (parsed, after) = parse_labels(&rest[1..]).map_err(|r| err(&r))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| err("a sample needs a value"))?;
        let value = match value {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|_| err(&format!("not a number: {v:?}")))?,
        };
        let kind = family_kind(&kinds, name);
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            kind,
        });
    }
    Ok(out)
}

/// The kind of the family `name` belongs to (`foo_bucket` belongs to histogram `foo`).
fn family_kind(kinds: &HashMap<String, &'static str>, name: &str) -> &'static str {
    if let Some(k) = kinds.get(name) {
        return k;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(k) = kinds.get(base)
            && matches!(*k, "histogram" | "summary")
        {
            return k;
        }
    }
    "untyped"
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|(_, c)| c.is_whitespace() || *c == ',')
        {
            chars.next();
        }
        match chars.peek() {
            Some((i, '}')) => return Ok((labels, &s[i + 1..])),
            None => return Err("unterminated label set".into()),
            _ => {}
        }
        let mut key = String::new();
        while let Some((_, c)) = chars.peek() {
            if *c == '=' || c.is_whitespace() {
                break;
            }
            key.push(*c);
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("label {key:?} has no value"));
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {key:?}: the value must be quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, '"')) => break,
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {key:?}: unterminated value")),
            }
        }
        if key.is_empty() {
            return Err("empty label name".into());
        }
        labels.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_labels_escapes_and_special_values() {
        let text = "# HELP x_total A counter.\n# TYPE x_total counter\n\
x_total{path=\"/a/{id}\",msg=\"say \\\"hi\\\"\\n\"} 3 1700000000000\n\
# TYPE h histogram\nh_bucket{le=\"+Inf\"} 7\nh_sum 1.5\nh_count 7\nup NaN\n";
        let s = parse(text).expect("valid");
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].labels["path"], "/a/{id}");
        assert_eq!(s[0].labels["msg"], "say \"hi\"\n");
        assert_eq!(s[0].kind, "counter");
        assert_eq!(s[1].kind, "histogram");
        assert_eq!(s[1].labels["le"], "+Inf");
        assert_eq!(s[1].value, 7.0);
        assert_eq!(s[3].kind, "histogram");
        assert!(s[4].value.is_nan());
        assert_eq!(s[4].kind, "untyped");
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let e = parse("ok 1\nbad{l=\"x} 2\n").expect_err("unterminated");
        assert_eq!(e.line, 2);
        let e = parse("x{l=1} 2\n").expect_err("unquoted");
        assert!(e.reason.contains("quoted"));
        let e = parse("x notanumber\n").expect_err("value");
        assert!(e.reason.contains("number"));
    }
}
