//! Messaging over NATS JetStream, instrumented like the HTTP side (cargo feature `nats`).
//!
//! In a service function, ask the context for the connection, declare the streams, and
//! register consumers; publish from anywhere with the same handle:
//!
//! ```no_run
//! use aiods::messaging::{ConsumerSpec, Delivery, Event};
//! use aiods::prelude::*;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct OrderCreated { id: String, total_cents: u64 }
//!
//! impl Event for OrderCreated {
//!     fn message_id(&self) -> String { self.id.clone() }
//! }
//!
//! async fn create_ticket(order: Delivery<OrderCreated>) -> aiods::Result<()> {
//!     tracing::info!(order = %order.payload.id, "ticket created");
//!     Ok(())
//! }
//!
//! #[aiods::service(name = "kitchen")]
//! async fn main(ctx: ServiceContext) -> aiods::Result<Router> {
//!     let messaging = ctx.messaging().await?;
//!     messaging.ensure_stream("ORDERS", &["orders.>"]).await?;
//!     messaging
//!         .consume(ConsumerSpec::durable("kitchen", "ORDERS", "orders.created"), create_ticket)
//!         .await?;
//!     let publisher = messaging.clone();
//!     Ok(Router::new().route("/orders", post(move || async move {
//!         let event = OrderCreated { id: "o-1".into(), total_cents: 1200 };
//!         publisher.publish("orders.created", &event).await?;
//!         Ok::<_, aiods::Error>("created")
//!     })))
//! }
//! ```
//!
//! What the chassis does for every message (the messaging section of
//! `docs/telemetry-contract.md`):
//!
//! - **publish**: a PRODUCER span `publish <subject>`, the W3C `traceparent` in the message
//!   headers, `Nats-Msg-Id` = the event's id (JetStream drops a duplicate within the stream's
//!   duplicate window), `messaging_client_sent_messages_total`; returns once JetStream stored it;
//! - **consume**: a CONSUMER span `process <subject>`, child of the producer's context (one
//!   order is one trace); the payload decoded as JSON into the handler's type; ack on success,
//!   nak with back-off (`messaging.backoff_ms`) on error, a dead letter on `dlq.<stream>.<consumer>`
//!   after `messaging.max_deliver` deliveries, at once for a payload that does not decode; a
//!   panicking handler is an exception (log, counter, span event, Sentry) and a nak;
//!   `messaging_client_consumed_messages_total{outcome}`, `messaging_process_duration_seconds`,
//!   `aiods_messaging_dead_letters_total{reason}` and the consumer's JetStream pending,
//!   ack-pending and redelivered counts as gauges;
//! - **readiness**: the `nats` check is DOWN while the connection is lost;
//! - **shutdown**: on SIGTERM consumers stop fetching, messages received but not started are
//!   given back (nak), in-flight handlers finish and are acked within the shutdown grace, and the
//!   connection is flushed before telemetry.
//!
//! With feature `outbox`, [`outbox`] writes events in the caller's database transaction and
//! relays them, and [`idempotency`] processes a message id once per consumer.

mod config;
mod consume;
mod disposition;
mod error;
mod headers;
pub mod names;
mod slot;

#[cfg(feature = "outbox")]
pub mod idempotency;
#[cfg(feature = "outbox")]
pub mod outbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use async_nats;
pub use config::MessagingConfig;
pub use consume::{ConsumerSpec, Delivery};
pub use disposition::DeadLetterReason;
pub use error::MessagingError;
pub(crate) use slot::MessagingSlot;
#[cfg(feature = "outbox")]
pub use sqlx;

use crate::faults::FaultState;

/// An event that can be published: serializable, with an id that is its `Nats-Msg-Id`.
///
/// The id should be stable for the event (not made up at publish time), so a re-publish after
/// a crash is dropped by JetStream as a duplicate.
pub trait Event: Serialize {
    /// The event's id.
    fn message_id(&self) -> String;
}

/// What JetStream answered to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream that stored the message.
    pub stream: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// True when JetStream had the same message id already (nothing new was stored).
    pub duplicate: bool,
}

