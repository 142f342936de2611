//! The repository suite, written once and run against SQLite and against a real PostgreSQL
//! started by the tests (`food_delivery_db::backend_tests!`): both adapters must behave alike.

use std::sync::Arc;

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use crate::domain::{ConsumerRepository, Verification};

/// One replica of the service: its own pool on the test database (migrated as at start) and
/// the repository the service would build over it.
async fn replica(db: &TestDb) -> (Database, Arc<dyn ConsumerRepository>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    let repository = db::repository(&database);
    (database, repository)
}

async fn demo_consumers_are_migrated(db: &TestDb) {
    let (database, repo) = replica(db).await;
    database.ping().await.expect("the readiness query answers");
    let ids: Vec<i64> = repo
        .list()
        .await
        .expect("list")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    let mallory = repo.find(3).await.expect("find").expect("consumer 3");
    assert!(mallory.blocked);
    assert_eq!(mallory.email, "mallory@example.test");
    let carol = repo.find(4).await.expect("find").expect("consumer 4");
    assert_eq!((carol.blocked, carol.order_limit_cents), (false, 2000));
    assert!(repo.find(99).await.expect("find").is_none());
    // A second replica starting against the same database migrates nothing twice.
    let (_, again) = replica(db).await;
    assert_eq!(again.list().await.expect("list").len(), 6);
}

async fn concurrent_replicas_record_every_verification(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut tasks = Vec::new();
    for i in 0..40_i64 {
        let repo = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            repo.record(&Verification {
                consumer_id: 1 + i % 6,
                total_cents: 100 + i,
                approved: i % 3 != 0,
                reason: (i % 3 == 0).then(|| format!("refused {i}")),
            })
            .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("recorded");
    }
    assert_eq!(
        count_rows(&database, "validations").await.expect("count"),
        40
    );
}

food_delivery_db::backend_tests!(
    demo_consumers_are_migrated,
    concurrent_replicas_record_every_verification,
);
