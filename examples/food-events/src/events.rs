//! The events, as JSON message bodies.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::subjects;

/// An event of the saga: its subject, its id (sent as `Nats-Msg-Id`) and the order it is
/// about.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The subject it is published on.
    const SUBJECT: &'static str;
    /// Its deterministic id.
    fn event_id(&self) -> &str;
    /// The order it is about.
    fn order(&self) -> &OrderDetails;
}

/// An event whose order passed [`OrderDetails::validate`]: decode a delivery into
/// `Checked<E>` and a meaningless order (no lines, a zero id) fails to decode like broken
/// JSON does, so it is dead-lettered at once as malformed instead of being retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<E>(pub E);

impl<'de, E: Event> Deserialize<'de> for Checked<E> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = E::deserialize(deserializer)?;
        event.order().validate().map_err(serde::de::Error::custom)?;
        if event.event_id().is_empty() {
            return Err(serde::de::Error::custom("event_id is empty"));
        }
        Ok(Self(event))
    }
}

/// A priced line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The food item.
    pub menu_item_id: i64,
    /// How many.
    pub quantity: i64,
    /// Its price when the order was placed, in cents.
    pub unit_price_cents: i64,
}

/// The order an event is about, carried whole so no consumer has to call back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetails {
    /// The order's id in the order service.
    pub order_id: i64,
    /// When it was placed (ms since the Unix epoch); with the id, names the saga.
    pub placed_at_ms: i64,
    /// The customer.
    pub consumer_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// Its lines.
    pub lines: Vec<OrderLine>,
    /// The sum of the lines, in cents.
    pub total_cents: i64,
}

impl OrderDetails {
    /// The id of the event `subject` about this order; `trigger` tells apart several events
    /// of one subject about one order (a compensation requested twice for different reasons).
    pub fn event_id(&self, subject: &str, trigger: Option<&str>) -> String {
        match trigger {
            None => format!("{subject}:{}:{}", self.order_id, self.placed_at_ms),
            Some(t) => format!("{subject}:{}:{}:{t}", self.order_id, self.placed_at_ms),
        }
    }

    /// Checks what JSON's types cannot: a positive id and total, at least one line. A message
    /// failing this is malformed and goes to the dead-letter subject.
    pub fn validate(&self) -> Result<(), String> {
        if self.order_id <= 0 {
            return Err(format!("order_id must be positive, got {}", self.order_id));
        }
        if self.lines.is_empty() {
            return Err(format!("order {} has no lines", self.order_id));
        }
        if self.total_cents <= 0 {
            return Err(format!(
                "order {} has a non-positive total {}",
                self.order_id, self.total_cents
            ));
        }
        Ok(())
    }
}

/// How a step refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The entity (customer, restaurant, account) is unknown.
    NotFound,
    /// The step said no (blocked customer, sold-out item, declined card).
    Refused,
    /// The order stayed pending too long.
    Expired,
}

impl Failure {
    /// The name used in events and in the order's `rejection.failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step refused an order: the same code the step's HTTP API gives in its problem
/// document (`consumer-blocked`, `item-unavailable`, `payment-declined`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// How.
    pub failure: Failure,
    /// The machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub reason: String,
}

/// The step of the saga that rejected an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The consumer service.
    Consumer,
    /// The kitchen service.
    Kitchen,
    /// The accounting service.
    Accounting,
    /// The order service's reconciler (the order stayed pending too long).
    Reconciler,
}

/// Why the order service rejected an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The step.
    pub step: Step,
    /// How it refused, and why.
    #[serde(flatten)]
    pub refusal: Refusal,
}

