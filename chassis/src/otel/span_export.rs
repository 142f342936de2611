//! The span exporter for OTLP/HTTP protobuf: spans encoded by [`super::proto`] and posted with
//! a blocking client on the span queue's thread.
//!
//! It reads the standard variables as the SDK's HTTP exporter does: the endpoint from
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`
//! (default `http://localhost:4318/v1/traces`); headers from `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
//! or `OTEL_EXPORTER_OTLP_HEADERS` (`key=value` pairs, values percent-decoded); a 5 s timeout
//! per export; retries as the SDK's default policy (up to 3, from 100 ms doubling, on a
//! network error, 429, 502, 503 or 504, within the timeout, `Retry-After` honoured). Any other
//! configuration (JSON, compression) keeps the SDK's exporter (`super::init`).

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::Resource;

use super::proto::{EncodedResource, encode_trace_request};
use super::server_span::FinishedSpan;

/// How long one export may take, retries included (the SDK exporter's, as the chassis set it).
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RETRIES: u32 = 3;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_millis(1600);

/// Where and how spans are posted.
#[derive(Debug, Clone)]
pub(crate) struct DirectSpanConfig {
    endpoint: String,
    headers: HeaderMap,
}

impl DirectSpanConfig {
    /// The configuration from the environment, or `None` when compression is asked for (the
    /// SDK's exporter answers that itself). The caller checks the protocol.
    pub(crate) fn from_env() -> Option<Self> {
        let compression = super::env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
            .or_else(|| super::env("OTEL_EXPORTER_OTLP_COMPRESSION"));
        if compression.is_some_and(|c| c.trim() != "none") {
            return None;
        }
        let endpoint = match super::env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e) => e.trim().to_owned(),
            None => {
                let base = super::env("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .unwrap_or_else(|| "http://localhost:4318".into());
                let base = base.trim();
                format!("{}/v1/traces", base.strip_suffix('/').unwrap_or(base))
            }
        };
        let headers = super::env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| super::env("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        Some(Self { endpoint, headers })
    }

    /// The endpoint, checked as the SDK checks it.
    pub(crate) fn check(&self) -> Result<(), http::uri::InvalidUri> {
        self.endpoint.parse::<http::Uri>().map(|_| ())
    }
}

/// `key=value,key2=value2`, values percent-decoded; malformed pairs are skipped.
pub(crate) fn parse_headers(input: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for pair in input.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let value = percent_decode(value).unwrap_or_else(|| value.to_owned());
        if key.is_empty() || value.is_empty() {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(k, v);
        }
    }
    headers
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try again after this long.
    Retry(Duration),
    /// Give up: the batch is dropped (and counted by the queue).
    GiveUp,
}

/// The retry decision for attempt `attempt` (0 = the first) that failed with `status` (`None`:
/// no response) after `elapsed`, as the SDK's default policy decides (jitter aside).
pub(crate) fn after_failure(
    attempt: u32,
    status: Option<u16>,
    retry_after: Option<&str>,
    elapsed: Duration,
) -> AfterFailure {
    let retryable = matches!(status, None | Some(429 | 502 | 503 | 504));
    if !retryable || attempt >= MAX_RETRIES || elapsed >= EXPORT_TIMEOUT {
        return AfterFailure::GiveUp;
    }
    let backoff = FIRST_RETRY_DELAY
        .saturating_mul(1 << attempt)
        .min(MAX_RETRY_DELAY);
    let throttled = matches!(status, Some(429 | 503))
        .then(|| retry_after?.trim().parse::<u64>().ok())
        .flatten()
        .map(Duration::from_secs);
    let delay = throttled.unwrap_or(backoff);
    if elapsed + delay >= EXPORT_TIMEOUT {
        return AfterFailure::GiveUp;
    }
    AfterFailure::Retry(delay)
}

