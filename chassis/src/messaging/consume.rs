//! Consumers: a durable pull consumer per [`ConsumerSpec`], its fetch loop, and the handling
//! of each delivery (decode, span, handler, settle, metrics).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::{FutureExt as _, StreamExt as _};
use opentelemetry::KeyValue;
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt, Tracer};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::disposition::{self, DeadLetterReason, Disposition, HandlerOutcome};
use super::{Inner, Messaging, MessagingError, headers, lock, names};

/// How long one pull request waits for messages; also the longest a stopping consumer waits
/// for the last messages of its open pull.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// Pause after a failed pull (the broker is away), before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How often a stalled handler (fault `consumer_stall`) looks whether the fault was cleared.
const STALL_POLL: Duration = Duration::from_millis(100);

/// A durable pull consumer: its name (the consumer group), stream and filter subject.
///
/// ```
/// use aiods::messaging::ConsumerSpec;
/// let spec = ConsumerSpec::durable("kitchen", "ORDERS", "orders.created").concurrency(4);
/// assert_eq!(spec.name(), "kitchen");
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    name: String,
    stream: String,
    filter_subject: String,
    concurrency: usize,
    max_deliver: Option<u32>,
}

impl ConsumerSpec {
    /// The durable consumer `name` on `stream`, receiving `filter_subject` (one subject or a
    /// wildcard: NATS 2.9 has a single filter subject per consumer).
    pub fn durable(
        name: impl Into<String>,
        stream: impl Into<String>,
        filter_subject: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            stream: stream.into(),
            filter_subject: filter_subject.into(),
            concurrency: 8,
            max_deliver: None,
        }
    }

    /// How many messages are handled at once (default 8).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Deliveries before dead-lettering, instead of `messaging.max_deliver`.
    #[must_use]
    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = Some(n.max(1));
        self
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The filter subject.
    pub fn filter_subject(&self) -> &str {
        &self.filter_subject
    }
}

/// One delivered message, its payload decoded.
#[derive(Debug, Clone)]
pub struct Delivery<T> {
    /// The decoded payload.
    pub payload: T,
    subject: async_nats::Subject,
    delivered: u64,
    stream_sequence: u64,
    // Shared with the delivery's handling, which dead-letters with them: taken from the
    // message rather than cloned (a header map clone is a hash map's).
    headers: Arc<HeaderMap>,
    consumer: Arc<str>,
}

