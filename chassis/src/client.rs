//! [`Client`]: the instrumented HTTP client for calling other services by name.
//!
//! Base URLs come from configuration (`upstreams.<name>`, or `AIODS_UPSTREAMS__<NAME>`). Every
//! call:
//! - injects the W3C `traceparent` of a client span, child of the current request's span, so
//!   one request is one trace across services (without a trace exporter, the request's own
//!   inbound `traceparent` is forwarded as it is);
//! - records `http_client_request_duration_seconds` (method, upstream, status);
//! - has a timeout (`client_timeout`);
//! - is retried with jittered exponential back-off when that is safe: idempotent methods on
//!   connection failures, timeouts and 502/503/504; any method when the connection failed
//!   before the request was sent;
//! - passes a circuit breaker per upstream: after `client.breaker_failures` consecutive
//!   failures the upstream is not called for `client.breaker_cooldown`, then one trial call
//!   decides.
//!
//! Failures map into [`Error::Upstream`] naming the upstream, so a handler can `?` them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};

/// Retry and circuit-breaker settings of the client (`[client]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// Retries after the first attempt (`AIODS_CLIENT__RETRIES`), default 2.
    pub retries: u32,
    /// Base of the exponential back-off (`AIODS_CLIENT__BACKOFF`), default 25ms.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Consecutive failures that open the breaker (`AIODS_CLIENT__BREAKER_FAILURES`), default 5;
    /// 0 disables the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls (`AIODS_CLIENT__BREAKER_COOLDOWN`), default 2s.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff: Duration::from_millis(25),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(2),
        }
    }
}

/// An HTTP client for other services. Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: aiods::Client) -> aiods::Result<()> {
/// #[derive(serde::Deserialize)]
/// struct Ticket { id: i64 }
/// let ticket: Ticket = client
///     .post_json("kitchen", "/tickets", &serde_json::json!({"order_id": 1}))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    upstreams: Arc<BTreeMap<String, Url>>,
    timeout: Duration,
    cfg: ClientConfig,
    breakers: Arc<Mutex<HashMap<String, Breaker>>>,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

enum Admission {
    Allowed,
    Refused(Duration),
}

