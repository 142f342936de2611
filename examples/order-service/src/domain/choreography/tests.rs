//! The choreographed saga's service against an in-memory store and outbox.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use food_events::{Failure, OrderMessage, Refusal};

use super::*;
use crate::domain::{Announce, MenuItem, NewOrder, OrderLineRequest, StepError, StepFailure};

/// Orders and an outbox in memory, with the store's compare-and-set.
#[derive(Default)]
struct Memory {
    orders: Mutex<Vec<Order>>,
    outbox: Mutex<Vec<OrderMessage>>,
    /// Changes the next order recorded behind the writer's back, once.
    interfere: AtomicBool,
}

impl Memory {
    fn subjects(&self) -> Vec<&'static str> {
        let outbox = self.outbox.lock().expect("lock");
        outbox.iter().map(OrderMessage::subject).collect()
    }
}

#[async_trait::async_trait]
impl OrderRepository for Memory {
    async fn insert(&self, _: &NewOrder) -> Result<Inserted, RepositoryError> {
        unreachable!("the choreography inserts through the store")
    }
    async fn get(&self, id: i64) -> Result<Option<Order>, RepositoryError> {
        let orders = self.orders.lock().expect("lock");
        Ok(orders.iter().find(|o| o.id == id).cloned())
    }
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Order>, RepositoryError> {
        let orders = self.orders.lock().expect("lock");
        Ok(orders
            .iter()
            .find(|o| o.idempotency_key.as_deref() == Some(key))
            .cloned())
    }
    async fn update(&self, _: &Order, _: &Transition) -> Result<(), RepositoryError> {
        unreachable!("the choreography records through the store")
    }
    async fn stale(&self, before_ms: i64) -> Result<Vec<Order>, RepositoryError> {
        let orders = self.orders.lock().expect("lock");
        Ok(orders
            .iter()
            .filter(|o| o.state.is_pending() && o.updated_at_ms < before_ms)
            .cloned()
            .collect())
    }
    async fn compensation_pending(&self) -> Result<Vec<Order>, RepositoryError> {
        Ok(Vec::new())
    }
    async fn list(&self, _: Option<OrderState>, _: u32) -> Result<Vec<Order>, RepositoryError> {
        Ok(self.orders.lock().expect("lock").clone())
    }
}

#[async_trait::async_trait]
impl SagaStore for Memory {
    async fn insert_announced(
        &self,
        new: &NewOrder,
        announce: Announce,
    ) -> Result<Inserted, RepositoryError> {
        let mut orders = self.orders.lock().expect("lock");
        let order = new.stored_as(orders.len() as i64 + 1);
        orders.push(order.clone());
        self.outbox.lock().expect("lock").extend(announce(&order));
        Ok(Inserted::Created(order))
    }

    async fn record(
        &self,
        read: &Order,
        order: &Order,
        transitions: &[Transition],
        publish: &[OrderMessage],
    ) -> Result<Recorded, RepositoryError> {
        let mut orders = self.orders.lock().expect("lock");
        let Some(stored) = orders.iter_mut().find(|o| o.id == order.id) else {
            return Err(RepositoryError("no such order".into()));
        };
        if self.interfere.swap(false, Ordering::SeqCst) {
            stored.updated_at_ms += 1;
        }
        if stored.state != read.state || stored.updated_at_ms != read.updated_at_ms {
            return Ok(Recorded::Conflict);
        }
        let mut history = stored.history.clone();
        history.extend_from_slice(transitions);
        *stored = Order {
            history,
            ..order.clone()
        };
        self.outbox.lock().expect("lock").extend_from_slice(publish);
        Ok(Recorded::Saved)
    }
}

struct Menu;

#[async_trait::async_trait]
impl KitchenPort for Menu {
    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, StepError> {
        if restaurant_id != 1 {
            return Err(StepError::new(StepFailure::NotFound, "no restaurant"));
        }
        Ok(vec![MenuItem {
            id: 11,
            name: "curry".into(),
            price_cents: 1000,
        }])
    }
    async fn create_ticket(&self, _: &Order) -> Result<i64, StepError> {
        unreachable!("events create tickets")
    }
    async fn confirm_ticket(&self, _: i64) -> Result<(), StepError> {
        unreachable!("events confirm tickets")
    }
    async fn cancel_ticket(&self, _: i64) -> Result<(), StepError> {
        unreachable!("events cancel tickets")
    }
    async fn find_ticket(&self, _: i64) -> Result<Option<i64>, StepError> {
        unreachable!("events find tickets")
    }
}

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn setup() -> (ChoreographedOrders, Arc<Memory>, Arc<TestClock>) {
    let memory = Arc::new(Memory::default());
    let clock = Arc::new(TestClock(AtomicI64::new(10_000)));
    let orders = ChoreographedOrders::new(
        memory.clone(),
        memory.clone(),
        Arc::new(Menu),
        clock.clone(),
    );
    (orders, memory, clock)
}

fn request(quantity: i64) -> PlaceOrder {
    PlaceOrder {
        consumer_id: 1,
        restaurant_id: 1,
        lines: vec![OrderLineRequest {
            menu_item_id: 11,
            quantity,
        }],
    }
}

