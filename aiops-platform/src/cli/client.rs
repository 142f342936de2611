//! The CLI's read commands: `aiops services`, `traces`, `trace`, `logs`, `exceptions`,
//! `metrics`, `health` — a client of the management API with human tables or `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Args;
use serde_json::Value;

/// Errors of a read command.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No token given.
    #[error(
        "no API token: pass --token or set AIOPS_API_TOKEN (printed by `aiops up` when generated)"
    )]
    NoToken,
    /// The platform could not be reached.
    #[error("cannot reach the platform at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The platform answered with an error.
    #[error("{status}: {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The problem detail.
        detail: String,
    },
}

/// Where the platform is and how to present results.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Platform URL.
    #[arg(long, env = "AIOPS_URL", default_value = "http://127.0.0.1:4318")]
    pub url: String,
    /// API token (`Authorization: Bearer`).
    #[arg(long, env = "AIOPS_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `aiops services`.
#[derive(Debug, Clone, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops traces`.
#[derive(Debug, Clone, Args)]
pub struct TracesArgs {
    /// Only traces touching this service.
    #[arg(long, short)]
    service: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops trace <id>`.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Trace id (32 hex digits).
    trace_id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops logs [list]`.
#[derive(Debug, Clone, Args)]
pub struct LogsListArgs {
    /// Only this service.
    #[arg(long, short)]
    service: Option<String>,
    /// Only this trace.
    #[arg(long)]
    trace_id: Option<String>,
    /// Only this level or more severe (trace, debug, info, warn, error, fatal).
    #[arg(long)]
    level: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops exceptions`.
#[derive(Debug, Clone, Args)]
pub struct ExceptionsArgs {
    /// Only this service.
    #[arg(long, short)]
    service: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops metrics`.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Only this service.
    #[arg(long, short)]
    service: Option<String>,
    /// Only this metric name.
    #[arg(long, short)]
    name: Option<String>,
    /// At most this many series.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops incidents`.
#[derive(Debug, Clone, Args)]
pub struct IncidentsArgs {
    /// Only this service.
    #[arg(long, short)]
    service: Option<String>,
    /// Only `open` or `resolved` incidents.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `aiops health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// GETs an API path with the token and returns the JSON.
pub async fn get_json(client: &ClientArgs, path_and_query: &str) -> Result<Value, ClientError> {
    let token = client
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or(ClientError::NoToken)?;
    let url = format!(
        "{}/api/v1{}",
        client.url.trim_end_matches('/'),
        path_and_query
    );
    let connect = |source| ClientError::Connect {
        url: url.clone(),
        source,
    };
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(connect)?;
    let status = response.status();
    let body: Value = response.json().await.map_err(connect)?;
    if !status.is_success() {
        return Err(ClientError::Api {
            status: status.as_u16(),
            detail: body
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string(),
        });
    }
    Ok(body)
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let _ = write!(s, "{c:<w$}  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn items(v: &Value) -> Vec<Value> {
    v.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

fn print(client: &ClientArgs, v: &Value, human: impl FnOnce(&Value) -> String) {
    if client.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print!("{}", human(v));
    }
}

/// `aiops services`.
pub async fn services(a: &ServicesArgs) -> Result<(), ClientError> {
    let v = get_json(&a.client, "/services?limit=1000").await?;
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .map(|i| {
                let by: BTreeMap<String, Value> = i
                    .get("last_seen_by_signal")
                    .and_then(Value::as_object)
                    .map(|m| m.clone().into_iter().collect())
                    .unwrap_or_default();
                vec![
                    s(i, "name"),
                    s(i, "last_seen"),
                    by.keys().cloned().collect::<Vec<_>>().join(","),
                ]
            })
            .collect::<Vec<_>>();
        table(&["SERVICE", "LAST SEEN", "SIGNALS"], &rows)
    });
    Ok(())
}

/// `aiops traces`.
pub async fn traces(a: &TracesArgs) -> Result<(), ClientError> {
    let q = query(&[
        ("service", a.service.clone()),
        ("limit", Some(a.limit.to_string())),
    ]);
    let v = get_json(&a.client, &format!("/traces{q}")).await?;
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .map(|i| {
                vec![
                    s(i, "trace_id"),
                    s(i, "start_time"),
                    s(i, "root_service"),
                    truncate(&s(i, "root_name"), 40),
                    s(i, "span_count"),
                    s(i, "error_count"),
                    format!(
                        "{:.1}",
                        i.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0)
                    ),
                ]
            })
            .collect::<Vec<_>>();
        table(
            &["TRACE", "START", "SERVICE", "ROOT", "SPANS", "ERRORS", "MS"],
            &rows,
        )
    });
    Ok(())
}