impl Client {
    /// A client knowing `upstreams` (name → base URL), with `timeout` per attempt.
    pub fn new(
        upstreams: &BTreeMap<String, String>,
        timeout: Duration,
        cfg: &ClientConfig,
    ) -> Result<Self, Error> {
        let mut parsed = BTreeMap::new();
        for (name, url) in upstreams {
            let url = Url::parse(url).map_err(|e| {
                Error::internal(format!("upstream {name} has an invalid URL {url:?}: {e}"))
            })?;
            parsed.insert(name.clone(), url);
        }
        // Below the services' header-read timeout (10 s by default), which closes idle
        // keep-alive connections: reusing one the server is closing fails the call.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            http,
            upstreams: Arc::new(parsed),
            timeout,
            cfg: cfg.clone(),
            breakers: Default::default(),
        })
    }

    /// The base URL of `upstream`.
    pub fn base_url(&self, upstream: &str) -> Result<&Url, Error> {
        self.upstreams.get(upstream).ok_or_else(|| {
            upstream_error(
                upstream,
                format!(
                    "no URL configured (set upstreams.{upstream} or AIODS_UPSTREAMS__{})",
                    upstream.to_uppercase().replace('-', "_")
                ),
            )
        })
    }

    /// `GET` a JSON document from `upstream`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        upstream: &str,
        path: &str,
    ) -> Result<T, Error> {
        self.call_json(Method::GET, upstream, path, None::<&()>)
            .await
    }

    /// `POST` a JSON body to `upstream` and read a JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        upstream: &str,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.call_json(Method::POST, upstream, path, Some(body))
            .await
    }

    /// Calls `upstream` with `method` and an optional JSON body; reads a JSON answer.
    pub async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        upstream: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let response = self.call(method, upstream, path, body).await?;
        response
            .json::<T>()
            .await
            .map_err(|e| upstream_error(upstream, format!("unreadable response: {e}")))
    }

    /// Calls `upstream`; a non-2xx answer is an [`Error::Upstream`] carrying its problem.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        upstream: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, Error> {
        let url = upstream_url(self.base_url(upstream)?, path)
            .map_err(|message| upstream_error(upstream, message))?;
        let body = match body {
            Some(b) => {
                Some(bytes::Bytes::from(serde_json::to_vec(b).map_err(|e| {
                    Error::internal(format!("cannot encode the body: {e}"))
                })?))
            }
            None => None,
        };
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        let mut attempt = 0u32;
        loop {
            if let Admission::Refused(left) = self.admit(upstream) {
                return Err(Error::Upstream {
                    upstream: upstream.to_owned(),
                    message: format!("circuit breaker open for another {left:?}"),
                    status: None,
                    timed_out: false,
                    problem: None,
                });
            }
            let outcome = self
                .attempt(&method, upstream, &url, body.clone(), attempt)
                .await;
            let (retryable, failure) = match &outcome {
                Ok(r) if r.status().is_success() || r.status().is_client_error() => (false, false),
                Ok(r) => (
                    idempotent && matches!(r.status().as_u16(), 502..=504),
                    r.status().is_server_error(),
                ),
                Err(e) => (e.is_connect() || (idempotent && e.is_timeout()), true),
            };
            self.record(upstream, !failure);
            if retryable && attempt < self.cfg.retries {
                attempt += 1;
                let cap = self.cfg.backoff.saturating_mul(1 << attempt.min(10));
                // Full jitter: spreads retries of many callers over the window.
                let pause = cap.mul_f64(rand::random::<f64>());
                tokio::time::sleep(pause).await;
                continue;
            }
            return finish(upstream, outcome).await;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        upstream: &str,
        url: &Url,
        body: Option<bytes::Bytes>,
        resend: u32,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut headers = HeaderMap::new();
        let span_cx = crate::otel::tracer().map(|tracer| {
            let mut attributes = vec![
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new(
                    "server.address",
                    url.host_str().unwrap_or_default().to_owned(),
                ),
                KeyValue::new("url.full", url.as_str().to_owned()),
                KeyValue::new("peer.service", upstream.to_owned()),
            ];
            if let Some(port) = url.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            if resend > 0 {
                attributes.push(KeyValue::new(
                    "http.request.resend_count",
                    i64::from(resend),
                ));
            }
            let parent = opentelemetry::Context::current();
            let span = tracer
                .span_builder(method.as_str().to_owned())
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            let cx = parent.with_span(span);
            TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
            cx
        });
        if span_cx.is_none() {
            // No exporter: forward the request's context (the caller's) as it is.
            TraceContextPropagator::new().inject_context(
                &opentelemetry::Context::current(),
                &mut HeaderInjector(&mut headers),
            );
        }
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.timeout)
            .headers(headers);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let started = Instant::now();
        let result = request.send().await;
        let status_label = match &result {
            Ok(r) => crate::telemetry::labels::status_label(r.status().as_u16()),
            Err(_) => std::borrow::Cow::Borrowed("error"),
        };
        metrics::histogram!(
            crate::telemetry::HTTP_CLIENT_DURATION,
            "http_request_method" => crate::telemetry::labels::method_label(method),
            "server_address" => upstream.to_owned(),
            "http_response_status_code" => status_label,
        )
        .record(started.elapsed().as_secs_f64());
        if let Some(cx) = span_cx {
            let span = cx.span();
            match &result {
                Ok(r) => {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(r.status().as_u16()),
                    ));
                    if r.status().is_server_error() {
                        span.set_status(Status::error(r.status().as_str().to_owned()));
                    }
                }
                Err(e) => {
                    span.set_attribute(KeyValue::new(
                        "error.type",
                        if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "request"
                        },
                    ));
                    span.set_status(Status::error(e.to_string()));
                }
            }
            span.end();
        }
        result
    }

    fn admit(&self, upstream: &str) -> Admission {
        if self.cfg.breaker_failures == 0 {
            return Admission::Allowed;
        }
        let Ok(mut breakers) = self.breakers.lock() else {
            return Admission::Allowed;
        };
        let b = breakers.entry(upstream.to_owned()).or_default();
        match b.open_until {
            None => Admission::Allowed,
            Some(until) if Instant::now() < until => Admission::Refused(until - Instant::now()),
            Some(_) if b.trial_in_flight => Admission::Refused(Duration::ZERO),
            Some(_) => {
                b.trial_in_flight = true;
                Admission::Allowed
            }
        }
    }

    fn record(&self, upstream: &str, success: bool) {
        if self.cfg.breaker_failures == 0 {
            return;
        }
        let Ok(mut breakers) = self.breakers.lock() else {
            return;
        };
        let b = breakers.entry(upstream.to_owned()).or_default();
        b.trial_in_flight = false;
        if success {
            if b.open_until.is_some() {
                tracing::info!(upstream, "circuit breaker closed");
            }
            *b = Breaker::default();
            return;
        }
        b.failures += 1;
        if b.failures >= self.cfg.breaker_failures {
            if b.open_until.is_none_or(|u| Instant::now() >= u) {
                tracing::warn!(upstream, failures = b.failures, "circuit breaker open");
            }
            b.open_until = Some(Instant::now() + self.cfg.breaker_cooldown);
        }
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// `path` joined onto `base`, refused when the result would leave the upstream: an absolute
/// URL, a scheme-relative `//host/...` (or `\\host`) path, or anything resolving elsewhere.
fn upstream_url(base: &Url, path: &str) -> Result<Url, String> {
    let url = base
        .join(path)
        .map_err(|e| format!("invalid path {path:?}: {e}"))?;
    let leaves = Url::parse(path).is_ok()
        || path.starts_with("//")
        || path.starts_with("\\\\")
        || url.origin() != base.origin();
    if leaves {
        return Err(format!(
            "path {path:?} would leave the upstream {}: give a path such as \"/orders/1\"",
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

fn upstream_error(upstream: &str, message: String) -> Error {
    Error::Upstream {
        upstream: upstream.to_owned(),
        message,
        status: None,
        timed_out: false,
        problem: None,
    }
}

async fn finish(
    upstream: &str,
    outcome: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, Error> {
    let response = outcome.map_err(|e| Error::Upstream {
        upstream: upstream.to_owned(),
        message: crate::error::error_chain(&e),
        status: None,
        timed_out: e.is_timeout(),
        problem: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let problem = response.json::<Problem>().await.ok().map(Box::new);
    Err(Error::Upstream {
        upstream: upstream.to_owned(),
        message: format!(
            "answered {status}{}",
            problem
                .as_ref()
                .and_then(|p| p.detail.as_deref())
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        status: Some(status.as_u16()),
        timed_out: false,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_on_the_upstream() {
        let base = Url::parse("http://127.0.0.1:8081/api/").expect("url");
        let ok = upstream_url(&base, "/orders/1?x=2").expect("a path");
        assert_eq!(ok.as_str(), "http://127.0.0.1:8081/orders/1?x=2");
        assert!(upstream_url(&base, "tickets").is_ok());
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "https://127.0.0.1:8081/orders",
            "//evil.example/orders",
            "\\\\evil.example/orders",
            "/\\evil.example/orders",
        ] {
            let err = upstream_url(&base, bad).expect_err(bad);
            assert!(err.contains("would leave the upstream"), "{bad}: {err}");
        }
    }
}
