//! The outbox store of the choreographed saga against SQLite and a real PostgreSQL: the order
//! and its messages commit together, and a change to an order that changed meanwhile writes
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use super::saga_store::OutboxSagaStore;
use crate::domain::{
    Inserted, NewOrder, OrderLine, OrderState, Recorded, SagaStore, Transition, announce,
};

async fn store(db: &TestDb) -> (Database, OutboxSagaStore, Arc<AtomicUsize>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    match &database {
        Database::Sqlite(pool) => aiods::messaging::outbox::create_tables(pool).await,
        Database::Postgres(pool) => aiods::messaging::outbox::create_tables(pool).await,
    }
    .expect("outbox tables");
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let store = OutboxSagaStore::new(
        database.clone(),
        db::repository(&database),
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    );
    (database, store, wakes)
}

async fn subjects(database: &Database) -> Vec<String> {
    let sql = "SELECT subject FROM outbox ORDER BY seq";
    match database {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("outbox")
}

fn new_order(key: &str) -> NewOrder {
    NewOrder {
        consumer_id: 1,
        restaurant_id: 1,
        lines: vec![OrderLine {
            menu_item_id: 11,
            name: "Curry".into(),
            quantity: 2,
            unit_price_cents: 1250,
        }],
        total_cents: 2500,
        idempotency_key: Some(key.into()),
        request_fingerprint: "fp".into(),
        created_at_ms: 1_000,
    }
}

async fn an_order_and_its_created_event_commit_together(db: &TestDb) {
    let (database, store, wakes) = store(db).await;
    let Inserted::Created(order) = store
        .insert_announced(&new_order("k"), announce)
        .await
        .expect("insert")
    else {
        panic!("the key was free")
    };
    assert_eq!(order.state, OrderState::ApprovalPending);
    assert_eq!(subjects(&database).await, ["orders.created"]);
    assert_eq!(count_rows(&database, "order_history").await.expect("n"), 1);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);

    let again = store
        .insert_announced(&new_order("k"), announce)
        .await
        .expect("insert");
    assert!(matches!(again, Inserted::Existing(o) if o.id == order.id));
    assert_eq!(
        subjects(&database).await,
        ["orders.created"],
        "announced once"
    );
    assert_eq!(count_rows(&database, "orders").await.expect("n"), 1);
}

async fn a_change_to_an_order_changed_meanwhile_writes_nothing(db: &TestDb) {
    let (database, store, _) = store(db).await;
    let Inserted::Created(read) = store
        .insert_announced(&new_order("k"), announce)
        .await
        .expect("insert")
    else {
        panic!("the key was free")
    };
    let mut approved = read.clone();
    approved.state = OrderState::Approved;
    approved.ticket_id = Some(4);
    approved.updated_at_ms = read.updated_at_ms + 1;
    let transitions = [
        Transition {
            state: OrderState::PaymentConfirmed,
            at_ms: approved.updated_at_ms,
            note: Some("paid".into()),
        },
        Transition {
            state: OrderState::Approved,
            at_ms: approved.updated_at_ms,
            note: Some("approved".into()),
        },
    ];
    let publish = [food_events::OrderMessage::approved(
        &crate::domain::details(&approved),
        4,
    )];
    assert_eq!(
        store
            .record(&read, &approved, &transitions, &publish)
            .await
            .expect("record"),
        Recorded::Saved
    );
    assert_eq!(
        subjects(&database).await,
        ["orders.created", "orders.approved"]
    );
    assert_eq!(count_rows(&database, "order_history").await.expect("n"), 3);

    // A second writer that read the order before that change.
    let mut rejected = read.clone();
    rejected.state = OrderState::Rejected;
    rejected.updated_at_ms = read.updated_at_ms + 1;
    let late = [Transition {
        state: OrderState::Rejected,
        at_ms: rejected.updated_at_ms,
        note: Some("too late".into()),
    }];
    assert_eq!(
        store
            .record(&read, &rejected, &late, &publish)
            .await
            .expect("record"),
        Recorded::Conflict
    );
    assert_eq!(subjects(&database).await.len(), 2, "nothing published");
    assert_eq!(count_rows(&database, "order_history").await.expect("n"), 3);
    let stored = db::repository(&database)
        .get(read.id)
        .await
        .expect("get")
        .expect("order");
    assert_eq!(stored.state, OrderState::Approved);
    assert_eq!(stored.ticket_id, Some(4));
}

food_delivery_db::backend_tests!(
    an_order_and_its_created_event_commit_together,
    a_change_to_an_order_changed_meanwhile_writes_nothing,
);