impl<T> Delivery<T> {
    /// The payload.
    pub fn into_payload(self) -> T {
        self.payload
    }
    /// The subject it was published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// Its `Nats-Msg-Id` (the event's id), when the publisher set one.
    pub fn message_id(&self) -> Option<&str> {
        headers::get(Some(&self.headers), headers::MSG_ID)
    }
    /// How many times it was delivered, this delivery included (1 the first time).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
    /// Its sequence in the stream.
    pub fn stream_sequence(&self) -> u64 {
        self.stream_sequence
    }
    /// Its headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The consumer handling it.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }
    /// The id to deduplicate by: the message id, else `<stream sequence>`.
    pub fn dedup_key(&self) -> String {
        self.message_id()
            .map_or_else(|| format!("seq:{}", self.stream_sequence), str::to_owned)
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type ErasedHandler<T> = Arc<dyn Fn(Delivery<T>) -> HandlerFuture + Send + Sync>;

struct ConsumerCtx<T> {
    inner: Arc<Inner>,
    name: Arc<str>,
    /// Messages received and not settled yet (`aiods_messaging_consumer_in_flight`).
    in_flight: metrics::Gauge,
    stream: String,
    dead_letter_subject: String,
    max_deliver: u32,
    handler: ErasedHandler<T>,
    metrics: SeriesCache,
}

/// The consumed-messages counter and the process-duration histogram of one (subject,
/// outcome), looked up once: building the labelled key and finding it in the registry for
/// every message cost more than the rest of the metrics path (consumer benchmark,
/// docs/benchmarks.md).
#[derive(Clone)]
struct Series {
    consumed: metrics::Counter,
    duration: metrics::Histogram,
}

/// [`Series`] per subject and outcome, for one consumer. Bounded by the subjects its filter
/// admits (a wildcard consumer over many subjects keeps one entry per subject, as the
/// registry itself does).
#[derive(Default)]
struct SeriesCache(std::sync::Mutex<std::collections::HashMap<String, [Option<Series>; 3]>>);

impl SeriesCache {
    fn get(&self, consumer: &str, subject: &str, outcome: &'static str) -> Series {
        let slot = match outcome {
            "ack" => 0,
            "nak" => 1,
            _ => 2,
        };
        let mut map = lock(&self.0);
        if let Some(Some(series)) = map.get(subject).map(|s| &s[slot]) {
            return series.clone();
        }
        let series = Series {
            consumed: metrics::counter!(
                names::CONSUMED_MESSAGES,
                "messaging_system" => names::SYSTEM,
                "messaging_destination_name" => subject.to_owned(),
                "messaging_consumer_group_name" => consumer.to_owned(),
                "outcome" => outcome,
            ),
            duration: metrics::histogram!(
                names::PROCESS_DURATION,
                "messaging_system" => names::SYSTEM,
                "messaging_destination_name" => subject.to_owned(),
                "messaging_consumer_group_name" => consumer.to_owned(),
                "outcome" => outcome,
            ),
        };
        map.entry(subject.to_owned()).or_default()[slot] = Some(series.clone());
        series
    }
}

impl Messaging {
    /// Creates (or updates) the durable pull consumer of `spec` and handles its messages with
    /// `handler` until shutdown. The payload is decoded from JSON into `T`; a payload that does
    /// not decode is dead-lettered at once with reason `malformed`.
    ///
    /// `handler` returns `Ok(())` to ack, or an error (any `Display`: `aiods::Error`,
    /// `anyhow::Error`, a `String`) to nak with back-off; the error is the dead letter's reason
    /// after the last delivery.
    pub async fn consume<T, F, Fut, E>(
        &self,
        spec: ConsumerSpec,
        handler: F,
    ) -> Result<(), MessagingError>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let inner = &self.inner;
        let max_deliver = spec.max_deliver.unwrap_or(inner.config.max_deliver);
        self.ensure_stream(names::DLQ_STREAM, &["dlq.>"]).await?;
        let recipe = ConsumerRecipe {
            stream: spec.stream.clone(),
            config: jetstream::consumer::pull::Config {
                durable_name: Some(spec.name.clone()),
                filter_subject: spec.filter_subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: inner.config.ack_wait(),
                // The chassis counts deliveries and dead-letters itself: the broker must keep
                // delivering a message until the chassis settled it, even after a crash on its
                // last delivery.
                max_deliver: -1,
                ..Default::default()
            },
        };
        let consumer = recipe.create(self).await?;
        let handler: ErasedHandler<T> = Arc::new(move |d| {
            let fut = handler(d);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        let ctx = Arc::new(ConsumerCtx {
            inner: inner.clone(),
            name: Arc::from(spec.name.as_str()),
            dead_letter_subject: names::dead_letter_subject(&spec.stream, &spec.name),
            stream: spec.stream.clone(),
            max_deliver,
            handler,
            in_flight: metrics::gauge!(
                names::CONSUMER_IN_FLIGHT,
                "messaging_system" => names::SYSTEM,
                "messaging_consumer_group_name" => spec.name.clone(),
            ),
            metrics: SeriesCache::default(),
        });
        let stats = tokio::spawn(report_stats(
            self.clone(),
            consumer.clone(),
            recipe,
            inner.config.stats_interval(),
        ));
        lock(&inner.background).push(stats);
        let fetch = tokio::spawn(fetch_loop(ctx, consumer, spec.concurrency));
        lock(&inner.consumers).push(fetch);
        tracing::info!(
            target: "aiods::messaging",
            consumer = %spec.name,
            stream = %spec.stream,
            subject = %spec.filter_subject,
            "consumer started"
        );
        Ok(())
    }
}

/// Pulls batches while the service runs and hands each message to one of `concurrency`
/// handler tasks (at most `concurrency` messages handled at once); when stopping, gives back
/// what it received but did not start and waits for its in-flight messages.
///
/// At most one batch (`(4 × concurrency).clamp(32, 256)`) is received and not yet settled:
/// each pull asks for the room there is once half a batch is free, so the next pull is sent
/// while the handlers work on the messages already read. (Reading a batch only as
/// fast as the handlers took messages left them idle for a pull's round trip every batch.) The
/// handler tasks live as long as the consumer: a task spawned per message (its large future
/// moved to the heap, registered, joined) cost about 8 % of a consuming process's CPU. Both
/// measured with the consumer benchmark (docs/benchmarks.md, "Message consumer").
async fn fetch_loop<T>(ctx: Arc<ConsumerCtx<T>>, consumer: PullConsumer, concurrency: usize)
where
    T: DeserializeOwned + Send + 'static,
{
    let batch_size = (concurrency * 4).clamp(32, 256);
    // One permit per message received and not yet settled. A message enters the queue only
    // with a permit, so the queue never holds more and a send never waits.
    let permits = Arc::new(Semaphore::new(batch_size));
    let min_pull = u32::try_from(batch_size / 2).unwrap_or(16);
    let (to_handlers, received) =
        flume::bounded::<(jetstream::Message, OwnedSemaphorePermit, Held)>(batch_size);
    let mut handlers = JoinSet::new();
    for _ in 0..concurrency {
        let ctx = ctx.clone();
        let received = received.clone();
        let stop = ctx.inner.stop.subscribe();
        handlers.spawn(async move {
            while let Ok((msg, permit, held)) = received.recv_async().await {
                if *stop.borrow() {
                    // Stopping: received but not started, so given back for another instance.
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                } else {
                    // `handle` catches the handler's panics; this keeps the task alive should
                    // the chassis's own code panic.
                    let _ = AssertUnwindSafe(handle(&ctx, msg)).catch_unwind().await;
                }
                drop((permit, held));
            }
        });
    }
    drop(received);
    let mut stop = ctx.inner.stop.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        // Room for half a batch at least (a pull has a cost of its own: a pull per message or
        // two measured slower than a batch per round trip), then all the room there is.
        let first = tokio::select! {
            p = permits.clone().acquire_many_owned(min_pull) => p.ok(),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(mut room) = first else { break };
        let more = permits
            .available_permits()
            .min(batch_size - room.num_permits());
        if more > 0
            && let Ok(extra) = permits
                .clone()
                .try_acquire_many_owned(u32::try_from(more).unwrap_or(0))
        {
            room.merge(extra);
        }
        let pull = consumer
            .batch()
            .max_messages(room.num_permits())
            .expires(PULL_EXPIRES)
            .messages();
        // Not abandoned halfway when stopping: a pull request already sent would have its
        // messages delivered to nobody, and redelivered only after the ack wait.
        let mut batch = match pull.await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(target: "aiods::messaging", consumer = %ctx.name, error = %e, "pull failed");
                drop(room);
                pause(&mut stop, RETRY_PAUSE).await;
                continue;
            }
        };
        let mut failed = false;
        while let Some(next) = batch.next().await {
            let msg = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(target: "aiods::messaging", consumer = %ctx.name, error = %e, "pull ended");
                    failed = true;
                    break;
                }
            };
            let held = Held::new(&ctx.in_flight);
            // The pull asked for no more than its room; a message beyond it waits for room.
            let permit = match room.split(1) {
                Some(p) => Some(p),
                None => tokio::select! {
                    p = permits.clone().acquire_owned() => p.ok(),
                    _ = stop.wait_for(|s| *s) => None,
                },
            };
            match permit {
                Some(permit) if !*stop.borrow() => {
                    if let Err(
                        flume::TrySendError::Full((msg, _, _))
                        | flume::TrySendError::Disconnected((msg, _, _)),
                    ) = to_handlers.try_send((msg, permit, held))
                    {
                        // Cannot happen (a permit means room); given back rather than lost.
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                    }
                }
                // Stopping: received but not started, so given back for another instance.
                _ => {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    drop(held);
                }
            }
        }
        // The room the pull did not fill is given back.
        drop(room);
        if failed {
            // The broker is away or the consumer gone: do not spin.
            pause(&mut stop, RETRY_PAUSE).await;
        }
    }
    // The handler tasks finish what they took and end when the channel is empty.
    drop(to_handlers);
    while handlers.join_next().await.is_some() {}
}