/// Encodes and posts batches of spans; lives on the span queue's thread.
pub(crate) struct DirectSpanExporter {
    config: DirectSpanConfig,
    resource: EncodedResource,
    /// Being built on a thread of its own from the start (the blocking client must not be
    /// made inside an async runtime, and building it — TLS roots included — costs as much as
    /// encoding thousands of spans: not on the readiness path, not at the first batch).
    building: Option<std::thread::JoinHandle<reqwest::blocking::Client>>,
    client: Option<reqwest::blocking::Client>,
    /// The last body's buffer, written again for the next batch: a fresh ~1 MB buffer per
    /// batch had its pages faulted in anew each time (most of the page faults the overhead
    /// benchmark measured).
    body: Vec<u8>,
}

impl DirectSpanExporter {
    /// An exporter of spans from `resource`.
    pub(crate) fn new(config: DirectSpanConfig, resource: &Resource) -> Self {
        let building = std::thread::Builder::new()
            .name("aiods-otlp-client".into())
            .spawn(build_client)
            .ok();
        Self {
            config,
            resource: EncodedResource::new(resource),
            building,
            client: None,
            body: Vec::new(),
        }
    }

    /// Sends `batch`; returns whether the collector accepted it.
    pub(crate) fn export(&mut self, batch: &[FinishedSpan]) -> bool {
        let mut body = std::mem::take(&mut self.body);
        encode_trace_request(&self.resource, batch, &mut body);
        if body.is_empty() {
            self.body = body;
            return true;
        }
        let body = bytes::Bytes::from(body);
        let delivered = self.post(&body);
        // The client has let go of its copies by now; when it has not, the next batch gets a
        // new buffer.
        if let Ok(buffer) = body.try_into_mut() {
            self.body = buffer.into();
        }
        delivered
    }

    /// Posts `body`, retrying as the SDK's default policy does.
    fn post(&mut self, body: &bytes::Bytes) -> bool {
        let building = self.building.take();
        let client = self.client.get_or_insert_with(|| {
            building
                .and_then(|b| b.join().ok())
                .unwrap_or_else(build_client)
        });
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let sent = client
                .post(&self.config.endpoint)
                .headers(self.config.headers.clone())
                .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                .header(
                    http::header::USER_AGENT,
                    concat!("aiods/", env!("CARGO_PKG_VERSION")),
                )
                .timeout(EXPORT_TIMEOUT.saturating_sub(started.elapsed()))
                .body(body.clone())
                .send();
            let (status, retry_after) = match sent {
                Ok(response) if response.status().is_success() => {
                    // Read the (small) answer whole so the connection is reused.
                    let _ = response.bytes();
                    return true;
                }
                Ok(response) => (
                    Some(response.status().as_u16()),
                    response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                ),
                Err(_) => (None, None),
            };
            match after_failure(attempt, status, retry_after.as_deref(), started.elapsed()) {
                AfterFailure::Retry(delay) => std::thread::sleep(delay),
                AfterFailure::GiveUp => return false,
            }
            attempt += 1;
        }
    }
}

fn build_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_pairs_with_percent_decoded_values() {
        let h = parse_headers("authorization=Bearer%20abc , x-tenant = t1,broken, =v,k=");
        assert_eq!(h.len(), 2);
        assert_eq!(h["authorization"], "Bearer abc");
        assert_eq!(h["x-tenant"], "t1");
    }

    #[test]
    fn retries_follow_the_sdk_policy() {
        let ms = Duration::from_millis;
        assert_eq!(
            after_failure(0, None, None, ms(1)),
            AfterFailure::Retry(ms(100))
        );
        assert_eq!(
            after_failure(2, Some(503), None, ms(1)),
            AfterFailure::Retry(ms(400))
        );
        assert_eq!(
            after_failure(0, Some(429), Some("2"), ms(1)),
            AfterFailure::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            after_failure(3, Some(502), None, ms(1)),
            AfterFailure::GiveUp
        );
        assert_eq!(
            after_failure(0, Some(400), None, ms(1)),
            AfterFailure::GiveUp
        );
        assert_eq!(
            after_failure(0, Some(429), Some("10"), ms(1)),
            AfterFailure::GiveUp
        );
        assert_eq!(
            after_failure(1, None, None, ms(4_900)),
            AfterFailure::GiveUp
        );
    }
}
