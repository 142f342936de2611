//! Order entities and the saga's vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{OrderError, StepFailure};

/// The state of an order, as the seed's saga names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrderState {
    /// Stored; the consumer is being verified.
    ApprovalPending,
    /// The kitchen created its ticket.
    CreatePending,
    /// The payment is authorized.
    PaymentConfirmed,
    /// Every step succeeded.
    Approved,
    /// A step failed; the order is cancelled.
    Rejected,
}

impl OrderState {
    /// The states a saga passes through; an order left in one is stuck.
    pub const PENDING: [OrderState; 3] = [
        Self::ApprovalPending,
        Self::CreatePending,
        Self::PaymentConfirmed,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApprovalPending => "APPROVAL_PENDING",
            Self::CreatePending => "CREATE_PENDING",
            Self::PaymentConfirmed => "PAYMENT_CONFIRMED",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::ApprovalPending,
            Self::CreatePending,
            Self::PaymentConfirmed,
            Self::Approved,
            Self::Rejected,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the saga is still running (or stuck) in this state.
    pub fn is_pending(self) -> bool {
        Self::PENDING.contains(&self)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step of the saga, named in rejections and problem documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    /// The consumer service verifies the customer.
    Consumer,
    /// The kitchen service prices, creates or confirms the ticket.
    Kitchen,
    /// The accounting service authorizes the payment.
    Accounting,
    /// The notification service tells the customer.
    Notification,
    /// The reconciler expired an order left pending.
    Reconciler,
}

impl SagaStep {
    /// The name used in problem documents (`"step": "kitchen"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Kitchen => "kitchen",
            Self::Accounting => "accounting",
            Self::Notification => "notification",
            Self::Reconciler => "reconciler",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Consumer,
            Self::Kitchen,
            Self::Accounting,
            Self::Notification,
            Self::Reconciler,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for SagaStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line of an order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineRequest {
    /// The food item.
    pub menu_item_id: i64,
    /// How many.
    pub quantity: i64,
}

/// What a customer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    /// The customer.
    pub consumer_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// What to deliver.
    pub lines: Vec<OrderLineRequest>,
}

/// Most of one item in an order; more is surely a typing mistake.
pub const MAX_QUANTITY: i64 = 100;

impl PlaceOrder {
    /// Checks the request's shape: at least one line, quantities in `1..=MAX_QUANTITY`.
    pub fn validate(&self) -> Result<(), OrderError> {
        if self.lines.is_empty() {
            return Err(OrderError::Invalid(
                "an order needs at least one line".into(),
            ));
        }
        if let Some(bad) = self
            .lines
            .iter()
            .find(|l| !(1..=MAX_QUANTITY).contains(&l.quantity))
        {
            return Err(OrderError::Invalid(format!(
                "quantity of menu item {} must be between 1 and {MAX_QUANTITY}, got {}",
                bad.menu_item_id, bad.quantity
            )));
        }
        Ok(())
    }

    /// A stable description of the request, compared when an idempotency key is reused.
    pub fn fingerprint(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{}x{}", l.menu_item_id, l.quantity))
            .collect();
        format!(
            "consumer={};restaurant={};lines={}",
            self.consumer_id,
            self.restaurant_id,
            lines.join(",")
        )
    }
}

/// A food item as priced by the kitchen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
}

/// A priced order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The food item.
    pub menu_item_id: i64,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Its price, in cents.
    pub unit_price_cents: i64,
}

/// Why an order was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The step that failed.
    pub step: SagaStep,
    /// How it failed.
    pub failure: StepFailure,
    /// The failing service's problem code, if any.
    pub code: Option<String>,
    /// Human-readable reason.
    pub reason: String,
}

/// One state change of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state entered (or kept, for a note).
    pub state: OrderState,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened.
    pub note: Option<String>,
}

/// An order about to be stored, `APPROVAL_PENDING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The customer.
    pub consumer_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// Its priced lines.
    pub lines: Vec<OrderLine>,
    /// The sum of the lines, in cents.
    pub total_cents: i64,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// See [`PlaceOrder::fingerprint`].
    pub request_fingerprint: String,
    /// When, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

impl NewOrder {
    /// The order as stored with `id`: `APPROVAL_PENDING`, its history the one transition
    /// "order received".
    pub fn stored_as(&self, id: i64) -> Order {
        Order {
            id,
            consumer_id: self.consumer_id,
            restaurant_id: self.restaurant_id,
            lines: self.lines.clone(),
            total_cents: self.total_cents,
            state: OrderState::ApprovalPending,
            ticket_id: None,
            rejection: None,
            compensation_pending: false,
            idempotency_key: self.idempotency_key.clone(),
            request_fingerprint: self.request_fingerprint.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.created_at_ms,
            history: vec![Transition {
                state: OrderState::ApprovalPending,
                at_ms: self.created_at_ms,
                note: Some(ORDER_RECEIVED.to_owned()),
            }],
        }
    }
}

/// The note of an order's first transition.
pub const ORDER_RECEIVED: &str = "order received";

/// An order and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub id: i64,
    /// The customer.
    pub consumer_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// Its priced lines.
    pub lines: Vec<OrderLine>,
    /// The sum of the lines, in cents.
    pub total_cents: i64,
    /// Where the saga is.
    pub state: OrderState,
    /// The kitchen's ticket, once created.
    pub ticket_id: Option<i64>,
    /// Why it was rejected.
    pub rejection: Option<Rejection>,
    /// A compensation (ticket cancel, payment void) failed and is retried by the reconciler.
    pub compensation_pending: bool,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// See [`PlaceOrder::fingerprint`].
    pub request_fingerprint: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
    /// Every transition, oldest first.
    pub history: Vec<Transition>,
}
