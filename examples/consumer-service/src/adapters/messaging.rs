//! The messaging adapter (`saga.mode = events`, figure 33): `orders.created` → verify the
//! consumer (the same [`ConsumerService::verify`] as `POST /consumers/{id}/validate`) →
//! `consumers.verified` or `consumers.rejected`, once per event.

use std::sync::Arc;

use aiods::messaging::Messaging;
use food_delivery_db::events::{Once, consume_once, publish};
use food_events::subjects::durable;
use food_events::{ConsumerRejected, ConsumerVerified, Event, Failure, OrderCreated, Refusal};

use crate::domain::{ConsumerError, ConsumerService};

/// Starts the consumer service's consumer of `orders.created`.
pub(crate) async fn consume(
    messaging: &Messaging,
    once: &Once,
    service: Arc<ConsumerService>,
) -> aiods::Result<()> {
    let publisher = messaging.clone();
    consume_once(
        messaging,
        once,
        durable::CONSUMER_VERIFY,
        move |created: OrderCreated| {
            let (service, publisher) = (service.clone(), publisher.clone());
            async move {
                let order = created.order;
                match service.verify(order.consumer_id, order.total_cents).await {
                    Ok(_) => {
                        let event = ConsumerVerified {
                            event_id: order.event_id(ConsumerVerified::SUBJECT, None),
                            order,
                        };
                        publish(&publisher, &event).await
                    }
                    Err(e) => {
                        let refusal = refusal(&e).ok_or_else(|| aiods::Error::internal(e))?;
                        let event = ConsumerRejected {
                            event_id: order.event_id(ConsumerRejected::SUBJECT, None),
                            order,
                            refusal,
                        };
                        publish(&publisher, &event).await
                    }
                }
            }
        },
    )
    .await
}

/// The refusal `e` is, or `None` when it is a failure to retry.
fn refusal(e: &ConsumerError) -> Option<Refusal> {
    let failure = match e {
        ConsumerError::UnknownConsumer(_) => Failure::NotFound,
        _ => Failure::Refused,
    };
    Some(Refusal {
        failure,
        code: e.code()?.to_owned(),
        reason: e.to_string(),
    })
}
