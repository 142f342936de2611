//! The repository suite, written once and run against SQLite and against a real PostgreSQL
//! started by the tests (`food_delivery_db::backend_tests!`): both adapters must behave alike.

use std::sync::Arc;

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use crate::domain::{AccountingRepository, AuthorizationState, NewAuthorization};

/// One replica of the service: its own pool on the test database (migrated as at start) and
/// the repository the service would build over it.
async fn replica(db: &TestDb) -> (Database, Arc<dyn AccountingRepository>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    let repository = db::repository(&database);
    (database, repository)
}

fn authorized(order_id: i64, reference: &str) -> NewAuthorization {
    NewAuthorization {
        order_id,
        consumer_id: 1,
        amount_cents: 2500,
        state: AuthorizationState::Authorized,
        provider_reference: Some(reference.into()),
        reason: None,
    }
}

async fn demo_accounts_are_migrated(db: &TestDb) {
    let (database, repo) = replica(db).await;
    database.ping().await.expect("the readiness query answers");
    let dave = repo
        .account(5)
        .await
        .expect("account")
        .expect("Dave's account");
    assert_eq!(dave.card_token, "tok_decline_0002");
    assert_eq!(dave.holder, "Dave Declined");
    assert!(
        repo.account(6).await.expect("account").is_none(),
        "Erin has none"
    );
}

async fn an_authorization_is_stored_once_per_order_and_changes_state(db: &TestDb) {
    let (_, repo) = replica(db).await;
    assert!(
        repo.authorization_for_order(10)
            .await
            .expect("read")
            .is_none()
    );
    let first = repo.insert(&authorized(10, "ref-1")).await.expect("insert");
    assert_eq!(
        (first.order_id, first.amount_cents, first.state),
        (10, 2500, AuthorizationState::Authorized)
    );
    assert_eq!(first.provider_reference.as_deref(), Some("ref-1"));
    // Inserting again for the order returns the first authorization untouched.
    let again = repo.insert(&authorized(10, "ref-2")).await.expect("insert");
    assert_eq!(again, first);
    let declined = repo
        .insert(&NewAuthorization {
            state: AuthorizationState::Declined,
            provider_reference: None,
            reason: Some("card declined".into()),
            ..authorized(11, "")
        })
        .await
        .expect("insert");
    assert_eq!(declined.reason.as_deref(), Some("card declined"));
    assert_ne!(declined.id, first.id);
    repo.set_state(first.id, AuthorizationState::Voided)
        .await
        .expect("void");
    let voided = repo
        .authorization(first.id)
        .await
        .expect("read")
        .expect("it");
    assert_eq!(voided.state, AuthorizationState::Voided);
    assert!(
        repo.authorization(first.id + 1000)
            .await
            .expect("read")
            .is_none()
    );
}

async fn concurrent_replicas_store_one_authorization_per_order(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut tasks = Vec::new();
    for attempt in 0..24_i64 {
        let repo = if attempt % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        // Three orders, eight racing attempts each.
        let order_id = 100 + attempt % 3;
        tasks.push(tokio::spawn(async move {
            repo.insert(&authorized(order_id, &format!("ref-{attempt}")))
                .await
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.expect("task").expect("inserted"));
    }
    for order_id in 100..103 {
        let winner = first
            .authorization_for_order(order_id)
            .await
            .expect("read")
            .expect("stored");
        assert!(
            stored
                .iter()
                .filter(|a| a.order_id == order_id)
                .all(|a| *a == winner),
            "every attempt for order {order_id} returns the one stored"
        );
    }
    assert_eq!(
        count_rows(&database, "authorizations")
            .await
            .expect("count"),
        3
    );
}

food_delivery_db::backend_tests!(
    demo_accounts_are_migrated,
    an_authorization_is_stored_once_per_order_and_changes_state,
    concurrent_replicas_store_one_authorization_per_order,
);
