//! Streams, subjects and durable consumer names.
//!
//! | stream | subject | event | published by | read by (durable consumer) |
//! |---|---|---|---|---|
//! | `ORDERS` | `orders.created` | [`OrderCreated`](crate::OrderCreated) | order (outbox) | consumer (`consumer-verify`) |
//! | `CONSUMERS` | `consumers.verified` | [`ConsumerVerified`](crate::ConsumerVerified) | consumer | kitchen (`kitchen-create-ticket`), order (`order-consumer-verified`) |
//! | `CONSUMERS` | `consumers.rejected` | [`ConsumerRejected`](crate::ConsumerRejected) | consumer | order (`order-consumer-rejected`) |
//! | `KITCHEN` | `kitchen.ticket_created` | [`TicketCreated`](crate::TicketCreated) | kitchen | accounting (`accounting-authorize`), order (`order-ticket-created`) |
//! | `KITCHEN` | `kitchen.ticket_rejected` | [`TicketRejected`](crate::TicketRejected) | kitchen | order (`order-ticket-rejected`) |
//! | `ACCOUNTING` | `accounting.authorized` | [`PaymentAuthorized`](crate::PaymentAuthorized) | accounting | order (`order-payment-authorized`) |
//! | `ACCOUNTING` | `accounting.declined` | [`PaymentDeclined`](crate::PaymentDeclined) | accounting | order (`order-payment-declined`) |
//! | `ORDERS` | `orders.approved` | [`OrderApproved`](crate::OrderApproved) | order (outbox) | kitchen (`kitchen-confirm-ticket`), notification (`notification-approved`) |
//! | `ORDERS` | `orders.rejected` | [`OrderRejected`](crate::OrderRejected) | order (outbox) | notification (`notification-rejected`) |
//! | `ORDERS` | `orders.ticket_cancel` | [`CancelTicket`](crate::CancelTicket) | order (outbox) | kitchen (`kitchen-cancel-ticket`) |
//! | `ORDERS` | `orders.payment_void` | [`VoidPayment`](crate::VoidPayment) | order (outbox) | accounting (`accounting-void-payment`) |
//!
//! Dead letters go to `dlq.<STREAM>.<durable>` in the `DLQ` stream (the chassis's contract).

/// A JetStream stream: its name and the subjects it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    /// Its name (`ORDERS`).
    pub name: &'static str,
    /// The subjects it keeps (`orders.>`).
    pub subjects: &'static str,
}

/// What the order service publishes: outcomes and compensation requests.
pub const ORDERS: Stream = Stream {
    name: "ORDERS",
    subjects: "orders.>",
};
/// What the consumer service publishes: verifications.
pub const CONSUMERS: Stream = Stream {
    name: "CONSUMERS",
    subjects: "consumers.>",
};
/// What the kitchen service publishes: tickets.
pub const KITCHEN: Stream = Stream {
    name: "KITCHEN",
    subjects: "kitchen.>",
};
/// What the accounting service publishes: payment authorizations.
pub const ACCOUNTING: Stream = Stream {
    name: "ACCOUNTING",
    subjects: "accounting.>",
};
/// Every stream of the saga.
pub const STREAMS: [Stream; 4] = [ORDERS, CONSUMERS, KITCHEN, ACCOUNTING];

/// An order was stored `APPROVAL_PENDING`.
pub const ORDER_CREATED: &str = "orders.created";
/// The order service approved an order.
pub const ORDER_APPROVED: &str = "orders.approved";
/// The order service rejected an order.
pub const ORDER_REJECTED: &str = "orders.rejected";
/// Compensation: the kitchen must cancel the order's ticket.
pub const TICKET_CANCEL: &str = "orders.ticket_cancel";
/// Compensation: accounting must void the order's payment.
pub const PAYMENT_VOID: &str = "orders.payment_void";
/// The consumer may place the order.
pub const CONSUMER_VERIFIED: &str = "consumers.verified";
/// The consumer may not place the order.
pub const CONSUMER_REJECTED: &str = "consumers.rejected";
/// The kitchen created the order's ticket.
pub const TICKET_CREATED: &str = "kitchen.ticket_created";
/// The kitchen refused the order.
pub const TICKET_REJECTED: &str = "kitchen.ticket_rejected";
/// The payment is authorized.
pub const PAYMENT_AUTHORIZED: &str = "accounting.authorized";
/// The payment is declined (or the consumer has no account).
pub const PAYMENT_DECLINED: &str = "accounting.declined";

/// The stream a subject of the saga belongs to.
pub fn stream_of(subject: &str) -> Option<Stream> {
    STREAMS.into_iter().find(|s| {
        s.subjects
            .strip_suffix('>')
            .is_some_and(|prefix| subject.starts_with(prefix))
    })
}

/// Durable consumer names, one per (service, subject).
pub mod durable {
    /// consumer service ← `orders.created`.
    pub const CONSUMER_VERIFY: &str = "consumer-verify";
    /// kitchen service ← `consumers.verified`.
    pub const KITCHEN_CREATE_TICKET: &str = "kitchen-create-ticket";
    /// kitchen service ← `orders.approved`.
    pub const KITCHEN_CONFIRM_TICKET: &str = "kitchen-confirm-ticket";
    /// kitchen service ← `orders.ticket_cancel`.
    pub const KITCHEN_CANCEL_TICKET: &str = "kitchen-cancel-ticket";
    /// accounting service ← `kitchen.ticket_created`.
    pub const ACCOUNTING_AUTHORIZE: &str = "accounting-authorize";
    /// accounting service ← `orders.payment_void`.
    pub const ACCOUNTING_VOID_PAYMENT: &str = "accounting-void-payment";
    /// order service ← `consumers.verified`.
    pub const ORDER_CONSUMER_VERIFIED: &str = "order-consumer-verified";
    /// order service ← `consumers.rejected`.
    pub const ORDER_CONSUMER_REJECTED: &str = "order-consumer-rejected";
    /// order service ← `kitchen.ticket_created`.
    pub const ORDER_TICKET_CREATED: &str = "order-ticket-created";
    /// order service ← `kitchen.ticket_rejected`.
    pub const ORDER_TICKET_REJECTED: &str = "order-ticket-rejected";
    /// order service ← `accounting.authorized`.
    pub const ORDER_PAYMENT_AUTHORIZED: &str = "order-payment-authorized";
    /// order service ← `accounting.declined`.
    pub const ORDER_PAYMENT_DECLINED: &str = "order-payment-declined";
    /// notification service ← `orders.approved`.
    pub const NOTIFICATION_APPROVED: &str = "notification-approved";
    /// notification service ← `orders.rejected`.
    pub const NOTIFICATION_REJECTED: &str = "notification-rejected";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_belongs_to_the_stream_of_its_publisher() {
        for (subject, stream) in [
            (ORDER_CREATED, ORDERS),
            (ORDER_APPROVED, ORDERS),
            (ORDER_REJECTED, ORDERS),
            (TICKET_CANCEL, ORDERS),
            (PAYMENT_VOID, ORDERS),
            (CONSUMER_VERIFIED, CONSUMERS),
            (CONSUMER_REJECTED, CONSUMERS),
            (TICKET_CREATED, KITCHEN),
            (TICKET_REJECTED, KITCHEN),
            (PAYMENT_AUTHORIZED, ACCOUNTING),
            (PAYMENT_DECLINED, ACCOUNTING),
        ] {
            assert_eq!(stream_of(subject), Some(stream), "{subject}");
            assert!(subject.starts_with(&stream.name.to_ascii_lowercase()));
        }
        assert_eq!(stream_of("dlq.ORDERS.x"), None);
    }
}