/// The delivery count and stream sequence in a JetStream ack subject (ADR-15): the 9-token
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or 11 tokens or more
/// with the domain and account hash after `$JS.ACK.`. `Message::info` parses every token
/// (timestamp as an `i128` and a date included): ~2,000 instructions per message under
/// callgrind in the consumer benchmark, for the two numbers the chassis needs (~300 here).
fn ack_info(reply: &str) -> Option<(u64, u64)> {
    let rest = reply.strip_prefix("$JS.ACK.")?.as_bytes();
    // Where each of the first six tokens ends, and how many tokens there are.
    let mut ends = [0usize; 6];
    let mut count = 0;
    for (i, b) in rest.iter().enumerate() {
        if *b == b'.' {
            if let Some(end) = ends.get_mut(count) {
                *end = i;
            }
            count += 1;
        }
    }
    if let Some(end) = ends.get_mut(count) {
        *end = rest.len();
    }
    count += 1;
    let at = match count {
        7 => 2,
        n if n >= 9 => 4,
        _ => return None,
    };
    let number = |i: usize| -> Option<u64> {
        let digits = rest.get(ends[i - 1] + 1..ends[i])?;
        if digits.is_empty() || digits.len() > 19 {
            return None;
        }
        digits.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    Some((number(at)?, number(at + 1)?))
}

/// One message counted in the consumer's in-flight gauge until it is settled (dropped).
struct Held(metrics::Gauge);

impl Held {
    fn new(gauge: &metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {},
        _ = stop.wait_for(|s| *s) => {},
    }
}

/// Handles one delivery from start to settlement.
async fn handle<T>(ctx: &ConsumerCtx<T>, mut msg: jetstream::Message)
where
    T: DeserializeOwned + Send + 'static,
{
    let started = Instant::now();
    let (delivered, stream_sequence) = msg.reply.as_deref().and_then(ack_info).unwrap_or((1, 0));
    let headers = Arc::new(msg.message.headers.take().unwrap_or_default());
    let subject = msg.subject.clone();
    let parent = headers::extract(Some(&headers));
    let cx = match crate::otel::tracer() {
        Some(tracer) => {
            let names = names::process_names(&subject);
            let mut attributes = vec![
                KeyValue::new("messaging.system", names::SYSTEM),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.operation.name", "process"),
                KeyValue::new("messaging.destination.name", names.subject.clone()),
                KeyValue::new(
                    "messaging.consumer.group.name",
                    opentelemetry::StringValue::from(ctx.name.clone()),
                ),
                KeyValue::new(
                    "messaging.nats.delivery_count",
                    i64::try_from(delivered).unwrap_or(i64::MAX),
                ),
                KeyValue::new(
                    "messaging.message.body.size",
                    i64::try_from(msg.payload.len()).unwrap_or(i64::MAX),
                ),
            ];
            if let Some(id) = headers::get(Some(&headers), headers::MSG_ID) {
                attributes.push(KeyValue::new("messaging.message.id", id.to_owned()));
            }
            let span = tracer
                .span_builder(names.span.clone())
                .with_kind(SpanKind::Consumer)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            parent.with_span(span)
        }
        None => parent,
    };

    let outcome = run_handler(ctx, &msg, &headers, &cx, delivered, stream_sequence)
        .with_context(cx.clone())
        .await;
    let disposition = disposition::decide(
        &outcome,
        delivered,
        ctx.max_deliver,
        &ctx.inner.config.backoff_ms,
    );
    let received = Received {
        msg: &msg,
        headers: &headers,
        subject: &subject,
        delivered,
        stream_sequence,
    };
    let settled = settle(ctx, &received, &disposition, &cx).await;
    let label = match settled {
        Disposition::Ack => "ack",
        Disposition::Nak(_) => "nak",
        Disposition::DeadLetter { .. } => "dead_letter",
    };
    let series = ctx.metrics.get(&ctx.name, &subject, label);
    series.consumed.increment(1);
    series.duration.record(started.elapsed().as_secs_f64());
    let span = cx.span();
    if span.is_recording() {
        span.set_attribute(KeyValue::new("aiods.messaging.outcome", label));
        match &outcome {
            HandlerOutcome::Done => {}
            HandlerOutcome::Malformed(e)
            | HandlerOutcome::Failed(e)
            | HandlerOutcome::Panicked(e) => {
                span.set_attribute(KeyValue::new(
                    "error.type",
                    match &outcome {
                        HandlerOutcome::Malformed(_) => "malformed",
                        HandlerOutcome::Panicked(_) => "panic",
                        _ => "handler_error",
                    },
                ));
                span.set_status(Status::error(e.clone()));
            }
        }
        span.end();
    }
}

/// Decodes the payload and runs the handler (or the injected consumer faults); a panic is
/// caught and captured as an exception.
async fn run_handler<T>(
    ctx: &ConsumerCtx<T>,
    msg: &jetstream::Message,
    headers: &Arc<HeaderMap>,
    cx: &opentelemetry::Context,
    delivered: u64,
    stream_sequence: u64,
) -> HandlerOutcome
where
    T: DeserializeOwned + Send + 'static,
{
    let payload: T = match serde_json::from_slice(&msg.payload) {
        Ok(p) => p,
        Err(e) => return HandlerOutcome::Malformed(format!("the payload does not decode: {e}")),
    };
    let faults = &ctx.inner.faults;
    // A wedged consumer: neither acks nor naks while the fault is in force.
    while faults.consumer_stalled() {
        tokio::time::sleep(STALL_POLL).await;
    }
    let rate = faults.consumer_error_rate();
    if rate > 0.0 && rand::random::<f64>() < rate {
        return HandlerOutcome::Failed("injected fault (consumer error rate)".into());
    }
    let delivery = Delivery {
        payload,
        subject: msg.subject.clone(),
        delivered,
        stream_sequence,
        headers: headers.clone(),
        consumer: ctx.name.clone(),
    };
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| (ctx.handler)(delivery)));
    let result = match call {
        Ok(fut) => {
            // A handler that runs longer than the ack wait says it is still at work, so the
            // broker does not deliver the message to another instance meanwhile.
            let fut = AssertUnwindSafe(fut).catch_unwind();
            tokio::pin!(fut);
            // Most handlers finish at their first poll: no timer is made for them (a timer
            // per message was a measurable share of the consume path).
            match futures_util::poll!(&mut fut) {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => {
                    let every = (ctx.inner.config.ack_wait() / 2).max(Duration::from_millis(10));
                    let mut progress =
                        tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    loop {
                        tokio::select! {
                            r = &mut fut => break r,
                            _ = progress.tick() => {
                                let _ = msg.ack_with(AckKind::Progress).await;
                            }
                        }
                    }
                }
            }
        }
        Err(payload) => Err(payload),
    };
    match result {
        Ok(Ok(())) => HandlerOutcome::Done,
        Ok(Err(e)) => {
            tracing::warn!(
                target: "aiods::messaging",
                consumer = %ctx.name,
                subject = %msg.subject,
                delivered,
                error = %e,
                "message handling failed"
            );
            HandlerOutcome::Failed(e)
        }
        Err(payload) => {
            // Taken at once, on the thread that panicked: the hook kept its location there.
            let report = crate::exceptions::panic_report(payload.as_ref());
            let message = report.message.clone();
            {
                let _entered = cx.clone().attach();
                let names = names::process_names(&msg.subject);
                crate::exceptions::capture(report, Some(&names.span));
            }
            HandlerOutcome::Panicked(message)
        }
    }
}