macro_rules! event {
    ($(#[$doc:meta])* $name:ident = $subject:path { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// Its deterministic id, sent as `Nats-Msg-Id`.
            pub event_id: String,
            /// The order.
            pub order: OrderDetails,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl Event for $name {
            const SUBJECT: &'static str = $subject;
            fn event_id(&self) -> &str {
                &self.event_id
            }
            fn order(&self) -> &OrderDetails {
                &self.order
            }
        }
    };
}

event!(
    /// `orders.created`: an order was stored `APPROVAL_PENDING` (written to the outbox in the
    /// same transaction).
    OrderCreated = subjects::ORDER_CREATED {}
);
event!(
    /// `consumers.verified`: the customer may place the order.
    ConsumerVerified = subjects::CONSUMER_VERIFIED {}
);
event!(
    /// `consumers.rejected`: the customer may not place the order.
    ConsumerRejected = subjects::CONSUMER_REJECTED {
        /// Why.
        refusal: Refusal,
    }
);
event!(
    /// `kitchen.ticket_created`: the kitchen created the order's ticket (`CREATE_PENDING`).
    TicketCreated = subjects::TICKET_CREATED {
        /// The ticket.
        ticket_id: i64,
    }
);
event!(
    /// `kitchen.ticket_rejected`: the kitchen refused the order (unknown or sold-out item, …).
    TicketRejected = subjects::TICKET_REJECTED {
        /// Why.
        refusal: Refusal,
    }
);
event!(
    /// `accounting.authorized`: the payment is authorized.
    PaymentAuthorized = subjects::PAYMENT_AUTHORIZED {
        /// The ticket the payment is for.
        ticket_id: i64,
        /// The authorization.
        authorization_id: i64,
    }
);
event!(
    /// `accounting.declined`: the payment is declined, or the customer has no account.
    PaymentDeclined = subjects::PAYMENT_DECLINED {
        /// The ticket the payment was for.
        ticket_id: i64,
        /// Why.
        refusal: Refusal,
    }
);
event!(
    /// `orders.approved`: every step succeeded; the kitchen confirms the ticket, the customer is
    /// told.
    OrderApproved = subjects::ORDER_APPROVED {
        /// The ticket to confirm.
        ticket_id: i64,
    }
);
event!(
    /// `orders.rejected`: a step refused the order (or it expired); the customer is told.
    OrderRejected = subjects::ORDER_REJECTED {
        /// At which step and why.
        rejection: Rejection,
    }
);
event!(
    /// `orders.ticket_cancel`: compensation, the kitchen cancels the order's ticket (by id when
    /// known, else whatever ticket the order has; nothing when it has none).
    CancelTicket = subjects::TICKET_CANCEL {
        /// The ticket, when the order service knows it.
        ticket_id: Option<i64>,
    }
);
event!(
    /// `orders.payment_void`: compensation, accounting voids the order's authorization, if any.
    VoidPayment = subjects::PAYMENT_VOID {}
);

/// What the order service publishes, through its outbox. It serializes as the event it holds
/// (the JSON body of its subject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OrderMessage {
    /// `orders.created`.
    Created(OrderCreated),
    /// `orders.approved`.
    Approved(OrderApproved),
    /// `orders.rejected`.
    Rejected(OrderRejected),
    /// `orders.ticket_cancel`.
    CancelTicket(CancelTicket),
    /// `orders.payment_void`.
    VoidPayment(VoidPayment),
}

