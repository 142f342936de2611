//! A telemetry sink for the benchmarks: accepts OTLP/HTTP and Sentry envelope posts, reads
//! each body whole and answers 200, as a collector would, at the least cost.
//!
//! It counts the spans it receives in OTLP/HTTP protobuf trace exports (walking the message's
//! wire format, nothing decoded beyond what counting needs): `GET /count` answers
//! `{"trace_posts":…,"spans":…,"consumer_spans":…,"undecoded_posts":…}`, so a benchmark can check
//! that every span arrived (`bench/consumer.py`).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};

static TRACE_POSTS: AtomicU64 = AtomicU64::new(0);
static SPANS: AtomicU64 = AtomicU64::new(0);
static CONSUMER_SPANS: AtomicU64 = AtomicU64::new(0);
static UNDECODED_POSTS: AtomicU64 = AtomicU64::new(0);

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let app = Router::new()
        .route("/v1/traces", post(accept_traces))
        .route("/v1/logs", post(accept))
        .route("/v1/metrics", post(accept))
        .route("/api/{project}/envelope/", post(accept))
        .route("/count", get(count));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn accept(body: Bytes) -> &'static str {
    std::hint::black_box(body.len());
    "{}"
}

async fn accept_traces(body: Bytes) -> &'static str {
    TRACE_POSTS.fetch_add(1, Ordering::Relaxed);
    match count_spans(&body) {
        Some((spans, consumer)) => {
            SPANS.fetch_add(spans, Ordering::Relaxed);
            CONSUMER_SPANS.fetch_add(consumer, Ordering::Relaxed);
        }
        // An empty body is the overhead benchmark's readiness probe.
        None if body.is_empty() => {}
        None => {
            UNDECODED_POSTS.fetch_add(1, Ordering::Relaxed);
        }
    }
    "{}"
}

async fn count() -> String {
    format!(
        "{{\"trace_posts\":{},\"spans\":{},\"consumer_spans\":{},\"undecoded_posts\":{}}}",
        TRACE_POSTS.load(Ordering::Relaxed),
        SPANS.load(Ordering::Relaxed),
        CONSUMER_SPANS.load(Ordering::Relaxed),
        UNDECODED_POSTS.load(Ordering::Relaxed),
    )
}

/// One protobuf field: its number and, for a length-delimited field, its bytes; for a
/// varint, its value.
enum Field<'a> {
    Bytes(u64, &'a [u8]),
    Varint(u64, u64),
    Other,
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message, in order; `None` when the bytes are not protobuf.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        match key & 7 {
            0 => out.push(Field::Varint(number, varint(&mut buf)?)),
            1 => {
                buf = buf.get(8..)?;
                out.push(Field::Other);
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (bytes, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                out.push(Field::Bytes(number, bytes));
            }
            5 => {
                buf = buf.get(4..)?;
                out.push(Field::Other);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The spans in an `ExportTraceServiceRequest`, and how many are CONSUMER spans:
/// request.resource_spans (1) → scope_spans (2) → spans (2) → kind (6) = 5.
fn count_spans(body: &[u8]) -> Option<(u64, u64)> {
    let (mut spans, mut consumer) = (0, 0);
    let mut any = false;
    for rs in fields(body)? {
        let Field::Bytes(1, rs) = rs else { continue };
        any = true;
        for ss in fields(rs)? {
            let Field::Bytes(2, ss) = ss else { continue };
            for span in fields(ss)? {
                let Field::Bytes(2, span) = span else {
                    continue;
                };
                spans += 1;
                if fields(span)?
                    .iter()
                    .any(|f| matches!(f, Field::Varint(6, 5)))
                {
                    consumer += 1;
                }
            }
        }
    }
    any.then_some((spans, consumer))
}

#[cfg(test)]
mod tests {
    use super::count_spans;

    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let len = u8::try_from(bytes.len()).expect("short");
        let mut out = vec![(number << 3) | 2, len];
        out.extend_from_slice(bytes);
        out
    }

    /// A span with a name and, when given, a kind (field 6, varint).
    fn span(kind: Option<u8>) -> Vec<u8> {
        let mut s = field(5, b"process bench.orders");
        if let Some(k) = kind {
            s.extend_from_slice(&[6 << 3, k]);
        }
        // A fixed64 start time (field 7), skipped by the walker.
        s.push((7 << 3) | 1);
        s.extend_from_slice(&1_u64.to_le_bytes());
        s
    }

    #[test]
    fn counts_spans_and_consumer_spans_across_resources_and_scopes() {
        let scope_a = [
            field(2, &span(Some(5))),
            field(2, &span(Some(4))),
            field(2, &span(None)),
        ]
        .concat();
        let scope_b = field(2, &span(Some(5)));
        let resource_1 = [field(1, b"resource"), field(2, &scope_a)].concat();
        let resource_2 = field(2, &scope_b);
        let body = [field(1, &resource_1), field(1, &resource_2)].concat();
        assert_eq!(count_spans(&body), Some((4, 2)));
    }

    #[test]
    fn a_body_that_is_not_a_trace_export_is_not_counted() {
        assert_eq!(count_spans(b""), None);
        assert_eq!(count_spans(b"{\"resourceSpans\":[]}"), None);
        // Length beyond the end.
        assert_eq!(count_spans(&[(1 << 3) | 2, 50, 1, 2]), None);
    }
}