/// One delivery as [`handle`] read it.
struct Received<'a> {
    msg: &'a jetstream::Message,
    /// Its headers (taken out of `msg`).
    headers: &'a HeaderMap,
    subject: &'a str,
    delivered: u64,
    stream_sequence: u64,
}

/// Carries out the disposition; returns what was really done (a dead letter that could not
/// be published is nak'ed instead, to be tried again).
async fn settle<T>(
    ctx: &ConsumerCtx<T>,
    received: &Received<'_>,
    disposition: &Disposition,
    cx: &opentelemetry::Context,
) -> Disposition {
    let msg = received.msg;
    let acked = match disposition {
        Disposition::Ack => msg.ack().await,
        Disposition::Nak(delay) => msg.ack_with(AckKind::Nak(Some(*delay))).await,
        Disposition::DeadLetter { reason, detail } => {
            // Boxed: the publish it makes is rare and its future large; inline, it would
            // grow every message's task.
            match Box::pin(dead_letter(ctx, received, *reason, detail, cx)).await {
                Ok(()) => msg.ack_with(AckKind::Term).await,
                Err(e) => {
                    tracing::error!(
                        target: "aiods::messaging",
                        consumer = %ctx.name,
                        error = %e,
                        "cannot publish the dead letter; the message will be delivered again"
                    );
                    let delay =
                        disposition::backoff(received.delivered, &ctx.inner.config.backoff_ms);
                    let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
                    return Disposition::Nak(delay);
                }
            }
        }
    };
    if let Err(e) = acked {
        tracing::warn!(target: "aiods::messaging", consumer = %ctx.name, error = %e, "cannot settle a message");
    }
    disposition.clone()
}

