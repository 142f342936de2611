//! Messaging over a real `nats-server` (aiods-test's `NatsServer`, one per test): publish and
//! consume, trace context, settlement, dead letters, panics, the outbox and the idempotent
//! consumer, readiness while the broker is down, SIGTERM draining and the consumer faults.
//!
//! Most tests run `examples/messaging_service.rs` as a real process; the outbox and claim
//! tests run in the test process.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiods::messaging::async_nats::{self, jetstream};
use aiods::messaging::idempotency::{self, Claim};
use aiods::messaging::outbox::{self, OutboxRelay};
use aiods::messaging::sqlx::{self, SqlitePool, sqlite::SqlitePoolOptions};
use aiods::messaging::{ConsumerSpec, Delivery, Event, Messaging, MessagingConfig};
use aiods_test::{NatsServer, OtlpReceiver, SentryReceiver};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Sample, Service, client, parse_exposition, promtool_check};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderCreated {
    id: String,
    total: u64,
}

impl Event for OrderCreated {
    fn message_id(&self) -> String {
        self.id.clone()
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `f` every 50 ms until it gives `Some`, or panics with `what` after [`TIMEOUT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn messaging_service(nats: &NatsServer, db: &std::path::Path, env: &[(&str, &str)]) -> Service {
    let url = nats.url();
    let db = format!("sqlite://{}?mode=rwc", db.display());
    let mut all: Vec<(&str, &str)> = vec![
        ("AIODS_MESSAGING__URL", url.as_str()),
        ("AIODS_MESSAGING__BACKOFF_MS", "50"),
        ("AIODS_MESSAGING__STATS_INTERVAL_MS", "100"),
        ("AIODS_PROBE__DB", db.as_str()),
        ("AIODS_HEALTH_CACHE", "0s"),
    ];
    all.extend_from_slice(env);
    Service::start_example("messaging_service", &all)
}

async fn metrics(svc: &Service) -> Vec<Sample> {
    let text = client()
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_exposition(&text)
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

async fn post_order(svc: &Service, id: &str, action: &str) {
    let res = client()
        .post(svc.url("/orders"))
        .json(&json!({"id": id, "action": action}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

async fn handled(svc: &Service) -> Vec<(String, i64)> {
    client()
        .get(svc.url("/handled"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The service's metrics once `name{labels}` reaches `at_least` (waits for it).
async fn metrics_at_least(
    svc: &Service,
    what: &str,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> Vec<Sample> {
    eventually(what, || async {
        let m = metrics(svc).await;
        (value(&m, name, labels) >= at_least).then_some(m)
    })
    .await
}

/// Waits until the service's handler has handled an order.
async fn something_handled(svc: &Service, what: &str) {
    eventually(what, || async {
        (!handled(svc).await.is_empty()).then_some(())
    })
    .await;
}

/// Waits until the service's handler has handled order `id`.
async fn handled_eventually(svc: &Service, what: &str, id: &str) {
    eventually(what, || async {
        handled(svc)
            .await
            .iter()
            .any(|(handled, _)| handled == id)
            .then_some(())
    })
    .await;
}

async fn test_client(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(nats.url()).await.unwrap())
}

/// The dead letters on `dlq.ORDERS.kitchen`, read by a consumer of the test's own.
async fn dead_letters(js: &jetstream::Context, at_least: usize) -> Vec<jetstream::Message> {
    let stream = js.get_stream("DLQ").await.unwrap();
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            "test-reader",
            jetstream::consumer::pull::Config {
                durable_name: Some("test-reader".into()),
                filter_subject: "dlq.ORDERS.kitchen".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < at_least && Instant::now() < deadline {
        use futures_util::StreamExt as _;
        let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            m.ack().await.unwrap();
            out.push(m);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

fn header<'a>(m: &'a jetstream::Message, key: &str) -> Option<&'a str> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(key))
        .map(async_nats::HeaderValue::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_is_consumed_once_and_a_republished_id_is_dropped() {
    let nats = NatsServer::start_new();
    let messaging = orders_stream(&nats).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    messaging
        .consume(
            ConsumerSpec::durable("kitchen", "ORDERS", "orders.created"),
            move |d: Delivery<OrderCreated>| {
                let count = count.clone();
                async move {
                    if d.message_id() != Some(d.payload.id.as_str()) {
                        return Err(format!("message id {:?}", d.message_id()));
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
    // A wildcard filter subject works too (one filter per consumer on NATS 2.9).
    let audited = Arc::new(AtomicUsize::new(0));
    let audit = audited.clone();
    messaging
        .consume(
            ConsumerSpec::durable("audit", "ORDERS", "orders.>").concurrency(1),
            move |_: Delivery<serde_json::Value>| {
                let audit = audit.clone();
                async move {
                    audit.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    let event = OrderCreated {
        id: "o-1".into(),
        total: 12,
    };
    let first = messaging.publish("orders.created", &event).await.unwrap();
    assert!(!first.duplicate);
    let again = messaging.publish("orders.created", &event).await.unwrap();
    assert!(again.duplicate, "same id: JetStream drops it");
    eventually("the event consumed", || async {
        (seen.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    // Acked: nothing left for the consumer, nothing redelivered.
    let js = test_client(&nats).await;
    let info = eventually("the ack", || async {
        let mut c: jetstream::consumer::PullConsumer = js
            .get_stream("ORDERS")
            .await
            .unwrap()
            .get_consumer("kitchen")
            .await
            .unwrap();
        let info = c.info().await.unwrap().clone();
        (info.ack_floor.stream_sequence == 1).then_some(info)
    })
    .await;
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    eventually("the audit consumer's copy", || async {
        (audited.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    messaging.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_stream_the_broker_lost_is_made_again_and_consumes() {
    let nats = NatsServer::start_new();
    let config = MessagingConfig {
        stats_interval_ms: 100,
        ..MessagingConfig::with_url(nats.url())
    };
    let messaging = Messaging::connect(&config).await.unwrap();
    messaging
        .ensure_stream("ORDERS", &["orders.>"])
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    messaging
        .consume(
            ConsumerSpec::durable("kitchen", "ORDERS", "orders.created"),
            move |d: Delivery<OrderCreated>| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(d.payload.id);
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    // The broker loses the stream, its consumers and the dead-letter stream (as a broker
    // restarted on an empty store would).
    let js = test_client(&nats).await;
    js.delete_stream("ORDERS").await.unwrap();
    js.delete_stream("DLQ").await.unwrap();
    let event = OrderCreated {
        id: "o-after-loss".into(),
        total: 3,
    };
    eventually("the stream declared again", || async {
        messaging.publish("orders.created", &event).await.ok()
    })
    .await;
    eventually("the event consumed by the consumer made again", || async {
        seen.lock()
            .unwrap()
            .contains(&"o-after-loss".to_owned())
            .then_some(())
    })
    .await;
    assert!(
        js.get_stream("DLQ").await.is_ok(),
        "the DLQ stream is back too"
    );
    messaging.drain(Duration::from_secs(2)).await;
}

async fn sqlite(path: &std::path::Path) -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    outbox::create_tables(&pool).await.unwrap();
    pool
}

/// Whether a staging transaction is committed or rolled back.
enum Outcome {
    Committed,
    RolledBack,
}

/// Stages `orders.created` for order `id` in a transaction ended as `outcome` says.
async fn stage_order(pool: &SqlitePool, id: &str, total: u64, outcome: Outcome) {
    let mut tx = pool.begin().await.unwrap();
    let event = OrderCreated {
        id: id.into(),
        total,
    };
    outbox::stage(&mut tx, "orders.created", &event)
        .await
        .unwrap();
    match outcome {
        Outcome::Committed => tx.commit().await.unwrap(),
        Outcome::RolledBack => tx.rollback().await.unwrap(),
    }
}

/// A client of `nats` with the stream `ORDERS` (`orders.>`) declared.
async fn orders_stream(nats: &NatsServer) -> Messaging {
    let messaging = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    messaging
        .ensure_stream("ORDERS", &["orders.>"])
        .await
        .unwrap();
    messaging
}

async fn outbox_rows(pool: &SqlitePool) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap();
    n
}

async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_staged_before_a_crash_is_relayed_once_by_the_next_relay() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders.db");
    let js = test_client(&nats).await;
    {
        let pool = sqlite(&db).await;
        let messaging = orders_stream(&nats).await;
        // Rolled back: the event goes with the state change, not without it.
        stage_order(&pool, "rolled-back", 1, Outcome::RolledBack).await;
        stage_order(&pool, "o-7", 7, Outcome::Committed).await;
        assert_eq!(outbox_rows(&pool).await, 1);
        // The process "crashes" here: no relay ever ran.
        pool.close().await;
        drop(messaging);
    }
    assert_eq!(stream_messages(&js, "ORDERS").await, 0);

    let pool = sqlite(&db).await;
    let messaging = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    let relay = OutboxRelay::new(messaging.clone(), pool.clone());
    assert_eq!(relay.relay_pending().await.unwrap(), 1);
    assert_eq!(outbox_rows(&pool).await, 0);
    assert_eq!(stream_messages(&js, "ORDERS").await, 1);
    let stored = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(
        stored
            .headers
            .get("Nats-Msg-Id")
            .map(async_nats::HeaderValue::as_str),
        Some("o-7")
    );
    let payload: OrderCreated = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(payload.total, 7);

    // A crash after the publish and before the delete: the row is relayed again, and
    // JetStream drops it as a duplicate.
    stage_order(&pool, "o-7", 7, Outcome::Committed).await;
    assert_eq!(relay.relay_pending().await.unwrap(), 1);
    assert_eq!(outbox_rows(&pool).await, 0);
    assert_eq!(stream_messages(&js, "ORDERS").await, 1, "deduplicated");
    messaging.drain(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_once_per_consumer_and_rolls_back_with_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite(&dir.path().join("claims.db")).await;
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "m-1").await.unwrap(),
        Claim::First
    );
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "m-1").await.unwrap(),
        Claim::First,
        "the rolled-back claim did not count"
    );
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "m-1").await.unwrap(),
        Claim::Duplicate
    );
    assert_eq!(
        idempotency::claim(&mut tx, "accounting", "m-1")
            .await
            .unwrap(),
        Claim::First,
        "another consumer processes it too"
    );
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_the_request_through_the_consumer() {
    let nats = NatsServer::start_new();
    let otlp = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = otlp.endpoint();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    post_order(&svc, "o-trace", "ok").await;
    let spans = otlp
        .wait_spans(TIMEOUT, |spans| {
            spans
                .iter()
                .any(|s| s.span.name == "process orders.created")
        })
        .await;
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no span {name}; got {:?}",
                    spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
                )
            })
    };
    let server = find("POST /orders");
    let producer = find("publish orders.created");
    let consumer = find("process orders.created");
    assert_eq!(producer.trace_id(), server.trace_id());
    assert_eq!(
        consumer.trace_id(),
        server.trace_id(),
        "one order, one trace"
    );
    assert_eq!(producer.parent_span_id(), server.span_id());
    assert_eq!(consumer.parent_span_id(), producer.span_id());
    // SpanKind: PRODUCER = 4, CONSUMER = 5.
    assert_eq!(producer.span.kind, 4);
    assert_eq!(consumer.span.kind, 5);
    for span in [producer, consumer] {
        assert_eq!(span.attr("messaging.system").as_deref(), Some("nats"));
        assert_eq!(
            span.attr("messaging.destination.name").as_deref(),
            Some("orders.created")
        );
        assert_eq!(
            span.attr("messaging.message.id").as_deref(),
            Some("o-trace")
        );
    }
    assert_eq!(
        consumer.attr("messaging.consumer.group.name").as_deref(),
        Some("kitchen")
    );
    assert_eq!(
        consumer.attr("messaging.nats.delivery_count").as_deref(),
        Some("1")
    );
    // The handler's log line carries the trace too.
    let line = svc
        .wait_for_log(|v| v["message"] == "order handled", TIMEOUT)
        .expect("the handler logged");
    assert_eq!(line["trace_id"].as_str(), Some(server.trace_id().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_naked_then_dead_lettered_with_the_reason_and_counted() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[("AIODS_MESSAGING__MAX_DELIVER", "3")],
    );
    // The caller's trace context is carried through to the dead letter.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = client()
        .post(svc.url("/orders"))
        .header("traceparent", traceparent)
        .json(&json!({"id": "o-fire", "action": "fail"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let js = test_client(&nats).await;
    let letters = dead_letters(&js, 1).await;
    assert_eq!(letters.len(), 1, "one dead letter");
    let letter = &letters[0];
    assert_eq!(letter.subject.as_str(), "dlq.ORDERS.kitchen");
    let reason = header(letter, "Aiods-Dlq-Reason").unwrap();
    assert!(reason.contains("the kitchen is on fire"), "{reason}");
    assert_eq!(
        header(letter, "Aiods-Dlq-Reason-Kind"),
        Some("handler_error")
    );
    assert_eq!(header(letter, "Aiods-Dlq-Subject"), Some("orders.created"));
    assert_eq!(header(letter, "Aiods-Dlq-Deliveries"), Some("3"));
    assert_eq!(header(letter, "Aiods-Dlq-Msg-Id"), Some("o-fire"));
    assert!(
        header(letter, "traceparent")
            .unwrap()
            .contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "same trace"
    );
    let order: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(order["id"], "o-fire", "the original payload");

    let consumed = "messaging_client_consumed_messages_total";
    let m = metrics_at_least(
        &svc,
        "the dead letter counted",
        "aiods_messaging_dead_letters_total",
        &[],
        1.0,
    )
    .await;
    let group = ("messaging_consumer_group_name", "kitchen");
    assert_eq!(
        value(
            &m,
            "aiods_messaging_dead_letters_total",
            &[
                group,
                ("reason", "handler_error"),
                ("messaging_system", "nats")
            ]
        ),
        1.0
    );
    assert_eq!(value(&m, consumed, &[group, ("outcome", "nak")]), 2.0);
    assert_eq!(
        value(&m, consumed, &[group, ("outcome", "dead_letter")]),
        1.0
    );
    assert_eq!(value(&m, consumed, &[("outcome", "ack")]), 0.0);
    assert_eq!(
        value(
            &m,
            "messaging_process_duration_seconds_count",
            &[group, ("messaging_destination_name", "orders.created")]
        ),
        3.0
    );
    assert!(handled(&svc).await.is_empty());
    // Every messaging family in use, and the exposition still passes promtool.
    let text = client()
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "messaging_client_sent_messages_total",
        "aiods_messaging_consumer_pending",
        "aiods_messaging_consumer_ack_pending",
        "aiods_messaging_consumer_redelivered",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool: {said}\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_at_once_and_counted() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(&nats, &dir.path().join("db"), &[]);
    let js = test_client(&nats).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "garbage-1");
    js.publish_with_headers("orders.created", headers, "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let letters = dead_letters(&js, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        header(&letters[0], "Aiods-Dlq-Reason-Kind"),
        Some("malformed")
    );
    assert_eq!(header(&letters[0], "Aiods-Dlq-Deliveries"), Some("1"));
    assert!(
        header(&letters[0], "Aiods-Dlq-Reason")
            .unwrap()
            .starts_with("malformed: ")
    );
    assert_eq!(&letters[0].payload[..], b"{not json");
    let m = eventually("the malformed message counted", || async {
        let m = metrics(&svc).await;
        (value(
            &m,
            "aiods_messaging_dead_letters_total",
            &[("reason", "malformed")],
        ) == 1.0)
            .then_some(m)
    })
    .await;
    assert_eq!(
        value(
            &m,
            "messaging_client_consumed_messages_total",
            &[("outcome", "nak")]
        ),
        0.0,
        "never retried"
    );
    // The consumer goes on.
    post_order(&svc, "o-after", "ok").await;
    something_handled(&svc, "the next order handled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_an_exception_and_a_nak_and_the_service_lives_on() {
    let nats = NatsServer::start_new();
    let sentry = SentryReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dsn = sentry.dsn();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[("SENTRY_DSN", dsn.as_str())],
    );
    post_order(&svc, "o-panic", "panic").await;
    let m = metrics_at_least(
        &svc,
        "the panic nak'ed",
        "messaging_client_consumed_messages_total",
        &[("outcome", "nak")],
        1.0,
    )
    .await;
    assert!(value(&m, "aiods_exceptions_total", &[("type", "panic")]) >= 1.0);
    let envelopes = sentry
        .wait(TIMEOUT, |e| e.iter().any(|e| e.event().is_some()))
        .await;
    let event = envelopes
        .iter()
        .find_map(|e| e.event())
        .expect("an exception event");
    assert_eq!(event["exception"]["values"][0]["type"], "panic");
    assert!(
        event["exception"]["values"][0]["value"]
            .as_str()
            .unwrap()
            .contains("panicked on purpose")
    );
    assert_eq!(event["transaction"], "process orders.created");
    // Alive, and still consuming.
    let live = client().get(svc.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    post_order(&svc, "o-fine", "ok").await;
    handled_eventually(&svc, "the next order handled", "o-fine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_the_commit_is_processed_once() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(&nats, &dir.path().join("db"), &[]);
    post_order(&svc, "o-twice", "fail_after_commit").await;
    let m = metrics_at_least(
        &svc,
        "the redelivery acked",
        "messaging_client_consumed_messages_total",
        &[("outcome", "ack")],
        1.0,
    )
    .await;
    assert_eq!(
        value(
            &m,
            "messaging_client_consumed_messages_total",
            &[("outcome", "nak")]
        ),
        1.0,
        "the first delivery failed after its commit"
    );
    assert_eq!(
        value(
            &m,
            "aiods_messaging_duplicates_total",
            &[("messaging_consumer_group_name", "kitchen")]
        ),
        1.0
    );
    assert_eq!(handled(&svc).await, vec![("o-twice".to_owned(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_is_relayed_by_the_service_with_the_request_trace() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let res = client()
        .post(svc.url("/outbox"))
        .json(&json!({"id": "o-box", "action": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    handled_eventually(&svc, "the staged order consumed", "o-box").await;
    let spans = otlp
        .wait_spans(TIMEOUT, |spans| {
            spans
                .iter()
                .any(|s| s.span.name == "process orders.created")
        })
        .await;
    let server = spans
        .iter()
        .find(|s| s.span.name == "POST /outbox")
        .unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.span.name == "process orders.created")
        .unwrap();
    assert_eq!(consumer.trace_id(), server.trace_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_written_before_a_kill_is_relayed_after_the_restart() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut svc = messaging_service(&nats, &db, &[("AIODS_PROBE__RELAY", "false")]);
    let res = client()
        .post(svc.url("/outbox"))
        .json(&json!({"id": "o-crash", "action": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    svc.signal("KILL");
    svc.wait_exit(TIMEOUT).expect("killed");
    let js = test_client(&nats).await;
    assert_eq!(stream_messages(&js, "ORDERS").await, 0, "never relayed");
    let svc = messaging_service(&nats, &db, &[]);
    handled_eventually(
        &svc,
        "the row relayed and consumed after the restart",
        "o-crash",
    )
    .await;
    assert_eq!(stream_messages(&js, "ORDERS").await, 1);
}

async fn readiness(svc: &Service) -> (u16, serde_json::Value) {
    let res = client().get(svc.url("/health/ready")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

fn nats_check(body: &serde_json::Value) -> Option<&str> {
    body["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "nats")?["status"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_down_while_the_broker_is_down_and_up_after_it_restarts() {
    let mut nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(&nats, &dir.path().join("db"), &[]);
    let (status, body) = readiness(&svc).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(nats_check(&body), Some("UP"));

    nats.stop();
    let body = eventually("readiness DOWN", || async {
        let (status, body) = readiness(&svc).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(nats_check(&body), Some("DOWN"), "{body}");
    let live = client().get(svc.url("/health/live")).send().await.unwrap();
    assert_eq!(
        live.status(),
        200,
        "a broker outage is not a reason to restart"
    );

    nats.start();
    eventually("readiness UP again", || async {
        let (status, body) = readiness(&svc).await;
        (status == 200 && nats_check(&body) == Some("UP")).then_some(())
    })
    .await;
    // And the consumer picked up where it was.
    post_order(&svc, "o-back", "ok").await;
    something_handled(&svc, "an order consumed after the restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_acks_the_in_flight_message_then_exits_0() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut svc = messaging_service(&nats, &db, &[]);
    post_order(&svc, "o-slow", "sleep:1500").await;
    svc.wait_for_log(|v| v["message"] == "handler sleeping", TIMEOUT)
        .expect("the handler started");
    svc.signal("TERM");
    let status = svc.wait_exit(TIMEOUT).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", svc.stderr.lock().unwrap());
    assert!(
        svc.wait_for_log(|v| v["message"] == "order handled", Duration::from_secs(1))
            .is_some(),
        "the in-flight message finished"
    );
    let js = test_client(&nats).await;
    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_consumer("kitchen")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 1, "acked before the exit");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_redelivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_running_past_the_ack_wait_is_not_delivered_again() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[("AIODS_MESSAGING__ACK_WAIT_MS", "400")],
    );
    post_order(&svc, "o-long", "sleep:1500").await;
    something_handled(&svc, "the long order handled").await;
    // Longer than one more ack wait: a redelivery would have started by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let starts = svc
        .json_lines()
        .iter()
        .filter(|v| v["message"] == "handler sleeping")
        .count();
    assert_eq!(starts, 1, "delivered once");
    let m = metrics(&svc).await;
    assert_eq!(
        value(
            &m,
            "messaging_client_consumed_messages_total",
            &[("outcome", "ack")]
        ),
        1.0
    );
    assert_eq!(value(&m, "aiods_messaging_duplicates_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_stall_fault_grows_pending_with_no_acks_until_cleared() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[
            ("AIODS_FAULTS__ENABLED", "true"),
            ("AIODS_FAULTS__TOKEN", "t0ken"),
        ],
    );
    let set = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth("t0ken")
        .json(&json!({"consumer_stall": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let status: serde_json::Value = set.json().await.unwrap();
    assert_eq!(status["consumer_stall"], true);
    let js = test_client(&nats).await;
    for i in 0..40 {
        let order = json!({"id": format!("o-{i}"), "action": "ok"});
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("o-{i}").as_str());
        js.publish_with_headers(
            "orders.created",
            headers,
            serde_json::to_vec(&order).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let group = ("messaging_consumer_group_name", "kitchen");
    let m = eventually("pending and ack pending reported", || async {
        let m = metrics(&svc).await;
        let pending = value(&m, "aiods_messaging_consumer_pending", &[group]);
        let ack_pending = value(&m, "aiods_messaging_consumer_ack_pending", &[group]);
        (ack_pending >= 1.0 && pending + ack_pending >= 40.0).then_some(m)
    })
    .await;
    assert!(value(&m, "aiods_messaging_consumer_pending", &[group]) > 0.0);
    assert_eq!(
        value(&m, "messaging_client_consumed_messages_total", &[group]),
        0.0,
        "nothing acked or nacked"
    );
    // What the wedged instance holds: its handlers' messages and the one waiting for a slot.
    let held = value(&m, "aiods_messaging_consumer_in_flight", &[group]);
    assert!(held >= 1.0, "in flight while stalled: {held}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        handled(&svc).await.is_empty(),
        "HTTP answers; nothing handled"
    );

    let clear = client()
        .delete(svc.url("/admin/faults"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), 200);
    eventually("all orders handled after the fault is cleared", || async {
        (handled(&svc).await.len() == 40).then_some(())
    })
    .await;
    eventually("pending back to 0", || async {
        let m = metrics(&svc).await;
        (value(&m, "aiods_messaging_consumer_pending", &[group]) == 0.0
            && value(&m, "aiods_messaging_consumer_ack_pending", &[group]) == 0.0
            && value(&m, "aiods_messaging_consumer_in_flight", &[group]) == 0.0)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_error_rate_fault_fails_handlers_into_the_dead_letter_subject() {
    let nats = NatsServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let svc = messaging_service(
        &nats,
        &dir.path().join("db"),
        &[
            ("AIODS_FAULTS__ENABLED", "true"),
            ("AIODS_FAULTS__TOKEN", "t0ken"),
            ("AIODS_MESSAGING__MAX_DELIVER", "2"),
        ],
    );
    let bad = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth("t0ken")
        .json(&json!({"consumer_error_rate": 1.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let set = client()
        .post(svc.url("/admin/faults"))
        .bearer_auth("t0ken")
        .json(&json!({"consumer_error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    post_order(&svc, "o-unlucky", "ok").await;
    let js = test_client(&nats).await;
    let letters = dead_letters(&js, 1).await;
    assert_eq!(letters.len(), 1);
    assert!(
        header(&letters[0], "Aiods-Dlq-Reason")
            .unwrap()
            .contains("injected fault")
    );
    assert!(handled(&svc).await.is_empty());
}

#[test]
fn without_a_broker_url_the_service_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
    let out = std::process::Command::new(support::example_path("messaging_service"))
        .env("AIODS_PORT", "0")
        .env("AIODS_PROBE__DB", &db)
        .env_remove("AIODS_MESSAGING__URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("messaging.url"), "{stderr}");
}
