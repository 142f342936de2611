//! The repository suite, written once and run against SQLite and against a real PostgreSQL
//! started by the tests (`food_delivery_db::backend_tests!`): both adapters must behave alike,
//! including when two replicas (two pools) write one database at once.

use std::collections::HashMap;
use std::sync::Arc;

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use crate::domain::{
    Inserted, NewOrder, Order, OrderLine, OrderRepository, OrderState, Rejection, SagaStep,
    StepFailure, Transition,
};

/// One replica of the service: its own pool on the test database (migrated as at start) and
/// the repository the service would build over it.
async fn replica(db: &TestDb) -> (Database, Arc<dyn OrderRepository>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    let repository = db::repository(&database);
    (database, repository)
}

fn new_order(key: Option<&str>, at_ms: i64) -> NewOrder {
    NewOrder {
        consumer_id: 1,
        restaurant_id: 2,
        lines: vec![
            OrderLine {
                menu_item_id: 21,
                name: "Margherita".into(),
                quantity: 2,
                unit_price_cents: 900,
            },
            OrderLine {
                menu_item_id: 23,
                name: "Tiramisu".into(),
                quantity: 1,
                unit_price_cents: 550,
            },
        ],
        total_cents: 2350,
        idempotency_key: key.map(str::to_owned),
        request_fingerprint: "fp-1".into(),
        created_at_ms: at_ms,
    }
}

async fn created(repo: &dyn OrderRepository, new: &NewOrder) -> Order {
    match repo.insert(new).await.expect("insert") {
        Inserted::Created(order) => order,
        Inserted::Existing(order) => panic!("order {} existed already", order.id),
    }
}

/// Moves `order` to `state` at `at_ms` with `note`, as the saga does.
async fn advance(
    repo: &dyn OrderRepository,
    order: &mut Order,
    state: OrderState,
    at_ms: i64,
    note: &str,
) -> Result<(), crate::domain::RepositoryError> {
    let transition = Transition {
        state,
        at_ms,
        note: Some(note.into()),
    };
    order.state = state;
    order.updated_at_ms = at_ms;
    repo.update(order, &transition).await?;
    order.history.push(transition);
    Ok(())
}

async fn an_order_is_stored_updated_and_found_again(db: &TestDb) {
    let (database, repo) = replica(db).await;
    database.ping().await.expect("the readiness query answers");
    let mut order = created(&*repo, &new_order(Some("key-1"), 1_000)).await;
    assert_eq!(order.state, OrderState::ApprovalPending);
    assert_eq!(order.lines, new_order(None, 0).lines);
    assert_eq!((order.total_cents, order.updated_at_ms), (2350, 1_000));
    assert_eq!(order.history.len(), 1);
    assert_eq!(order.history[0].note.as_deref(), Some("order received"));
    assert_eq!(repo.get(order.id).await.expect("get"), Some(order.clone()));
    assert_eq!(
        repo.find_by_idempotency_key("key-1").await.expect("find"),
        Some(order.clone())
    );
    assert!(
        repo.find_by_idempotency_key("nope")
            .await
            .expect("find")
            .is_none()
    );
    match repo
        .insert(&new_order(Some("key-1"), 2_000))
        .await
        .expect("insert")
    {
        Inserted::Existing(existing) => assert_eq!(existing, order),
        Inserted::Created(o) => panic!("key-1 stored twice: order {}", o.id),
    }
    // Orders without a key never collide.
    let keyless_a = created(&*repo, &new_order(None, 1_100)).await;
    let keyless_b = created(&*repo, &new_order(None, 1_200)).await;
    assert_ne!(keyless_a.id, keyless_b.id);

    order.ticket_id = Some(77);
    advance(
        &*repo,
        &mut order,
        OrderState::CreatePending,
        1_500,
        "ticket 77",
    )
    .await
    .expect("update");
    order.rejection = Some(Rejection {
        step: SagaStep::Accounting,
        failure: StepFailure::Refused,
        code: Some("card_declined".into()),
        reason: "the card was declined".into(),
    });
    order.compensation_pending = true;
    advance(
        &*repo,
        &mut order,
        OrderState::Rejected,
        1_600,
        "payment refused",
    )
    .await
    .expect("update");
    let stored = repo.get(order.id).await.expect("get").expect("order");
    assert_eq!(stored, order, "every field and the whole history read back");
    let pending: Vec<i64> = repo
        .compensation_pending()
        .await
        .expect("read")
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(pending, [order.id]);

    let latest: Vec<i64> = repo
        .list(None, 2)
        .await
        .expect("list")
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(
        latest,
        [keyless_b.id, keyless_a.id],
        "newest first, limited"
    );
    let rejected = repo
        .list(Some(OrderState::Rejected), 10)
        .await
        .expect("list");
    assert_eq!(rejected, [order.clone()]);
    let stale: Vec<i64> = repo
        .stale(1_150)
        .await
        .expect("stale")
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(
        stale,
        [keyless_a.id],
        "pending and unchanged since before 1150"
    );
    assert_eq!(repo.stale(10_000).await.expect("stale").len(), 2);
}

