//! The load: virtual users sending a [`Scenario`]'s requests through the gateway, like the
//! seed's JMeter runs.
//!
//! Closed loop by default (each user sends its next request when the previous one finished),
//! open loop with a rate. Each request is a kind picked by weight; a kind marked `invalid` must
//! get one of its expected answers (a 4xx, say) and is then *rejected as expected*, not a
//! failure. A *failed* request is a connection error, a timeout, or a status the kind does not
//! expect. A request with a follow-up (an order settled by events, say) is polled until a final
//! value: its latency is measured to that value, and one that holds none within the
//! follow-up's timeout, or whose poll answers a status the follow-up does not expect, is
//! *unsettled* — counted apart from the failed ones (a poll that gets no answer is tried again
//! until the timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;

use crate::scenario::{FollowUp, RequestKind, Scenario, Vars};

/// Failure notes kept (the first ones; the rest are only counted).
const KEPT_FAILURES: usize = 50;

/// When a load phase ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// After this long.
    Time(Duration),
    /// After this many requests in total.
    Requests(u64),
}

/// One load phase.
#[derive(Debug, Clone)]
pub(crate) struct LoadConfig {
    /// `http://gateway`, where the scenario's paths go.
    pub(crate) base_url: String,
    /// What to send.
    pub(crate) scenario: Arc<Scenario>,
    /// Concurrent virtual users (closed loop), or most requests in flight (open loop).
    pub(crate) users: usize,
    /// When to stop.
    pub(crate) until: Until,
    /// Open loop: requests per second.
    pub(crate) rate: Option<f64>,
    /// Timeout of one request.
    pub(crate) timeout: Duration,
    /// Seed of the request mix.
    pub(crate) seed: u64,
    /// `${run}`: unique per run and phase.
    pub(crate) run_id: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A valid request got an expected answer (and its follow-up a final value).
    Ok,
    /// An invalid request got an expected answer (a 4xx, say).
    Rejected,
    /// Connection error, timeout, or an unexpected status.
    Failed,
    /// Answered as expected, but the follow-up found no final value in time (or a poll
    /// answered a status it does not expect).
    Unsettled,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// When it was sent, milliseconds since the phase started.
    pub(crate) at_ms: u64,
    /// How long it took, microseconds.
    pub(crate) latency_us: u64,
    /// How it ended.
    pub(crate) outcome: Outcome,
}

/// A failed request, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct FailureNote {
    /// When it was sent, milliseconds since the phase started.
    pub at_ms: u64,
    /// Whether the request was a valid one.
    pub valid: bool,
    /// The scenario's name of the request.
    pub request: String,
    /// The status, when there was an answer.
    pub status: Option<u16>,
    /// The error or the start of the answer.
    pub detail: String,
}

/// Live counters (the progress bar reads them).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Requests answered or failed.
    pub(crate) done: AtomicU64,
    /// Failed requests.
    pub(crate) failed: AtomicU64,
    /// Requests whose follow-up found no final value in time.
    pub(crate) unsettled: AtomicU64,
    /// Follow-up polls sent.
    pub(crate) polls: AtomicU64,
    /// `${n}`.
    sent: AtomicU64,
    /// Tickets taken (for `Until::Requests`).
    tickets: AtomicU64,
}

/// What a phase recorded.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Every request.
    pub(crate) samples: Vec<Sample>,
    /// The first failures.
    pub(crate) failures: Vec<FailureNote>,
}

struct Shared {
    cfg: LoadConfig,
    client: reqwest::Client,
    counters: Arc<Counters>,
    recorded: Mutex<Recorded>,
    start: Instant,
}

/// Runs one phase; stops early when `stop` turns true.
pub(crate) async fn run(
    cfg: LoadConfig,
    client: reqwest::Client,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> (Recorded, Duration) {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        client,
        counters,
        recorded: Mutex::new(Recorded::default()),
        start,
    });
    match cfg.rate {
        None => {
            let mut tasks = tokio::task::JoinSet::new();
            for user in 0..cfg.users.max(1) {
                let shared = shared.clone();
                let stop = stop.clone();
                tasks.spawn(async move { closed_loop_user(shared, user, stop).await });
            }
            while tasks.join_next().await.is_some() {}
        }
        Some(rate) => open_loop(shared.clone(), rate, stop).await,
    }
    let elapsed = start.elapsed();
    let recorded = std::mem::take(&mut *shared.recorded.lock());
    (recorded, elapsed)
}

fn more(shared: &Shared, stop: &watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    match shared.cfg.until {
        Until::Time(d) => shared.start.elapsed() < d,
        Until::Requests(n) => shared.counters.tickets.fetch_add(1, Ordering::Relaxed) < n,
    }
}

async fn closed_loop_user(shared: Arc<Shared>, user: usize, stop: watch::Receiver<bool>) {
    let mut rng = StdRng::seed_from_u64(shared.cfg.seed ^ (user as u64).wrapping_mul(0x9E37));
    let mut k = 0u64;
    while more(&shared, &stop) {
        one(&shared, &mut rng, user, k).await;
        k += 1;
    }
}

