//! The repository suite, written once and run against SQLite and against a real PostgreSQL
//! started by the tests (`food_delivery_db::backend_tests!`): both adapters must behave alike.

use std::sync::Arc;

use food_delivery_db::test_support::{TestDb, count_rows};

use super::db::{self, Database};
use crate::domain::{KitchenRepository, NewTicket, TicketLine, TicketState};

/// One replica of the service: its own pool on the test database (migrated as at start) and
/// the repository the service would build over it.
async fn replica(db: &TestDb) -> (Database, Arc<dyn KitchenRepository>) {
    let database = db::open(&db.config(4), crate::DEFAULT_DB_URL)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.url()));
    let repository = db::repository(&database);
    (database, repository)
}

fn line(menu_item_id: i64, name: &str, quantity: i64, unit_price_cents: i64) -> TicketLine {
    TicketLine {
        menu_item_id,
        name: name.into(),
        quantity,
        unit_price_cents,
    }
}

fn new_ticket(order_id: i64) -> NewTicket {
    let lines = vec![
        line(12, "Garlic Naan", 2, 350),
        line(11, "Chicken Vindaloo", 1, 1250),
    ];
    NewTicket {
        order_id,
        restaurant_id: 1,
        total_cents: 1950,
        lines,
    }
}

async fn demo_restaurants_are_migrated(db: &TestDb) {
    let (database, repo) = replica(db).await;
    database.ping().await.expect("the readiness query answers");
    let restaurants = repo.restaurants().await.expect("restaurants");
    let names: Vec<&str> = restaurants.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Ajanta Curry House", "Pizzeria Napoli"]);
    let menu: Vec<(i64, bool)> = restaurants[0]
        .menu
        .iter()
        .map(|m| (m.id, m.available))
        .collect();
    assert_eq!(menu, [(11, true), (12, true), (13, false)]);
    let napoli = repo
        .restaurant(2)
        .await
        .expect("read")
        .expect("restaurant 2");
    assert_eq!(napoli.menu.len(), 3);
    assert_eq!(napoli.menu[2].price_cents, 550);
    assert!(repo.restaurant(9).await.expect("read").is_none());
}

async fn a_ticket_is_stored_once_per_order_and_cancelled_is_final(db: &TestDb) {
    let (_, repo) = replica(db).await;
    assert!(repo.ticket_for_order(7).await.expect("read").is_none());
    let ticket = repo.insert_ticket(&new_ticket(7)).await.expect("insert");
    assert_eq!(ticket.state, TicketState::CreatePending);
    assert_eq!((ticket.order_id, ticket.total_cents), (7, 1950));
    assert_eq!(
        ticket.lines,
        new_ticket(7).lines,
        "lines in the order written"
    );
    // Creating it again returns the first ticket, its lines not doubled.
    let mut other = new_ticket(7);
    other.lines.push(line(13, "Lamb Biryani", 1, 1490));
    assert_eq!(repo.insert_ticket(&other).await.expect("insert"), ticket);
    assert_eq!(
        repo.ticket(ticket.id).await.expect("read"),
        Some(ticket.clone())
    );
    repo.set_state(ticket.id, TicketState::Accepted)
        .await
        .expect("accept");
    repo.set_state(ticket.id, TicketState::Cancelled)
        .await
        .expect("cancel, even when accepted");
    repo.set_state(ticket.id, TicketState::Cancelled)
        .await
        .expect("cancel again");
    let refused = repo.set_state(ticket.id, TicketState::Accepted).await;
    assert!(refused.is_err(), "a cancelled ticket is not accepted");
    let stored = repo.ticket(ticket.id).await.expect("read").expect("ticket");
    assert_eq!(stored.state, TicketState::Cancelled);
    repo.set_state(ticket.id + 1000, TicketState::Accepted)
        .await
        .expect("no ticket, nothing to change");
}

async fn concurrent_replicas_create_one_ticket_per_order(db: &TestDb) {
    let (database, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut tasks = Vec::new();
    for attempt in 0..24_i64 {
        let repo = if attempt % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let order_id = 100 + attempt % 3;
        tasks.push(tokio::spawn(async move {
            repo.insert_ticket(&new_ticket(order_id)).await
        }));
    }
    let mut tickets = Vec::new();
    for task in tasks {
        tickets.push(task.await.expect("task").expect("inserted"));
    }
    for order_id in 100..103 {
        let stored = first
            .ticket_for_order(order_id)
            .await
            .expect("read")
            .expect("ticket");
        assert!(
            tickets
                .iter()
                .filter(|t| t.order_id == order_id)
                .all(|t| *t == stored)
        );
    }
    assert_eq!(count_rows(&database, "tickets").await.expect("count"), 3);
    assert_eq!(
        count_rows(&database, "ticket_lines").await.expect("count"),
        6
    );
}

async fn a_confirmation_racing_a_cancellation_never_revives_the_ticket(db: &TestDb) {
    let (_, first) = replica(db).await;
    let (_, second) = replica(db).await;
    let mut ids = Vec::new();
    for order_id in 200..220 {
        ids.push(
            first
                .insert_ticket(&new_ticket(order_id))
                .await
                .expect("insert")
                .id,
        );
    }
    let mut tasks = Vec::new();
    for &id in &ids {
        let (confirmer, canceller) = (first.clone(), second.clone());
        tasks.push(tokio::spawn(async move {
            let confirm =
                tokio::spawn(async move { confirmer.set_state(id, TicketState::Accepted).await });
            let cancel = canceller.set_state(id, TicketState::Cancelled).await;
            let _either_way = confirm.await.expect("task");
            cancel
        }));
    }
    for task in tasks {
        task.await
            .expect("task")
            .expect("a cancellation always succeeds");
    }
    for id in ids {
        let ticket = second.ticket(id).await.expect("read").expect("ticket");
        assert_eq!(ticket.state, TicketState::Cancelled, "ticket {id}");
    }
}

food_delivery_db::backend_tests!(
    demo_restaurants_are_migrated,
    a_ticket_is_stored_once_per_order_and_cancelled_is_final,
    concurrent_replicas_create_one_ticket_per_order,
    a_confirmation_racing_a_cancellation_never_revives_the_ticket,
);
