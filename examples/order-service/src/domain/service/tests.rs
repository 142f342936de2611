//! The saga's transitions and compensations, against in-memory fakes of every port.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::domain::{MenuItem, OrderLineRequest, RepositoryError};

#[derive(Default)]
struct Repo {
    orders: Mutex<Vec<Order>>,
}

#[async_trait::async_trait]
impl OrderRepository for Repo {
    async fn insert(&self, new: &NewOrder) -> Result<Inserted, RepositoryError> {
        let mut orders = self.orders.lock().expect("lock");
        if let Some(key) = &new.idempotency_key
            && let Some(o) = orders
                .iter()
                .find(|o| o.idempotency_key.as_ref() == Some(key))
        {
            return Ok(Inserted::Existing(o.clone()));
        }
        let order = Order {
            id: orders.len() as i64 + 1,
            consumer_id: new.consumer_id,
            restaurant_id: new.restaurant_id,
            lines: new.lines.clone(),
            total_cents: new.total_cents,
            state: OrderState::ApprovalPending,
            ticket_id: None,
            rejection: None,
            compensation_pending: false,
            idempotency_key: new.idempotency_key.clone(),
            request_fingerprint: new.request_fingerprint.clone(),
            created_at_ms: new.created_at_ms,
            updated_at_ms: new.created_at_ms,
            history: vec![Transition {
                state: OrderState::ApprovalPending,
                at_ms: new.created_at_ms,
                note: None,
            }],
        };
        orders.push(order.clone());
        Ok(Inserted::Created(order))
    }
    async fn get(&self, id: i64) -> Result<Option<Order>, RepositoryError> {
        Ok(self
            .orders
            .lock()
            .expect("lock")
            .iter()
            .find(|o| o.id == id)
            .cloned())
    }
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Order>, RepositoryError> {
        let orders = self.orders.lock().expect("lock");
        Ok(orders
            .iter()
            .find(|o| o.idempotency_key.as_deref() == Some(key))
            .cloned())
    }
    async fn update(&self, order: &Order, t: &Transition) -> Result<(), RepositoryError> {
        let mut orders = self.orders.lock().expect("lock");
        if let Some(stored) = orders.iter_mut().find(|o| o.id == order.id) {
            let mut history = stored.history.clone();
            history.push(t.clone());
            *stored = Order {
                history,
                ..order.clone()
            };
        }
        Ok(())
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
        let orders = self.orders.lock().expect("lock");
        Ok(orders
            .iter()
            .filter(|o| o.compensation_pending)
            .cloned()
            .collect())
    }
    async fn list(
        &self,
        state: Option<OrderState>,
        _limit: u32,
    ) -> Result<Vec<Order>, RepositoryError> {
        let orders = self.orders.lock().expect("lock");
        Ok(orders
            .iter()
            .filter(|o| state.is_none_or(|s| o.state == s))
            .cloned()
            .collect())
    }
}

/// The other four services, with a switch per call and a log of what was called.
#[derive(Default)]
struct World {
    fail: Mutex<HashSet<&'static str>>,
    calls: Mutex<Vec<String>>,
    tickets: Mutex<Vec<(i64, i64)>>,
}

