//! The messaging adapter (`saga.mode = events`): one durable consumer per subject the order
//! service listens to, each handing its event to [`ChoreographedOrders::hear`] once per event
//! id. A payload that does not decode, or names a meaningless order, is dead-lettered at once by
//! the chassis; an event about an unknown order fails until it is dead-lettered.

use std::sync::Arc;

use aiods::messaging::Messaging;
use food_delivery_db::events::{Once, consume_once};
use food_events::subjects::durable;
use food_events::{
    ConsumerRejected, ConsumerVerified, Event, PaymentAuthorized, PaymentDeclined, TicketCreated,
    TicketRejected,
};

use crate::domain::{ChoreographedOrders, SagaEvent};

/// Starts the order service's consumers.
pub(crate) async fn consume(
    messaging: &Messaging,
    once: Once,
    orders: Arc<ChoreographedOrders>,
) -> aiods::Result<()> {
    let on = Listener {
        messaging,
        once,
        orders,
    };
    on.hear::<ConsumerVerified>(durable::ORDER_CONSUMER_VERIFIED, |_| {
        SagaEvent::ConsumerVerified
    })
    .await?;
    on.hear::<ConsumerRejected>(durable::ORDER_CONSUMER_REJECTED, |e| {
        SagaEvent::ConsumerRejected(e.refusal.clone())
    })
    .await?;
    on.hear::<TicketCreated>(durable::ORDER_TICKET_CREATED, |e| {
        SagaEvent::TicketCreated {
            ticket_id: e.ticket_id,
        }
    })
    .await?;
    on.hear::<TicketRejected>(durable::ORDER_TICKET_REJECTED, |e| {
        SagaEvent::TicketRejected(e.refusal.clone())
    })
    .await?;
    on.hear::<PaymentAuthorized>(durable::ORDER_PAYMENT_AUTHORIZED, |e| {
        SagaEvent::PaymentAuthorized {
            ticket_id: e.ticket_id,
            authorization_id: e.authorization_id,
        }
    })
    .await?;
    on.hear::<PaymentDeclined>(durable::ORDER_PAYMENT_DECLINED, |e| {
        SagaEvent::PaymentDeclined {
            ticket_id: e.ticket_id,
            refusal: e.refusal.clone(),
        }
    })
    .await
}

struct Listener<'a> {
    messaging: &'a Messaging,
    once: Once,
    orders: Arc<ChoreographedOrders>,
}

impl Listener<'_> {
    /// Consumes `E`'s subject as `name`, turning each event into a [`SagaEvent`].
    async fn hear<E: Event>(
        &self,
        name: &'static str,
        saga: fn(&E) -> SagaEvent,
    ) -> aiods::Result<()> {
        let orders = self.orders.clone();
        consume_once(self.messaging, &self.once, name, move |event: E| {
            let orders = orders.clone();
            async move {
                let order_id = event.order().order_id;
                let outcome = orders.hear(order_id, &saga(&event)).await?;
                tracing::info!(order_id, event = E::SUBJECT, outcome = ?outcome, "saga event heard");
                Ok(())
            }
        })
        .await
    }
}
