//! Fault injection for chaos experiments: error rate, added latency, crash, hang.
//!
//! Off unless `faults.enabled` (`AIODS_FAULTS__ENABLED=true`), and then guarded by a bearer
//! token (`faults.token`, required). `POST /admin/faults` sets faults, `DELETE /admin/faults`
//! clears them, `GET /admin/faults` shows them; every change is logged at `WARN`.
//!
//! - `error_rate` (0–1): that share of the service's own requests answers 500.
//! - `latency_ms`: added before each of the service's own requests.
//! - `crash: true`: the process aborts (SIGABRT) right after answering.
//! - `hang: true`: every request, liveness probes included, stops answering (only
//!   `/admin/faults` still works), as a deadlocked process would.
//! - `consumer_stall: true`: every message handler of the service's messaging consumers
//!   blocks (messages are neither acked nor nacked), as a wedged consumer would; HTTP keeps
//!   answering.
//! - `consumer_error_rate` (0–1): that share of message handler calls fail (nak, then dead
//!   letter after `messaging.max_deliver`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};

/// Fault injection settings (`[faults]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Whether `/admin/faults` exists.
    pub enabled: bool,
    /// The bearer token `/admin/faults` requires.
    pub token: Option<String>,
}

/// The faults in force. Cheap to check on every request.
#[derive(Debug, Default)]
pub struct FaultState {
    active: AtomicBool,
    hang: AtomicBool,
    error_rate_bits: AtomicU64,
    latency_ms: AtomicU64,
    consumer_stall: AtomicBool,
    consumer_error_rate_bits: AtomicU64,
}

/// A request to change the faults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Share of requests answered 500, 0 to 1.
    pub error_rate: Option<f64>,
    /// Latency added to each request, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Abort the process right after answering.
    #[serde(default)]
    pub crash: bool,
    /// Stop answering every request.
    #[serde(default)]
    pub hang: bool,
    /// Block every message handler (messages neither acked nor nacked).
    #[serde(default)]
    pub consumer_stall: bool,
    /// Share of message handler calls that fail, 0 to 1.
    pub consumer_error_rate: Option<f64>,
}

/// The faults in force.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaultStatus {
    /// Share of requests answered 500.
    pub error_rate: f64,
    /// Latency added, in milliseconds.
    pub latency_ms: u64,
    /// Whether requests hang.
    pub hang: bool,
    /// Whether message handlers block.
    #[serde(default)]
    pub consumer_stall: bool,
    /// Share of message handler calls that fail.
    #[serde(default)]
    pub consumer_error_rate: f64,
}

/// What the fault layer decided for one request.
pub(crate) enum Decision {
    Pass,
    Hang,
    Delay(Duration, bool),
    Fail,
}

impl FaultState {
    /// The faults in force.
    pub fn status(&self) -> FaultStatus {
        FaultStatus {
            error_rate: f64::from_bits(self.error_rate_bits.load(Ordering::Relaxed)),
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            hang: self.hang.load(Ordering::Relaxed),
            consumer_stall: self.consumer_stalled(),
            consumer_error_rate: self.consumer_error_rate(),
        }
    }

    /// Whether message handlers are to block (`consumer_stall`).
    pub fn consumer_stalled(&self) -> bool {
        self.consumer_stall.load(Ordering::Relaxed)
    }

    /// The share of message handler calls to fail (`consumer_error_rate`).
    pub fn consumer_error_rate(&self) -> f64 {
        f64::from_bits(self.consumer_error_rate_bits.load(Ordering::Relaxed))
    }

    fn apply(&self, req: &FaultRequest) {
        if let Some(rate) = req.error_rate {
            self.error_rate_bits
                .store(rate.to_bits(), Ordering::Relaxed);
        }
        if let Some(ms) = req.latency_ms {
            self.latency_ms.store(ms, Ordering::Relaxed);
        }
        if req.hang {
            self.hang.store(true, Ordering::Relaxed);
        }
        if req.consumer_stall {
            self.consumer_stall.store(true, Ordering::Relaxed);
        }
        if let Some(rate) = req.consumer_error_rate {
            self.consumer_error_rate_bits
                .store(rate.to_bits(), Ordering::Relaxed);
        }
        let s = self.status();
        self.active.store(
            s.hang || s.error_rate > 0.0 || s.latency_ms > 0,
            Ordering::Release,
        );
    }

