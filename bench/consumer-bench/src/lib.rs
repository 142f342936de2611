//! What the consumer benchmark's programs share: the event, the settings read from the
//! environment, the end-of-run check and the result they write (`bench/consumer.py`).
//!
//! Every program consumes the same pre-published stream with a durable pull consumer of its
//! own, times the run from the first message handed to the handler to the moment JetStream
//! reports every message acked (ack floor = N, nothing pending), and writes one JSON line to
//! `BENCH_RESULT`.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

/// The benchmark's event: a small JSON object (about 80 bytes), as a saga step would publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order's id (also the message's `Nats-Msg-Id`).
    pub id: String,
    /// The customer.
    pub customer: String,
    /// The order's total.
    pub total_cents: u64,
}

/// The stream's subjects.
pub const SUBJECTS: &str = "bench.>";
/// The subject the events are published to (the consumers' filter subject).
pub const SUBJECT: &str = "bench.orders";
/// How many messages a handler works on at once: the chassis's default
/// (`ConsumerSpec::concurrency`).
pub const CONCURRENCY: usize = 8;
/// Messages per pull: what the chassis asks for at its default concurrency
/// (`(concurrency * 4).clamp(32, 256)`).
pub const BATCH: usize = 32;

/// The run's settings, from the environment.
#[derive(Debug, Clone)]
pub struct BenchEnv {
    /// `NATS_URL`.
    pub url: String,
    /// `BENCH_STREAM`.
    pub stream: String,
    /// `BENCH_CONSUMER`: the durable consumer's name, new for each run.
    pub consumer: String,
    /// `BENCH_MESSAGES`: how many messages the stream holds.
    pub messages: u64,
    /// `BENCH_RESULT`: where to write the result (one JSON line).
    pub result: String,
}

/// A setting missing or wrong.
#[derive(Debug)]
pub struct EnvError(pub String);

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvError {}

fn var(name: &str) -> Result<String, EnvError> {
    std::env::var(name).map_err(|_| EnvError(format!("{name} is not set")))
}

impl BenchEnv {
    /// Reads the settings.
    pub fn from_env() -> Result<Self, EnvError> {
        let messages = var("BENCH_MESSAGES")?
            .parse()
            .map_err(|e| EnvError(format!("BENCH_MESSAGES: {e}")))?;
        Ok(Self {
            url: var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            stream: var("BENCH_STREAM")?,
            consumer: var("BENCH_CONSUMER")?,
            messages,
            result: var("BENCH_RESULT")?,
        })
    }
}

/// The durable pull consumer both variants use: the chassis's configuration (explicit ack,
/// ack wait 3 s, no delivery limit at the broker).
pub fn consumer_config(name: &str) -> jetstream::consumer::pull::Config {
    jetstream::consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: SUBJECT.to_owned(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(3),
        max_deliver: -1,
        ..Default::default()
    }
}

/// This process's CPU time (user + system, all threads, live and finished) in microseconds,
/// from `/proc/self/stat` (clock ticks of 10 ms: Linux's `USER_HZ` is 100).
pub fn cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat(5); index 11 and 12 after the command.
    (tick(11) + tick(12)) * 10_000
}

/// When the run started: the first message handed to the handler, and the CPU time then.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Wall clock.
    pub at: Instant,
    /// [`cpu_us`] at that moment.
    pub cpu_us: u64,
}

impl Start {
    /// Now.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu_us: cpu_us(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct RunResult {
    /// Messages in the stream.
    pub messages: u64,
    /// Messages the handler saw.
    pub handled: u64,
    /// First message to every message acked, in seconds.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// CPU time of the process over the run, per message.
    pub cpu_us_per_message: f64,
    /// The consumer's ack floor (consumer sequence) at the end.
    pub ack_floor: u64,
    /// Deliveries the consumer made (its delivered consumer sequence).
    pub delivered: u64,
    /// Messages the consumer redelivered.
    pub redelivered: u64,
}

/// Waits until JetStream reports every message of `consumer` acked (ack floor = N, nothing
/// pending nor awaiting an ack), polling every millisecond, and returns the result; gives up
/// after `timeout`.
pub async fn finish(
    js: &jetstream::Context,
    env: &BenchEnv,
    start: Start,
    handled: u64,
    timeout: Duration,
) -> Result<RunResult, Box<dyn std::error::Error + Send + Sync>> {
    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(&env.consumer, &env.stream)
        .await?;
    let deadline = Instant::now() + timeout;
    loop {
        let info = consumer.info().await?;
        let done = info.ack_floor.stream_sequence >= env.messages
            && info.num_pending == 0
            && info.num_ack_pending == 0;
        if done || Instant::now() > deadline {
            let seconds = start.at.elapsed().as_secs_f64();
            let cpu = cpu_us().saturating_sub(start.cpu_us);
            return Ok(RunResult {
                messages: env.messages,
                handled,
                seconds,
                msgs_per_s: env.messages as f64 / seconds,
                cpu_us_per_message: cpu as f64 / env.messages.max(1) as f64,
                ack_floor: info.ack_floor.consumer_sequence,
                delivered: info.delivered.consumer_sequence,
                redelivered: info.num_redelivered as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Writes the result as one JSON line to `env.result`.
pub fn write_result(env: &BenchEnv, result: &RunResult) -> std::io::Result<()> {
    let line = serde_json::to_string(result).map_err(std::io::Error::other)?;
    std::fs::write(&env.result, line + "\n")
}