impl OrderMessage {
    /// Its subject.
    pub fn subject(&self) -> &'static str {
        match self {
            Self::Created(_) => OrderCreated::SUBJECT,
            Self::Approved(_) => OrderApproved::SUBJECT,
            Self::Rejected(_) => OrderRejected::SUBJECT,
            Self::CancelTicket(_) => CancelTicket::SUBJECT,
            Self::VoidPayment(_) => VoidPayment::SUBJECT,
        }
    }

    /// Its id.
    pub fn event_id(&self) -> &str {
        match self {
            Self::Created(e) => e.event_id(),
            Self::Approved(e) => e.event_id(),
            Self::Rejected(e) => e.event_id(),
            Self::CancelTicket(e) => e.event_id(),
            Self::VoidPayment(e) => e.event_id(),
        }
    }

    /// `orders.created` for `order`.
    pub fn created(order: &OrderDetails) -> Self {
        Self::Created(OrderCreated {
            event_id: order.event_id(OrderCreated::SUBJECT, None),
            order: order.clone(),
        })
    }

    /// `orders.approved` for `order` and its ticket.
    pub fn approved(order: &OrderDetails, ticket_id: i64) -> Self {
        Self::Approved(OrderApproved {
            event_id: order.event_id(OrderApproved::SUBJECT, None),
            order: order.clone(),
            ticket_id,
        })
    }

    /// `orders.rejected` for `order`.
    pub fn rejected(order: &OrderDetails, rejection: Rejection) -> Self {
        Self::Rejected(OrderRejected {
            event_id: order.event_id(OrderRejected::SUBJECT, None),
            order: order.clone(),
            rejection,
        })
    }

    /// `orders.ticket_cancel` for `order`'s ticket (`None`: whichever it has).
    pub fn cancel_ticket(order: &OrderDetails, ticket_id: Option<i64>) -> Self {
        let trigger = ticket_id.map_or_else(|| "any".to_owned(), |t| format!("ticket-{t}"));
        Self::CancelTicket(CancelTicket {
            event_id: order.event_id(CancelTicket::SUBJECT, Some(&trigger)),
            order: order.clone(),
            ticket_id,
        })
    }

    /// `orders.payment_void` for `order`; `trigger` names what asked for it (`expired`,
    /// `authorization-7`).
    pub fn void_payment(order: &OrderDetails, trigger: &str) -> Self {
        Self::VoidPayment(VoidPayment {
            event_id: order.event_id(VoidPayment::SUBJECT, Some(trigger)),
            order: order.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderDetails {
        OrderDetails {
            order_id: 7,
            placed_at_ms: 1_700_000_000_000,
            consumer_id: 1,
            restaurant_id: 1,
            lines: vec![OrderLine {
                menu_item_id: 11,
                quantity: 2,
                unit_price_cents: 1250,
            }],
            total_cents: 2500,
        }
    }

    #[test]
    fn events_round_trip_through_json_with_their_subject_and_id() {
        let e = OrderMessage::rejected(
            &order(),
            Rejection {
                step: Step::Accounting,
                refusal: Refusal {
                    failure: Failure::Refused,
                    code: "payment-declined".into(),
                    reason: "card declined".into(),
                },
            },
        );
        assert_eq!(e.subject(), "orders.rejected");
        assert_eq!(e.event_id(), "orders.rejected:7:1700000000000");
        let json: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&e).expect("json")).expect("parse");
        assert_eq!(json["rejection"]["step"], "accounting");
        assert_eq!(json["rejection"]["failure"], "refused");
        assert_eq!(json["rejection"]["code"], "payment-declined");
        let back: OrderRejected = serde_json::from_value(json).expect("back");
        assert_eq!(OrderMessage::Rejected(back), e);
    }

    #[test]
    fn compensations_for_different_triggers_have_different_ids() {
        let o = order();
        let a = OrderMessage::cancel_ticket(&o, None);
        let b = OrderMessage::cancel_ticket(&o, Some(3));
        let c = OrderMessage::void_payment(&o, "expired");
        let d = OrderMessage::void_payment(&o, "authorization-9");
        let ids = [a.event_id(), b.event_id(), c.event_id(), d.event_id()];
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4, "{ids:?}");
        assert_eq!(
            OrderMessage::created(&o).event_id(),
            OrderMessage::created(&o).event_id(),
            "the same event about the same order has the same id"
        );
    }

    #[test]
    fn a_structurally_valid_but_meaningless_order_is_refused() {
        let mut o = order();
        assert!(o.validate().is_ok());
        o.lines.clear();
        assert!(o.validate().is_err());
        let mut o = order();
        o.order_id = 0;
        assert!(o.validate().is_err());
        assert!(serde_json::from_str::<OrderCreated>(r#"{"event_id":"x"}"#).is_err());
        let mut empty = serde_json::to_vec(&OrderMessage::created(&order())).expect("json");
        assert!(serde_json::from_slice::<Checked<OrderCreated>>(&empty).is_ok());
        empty = String::from_utf8(empty)
            .expect("utf-8")
            .replace("\"order_id\":7", "\"order_id\":-7")
            .into_bytes();
        let refused = serde_json::from_slice::<Checked<OrderCreated>>(&empty);
        assert!(
            refused
                .expect_err("refused")
                .to_string()
                .contains("order_id must be positive")
        );
    }
}