/// Publishes the message to `dlq.<stream>.<consumer>` with the reason and the original
/// headers, and counts it.
async fn dead_letter<T>(
    ctx: &ConsumerCtx<T>,
    received: &Received<'_>,
    reason: DeadLetterReason,
    detail: &str,
    cx: &opentelemetry::Context,
) -> Result<(), MessagingError> {
    let Received {
        msg,
        subject,
        delivered,
        stream_sequence,
        ..
    } = *received;
    let mut headers = received.headers.clone();
    let original_id = headers::get(Some(&headers), headers::MSG_ID).map(str::to_owned);
    // Within the one DLQ stream, two consumers dead-lettering the same event must not be
    // taken for duplicates of each other.
    let id = format!(
        "{}.{}.{}",
        ctx.stream,
        ctx.name,
        original_id
            .clone()
            .unwrap_or_else(|| stream_sequence.to_string())
    );
    if let Some(original) = original_id {
        headers.insert(names::DLQ_MSG_ID_HEADER, original);
    }
    headers.insert(
        names::DLQ_REASON_HEADER,
        header_safe(&format!("{}: {detail}", reason.label())),
    );
    headers.insert(names::DLQ_REASON_KIND_HEADER, reason.label());
    headers.insert(names::DLQ_SUBJECT_HEADER, subject);
    headers.insert(names::DLQ_DELIVERIES_HEADER, delivered.to_string());
    // The dead letter's PRODUCER span is a child of this CONSUMER span: same trace.
    headers::inject(cx, &mut headers);
    let messaging = Messaging {
        inner: ctx.inner.clone(),
    };
    messaging
        .publish_bytes(&ctx.dead_letter_subject, &id, msg.payload.clone(), headers)
        .await?;
    metrics::counter!(
        names::DEAD_LETTERS,
        "messaging_system" => names::SYSTEM,
        "messaging_consumer_group_name" => ctx.name.to_string(),
        "messaging_destination_name" => subject.to_owned(),
        "reason" => reason.label(),
    )
    .increment(1);
    tracing::error!(
        target: "aiods::messaging",
        consumer = %ctx.name,
        subject,
        reason = reason.label(),
        delivered,
        error = %detail,
        dead_letter_subject = %ctx.dead_letter_subject,
        "message dead-lettered"
    );
    Ok(())
}