    fn clear(&self) {
        self.active.store(false, Ordering::Release);
        self.hang.store(false, Ordering::Relaxed);
        self.error_rate_bits
            .store(0f64.to_bits(), Ordering::Relaxed);
        self.latency_ms.store(0, Ordering::Relaxed);
        self.consumer_stall.store(false, Ordering::Relaxed);
        self.consumer_error_rate_bits
            .store(0f64.to_bits(), Ordering::Relaxed);
    }

    /// Decides the fate of a request to `path` (a chassis endpoint or not).
    pub(crate) fn decide(&self, path: &str, chassis_route: impl FnOnce() -> bool) -> Decision {
        if !self.active.load(Ordering::Acquire) || path == "/admin/faults" {
            return Decision::Pass;
        }
        if self.hang.load(Ordering::Relaxed) {
            return Decision::Hang;
        }
        if chassis_route() {
            return Decision::Pass;
        }
        let s = self.status();
        let fail = s.error_rate > 0.0 && rand::random::<f64>() < s.error_rate;
        if s.latency_ms > 0 {
            Decision::Delay(Duration::from_millis(s.latency_ms), fail)
        } else if fail {
            Decision::Fail
        } else {
            Decision::Pass
        }
    }
}

/// The response of an injected failure.
pub(crate) fn injected_failure() -> Response {
    Error::internal("injected fault (error rate)").into_response()
}

#[derive(Clone)]
struct AdminState {
    faults: Arc<FaultState>,
    token: Arc<str>,
}

/// The `/admin/faults` routes.
pub(crate) fn admin_routes(faults: Arc<FaultState>, token: &str) -> Router {
    Router::new()
        .route("/admin/faults", get(show).post(set).delete(clear))
        .with_state(AdminState {
            faults,
            token: Arc::from(token),
        })
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Box<Problem>> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), state.token.as_bytes())) {
        Ok(())
    } else {
        Err(Box::new(
            Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail("fault injection needs `Authorization: Bearer <faults.token>`"),
        ))
    }
}

/// Compares SHA-256 digests in constant time: neither a differing byte nor a differing
/// length shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    sha2::Sha256::digest(a)
        .ct_eq(&sha2::Sha256::digest(b))
        .into()
}

async fn show(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(problem) = authorize(&state, &headers) {
        return problem.into_response();
    }
    Json(state.faults.status()).into_response()
}

async fn set(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<FaultRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(problem) = authorize(&state, &headers) {
        return problem.into_response();
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return Error::bad_request(e.body_text()).into_response(),
    };
    if let Some(rate) = req.error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Error::unprocessable(format!("error_rate must be within 0 and 1, got {rate}"))
            .into_response();
    }
    if let Some(rate) = req.consumer_error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Error::unprocessable(format!(
            "consumer_error_rate must be within 0 and 1, got {rate}"
        ))
        .into_response();
    }
    if req.latency_ms.is_some_and(|ms| ms > 600_000) {
        return Error::unprocessable("latency_ms must be at most 600000").into_response();
    }
    state.faults.apply(&req);
    let status = state.faults.status();
    tracing::warn!(
        target: "aiods::faults",
        error_rate = status.error_rate,
        latency_ms = status.latency_ms,
        hang = status.hang,
        consumer_stall = status.consumer_stall,
        consumer_error_rate = status.consumer_error_rate,
        crash = req.crash,
        "fault injection changed"
    );
    if req.crash {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tracing::error!(target: "aiods::faults", "injected crash: aborting");
            std::process::abort();
        });
    }
    (StatusCode::OK, Json(status)).into_response()
}

async fn clear(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(problem) = authorize(&state, &headers) {
        return problem.into_response();
    }
    state.faults.clear();
    tracing::warn!(target: "aiods::faults", "fault injection cleared");
    Json(state.faults.status()).into_response()
}
