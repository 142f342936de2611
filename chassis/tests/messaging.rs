//! Messaging over a real `nats-server` (aiods-test's `NatsServer`): publish and consume,
//! settlement, dead letters, readiness, shutdown and faults.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aiods::messaging::{ConsumerSpec, Delivery, Event, Messaging, MessagingConfig};
use aiods_test::NatsServer;
use serde::{Deserialize, Serialize};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_is_consumed_and_acked_once() {
    let nats = NatsServer::start_new();
    let messaging = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    messaging
        .ensure_stream("ORDERS", &["orders.>"])
        .await
        .unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    messaging
        .consume(
            ConsumerSpec::durable("kitchen", "ORDERS", "orders.created"),
            move |d: Delivery<OrderCreated>| {
                let count = count.clone();
                async move {
                    assert_eq!(d.message_id(), Some(d.payload.id.as_str()));
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), aiods::Error>(())
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
    for _ in 0..100 {
        if seen.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    messaging.drain(Duration::from_secs(5)).await;
}