async fn open_loop(shared: Arc<Shared>, rate: f64, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let limit = Arc::new(tokio::sync::Semaphore::new(shared.cfg.users.max(1)));
    let mut rng = StdRng::seed_from_u64(shared.cfg.seed);
    let mut tasks = tokio::task::JoinSet::new();
    let mut k = 0u64;
    loop {
        ticker.tick().await;
        if !more(&shared, &stop) {
            break;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let shared2 = shared.clone();
        let mut task_rng = StdRng::seed_from_u64(rng.random());
        let seq = k;
        k += 1;
        tasks.spawn(async move {
            one(&shared2, &mut task_rng, 0, seq).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// How one request ended: its outcome, and a note when it failed.
type Ended = (Outcome, Option<(Option<u16>, String)>);

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    format!("{kind}: {e}")
}

async fn send(
    shared: &Shared,
    kind: &RequestKind,
    vars: &Vars<'_>,
    rng: &mut StdRng,
) -> Result<reqwest::Response, (Option<u16>, String)> {
    let path = kind
        .path
        .render(vars, rng)
        .map_err(|e| (None, format!("path: {e}")))?;
    let mut req = shared
        .client
        .request(
            kind.method.clone(),
            format!("{}{path}", shared.cfg.base_url),
        )
        .timeout(shared.cfg.timeout);
    for (name, value) in &kind.headers {
        let v = value
            .render(vars, rng)
            .map_err(|e| (None, format!("header {name}: {e}")))?;
        req = req.header(name.as_str(), v);
    }
    if let Some(body) = &kind.body {
        let b = body
            .render(vars, rng)
            .map_err(|e| (None, format!("body: {e}")))?;
        req = req
            .header(reqwest::header::CONTENT_TYPE, kind.content_type.as_str())
            .body(b);
    }
    req.send().await.map_err(|e| (None, transport(&e)))
}

/// Polls `f` until its field holds a final value; `Err` says why it did not.
async fn follow(
    shared: &Shared,
    f: &FollowUp,
    vars: &Vars<'_>,
    rng: &mut StdRng,
) -> Result<(), Ended> {
    let deadline = Instant::now() + f.timeout;
    let path = f.path.render(vars, rng).map_err(|e| {
        (
            Outcome::Failed,
            Some((None, format!("follow-up path: {e}"))),
        )
    })?;
    loop {
        let last;
        let mut req = shared
            .client
            .request(f.method.clone(), format!("{}{path}", shared.cfg.base_url))
            .timeout(shared.cfg.timeout);
        for (name, value) in &f.headers {
            let v = value.render(vars, rng).map_err(|e| {
                let note = format!("follow-up header {name}: {e}");
                (Outcome::Failed, Some((None, note)))
            })?;
            req = req.header(name.as_str(), v);
        }
        shared.counters.polls.fetch_add(1, Ordering::Relaxed);
        let mut status = None;
        match req.send().await {
            Err(e) => last = format!("poll failed: {}", transport(&e)),
            Ok(response) => {
                let code = response.status().as_u16();
                status = Some(code);
                let text = response.text().await.unwrap_or_default();
                if f.expect.contains(code) {
                    let value = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.pointer(&f.pointer).cloned());
                    if let Some(v) = &value
                        && f.until.contains(v)
                    {
                        return Ok(());
                    }
                    last = value.map_or_else(|| format!("no field {}", f.field), |v| v.to_string());
                } else {
                    // A definite answer (the order is gone, say): it will not settle.
                    let detail: String = text.chars().take(200).collect();
                    let note = format!("follow-up {path}: answered {code}: {detail}");
                    return Err((Outcome::Unsettled, Some((status, note))));
                }
            }
        }
        if Instant::now() + f.interval > deadline {
            let note = format!(
                "follow-up {path}: {} not final after {:?} (last: {last})",
                f.field, f.timeout
            );
            return Err((Outcome::Unsettled, Some((status, note))));
        }
        tokio::time::sleep(f.interval).await;
    }
}

async fn exchange(shared: &Shared, kind: &RequestKind, vars: Vars<'_>, rng: &mut StdRng) -> Ended {
    let response = match send(shared, kind, &vars, rng).await {
        Ok(r) => r,
        Err(note) => return (Outcome::Failed, Some(note)),
    };
    let status = response.status().as_u16();
    if !kind.expect.contains(status) {
        let text = response.text().await.unwrap_or_default();
        let detail: String = text.chars().take(300).collect();
        return (Outcome::Failed, Some((Some(status), detail)));
    }
    let done = if kind.invalid {
        Outcome::Rejected
    } else {
        Outcome::Ok
    };
    let Some(f) = &kind.follow_up else {
        // Read the body so the connection is reused.
        let _ = response.bytes().await;
        return (done, None);
    };
    let body: serde_json::Value = match response.json().await {
        Ok(v) => v,
        Err(e) => {
            return (
                Outcome::Failed,
                Some((
                    Some(status),
                    format!("the answer is not JSON for the follow-up: {e}"),
                )),
            );
        }
    };
    let vars = Vars {
        response: Some(&body),
        ..vars
    };
    match follow(shared, f, &vars, rng).await {
        Ok(()) => (done, None),
        Err(ended) => ended,
    }
}

async fn one(shared: &Shared, rng: &mut StdRng, user: usize, seq: u64) {
    let Some(kind) = shared.cfg.scenario.pick(rng) else {
        return;
    };
    let sent = Instant::now();
    let at_ms = u64::try_from(sent.duration_since(shared.start).as_millis()).unwrap_or(u64::MAX);
    let vars = Vars {
        run: &shared.cfg.run_id,
        user,
        seq,
        n: shared.counters.sent.fetch_add(1, Ordering::Relaxed),
        response: None,
    };
    let (outcome, note) = exchange(shared, kind, vars, rng).await;
    let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.counters.done.fetch_add(1, Ordering::Relaxed);
    match outcome {
        Outcome::Failed => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Unsettled => {
            shared.counters.unsettled.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Ok | Outcome::Rejected => {}
    }
    let mut rec = shared.recorded.lock();
    rec.samples.push(Sample {
        at_ms,
        latency_us,
        outcome,
    });
    if let Some((status, detail)) = note
        && rec.failures.len() < KEPT_FAILURES
    {
        rec.failures.push(FailureNote {
            at_ms,
            valid: !kind.invalid,
            request: kind.name.clone(),
            status,
            detail,
        });
    }
}