impl World {
    fn fail(&self, call: &'static str) {
        self.fail.lock().expect("lock").insert(call);
    }
    fn heal(&self, call: &'static str) {
        self.fail.lock().expect("lock").remove(call);
    }
    fn call(&self, name: &'static str, what: String) -> Result<(), StepError> {
        self.calls.lock().expect("lock").push(what);
        let fail = self.fail.lock().expect("lock");
        if fail.contains(name) {
            let failure = if fail.contains("down") {
                StepFailure::Unavailable
            } else {
                StepFailure::Refused
            };
            return Err(StepError::new(failure, format!("{name} said no")));
        }
        Ok(())
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl ConsumerPort for World {
    async fn verify(&self, consumer_id: i64, total: i64) -> Result<(), StepError> {
        self.call("verify", format!("verify {consumer_id} {total}"))
    }
}

#[async_trait::async_trait]
impl KitchenPort for World {
    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, StepError> {
        if restaurant_id != 1 {
            return Err(StepError::new(StepFailure::NotFound, "no restaurant"));
        }
        self.call("menu", "menu".into())?;
        Ok(vec![MenuItem {
            id: 11,
            name: "curry".into(),
            price_cents: 1000,
        }])
    }
    async fn create_ticket(&self, order: &Order) -> Result<i64, StepError> {
        self.call("create_ticket", format!("create_ticket {}", order.id))?;
        let mut tickets = self.tickets.lock().expect("lock");
        let id = 100 + order.id;
        tickets.push((order.id, id));
        Ok(id)
    }
    async fn confirm_ticket(&self, id: i64) -> Result<(), StepError> {
        self.call("confirm_ticket", format!("confirm_ticket {id}"))
    }
    async fn cancel_ticket(&self, id: i64) -> Result<(), StepError> {
        self.call("cancel_ticket", format!("cancel_ticket {id}"))
    }
    async fn find_ticket(&self, order_id: i64) -> Result<Option<i64>, StepError> {
        self.call("find_ticket", format!("find_ticket {order_id}"))?;
        let tickets = self.tickets.lock().expect("lock");
        Ok(tickets
            .iter()
            .find(|(o, _)| *o == order_id)
            .map(|(_, t)| *t))
    }
}

#[async_trait::async_trait]
impl AccountingPort for World {
    async fn authorize(&self, order: &Order) -> Result<i64, StepError> {
        self.call("authorize", format!("authorize {}", order.id))?;
        Ok(500 + order.id)
    }
    async fn void(&self, order_id: i64) -> Result<(), StepError> {
        self.call("void", format!("void {order_id}"))
    }
}

#[async_trait::async_trait]
impl NotificationPort for World {
    async fn notify(&self, order: &Order) -> Result<(), StepError> {
        self.call("notify", format!("notify {}", order.id))
    }
}

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Fixture {
    service: OrderService,
    world: Arc<World>,
    repo: Arc<Repo>,
    clock: Arc<TestClock>,
}

fn fixture() -> Fixture {
    let world = Arc::new(World::default());
    let repo = Arc::new(Repo::default());
    let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
    let service = OrderService::new(OrderPorts {
        repository: repo.clone(),
        consumer: world.clone(),
        kitchen: world.clone(),
        accounting: world.clone(),
        notification: world.clone(),
        clock: clock.clone(),
    });
    Fixture {
        service,
        world,
        repo,
        clock,
    }
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

fn states(order: &Order) -> Vec<&'static str> {
    order.history.iter().map(|t| t.state.as_str()).collect()
}

fn rejected(result: Result<Placed, OrderError>) -> Order {
    match result {
        Err(OrderError::Rejected(order)) => *order,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn the_happy_path_goes_through_every_state_to_approved() {
    let f = fixture();
    let placed = f.service.place(request(2), None).await.expect("placed");
    let o = placed.order;
    assert_eq!(o.state, OrderState::Approved);
    assert_eq!(o.total_cents, 2000);
    assert_eq!(o.ticket_id, Some(101));
    assert_eq!(
        states(&o),
        [
            "APPROVAL_PENDING",
            "CREATE_PENDING",
            "PAYMENT_CONFIRMED",
            "APPROVED",
            "APPROVED"
        ]
    );
    assert_eq!(
        f.world.calls(),
        [
            "menu",
            "verify 1 2000",
            "create_ticket 1",
            "authorize 1",
            "confirm_ticket 101",
            "notify 1"
        ]
    );
    let stored = f.service.get(o.id).await.expect("stored");
    assert_eq!(stored.state, OrderState::Approved);
}

#[tokio::test]
async fn a_consumer_refusal_rejects_without_compensation() {
    let f = fixture();
    f.world.fail("verify");
    let o = rejected(f.service.place(request(1), None).await);
    assert_eq!(o.state, OrderState::Rejected);
    let r = o.rejection.expect("rejection");
    assert_eq!(r.step, SagaStep::Consumer);
    assert_eq!(r.failure, StepFailure::Refused);
    assert!(!o.compensation_pending);
    assert_eq!(f.world.calls(), ["menu", "verify 1 1000"]);
}

#[tokio::test]
async fn a_kitchen_refusal_rejects_and_a_kitchen_outage_looks_for_an_orphan_ticket() {
    let f = fixture();
    f.world.fail("create_ticket");
    let o = rejected(f.service.place(request(1), None).await);
    assert_eq!(o.rejection.expect("r").step, SagaStep::Kitchen);
    assert!(!f.world.calls().iter().any(|c| c.starts_with("find_ticket")));

    f.world.fail("down");
    let o = rejected(f.service.place(request(1), None).await);
    assert_eq!(o.rejection.expect("r").failure, StepFailure::Unavailable);
    assert!(f.world.calls().contains(&"find_ticket 2".to_owned()));
}

#[tokio::test]
async fn a_declined_payment_cancels_the_ticket_and_voids_nothing() {
    let f = fixture();
    f.world.fail("authorize");
    let o = rejected(f.service.place(request(1), None).await);
    assert_eq!(o.rejection.as_ref().expect("r").step, SagaStep::Accounting);
    assert_eq!(o.ticket_id, Some(101));
    assert!(!o.compensation_pending);
    let calls = f.world.calls();
    assert!(calls.contains(&"cancel_ticket 101".to_owned()));
    assert!(!calls.iter().any(|c| c.starts_with("void")));
    assert_eq!(
        states(&o),
        ["APPROVAL_PENDING", "CREATE_PENDING", "REJECTED"]
    );
}

#[tokio::test]
async fn a_failed_confirmation_voids_the_payment_and_cancels_the_ticket() {
    let f = fixture();
    f.world.fail("confirm_ticket");
    let o = rejected(f.service.place(request(1), None).await);
    assert_eq!(o.rejection.as_ref().expect("r").step, SagaStep::Kitchen);
    let calls = f.world.calls();
    assert!(calls.contains(&"void 1".to_owned()));
    assert!(calls.contains(&"cancel_ticket 101".to_owned()));
}

#[tokio::test]
async fn a_failed_compensation_is_retried_by_the_reconciler() {
    let f = fixture();
    f.world.fail("down");
    f.world.fail("authorize");
    f.world.fail("void");
    f.world.fail("cancel_ticket");
    let o = rejected(f.service.place(request(1), None).await);
    assert!(o.compensation_pending);
    let report = f
        .service
        .reconcile(Duration::from_secs(30))
        .await
        .expect("pass");
    assert_eq!(report.still_pending, [o.id]);

    f.world.heal("void");
    f.world.heal("cancel_ticket");
    let report = f
        .service
        .reconcile(Duration::from_secs(30))
        .await
        .expect("pass");
    assert_eq!(report.compensated, [o.id]);
    let stored = f.service.get(o.id).await.expect("stored");
    assert!(!stored.compensation_pending);
    assert_eq!(stored.state, OrderState::Rejected);
    assert!(f.world.calls().contains(&"void 1".to_owned()));
}

#[tokio::test]
async fn notification_failure_keeps_the_order_approved() {
    let f = fixture();
    f.world.fail("notify");
    let o = f
        .service
        .place(request(1), None)
        .await
        .expect("placed")
        .order;
    assert_eq!(o.state, OrderState::Approved);
    let last = o
        .history
        .last()
        .and_then(|t| t.note.clone())
        .unwrap_or_default();
    assert!(last.contains("notification failed"), "{last}");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_order_and_refuses_a_different_request() {
    let f = fixture();
    let first = f
        .service
        .place(request(1), Some("k1".into()))
        .await
        .expect("placed");
    let again = f
        .service
        .place(request(1), Some("k1".into()))
        .await
        .expect("replayed");
    assert!(again.replayed);
    assert_eq!(again.order.id, first.order.id);
    assert_eq!(f.repo.orders.lock().expect("lock").len(), 1);
    assert!(matches!(
        f.service.place(request(3), Some("k1".into())).await,
        Err(OrderError::IdempotencyMismatch(_))
    ));

    f.world.fail("verify");
    let r1 = rejected(f.service.place(request(1), Some("k2".into())).await);
    let r2 = rejected(f.service.place(request(1), Some("k2".into())).await);
    assert_eq!(r1.id, r2.id);
}

#[tokio::test]
async fn invalid_requests_are_refused_before_anything_is_stored() {
    let f = fixture();
    let empty = PlaceOrder {
        lines: vec![],
        ..request(1)
    };
    assert!(matches!(
        f.service.place(empty, None).await,
        Err(OrderError::Invalid(_))
    ));
    assert!(matches!(
        f.service.place(request(0), None).await,
        Err(OrderError::Invalid(_))
    ));
    assert!(matches!(
        f.service.place(request(-2), None).await,
        Err(OrderError::Invalid(_))
    ));
    let unknown_item = PlaceOrder {
        lines: vec![OrderLineRequest {
            menu_item_id: 99,
            quantity: 1,
        }],
        ..request(1)
    };
    assert!(matches!(
        f.service.place(unknown_item, None).await,
        Err(OrderError::UnknownMenuItem {
            menu_item_id: 99,
            ..
        })
    ));
    let unknown_restaurant = PlaceOrder {
        restaurant_id: 9,
        ..request(1)
    };
    assert!(matches!(
        f.service.place(unknown_restaurant, None).await,
        Err(OrderError::UnknownRestaurant(9))
    ));
    assert!(f.repo.orders.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_reconciler_expires_stale_pending_orders_and_cancels_their_orphan_ticket() {
    let f = fixture();
    // A saga that died after the kitchen created the ticket but before it was recorded.
    let created = f
        .repo
        .insert(&NewOrder {
            consumer_id: 1,
            restaurant_id: 1,
            lines: vec![],
            total_cents: 1000,
            idempotency_key: None,
            request_fingerprint: String::new(),
            created_at_ms: f.clock.now_ms(),
        })
        .await
        .expect("insert");
    let Inserted::Created(order) = created else {
        panic!("created")
    };
    f.world.tickets.lock().expect("lock").push((order.id, 777));

    let report = f
        .service
        .reconcile(Duration::from_secs(30))
        .await
        .expect("pass");
    assert!(report.expired.is_empty(), "not stale yet");

    f.clock.0.fetch_add(31_000, Ordering::SeqCst);
    let report = f
        .service
        .reconcile(Duration::from_secs(30))
        .await
        .expect("pass");
    assert_eq!(report.expired, [order.id]);
    let stored = f.service.get(order.id).await.expect("stored");
    assert_eq!(stored.state, OrderState::Rejected);
    let r = stored.rejection.expect("rejection");
    assert_eq!(
        (r.step, r.failure),
        (SagaStep::Reconciler, StepFailure::Expired)
    );
    assert!(f.world.calls().contains(&"cancel_ticket 777".to_owned()));
    assert!(
        !f.world.calls().iter().any(|c| c.starts_with("void")),
        "never reached accounting"
    );
}

#[tokio::test]
async fn a_retried_request_resumes_a_saga_whose_instance_died() {
    let f = fixture();
    // What an instance killed mid-saga leaves behind: the order stored, still pending.
    let fingerprint = request(1).fingerprint();
    let created = f
        .repo
        .insert(&NewOrder {
            consumer_id: 1,
            restaurant_id: 1,
            lines: vec![OrderLine {
                menu_item_id: 11,
                name: "item".into(),
                quantity: 1,
                unit_price_cents: 1000,
            }],
            total_cents: 1000,
            idempotency_key: Some("k-dead".into()),
            request_fingerprint: fingerprint,
            created_at_ms: f.clock.now_ms(),
        })
        .await
        .expect("insert");
    let Inserted::Created(order) = created else {
        panic!("created")
    };
    let placed = f
        .service
        .place(request(1), Some("k-dead".into()))
        .await
        .expect("resumed");
    assert!(placed.replayed);
    assert_eq!(placed.order.id, order.id);
    assert_eq!(placed.order.state, OrderState::Approved);
    assert!(
        placed
            .order
            .history
            .iter()
            .any(|t| t.note.as_deref().is_some_and(|n| n.contains("resumed")))
    );
    // A replay of a finished order does not run anything again.
    let calls = f.world.calls().len();
    let again = f
        .service
        .place(request(1), Some("k-dead".into()))
        .await
        .expect("replayed");
    assert_eq!(again.order.state, OrderState::Approved);
    assert_eq!(f.world.calls().len(), calls);
}