/// A header value must be one line; long reasons are cut.
fn header_safe(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1024)
        .collect();
    one_line
}

/// How to make the consumer: again when the broker lost it.
struct ConsumerRecipe {
    stream: String,
    config: jetstream::consumer::pull::Config,
}

impl ConsumerRecipe {
    fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }

    /// Creates the consumer, or updates it to this configuration.
    async fn create(&self, messaging: &Messaging) -> Result<PullConsumer, MessagingError> {
        messaging
            .inner
            .js
            .create_consumer_on_stream(self.config.clone(), self.stream.as_str())
            .await
            .map_err(|e| {
                MessagingError::jetstream(
                    format!("create consumer {} on {}", self.name(), self.stream),
                    e,
                )
            })
    }

    /// The broker lost the stream or the consumer (a new, empty store; someone deleted
    /// them): declares the streams again and makes the consumer, so the fetch loop, which
    /// pulls by name, resumes.
    async fn recover(&self, messaging: &Messaging, stream_lost: bool) {
        tracing::warn!(
            target: "aiods::messaging",
            consumer = %self.name(),
            stream = %self.stream,
            stream_lost,
            "the broker lost the consumer; making it again"
        );
        if stream_lost {
            let redeclared = async {
                messaging.redeclare_stream(&self.stream).await?;
                messaging.redeclare_stream(names::DLQ_STREAM).await
            };
            if let Err(e) = redeclared.await {
                tracing::warn!(target: "aiods::messaging", error = %e, "cannot declare the stream again");
                return;
            }
        }
        if let Err(e) = self.create(messaging).await {
            tracing::warn!(target: "aiods::messaging", error = %e, "cannot make the consumer again");
        }
    }
}

