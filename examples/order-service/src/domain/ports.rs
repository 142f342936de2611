//! The ports of the order domain: its repository and the facades of figure 24.

use food_events::OrderMessage;

use super::{
    MenuItem, NewOrder, Order, OrderError, OrderState, PlaceOrder, Placed, RepositoryError,
    StepError, Transition,
};

/// What the HTTP controller asks of the order service, whichever saga variant runs it.
#[async_trait::async_trait]
pub trait Orders: Send + Sync {
    /// Places an order (see [`OrderService::place`](super::OrderService::place) and
    /// [`ChoreographedOrders::place`](super::ChoreographedOrders::place)).
    async fn place(
        &self,
        request: PlaceOrder,
        idempotency_key: Option<String>,
    ) -> Result<Placed, OrderError>;
    /// The order with `id` and its history.
    async fn get(&self, id: i64) -> Result<Order, OrderError>;
    /// The latest orders, optionally in one state.
    async fn list(&self, state: Option<OrderState>, limit: u32) -> Result<Vec<Order>, OrderError>;
}

/// Whether [`SagaStore::record`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The order, its history and the messages were written.
    Saved,
    /// The stored order changed since it was read (another event, the reconciler): nothing
    /// was written; read it again and decide again.
    Conflict,
}

/// What to publish about an order just stored (see [`announce`](super::announce)).
pub type Announce = for<'a> fn(&'a Order) -> Vec<OrderMessage>;

/// The transactional outbox of the choreographed saga: an order's change and the messages it
/// publishes are written in one database transaction, and relayed to the broker afterwards.
#[async_trait::async_trait]
pub trait SagaStore: Send + Sync {
    /// Stores a new order with its first transition, and what `announce` makes of the stored
    /// order to publish, in one transaction; unless its idempotency key is taken.
    async fn insert_announced(
        &self,
        order: &NewOrder,
        announce: Announce,
    ) -> Result<Inserted, RepositoryError>;
    /// Saves `order`'s mutable fields, appends `transitions` and writes `publish` to the outbox,
    /// in one transaction, if the stored order is still in `read`'s state and last changed at
    /// `read`'s `updated_at_ms`.
    async fn record(
        &self,
        read: &Order,
        order: &Order,
        transitions: &[Transition],
        publish: &[OrderMessage],
    ) -> Result<Recorded, RepositoryError>;
}

/// The outcome of storing a new order.
#[derive(Debug)]
pub enum Inserted {
    /// The order was stored.
    Created(Order),
    /// An order with the same idempotency key already exists.
    Existing(Order),
}

/// Where orders and their history are kept.
#[async_trait::async_trait]
pub trait OrderRepository: Send + Sync {
    /// Stores a new order with its first transition, unless its idempotency key is taken.
    async fn insert(&self, order: &NewOrder) -> Result<Inserted, RepositoryError>;
    /// The order with `id` and its history.
    async fn get(&self, id: i64) -> Result<Option<Order>, RepositoryError>;
    /// The order created with idempotency key `key`.
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Order>, RepositoryError>;
    /// Saves the order's mutable fields and appends `transition` to its history, in one
    /// transaction. An order stored `APPROVED` or `REJECTED` keeps that state: an update that
    /// would change it (a saga step racing the reconciler of another replica, say) is refused
    /// with an error and nothing is written.
    async fn update(&self, order: &Order, transition: &Transition) -> Result<(), RepositoryError>;
    /// Orders in a pending state not changed since `before_ms`.
    async fn stale(&self, before_ms: i64) -> Result<Vec<Order>, RepositoryError>;
    /// Rejected orders whose compensation must be retried.
    async fn compensation_pending(&self) -> Result<Vec<Order>, RepositoryError>;
    /// The latest orders, optionally in one state.
    async fn list(
        &self,
        state: Option<OrderState>,
        limit: u32,
    ) -> Result<Vec<Order>, RepositoryError>;
}

/// `ConsumerFacade`: verifies that the customer may order.
#[async_trait::async_trait]
pub trait ConsumerPort: Send + Sync {
    /// Verifies consumer `consumer_id` for an order of `total_cents`.
    async fn verify(&self, consumer_id: i64, total_cents: i64) -> Result<(), StepError>;
}

/// `KitchenFacade`: menus and tickets.
#[async_trait::async_trait]
pub trait KitchenPort: Send + Sync {
    /// The menu of restaurant `restaurant_id`, to price the order.
    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, StepError>;
    /// Creates the order's ticket; returns its id.
    async fn create_ticket(&self, order: &Order) -> Result<i64, StepError>;
    /// Confirms a ticket.
    async fn confirm_ticket(&self, ticket_id: i64) -> Result<(), StepError>;
    /// Cancels a ticket (compensation).
    async fn cancel_ticket(&self, ticket_id: i64) -> Result<(), StepError>;
    /// The ticket of order `order_id`, if the kitchen has one.
    async fn find_ticket(&self, order_id: i64) -> Result<Option<i64>, StepError>;
}

/// `AccountingFacade`: payments.
#[async_trait::async_trait]
pub trait AccountingPort: Send + Sync {
    /// Authorizes the order's payment; returns the authorization id.
    async fn authorize(&self, order: &Order) -> Result<i64, StepError>;
    /// Voids any authorization of order `order_id` (compensation; harmless when none).
    async fn void(&self, order_id: i64) -> Result<(), StepError>;
}

/// `NotificationFacade`: tells the customer.
#[async_trait::async_trait]
pub trait NotificationPort: Send + Sync {
    /// Notifies the customer of `order`'s outcome.
    async fn notify(&self, order: &Order) -> Result<(), StepError>;
}

/// The time, replaceable in tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}