pub(crate) struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    config: MessagingConfig,
    faults: Arc<FaultState>,
    stop: watch::Sender<bool>,
    consumers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    background: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The streams declared with [`Messaging::ensure_stream`], to declare again when the
    /// broker lost them.
    streams: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
}

/// A connection to NATS JetStream with the chassis's instrumentation. Cheap to clone.
///
/// Get one from [`crate::ServiceContext::messaging`] in a service (readiness and shutdown are
/// then wired in), or [`Messaging::connect`] alone.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("url", &self.inner.config.url)
            .field("state", &self.inner.client.connection_state())
            .finish_non_exhaustive()
    }
}

/// Delay before reconnect attempt `n`: quick first retries, at most a second apart, so a
/// restarted broker is found again within about a second.
fn reconnect_delay(attempts: usize) -> Duration {
    let ms = 50u64.saturating_mul(u64::try_from(attempts).unwrap_or(u64::MAX));
    Duration::from_millis(ms.clamp(50, 1000))
}

impl Messaging {
    /// Connects to `config.url` (reconnecting forever when the connection is lost later).
    pub async fn connect(config: &MessagingConfig) -> Result<Self, MessagingError> {
        Self::connect_with(config, Arc::new(FaultState::default()), None).await
    }

    pub(crate) async fn connect_with(
        config: &MessagingConfig,
        faults: Arc<FaultState>,
        name: Option<&str>,
    ) -> Result<Self, MessagingError> {
        config.validate().map_err(MessagingError::InvalidConfig)?;
        let url = config.url.clone().ok_or(MessagingError::NotConfigured)?;
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!(target: "aiods::messaging", "disconnected from NATS");
                    }
                    async_nats::Event::Connected => {
                        tracing::info!(target: "aiods::messaging", "connected to NATS");
                    }
                    other => {
                        tracing::debug!(target: "aiods::messaging", event = %other, "NATS event");
                    }
                }
            });
        if let Some(name) = name {
            options = options.name(name);
        }
        let client =
            options
                .connect(url.as_str())
                .await
                .map_err(|source| MessagingError::Connect {
                    url: url.clone(),
                    source,
                })?;
        names::describe();
        let js = jetstream::new(client.clone());
        let (stop, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                config: config.clone(),
                faults,
                stop,
                consumers: Default::default(),
                background: Default::default(),
                streams: Default::default(),
            }),
        })
    }

    /// The underlying NATS client, for what the chassis does not wrap.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context, for what the chassis does not wrap.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The settings in force.
    pub fn config(&self) -> &MessagingConfig {
        &self.inner.config
    }

    /// Whether the connection to the broker is up.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream `name` capturing `subjects` (file storage), or leaves it as it is
    /// when it exists.
    pub async fn ensure_stream(&self, name: &str, subjects: &[&str]) -> Result<(), MessagingError> {
        let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
        lock(&self.inner.streams).insert(name.to_owned(), subjects.clone());
        self.declare_stream(name, subjects).await
    }

    /// Declares the stream `name` again if it was declared with [`ensure_stream`](Self::ensure_stream).
    pub(crate) async fn redeclare_stream(&self, name: &str) -> Result<(), MessagingError> {
        let subjects = lock(&self.inner.streams).get(name).cloned();
        match subjects {
            Some(subjects) => self.declare_stream(name, subjects).await,
            None => Ok(()),
        }
    }

    async fn declare_stream(
        &self,
        name: &str,
        subjects: Vec<String>,
    ) -> Result<(), MessagingError> {
        self.inner
            .js
            .get_or_create_stream(jetstream::stream::Config {
                name: name.to_owned(),
                subjects,
                ..Default::default()
            })
            .await
            .map_err(|e| MessagingError::jetstream(format!("create stream {name}"), e))?;
        Ok(())
    }

    /// Publishes `event` to `subject` with its [`Event::message_id`] as `Nats-Msg-Id`; returns
    /// once JetStream stored it.
    pub async fn publish<E: Event + ?Sized>(
        &self,
        subject: &str,
        event: &E,
    ) -> Result<Published, MessagingError> {
        self.publish_with_id(subject, &event.message_id(), event)
            .await
    }

    /// Publishes `event` (as JSON) to `subject` with `id` as `Nats-Msg-Id`.
    pub async fn publish_with_id<E: Serialize + ?Sized>(
        &self,
        subject: &str,
        id: &str,
        event: &E,
    ) -> Result<Published, MessagingError> {
        let payload = serde_json::to_vec(event).map_err(|source| {
            let e = MessagingError::Encode {
                subject: subject.to_owned(),
                source,
            };
            count_sent(subject, Some(e.kind()));
            e
        })?;
        self.publish_bytes(subject, id, Bytes::from(payload), HeaderMap::new())
            .await
    }

    /// Publishes a ready payload with `id` as `Nats-Msg-Id`. A `traceparent` already in
    /// `headers` is the producer span's parent (the outbox relay passes the one stored with
    /// the event); otherwise the current context is.
    pub async fn publish_bytes(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<Published, MessagingError> {
        let parent = if headers.get("traceparent").is_some() {
            headers::extract(Some(&headers))
        } else {
            opentelemetry::Context::current()
        };
        let cx = crate::otel::tracer().map(|tracer| {
            let span = tracer
                .span_builder(format!("publish {subject}"))
                .with_kind(SpanKind::Producer)
                .with_attributes([
                    KeyValue::new("messaging.system", names::SYSTEM),
                    KeyValue::new("messaging.operation.type", "send"),
                    KeyValue::new("messaging.operation.name", "publish"),
                    KeyValue::new("messaging.destination.name", subject.to_owned()),
                    KeyValue::new("messaging.message.id", id.to_owned()),
                    KeyValue::new(
                        "messaging.message.body.size",
                        i64::try_from(payload.len()).unwrap_or(i64::MAX),
                    ),
                ])
                .start_with_context(tracer, &parent);
            parent.with_span(span)
        });
        headers::inject(cx.as_ref().unwrap_or(&parent), &mut headers);
        headers.insert(names::MSG_ID_HEADER, id);
        let result = self.send(subject, headers, payload).await;
        count_sent(subject, result.as_ref().err().map(MessagingError::kind));
        if let Some(cx) = cx {
            let span = cx.span();
            match &result {
                Ok(p) => {
                    if p.duplicate {
                        span.set_attribute(KeyValue::new("aiods.messaging.duplicate", true));
                    }
                }
                Err(e) => {
                    span.set_attribute(KeyValue::new("error.type", e.kind()));
                    span.set_status(Status::error(e.to_string()));
                }
            }
            span.end();
        }
        result
    }

    async fn send(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, MessagingError> {
        let failed = |e: &dyn std::fmt::Display| MessagingError::Publish {
            subject: subject.to_owned(),
            message: e.to_string(),
        };
        let ack = self
            .inner
            .js
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        Ok(Published {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Stops the consumers: no more fetching, messages received but not started are given
    /// back, in-flight handlers finish (and settle) within `within`, then the connection is
    /// flushed. Called by the chassis on SIGTERM; call it yourself when you connected alone.
    pub async fn drain(&self, within: Duration) {
        let started = Instant::now();
        self.inner.stop.send_replace(true);
        let consumers = std::mem::take(&mut *lock(&self.inner.consumers));
        for mut task in consumers {
            let left = within.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, &mut task).await.is_err() {
                tracing::warn!(
                    target: "aiods::messaging",
                    "a consumer did not finish its in-flight messages within the shutdown grace"
                );
                task.abort();
            }
        }
        for task in std::mem::take(&mut *lock(&self.inner.background)) {
            task.abort();
        }
        let left = within
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(200));
        let _ = tokio::time::timeout(left, self.inner.client.flush()).await;
        tracing::info!(target: "aiods::messaging", "messaging drained");
    }

    /// Whether [`drain`](Self::drain) has begun.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stop.borrow()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn count_sent(subject: &str, error: Option<&'static str>) {
    match error {
        None => metrics::counter!(
            names::SENT_MESSAGES,
            "messaging_system" => names::SYSTEM,
            "messaging_destination_name" => subject.to_owned(),
        )
        .increment(1),
        Some(kind) => metrics::counter!(
            names::SENT_MESSAGES,
            "messaging_system" => names::SYSTEM,
            "messaging_destination_name" => subject.to_owned(),
            "error_type" => kind,
        )
        .increment(1),
    }
}
