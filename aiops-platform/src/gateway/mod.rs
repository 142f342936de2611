//! The gateway (the seed's API-gateway pattern): one listener routing path prefixes to the
//! ready instances of a service.
//!
//! - Instances leave the rotation the moment their process exits or readiness fails, and come
//!   back on the first successful readiness probe.
//! - When no instance is ready, a request is *held* up to `hold_ms` for one to become ready
//!   (a restart takes tens of milliseconds), instead of failing at once.
//! - A request whose connection failed before anything was sent (refused, reset on connect) is
//!   retried on another ready instance, or the same one once it is back; requests that are
//!   idempotent (GET, HEAD, PUT, DELETE, OPTIONS, or carrying `Idempotency-Key`) are also
//!   retried when the connection broke before an answer came.
//! - Headers pass through (W3C `traceparent` included) except hop-by-hop ones;
//!   `x-forwarded-for` is added. Answers stream back.
//! - What clients see (status, latency) feeds the error-rate and latency detectors and the
//!   `aiops_gateway_*` series of the platform's `/metrics`.

mod routes;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use routes::{Endpoint, InflightGuard, Routes};
pub use stats::{ErrorTimes, RequestStats, WindowSummary, median};

use crate::common::problem::Problem;
use crate::common::time::now_nanos;
use crate::config::GatewayConfig;

/// Errors while starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listener could not be bound.
    #[error("gateway cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    /// The routing table (the supervisor keeps it current).
    pub routes: Arc<Routes>,
    /// What clients saw.
    pub stats: Arc<RequestStats>,
    client: Client<HttpConnector, Full<Bytes>>,
    hold: Duration,
    timeout: Duration,
    max_body: usize,
    body_timeout: Duration,
    /// One permit per request being proxied (`max_concurrent_requests`).
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    listener: aiods_serve::ListenerLimits,
    quiet_ns: u64,
    /// Where each request is also recorded for detection (the gateway is one source).
    store: Option<Arc<crate::store::Store>>,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Attempts per request at most (the first plus retries), all within the hold time.
const MAX_ATTEMPTS: u32 = 4;

impl Gateway {
    /// A gateway over `routes`, recording into `stats`.
    pub fn new(
        config: &GatewayConfig,
        routes: Arc<Routes>,
        stats: Arc<RequestStats>,
        quiet: Duration,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        // Below the chassis's header-read timeout (10 s by default), which closes idle
        // keep-alive connections: reusing one the server is closing fails the request.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        Self {
            routes,
            stats,
            client,
            hold: Duration::from_millis(config.hold_ms),
            timeout: Duration::from_millis(config.request_timeout_ms),
            max_body: config.max_body_bytes,
            body_timeout: Duration::from_millis(config.body_read_timeout_ms),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
            max_in_flight: config.max_concurrent_requests,
            listener: config.listener_limits(),
            quiet_ns: u64::try_from(quiet.as_nanos()).unwrap_or(u64::MAX),
            store: None,
        }
    }

    /// Also records every request in `store`'s request accounting (the `gateway` source
    /// of detection).
    #[must_use]
    pub fn observed_by(mut self, store: Arc<crate::store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Binds the listener and serves until `shutdown`; answers the bound address.
    pub async fn spawn(
        self: Arc<Self>,
        listen: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), GatewayError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: listen,
            source,
        })?;
        let (limits, stats) = (self.listener, self.stats.listener.clone());
        let app = axum::Router::new().fallback(proxy).with_state(self);
        let handle = tokio::spawn(aiods_serve::serve(listener, app, limits, stats, shutdown));
        Ok((addr, handle))
    }

    fn record(&self, service: &str, status: StatusCode, started: Instant) {
        let (latency_ms, now) = (started.elapsed().as_secs_f64() * 1000.0, now_nanos());
        self.stats
            .record(service, status.as_u16(), latency_ms, now, self.quiet_ns);
        if let Some(store) = &self.store {
            store.requests.record_request(
                service,
                crate::store::RequestSource::Gateway,
                now,
                status.is_server_error(),
                Some(latency_ms),
            );
        }
    }
}

fn retry_safe(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    ) || headers.contains_key("idempotency-key")
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

async fn proxy(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let Some(service) = gw.routes.service_for(req.uri().path()) else {
        return Problem::not_found(format!("no gateway route for {}", req.uri().path()))
            .into_response();
    };
    // Held until the answer's head is back: a request buffers up to `max_body` bytes.
    let Ok(_in_flight) = gw.in_flight.clone().try_acquire_owned() else {
        gw.stats.shed();
        let mut shed = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the gateway is proxying {} requests already; retry shortly",
                gw.max_in_flight
            ),
        )
        .into_response();
        shed.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return shed;
    };
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        gw.body_timeout,
        http_body_util::Limited::new(body, gw.max_body).collect(),
    )
    .await;
    let body = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {} bytes", gw.max_body),
            )
            .into_response();
        }
        Ok(Err(error)) => {
            return Problem::bad_request(format!("cannot read the request body: {error}"))
                .into_response();
        }
        Err(_) => {
            gw.stats.body_timed_out();
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    gw.body_timeout.as_millis()
                ),
            )
            .into_response();
        }
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", v);
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let retry_any = retry_safe(&parts.method, &headers);
    let deadline = started + gw.hold;
    let mut avoid = None;
    let mut attempts = 0;
    loop {
        let Some(endpoint) = gw
            .routes
            .wait_pick(&service, avoid.as_ref(), deadline)
            .await
        else {
            gw.stats.no_instance(&service);
            gw.record(&service, StatusCode::SERVICE_UNAVAILABLE, started);
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no ready instance of {service} within {} ms",
                    gw.hold.as_millis()
                ),
            )
            .into_response();
        };
        attempts += 1;
        let Ok(uri) = Uri::try_from(format!("http://{}{path_and_query}", endpoint.addr)) else {
            return Problem::bad_request("invalid request target").into_response();
        };
        let mut upstream = http::Request::new(Full::new(body.clone()));
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = headers.clone();
        let guard = endpoint.begin();
        let result = tokio::time::timeout(gw.timeout, gw.client.request(upstream)).await;
        drop(guard);
        match result {
            Ok(Ok(resp)) => {
                let status = resp.status();
                gw.record(&service, status, started);
                let (mut parts, incoming) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                return Response::from_parts(parts, Body::new(incoming));
            }
            Ok(Err(error)) => {
                let before_send = error.is_connect();
                if before_send {
                    // Refused: the instance is gone; its probes bring it back.
                    gw.routes.set_unready(&endpoint.instance);
                }
                if (before_send || retry_any)
                    && attempts < MAX_ATTEMPTS
                    && Instant::now() < deadline
                {
                    gw.stats.retried(&service);
                    avoid = Some(endpoint.instance.clone());
                    if !before_send {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
                gw.record(&service, StatusCode::BAD_GATEWAY, started);
                return Problem::new(
                    StatusCode::BAD_GATEWAY,
                    format!("{} ({}) failed: {error}", endpoint.instance, endpoint.addr),
                )
                .into_response();
            }
            Err(_) => {
                gw.record(&service, StatusCode::GATEWAY_TIMEOUT, started);
                return Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "{} did not answer within {} ms",
                        endpoint.instance,
                        gw.timeout.as_millis()
                    ),
                )
                .into_response();
            }
        }
    }
}