async fn an_approved_or_rejected_order_keeps_its_state(db: &TestDb) {
    let (_, repo) = replica(db).await;
    let mut approved = created(&*repo, &new_order(None, 1_000)).await;
    advance(
        &*repo,
        &mut approved,
        OrderState::Approved,
        1_100,
        "approved",
    )
    .await
    .expect("approve");
    advance(
        &*repo,
        &mut approved,
        OrderState::Approved,
        1_200,
        "customer notified",
    )
    .await
    .expect("a note on an approved order");
    let mut late = approved.clone();
    let refused = advance(&*repo, &mut late, OrderState::Rejected, 1_300, "expired").await;
    assert!(refused.is_err(), "an approved order is not rejected");
    let mut rejected = created(&*repo, &new_order(None, 1_000)).await;
    advance(
        &*repo,
        &mut rejected,
        OrderState::Rejected,
        1_100,
        "refused",
    )
    .await
    .expect("reject");
    let mut late = rejected.clone();
    let refused = advance(
        &*repo,
        &mut late,
        OrderState::PaymentConfirmed,
        1_200,
        "paid",
    )
    .await;
    assert!(refused.is_err(), "a rejected order does not move on");
    advance(
        &*repo,
        &mut rejected,
        OrderState::Rejected,
        1_300,
        "compensation retried",
    )
    .await
    .expect("a note on a rejected order");
    assert_eq!(repo.get(approved.id).await.expect("get"), Some(approved));
    assert_eq!(
        repo.get(rejected.id).await.expect("get"),
        Some(rejected.clone())
    );
    let mut missing = rejected;
    missing.id += 1000;
    assert!(
        advance(&*repo, &mut missing, OrderState::Rejected, 1_400, "x")
            .await
            .is_err()
    );
}

async fn concurrent_replicas_store_each_idempotency_key_once(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut tasks = Vec::new();
    for attempt in 0..40_i64 {
        let repo = if attempt % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let key = format!("key-{}", attempt % 10);
        tasks.push(tokio::spawn(async move {
            repo.insert(&new_order(Some(&key), attempt)).await
        }));
    }
    let mut created_ids: HashMap<String, Vec<i64>> = HashMap::new();
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for task in tasks {
        let (order, was_created) = match task.await.expect("task").expect("insert") {
            Inserted::Created(o) => (o, true),
            Inserted::Existing(o) => (o, false),
        };
        let key = order.idempotency_key.clone().expect("a key");
        if was_created {
            created_ids.entry(key.clone()).or_default().push(order.id);
        }
        seen.entry(key).or_default().push(order.id);
    }
    assert_eq!(created_ids.len(), 10, "every key stored");
    for (key, ids) in &created_ids {
        assert_eq!(ids.len(), 1, "{key} created {} times", ids.len());
        assert!(
            seen[key].iter().all(|id| *id == ids[0]),
            "{key}: {:?}",
            seen[key]
        );
    }
    assert_eq!(count_rows(&database, "orders").await.expect("count"), 10);
    assert_eq!(
        count_rows(&database, "order_history").await.expect("count"),
        10
    );
}

async fn concurrent_replicas_lose_no_update(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut orders = Vec::new();
    for n in 0..8 {
        orders.push(created(&*first, &new_order(None, n)).await);
    }
    // Both replicas append transitions to every order at once, each from its own copy.
    let mut tasks = Vec::new();
    for order in &orders {
        for (name, repo) in [("a", first.clone()), ("b", second.clone())] {
            let mut order = order.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..5 {
                    let note = format!("{name}{i}");
                    advance(
                        &*repo,
                        &mut order,
                        OrderState::CreatePending,
                        100 + i,
                        &note,
                    )
                    .await?;
                }
                Ok::<_, crate::domain::RepositoryError>(())
            }));
        }
    }
    for task in tasks {
        task.await
            .expect("task")
            .expect("every pending update lands");
    }
    // Then one replica approves while the other rejects: exactly one wins.
    let mut races = Vec::new();
    for order in &orders {
        let (mut a, mut b) = (order.clone(), order.clone());
        let (ra, rb) = (first.clone(), second.clone());
        races.push(tokio::spawn(async move {
            let approve = tokio::spawn(async move {
                advance(&*ra, &mut a, OrderState::Approved, 200, "approved")
                    .await
                    .is_ok()
            });
            let rejected = advance(&*rb, &mut b, OrderState::Rejected, 200, "expired")
                .await
                .is_ok();
            (approve.await.expect("task"), rejected)
        }));
    }
    for (order, race) in orders.iter().zip(races) {
        let (approved, rejected) = race.await.expect("task");
        assert!(
            approved != rejected,
            "order {}: approved {approved}, rejected {rejected}",
            order.id
        );
        let stored = second.get(order.id).await.expect("get").expect("order");
        let winner = if approved {
            OrderState::Approved
        } else {
            OrderState::Rejected
        };
        assert_eq!(stored.state, winner);
        assert_eq!(
            stored.history.last().map(|t| t.state),
            Some(winner),
            "history ends with the state"
        );
        assert_eq!(stored.history.len(), 1 + 10 + 1, "order {}", order.id);
        for name in ["a", "b"] {
            for i in 0..5 {
                let note = format!("{name}{i}");
                assert!(
                    stored
                        .history
                        .iter()
                        .any(|t| t.note.as_deref() == Some(&note)),
                    "order {} lost {note}",
                    order.id
                );
            }
        }
    }
    assert_eq!(
        count_rows(&database, "order_history").await.expect("count"),
        8 * 12
    );
}

food_delivery_db::backend_tests!(
    an_order_is_stored_updated_and_found_again,
    an_approved_or_rejected_order_keeps_its_state,
    concurrent_replicas_store_each_idempotency_key_once,
    concurrent_replicas_lose_no_update,
);