#[tokio::test]
async fn placing_stores_the_order_pending_with_its_created_event_and_a_retry_replays_it() {
    let (svc, memory, _) = setup();
    let placed = svc
        .place(request(2), Some("k1".into()))
        .await
        .expect("placed");
    assert!(!placed.replayed);
    assert_eq!(placed.order.state, OrderState::ApprovalPending);
    assert_eq!(placed.order.total_cents, 2000);
    assert_eq!(memory.subjects(), ["orders.created"]);
    let first = memory.outbox.lock().expect("lock")[0].clone();
    let OrderMessage::Created(created) = &first else {
        panic!("not orders.created")
    };
    assert_eq!(created.order.order_id, placed.order.id);
    assert_eq!(created.order.total_cents, 2000);

    let again = svc
        .place(request(2), Some("k1".into()))
        .await
        .expect("replayed");
    assert!(again.replayed);
    assert_eq!(again.order.id, placed.order.id);
    assert_eq!(
        memory.subjects(),
        ["orders.created"],
        "nothing published twice"
    );
    assert!(matches!(
        svc.place(request(3), Some("k1".into())).await,
        Err(OrderError::IdempotencyMismatch(_))
    ));
    assert!(matches!(
        svc.place(request(0), None).await,
        Err(OrderError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_answers_of_the_other_services_approve_the_order() {
    let (svc, memory, _) = setup();
    let id = svc.place(request(1), None).await.expect("placed").order.id;
    assert_eq!(
        svc.hear(id, &SagaEvent::ConsumerVerified)
            .await
            .expect("heard"),
        Heard::Changed(OrderState::ApprovalPending)
    );
    assert_eq!(
        svc.hear(id, &SagaEvent::TicketCreated { ticket_id: 5 })
            .await
            .expect("heard"),
        Heard::Changed(OrderState::CreatePending)
    );
    let auth = SagaEvent::PaymentAuthorized {
        ticket_id: 5,
        authorization_id: 6,
    };
    assert_eq!(
        svc.hear(id, &auth).await.expect("heard"),
        Heard::Changed(OrderState::Approved)
    );
    assert!(matches!(
        svc.hear(id, &auth).await.expect("heard"),
        Heard::Ignored(_)
    ));
    let order = Orders::get(&svc, id).await.expect("order");
    let states: Vec<OrderState> = order.history.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            OrderState::ApprovalPending,
            OrderState::ApprovalPending,
            OrderState::CreatePending,
            OrderState::PaymentConfirmed,
            OrderState::Approved,
        ]
    );
    assert_eq!(order.ticket_id, Some(5));
    assert_eq!(memory.subjects(), ["orders.created", "orders.approved"]);
    assert!(matches!(
        svc.hear(999, &SagaEvent::ConsumerVerified).await,
        Err(OrderError::NotFound(999))
    ));
}

#[tokio::test]
async fn an_order_changed_meanwhile_is_read_again_and_decided_again() {
    let (svc, memory, _) = setup();
    let id = svc.place(request(1), None).await.expect("placed").order.id;
    memory.interfere.store(true, Ordering::SeqCst);
    let refused = SagaEvent::ConsumerRejected(Refusal {
        failure: Failure::Refused,
        code: "consumer-blocked".into(),
        reason: "blocked".into(),
    });
    assert_eq!(
        svc.hear(id, &refused).await.expect("heard"),
        Heard::Changed(OrderState::Rejected)
    );
    assert_eq!(memory.subjects(), ["orders.created", "orders.rejected"]);
}

#[tokio::test]
async fn the_reconciler_rejects_stale_orders_with_their_compensations_and_leaves_fresh_ones() {
    let (svc, memory, clock) = setup();
    let stale = svc.place(request(1), None).await.expect("placed").order.id;
    svc.hear(stale, &SagaEvent::TicketCreated { ticket_id: 8 })
        .await
        .expect("heard");
    clock.0.fetch_add(31_000, Ordering::SeqCst);
    let fresh = svc.place(request(1), None).await.expect("placed").order.id;
    let report = svc
        .reconcile(Duration::from_secs(30))
        .await
        .expect("reconciled");
    assert_eq!(report.expired, [stale]);
    let order = Orders::get(&svc, stale).await.expect("order");
    assert_eq!(order.state, OrderState::Rejected);
    assert_eq!(
        order.rejection.map(|r| (r.step, r.failure)),
        Some((crate::domain::SagaStep::Reconciler, StepFailure::Expired))
    );
    assert!(!order.compensation_pending);
    assert_eq!(
        memory.subjects(),
        [
            "orders.created",
            "orders.created",
            "orders.rejected",
            "orders.ticket_cancel",
            "orders.payment_void"
        ]
    );
    assert_eq!(
        Orders::get(&svc, fresh).await.expect("order").state,
        OrderState::ApprovalPending
    );
    // A ticket the kitchen creates after the expiry is cancelled.
    svc.hear(stale, &SagaEvent::TicketCreated { ticket_id: 9 })
        .await
        .expect("heard");
    assert_eq!(memory.subjects().last(), Some(&"orders.ticket_cancel"));
}
