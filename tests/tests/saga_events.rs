//! End-to-end: the food-delivery saga as choreography (`AIODS_SAGA__MODE=events`, seed figure
//! 31): the five services as real processes with their own SQLite files, a real `nats-server`
//! with JetStream per test (free port, temporary store). Orders approved, rejected at each
//! step with compensation, expired by the reconciler and undone when a step runs late; a
//! duplicate event processed once, a poison event dead-lettered, a service killed with
//! SIGKILL mid-saga losing no order, an order's outbox row written while the broker was down
//! relayed after the order service crashed and restarted, and one trace from the HTTP request
//! through every consumer.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use aiods::messaging::async_nats::HeaderMap;
use aiods::messaging::{Messaging, MessagingConfig};
use aiods_e2e::{FoodDelivery, eventually, http_client, one_str, order_request};
use aiods_test::{NatsServer, OtlpReceiver};
use serde_json::{Value, json};

/// The five services in events mode against `nats`, plus `extra` settings.
fn start(nats: &NatsServer, extra: &[(&str, &str)]) -> FoodDelivery {
    let url = nats.url();
    let mut env = vec![
        ("AIODS_SAGA__MODE", "events"),
        ("AIODS_MESSAGING__URL", url.as_str()),
        ("AIODS_MESSAGING__BACKOFF_MS", "50,100,200"),
        ("AIODS_ORDERS__RECONCILE_INTERVAL_MS", "200"),
    ];
    env.extend_from_slice(extra);
    FoodDelivery::start(&aiods_e2e::food_binaries!(), &env).unwrap()
}

