//! The chassis's transactional outbox and idempotent consumer on a real PostgreSQL (the
//! chassis's own tests cover SQLite), relaying to a real `nats-server`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aiods::messaging::async_nats::{self, jetstream};
use aiods::messaging::idempotency::{self, Claim};
use aiods::messaging::outbox::{self, OutboxRelay};
use aiods::messaging::sqlx::{self, PgPool};
use aiods::messaging::{Event, Messaging, MessagingConfig};
use aiods_test::NatsServer;
use food_delivery_db::test_support::TestDb;

#[derive(serde::Serialize)]
struct TicketCreated {
    order_id: String,
}

impl Event for TicketCreated {
    fn message_id(&self) -> String {
        format!("ticket-{}", self.order_id)
    }
}

async fn pool(db: &TestDb) -> PgPool {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    outbox::create_tables(&pool).await.unwrap();
    // Twice: the tables are created only when missing.
    outbox::create_tables(&pool).await.unwrap();
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_relays_committed_rows_only_and_claims_are_once_on_postgres() {
    let db = TestDb::postgres().await.unwrap();
    let nats = NatsServer::start_new();
    let pool = pool(&db).await;
    let messaging = Messaging::connect(&MessagingConfig::with_url(nats.url()))
        .await
        .unwrap();
    messaging
        .ensure_stream("KITCHEN", &["kitchen.>"])
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "order-1")
            .await
            .unwrap(),
        Claim::First
    );
    outbox::stage(
        &mut tx,
        "kitchen.ticket_created",
        &TicketCreated {
            order_id: "rolled-back".into(),
        },
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "order-1")
            .await
            .unwrap(),
        Claim::First,
        "rolled back with its transaction"
    );
    outbox::stage(
        &mut tx,
        "kitchen.ticket_created",
        &TicketCreated {
            order_id: "1".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        idempotency::claim(&mut tx, "kitchen", "order-1")
            .await
            .unwrap(),
        Claim::Duplicate
    );
    tx.commit().await.unwrap();

    let relay = OutboxRelay::new(messaging.clone(), pool.clone());
    assert_eq!(relay.relay_pending().await.unwrap(), 1);
    assert_eq!(relay.relay_pending().await.unwrap(), 0);
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);

    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stored = js
        .get_stream("KITCHEN")
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(stored.subject.as_str(), "kitchen.ticket_created");
    assert_eq!(
        stored
            .headers
            .get("Nats-Msg-Id")
            .map(async_nats::HeaderValue::as_str),
        Some("ticket-1")
    );
    let info = js
        .get_stream("KITCHEN")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(
        info.state.messages, 1,
        "the rolled-back event was never sent"
    );
    messaging.drain(Duration::from_secs(2)).await;
}
