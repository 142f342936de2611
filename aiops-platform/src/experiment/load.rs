//! The load: virtual users placing orders through the gateway, like the seed's JMeter runs.
//!
//! Closed loop by default (each user sends its next order when the previous one answered),
//! open loop with a rate. A share of the orders is invalid on purpose (quantity 0, no lines,
//! an unknown menu item, a blocked customer): those must answer 4xx and are not failures. A
//! *failed* request is a connection error, a timeout, a 5xx, or any other unexpected status.
//! Every order carries an `Idempotency-Key`, so the gateway may retry it on a broken
//! connection and the order service answers the first result again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

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
    /// `http://gateway/orders`.
    pub(crate) url: String,
    /// Concurrent virtual users (closed loop), or most requests in flight (open loop).
    pub(crate) users: usize,
    /// When to stop.
    pub(crate) until: Until,
    /// Open loop: requests per second.
    pub(crate) rate: Option<f64>,
    /// Share of invalid orders, 0–1.
    pub(crate) invalid_share: f64,
    /// Timeout of one request.
    pub(crate) timeout: Duration,
    /// Seed of the order mix.
    pub(crate) seed: u64,
    /// Prefix of idempotency keys (unique per run and phase).
    pub(crate) run_id: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A valid order answered 200/201.
    Ok,
    /// An invalid order answered 4xx, as expected.
    Rejected,
    /// Connection error, timeout, 5xx or an unexpected status.
    Failed,
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
    /// Whether the order was a valid one.
    pub valid: bool,
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
        let key = format!("{}-{user}-{k}", shared.cfg.run_id);
        one(&shared, &mut rng, key).await;
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
        let key = format!("{}-o-{k}", shared.cfg.run_id);
        k += 1;
        tasks.spawn(async move {
            one(&shared2, &mut task_rng, key).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// An order body: valid (expected 201) or invalid (expected 4xx).
fn order(rng: &mut StdRng, invalid_share: f64) -> (bool, serde_json::Value) {
    if rng.random::<f64>() < invalid_share {
        let body = match rng.random_range(0..4u8) {
            0 => {
                json!({"consumer_id": 1, "restaurant_id": 1, "lines": [{"menu_item_id": 11, "quantity": 0}]})
            }
            1 => json!({"consumer_id": 2, "restaurant_id": 2, "lines": []}),
            2 => {
                json!({"consumer_id": 1, "restaurant_id": 1, "lines": [{"menu_item_id": 999, "quantity": 1}]})
            }
            _ => {
                json!({"consumer_id": 3, "restaurant_id": 2, "lines": [{"menu_item_id": 21, "quantity": 1}]})
            }
        };
        return (false, body);
    }
    let consumer = rng.random_range(1..=2);
    let (restaurant, item) = if rng.random::<bool>() {
        (1, rng.random_range(11..=12))
    } else {
        (2, rng.random_range(21..=23))
    };
    let quantity = rng.random_range(1..=3);
    (
        true,
        json!({"consumer_id": consumer, "restaurant_id": restaurant,
               "lines": [{"menu_item_id": item, "quantity": quantity}]}),
    )
}

async fn one(shared: &Shared, rng: &mut StdRng, key: String) {
    let (valid, body) = order(rng, shared.cfg.invalid_share);
    let sent = Instant::now();
    let at_ms = u64::try_from(sent.duration_since(shared.start).as_millis()).unwrap_or(u64::MAX);
    let result = shared
        .client
        .post(&shared.cfg.url)
        .header("idempotency-key", key)
        .timeout(shared.cfg.timeout)
        .json(&body)
        .send()
        .await;
    let (outcome, note) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let expected = if valid {
                status == 200 || status == 201
            } else {
                (400..500).contains(&status)
            };
            if expected {
                // Read the body so the connection is reused.
                let _ = response.bytes().await;
                (
                    if valid {
                        Outcome::Ok
                    } else {
                        Outcome::Rejected
                    },
                    None,
                )
            } else {
                let text = response.text().await.unwrap_or_default();
                let detail: String = text.chars().take(300).collect();
                (Outcome::Failed, Some((Some(status), detail)))
            }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            (Outcome::Failed, Some((None, format!("{kind}: {e}"))))
        }
    };
    let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.counters.done.fetch_add(1, Ordering::Relaxed);
    if outcome == Outcome::Failed {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
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
            valid,
            status,
            detail,
        });
    }
}