/// `aiops trace <id>`: the span tree.
pub async fn trace(a: &TraceArgs) -> Result<(), ClientError> {
    let v = get_json(&a.client, &format!("/traces/{}", encode(&a.trace_id))).await?;
    print(&a.client, &v, |v| {
        fn walk(node: &Value, depth: usize, rows: &mut Vec<Vec<String>>) {
            rows.push(vec![
                format!("{}{}", "  ".repeat(depth), s(node, "name")),
                s(node, "service"),
                s(node, "span_id"),
                format!(
                    "{:.2}",
                    node.get("duration_ms")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                ),
                node.pointer("/status/code")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
            ]);
            for c in node
                .get("children")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(c, depth + 1, rows);
            }
        }
        let mut rows = Vec::new();
        for root in v
            .get("spans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(root, 0, &mut rows);
        }
        table(&["SPAN", "SERVICE", "ID", "MS", "STATUS"], &rows)
    });
    Ok(())
}

/// `aiops logs` / `aiops logs list`.
pub async fn logs(a: &LogsListArgs) -> Result<(), ClientError> {
    let q = query(&[
        ("service", a.service.clone()),
        ("trace_id", a.trace_id.clone()),
        ("level", a.level.clone()),
        ("limit", Some(a.limit.to_string())),
    ]);
    let v = get_json(&a.client, &format!("/logs{q}")).await?;
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .rev()
            .map(|i| {
                vec![
                    s(i, "timestamp"),
                    s(i, "level").to_uppercase(),
                    s(i, "service"),
                    truncate(&s(i, "trace_id"), 32),
                    truncate(&s(i, "message"), 100),
                ]
            })
            .collect::<Vec<_>>();
        table(&["TIME", "LEVEL", "SERVICE", "TRACE", "MESSAGE"], &rows)
    });
    Ok(())
}

/// `aiops exceptions`.
pub async fn exceptions(a: &ExceptionsArgs) -> Result<(), ClientError> {
    let q = query(&[
        ("service", a.service.clone()),
        ("limit", Some(a.limit.to_string())),
    ]);
    let v = get_json(&a.client, &format!("/exceptions{q}")).await?;
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .map(|i| {
                vec![
                    s(i, "service"),
                    s(i, "count"),
                    s(i, "first_seen"),
                    s(i, "last_seen"),
                    s(i, "fingerprint"),
                    truncate(&s(i, "title"), 70),
                ]
            })
            .collect::<Vec<_>>();
        table(
            &[
                "SERVICE",
                "COUNT",
                "FIRST SEEN",
                "LAST SEEN",
                "FINGERPRINT",
                "TITLE",
            ],
            &rows,
        )
    });
    Ok(())
}

/// `aiops incidents`: incidents with their MTTD / MTTR, newest first.
pub async fn incidents(a: &IncidentsArgs) -> Result<(), ClientError> {
    let q = query(&[
        ("service", a.service.clone()),
        ("status", a.status.clone()),
        ("limit", Some(a.limit.to_string())),
    ]);
    let v = get_json(&a.client, &format!("/incidents{q}")).await?;
    let ms = |i: &Value, k: &str| match i.get(k).and_then(Value::as_f64) {
        Some(x) if x < 1.0 => format!("{x:.2} ms"),
        Some(x) => format!("{x:.0} ms"),
        None => "-".into(),
    };
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .map(|i| {
                vec![
                    s(i, "id"),
                    s(i, "service"),
                    s(i, "status"),
                    s(i, "detected_at"),
                    ms(i, "mttd_ms"),
                    ms(i, "mttr_ms"),
                    truncate(&s(i, "title"), 60),
                ]
            })
            .collect::<Vec<_>>();
        table(
            &[
                "ID", "SERVICE", "STATUS", "DETECTED", "MTTD", "MTTR", "TITLE",
            ],
            &rows,
        )
    });
    Ok(())
}

/// `aiops metrics`.
pub async fn metrics(a: &MetricsArgs) -> Result<(), ClientError> {
    let q = query(&[
        ("service", a.service.clone()),
        ("name", a.name.clone()),
        ("limit", Some(a.limit.to_string())),
        ("points", Some("10".into())),
    ]);
    let v = get_json(&a.client, &format!("/metrics{q}")).await?;
    print(&a.client, &v, |v| {
        let rows = items(v)
            .iter()
            .map(|i| {
                let labels = i
                    .get("labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                vec![
                    s(i, "service"),
                    s(i, "name"),
                    truncate(&labels, 60),
                    s(i, "source"),
                    s(i, "last_value"),
                    s(i, "last_time"),
                ]
            })
            .collect::<Vec<_>>();
        table(
            &["SERVICE", "NAME", "LABELS", "SOURCE", "VALUE", "TIME"],
            &rows,
        )
    });
    Ok(())
}

/// `aiops health`.
pub async fn health(a: &HealthArgs) -> Result<(), ClientError> {
    let v = get_json(&a.client, "/health").await?;
    print(&a.client, &v, |v| {
        let mut rows = vec![
            vec!["status".to_string(), s(v, "status")],
            vec!["uptime_secs".into(), s(v, "uptime_secs")],
        ];
        for section in ["stored", "counters"] {
            for (k, val) in v
                .get(section)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                rows.push(vec![format!("{section}.{k}"), val.to_string()]);
            }
        }
        table(&["FIELD", "VALUE"], &rows)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
        assert_eq!(query(&[("a", Some("x y".into())), ("b", None)]), "?a=x%20y");
    }
}
