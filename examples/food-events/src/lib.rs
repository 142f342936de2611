//! The published language of the food-delivery saga as choreography (seed section 13.4,
//! figure 31): the JetStream streams, their subjects, the durable consumers reading them and
//! the events' JSON shapes, shared by the five services.
//!
//! Every service publishes into its own stream (`ORDERS`, `CONSUMERS`, `KITCHEN`,
//! `ACCOUNTING`) under `<stream-lowercase>.<event>` subjects. Every durable consumer reads
//! exactly one subject (Debian's `nats-server` 2.9 has no multiple filter subjects per
//! consumer), so a service that reacts to several events runs several durable consumers.
//!
//! ```text
//! POST /orders ─► orders.created ─► consumer ─► consumers.verified ─► kitchen ─► kitchen.ticket_created ─► accounting
//!                                       │                                │              │                       │
//!                                       ▼                                ▼              ▼                       ▼
//!                               consumers.rejected            kitchen.ticket_rejected   (order)   accounting.authorized / .declined
//!                                       └────────────────────────────────┴──────────────┴───────────────────────┘
//!                                                                   ▼
//!                      order service: orders.approved / orders.rejected (+ orders.ticket_cancel, orders.payment_void)
//!                                                                   ▼
//!                                        notification (both outcomes), kitchen (confirm, cancel), accounting (void)
//! ```
//!
//! Each event carries the whole order ([`OrderDetails`]), so a consumer needs no call back to
//! the service that published it. Its `event_id` is deterministic (the subject, the order and,
//! for compensations, what triggered them): it is sent as `Nats-Msg-Id`, so JetStream drops a
//! republished copy within its duplicate window, and the idempotent consumers drop any later
//! redelivery.

#![forbid(unsafe_code)]

mod events;
pub mod subjects;

pub use events::{
    CancelTicket, Checked, ConsumerRejected, ConsumerVerified, Event, Failure, OrderApproved,
    OrderCreated, OrderDetails, OrderLine, OrderMessage, OrderRejected, PaymentAuthorized,
    PaymentDeclined, Refusal, Rejection, Step, TicketCreated, TicketRejected, VoidPayment,
};