/// Places an order; events mode answers 202 with the order pending. Its id.
async fn place(fd: &FoodDelivery, body: &Value) -> i64 {
    let res = http_client()
        .post(format!("{}/orders", fd.order_url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{body:#}");
    assert_eq!(body["state"], "APPROVAL_PENDING", "{body:#}");
    body["id"].as_i64().unwrap()
}

async fn get_order(fd: &FoodDelivery, id: i64) -> Value {
    http_client()
        .get(format!("{}/orders/{id}", fd.order_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until order `id` is APPROVED or REJECTED; the order.
async fn settled(fd: &FoodDelivery, id: i64, within: Duration) -> Value {
    let found = eventually(within, || async move {
        let o = get_order(fd, id).await;
        (o["state"] == "APPROVED" || o["state"] == "REJECTED").then_some(o)
    })
    .await;
    match found {
        Some(o) => o,
        None => panic!(
            "order {id} not settled: {:#}\n--- order log:\n{}",
            get_order(fd, id).await,
            fd.order.output()
        ),
    }
}

async fn ticket_state(fd: &FoodDelivery, order_id: i64) -> Option<String> {
    one_str(
        &fd.db("kitchen").await.unwrap(),
        "SELECT state FROM tickets WHERE order_id = ?",
        order_id,
    )
    .await
    .unwrap()
}

async fn payment_state(fd: &FoodDelivery, order_id: i64) -> Option<String> {
    one_str(
        &fd.db("accounting").await.unwrap(),
        "SELECT state FROM authorizations WHERE order_id = ?",
        order_id,
    )
    .await
    .unwrap()
}

async fn notifications(fd: &FoodDelivery, order_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE order_id = ?")
        .bind(order_id)
        .fetch_one(&fd.db("notification").await.unwrap())
        .await
        .unwrap()
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
/// The sum of the service's samples named `name` with these labels.
async fn metric(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    aiops_platform::common::exposition::parse(&text)
        .unwrap()
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn states(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn orders_are_approved_or_rejected_at_each_step_with_compensation() {
    let nats = NatsServer::start_new();
    let fd = start(&nats, &[]);
    let approved = place(&fd, &order_request(1, &[(11, 2), (12, 1)])).await;
    let blocked = place(&fd, &order_request(3, &[(11, 1)])).await;
    let sold_out = place(&fd, &order_request(1, &[(11, 1), (13, 1)])).await;
    let declined = place(&fd, &order_request(5, &[(11, 1)])).await;
    let wait = Duration::from_secs(20);

    let o = settled(&fd, approved, wait).await;
    assert_eq!(o["state"], "APPROVED", "{o:#}");
    assert_eq!(o["total_cents"], 2 * 1250 + 350);
    assert_eq!(
        states(&o),
        [
            "APPROVAL_PENDING",
            "APPROVAL_PENDING",
            "CREATE_PENDING",
            "PAYMENT_CONFIRMED",
            "APPROVED"
        ],
        "{o:#}"
    );
    let ticket = eventually(wait, || async {
        (ticket_state(&fd, approved).await.as_deref() == Some("ACCEPTED")).then_some(())
    })
    .await;
    assert!(
        ticket.is_some(),
        "the kitchen confirms the approved order's ticket"
    );
    assert_eq!(
        payment_state(&fd, approved).await.as_deref(),
        Some("AUTHORIZED")
    );

    let o = settled(&fd, blocked, wait).await;
    assert_eq!(o["state"], "REJECTED", "{o:#}");
    assert_eq!(o["rejection"]["step"], "consumer");
    assert_eq!(o["rejection"]["code"], "consumer-blocked");
    assert_eq!(ticket_state(&fd, blocked).await, None);

    let o = settled(&fd, sold_out, wait).await;
    assert_eq!(o["state"], "REJECTED", "{o:#}");
    assert_eq!(o["rejection"]["step"], "kitchen");
    assert_eq!(o["rejection"]["code"], "item-unavailable");
    assert_eq!(ticket_state(&fd, sold_out).await, None);
    assert_eq!(payment_state(&fd, sold_out).await, None);

    let o = settled(&fd, declined, wait).await;
    assert_eq!(o["state"], "REJECTED", "{o:#}");
    assert_eq!(o["rejection"]["step"], "accounting");
    assert_eq!(o["rejection"]["code"], "payment-declined");
    assert_eq!(o["compensation_pending"], false);
    assert_eq!(
        payment_state(&fd, declined).await.as_deref(),
        Some("DECLINED")
    );
    let cancelled = eventually(wait, || async {
        (ticket_state(&fd, declined).await.as_deref() == Some("CANCELLED")).then_some(())
    })
    .await;
    assert!(
        cancelled.is_some(),
        "the declined order's ticket is cancelled: {:?}",
        ticket_state(&fd, declined).await
    );

    // The notification service told every customer the outcome.
    for id in [approved, blocked, sold_out, declined] {
        let told = eventually(wait, || async {
            (notifications(&fd, id).await == 1).then_some(())
        })
        .await;
        assert!(
            told.is_some(),
            "order {id}: {} notifications",
            notifications(&fd, id).await
        );
    }
}

#[tokio::test]
async fn an_order_nobody_answers_for_expires_and_steps_that_run_late_are_undone() {
    let nats = NatsServer::start_new();
    let mut fd = start(&nats, &[("AIODS_ORDERS__PENDING_TIMEOUT_MS", "1500")]);
    fd.consumer.kill();
    let id = place(&fd, &order_request(1, &[(11, 1)])).await;
    let o = settled(&fd, id, Duration::from_secs(15)).await;
    assert_eq!(o["state"], "REJECTED", "{o:#}");
    assert_eq!(o["rejection"]["step"], "reconciler");
    assert_eq!(o["rejection"]["failure"], "expired");

    // The consumer service comes back and verifies the order after all: the kitchen creates a
    // ticket and accounting authorizes the payment, and the order service undoes both.
    fd.consumer.restart(&[]).unwrap();
    let undone = eventually(Duration::from_secs(20), || async {
        let ticket = ticket_state(&fd, id).await;
        let payment = payment_state(&fd, id).await;
        (ticket.as_deref() == Some("CANCELLED") && payment.as_deref() == Some("VOIDED"))
            .then_some(())
    })
    .await;
    assert!(
        undone.is_some(),
        "ticket {:?}, payment {:?}; order {:#}",
        ticket_state(&fd, id).await,
        payment_state(&fd, id).await,
        get_order(&fd, id).await
    );
    let o = get_order(&fd, id).await;
    assert_eq!(
        o["state"], "REJECTED",
        "a rejected order stays rejected: {o:#}"
    );
}

#[tokio::test]
async fn a_duplicate_event_is_processed_once_and_a_poison_event_is_dead_lettered() {
    let nats = NatsServer::start_new();
    let fd = start(&nats, &[]);
    let id = place(&fd, &order_request(1, &[(11, 1)])).await;
    assert_eq!(
        settled(&fd, id, Duration::from_secs(20)).await["state"],
        "APPROVED"
    );
    let told = eventually(Duration::from_secs(10), || async {
        (notifications(&fd, id).await == 1).then_some(())
    })
    .await;
    assert!(told.is_some());

    let messaging = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    let js = messaging.jetstream();
    let stream = js.get_stream("ORDERS").await.unwrap();
    let approved = stream
        .get_last_raw_message_by_subject("orders.approved")
        .await
        .unwrap();

    // The same event again under another message id, so JetStream keeps it: the notification
    // service's idempotent consumer processes it once.
    let copy = messaging
        .publish_bytes(
            "orders.approved",
            "a-copy-with-another-message-id",
            approved.payload.clone(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert!(!copy.duplicate, "JetStream stored the copy");
    let skipped = eventually(Duration::from_secs(10), || async {
        let n = metric(
            &fd.notification.url(),
            "aiods_messaging_duplicates_total",
            &[("messaging_consumer_group_name", "notification-approved")],
        )
        .await;
        (n >= 1.0).then_some(())
    })
    .await;
    assert!(skipped.is_some(), "the copy was not counted as a duplicate");
    assert_eq!(notifications(&fd, id).await, 1, "the customer is told once");

    // Poison: not JSON, and JSON naming a meaningless order. Both go to the dead-letter
    // subject with the reason, at once, and the consumer lives on.
    for (msg_id, poison) in [
        ("poison-1", b"{not json".to_vec()),
        (
            "poison-2",
            serde_json::to_vec(&json!({
                "event_id": "x",
                "order": {"order_id": 0, "placed_at_ms": 1, "consumer_id": 1, "restaurant_id": 1,
                          "lines": [], "total_cents": 0}
            }))
            .unwrap(),
        ),
    ] {
        messaging
            .publish_bytes("orders.created", msg_id, poison.into(), HeaderMap::new())
            .await
            .unwrap();
    }
    let dead = eventually(Duration::from_secs(10), || async {
        let n = metric(
            &fd.consumer.url(),
            "aiods_messaging_dead_letters_total",
            &[
                ("messaging_consumer_group_name", "consumer-verify"),
                ("reason", "malformed"),
            ],
        )
        .await;
        (n >= 2.0).then_some(())
    })
    .await;
    assert!(dead.is_some(), "{}", fd.consumer.output());
    // Both are kept in the DLQ stream with the reason and the original subject.
    let dlq = js.get_stream("DLQ").await.unwrap();
    let mut reasons = Vec::new();
    for sequence in 1..=8 {
        let Ok(m) = dlq.get_raw_message(sequence).await else {
            break;
        };
        assert_eq!(m.subject.as_str(), "dlq.ORDERS.consumer-verify");
        let header = |name: &str| {
            m.headers
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        assert_eq!(header("Aiods-Dlq-Subject"), "orders.created");
        reasons.push(header("Aiods-Dlq-Reason"));
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("order_id must be positive")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("key must be a string")),
        "{reasons:?}"
    );

    // The consumer service still works.
    let next = place(&fd, &order_request(1, &[(12, 1)])).await;
    assert_eq!(
        settled(&fd, next, Duration::from_secs(20)).await["state"],
        "APPROVED"
    );
}

#[tokio::test]
async fn a_service_killed_mid_saga_loses_no_order() {
    let nats = NatsServer::start_new();
    // Messages the killed kitchen had received and not acknowledged are delivered again after
    // the ack wait (the chassis's default, 3 s).
    let mut fd = start(&nats, &[]);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(place(&fd, &order_request(1, &[(11, 1)])).await);
    }
    // SIGKILL while the first orders are on their way; orders keep coming (the order service
    // prices them from the kitchen's last menu) and wait in the kitchen's stream.
    fd.kitchen.kill();
    for _ in 0..4 {
        ids.push(place(&fd, &order_request(1, &[(12, 2)])).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    fd.kitchen.restart(&[]).unwrap();
    for id in ids {
        let o = settled(&fd, id, Duration::from_secs(30)).await;
        assert_eq!(o["state"], "APPROVED", "order {id}: {o:#}");
        let accepted = eventually(Duration::from_secs(10), || async {
            (ticket_state(&fd, id).await.as_deref() == Some("ACCEPTED")).then_some(())
        })
        .await;
        assert!(accepted.is_some(), "order {id}: one ticket, confirmed");
    }
}

#[tokio::test]
async fn an_order_placed_while_the_broker_is_down_is_relayed_after_a_crash_and_restart() {
    let mut nats = NatsServer::start_new();
    let mut fd = start(&nats, &[]);
    nats.stop();
    // The order and its `orders.created` commit together; the relay cannot publish it.
    let id = place(&fd, &order_request(1, &[(11, 1)])).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&fd.db("order").await.unwrap())
        .await
        .unwrap();
    assert_eq!(pending, 1, "orders.created waits in the outbox");
    fd.order.kill();
    nats.start();
    fd.order.restart(&[]).unwrap();
    let o = settled(&fd, id, Duration::from_secs(30)).await;
    assert_eq!(o["state"], "APPROVED", "{o:#}");
}

/// One order is one trace: the HTTP request, the outbox relay's publish, and the process span
/// of every consumer on the way (consumer, kitchen, accounting, order, notification), as a
/// real OTLP receiver gets them.
#[tokio::test(flavor = "multi_thread")]
async fn one_trace_from_the_http_request_through_every_consumer() {
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start_new();
    let endpoint = receiver.endpoint();
    let fd = start(
        &nats,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ],
    );
    let id = place(&fd, &order_request(1, &[(11, 1)])).await;
    assert_eq!(
        settled(&fd, id, Duration::from_secs(20)).await["state"],
        "APPROVED"
    );

    let wanted = [
        ("order-service", "POST /orders"),
        ("order-service", "publish orders.created"),
        ("consumer-service", "process orders.created"),
        ("kitchen-service", "process consumers.verified"),
        ("accounting-service", "process kitchen.ticket_created"),
        ("order-service", "process accounting.authorized"),
        ("notification-service", "process orders.approved"),
        ("kitchen-service", "process orders.approved"),
    ];
    let covered = |spans: &[aiods_test::ReceivedSpan]| {
        let Some(root) = spans
            .iter()
            .find(|s| s.service == "order-service" && s.span.name == "POST /orders")
        else {
            return false;
        };
        let trace = root.trace_id();
        wanted.iter().all(|(service, name)| {
            spans
                .iter()
                .any(|s| s.trace_id() == trace && s.service == *service && s.span.name == *name)
        })
    };
    let spans = receiver.wait_spans(Duration::from_secs(20), covered).await;
    assert!(
        covered(&spans),
        "no trace covers {wanted:?}; spans: {:#?}",
        spans
            .iter()
            .map(|s| (s.trace_id(), s.service.clone(), s.span.name.clone()))
            .collect::<Vec<_>>()
    );
}
