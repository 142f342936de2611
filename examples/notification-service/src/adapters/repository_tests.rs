//! The outbox suite, written once and run against SQLite and against a real PostgreSQL started
//! by the tests (`food_delivery_db::backend_tests!`): both adapters must behave alike.

use std::collections::HashSet;
use std::sync::Arc;

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use crate::domain::{Email, Notification, OutboxRepository};

/// One replica of the service: its own pool on the test database (migrated as at start) and
/// the outbox the service would build over it.
async fn replica(db: &TestDb) -> (Database, Arc<dyn OutboxRepository>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    let outbox = db::repository(&database);
    (database, outbox)
}

fn notification(order_id: i64, n: i64) -> Notification {
    Notification {
        id: 0,
        order_id,
        consumer_id: 7,
        channel: "email".into(),
        email: Email {
            to: "alice@example.test".into(),
            subject: format!("Order {order_id}"),
            body: format!("message {n}"),
        },
        status: if n % 2 == 0 { "SENT" } else { "FAILED" }.into(),
        error: (n % 2 == 1).then(|| "mailbox full".to_owned()),
    }
}

async fn recorded_notifications_read_back_in_order(db: &TestDb) {
    let (database, outbox) = replica(db).await;
    database.ping().await.expect("the readiness query answers");
    assert!(outbox.for_order(1).await.expect("read").is_empty());
    let first = outbox.record(&notification(1, 0)).await.expect("record");
    let second = outbox.record(&notification(1, 1)).await.expect("record");
    outbox.record(&notification(2, 2)).await.expect("record");
    assert!(first.id > 0 && second.id > first.id, "{first:?} {second:?}");
    assert_eq!(
        first,
        Notification {
            id: first.id,
            ..notification(1, 0)
        }
    );
    let back = outbox.for_order(1).await.expect("read");
    assert_eq!(back, [first, second]);
}

async fn concurrent_replicas_lose_no_notification(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut tasks = Vec::new();
    for n in 0..40_i64 {
        let outbox = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            outbox.record(&notification(100 + n % 4, n)).await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let stored = task.await.expect("task").expect("recorded");
        assert!(ids.insert(stored.id), "id {} given twice", stored.id);
    }
    assert_eq!(count_rows(&database, "outbox").await.expect("count"), 40);
    let mut read = 0;
    for order_id in 100..104 {
        let back = first.for_order(order_id).await.expect("read");
        assert!(back.iter().all(|n| n.order_id == order_id));
        read += back.len();
    }
    assert_eq!(read, 40);
}

food_delivery_db::backend_tests!(
    recorded_notifications_read_back_in_order,
    concurrent_replicas_lose_no_notification,
);