/// Reads the consumer's info every `interval` into the pending, ack-pending and redelivered
/// gauges; makes the consumer again when the broker says it is gone.
async fn report_stats(
    messaging: Messaging,
    consumer: PullConsumer,
    recipe: ConsumerRecipe,
    interval: Duration,
) {
    use jetstream::context::ConsumerInfoErrorKind;
    let name = recipe.name().to_owned();
    let stream = recipe.stream.clone();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let info = match consumer.get_info().await {
            Ok(info) => info,
            Err(e) => {
                match e.kind() {
                    ConsumerInfoErrorKind::NotFound => recipe.recover(&messaging, false).await,
                    ConsumerInfoErrorKind::StreamNotFound => {
                        recipe.recover(&messaging, true).await;
                    }
                    _ => {}
                }
                continue;
            }
        };
        let labels = [
            ("messaging_system", names::SYSTEM.to_owned()),
            ("messaging_consumer_group_name", name.clone()),
            ("messaging_stream_name", stream.clone()),
        ];
        metrics::gauge!(names::CONSUMER_PENDING, &labels).set(info.num_pending as f64);
        metrics::gauge!(names::CONSUMER_ACK_PENDING, &labels).set(info.num_ack_pending as f64);
        metrics::gauge!(names::CONSUMER_REDELIVERED, &labels).set(info.num_redelivered as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::ack_info;

    #[test]
    fn ack_info_reads_both_subject_formats() {
        for reply in [
            "$JS.ACK.ORDERS.kitchen.3.1042.998.1700000000000000000.7",
            "$JS.ACK._.ACCHASH.ORDERS.kitchen.3.1042.998.1700000000000000000.7",
            "$JS.ACK.hub.ACCHASH.ORDERS.kitchen.3.1042.998.1700000000000000000.7.rand0m",
            "$JS.ACK.hub.ACCHASH.ORDERS.kitchen.3.1042.998.1700000000000000000.7.rand0m.more",
        ] {
            assert_eq!(ack_info(reply), Some((3, 1042)), "{reply}");
        }
        for reply in [
            "",
            "$JS.ACK.",
            "$JS.ACK.ORDERS.kitchen.3.1042.998.1700000000000000000",
            "$JS.ACK.a.b.ORDERS.kitchen.3.1042.998.17",
            "$JS.ACK.ORDERS.kitchen.x.1042.998.1700000000000000000.7",
            "$JS.ACK.ORDERS.kitchen.3.-1.998.1700000000000000000.7",
            "$JS.NAK.ORDERS.kitchen.3.1042.998.1700000000000000000.7",
            "_INBOX.abc",
        ] {
            assert_eq!(ack_info(reply), None, "{reply}");
        }
    }
}
