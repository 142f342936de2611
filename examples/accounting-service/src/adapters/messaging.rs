//! The messaging adapter (`saga.mode = events`, figure 35), on the same
//! [`AccountingService`] as the HTTP controller, once per event:
//!
//! - `kitchen.ticket_created` → authorize the payment → `accounting.authorized` or
//!   `accounting.declined`;
//! - `orders.payment_void` → void the order's authorization (compensation; nothing when there
//!   is none).

use std::sync::Arc;

use aiods::messaging::Messaging;
use food_delivery_db::events::{Once, consume_once, publish};
use food_events::subjects::durable;
use food_events::{
    Event, Failure, PaymentAuthorized, PaymentDeclined, Refusal, TicketCreated, VoidPayment,
};

use crate::domain::{AccountingError, AccountingService};

/// Starts the accounting service's two consumers.
pub(crate) async fn consume(
    messaging: &Messaging,
    once: &Once,
    service: Arc<AccountingService>,
) -> aiods::Result<()> {
    let (svc, publisher) = (service.clone(), messaging.clone());
    consume_once(
        messaging,
        once,
        durable::ACCOUNTING_AUTHORIZE,
        move |ticket: TicketCreated| {
            let (service, publisher) = (svc.clone(), publisher.clone());
            async move {
                let order = ticket.order;
                let outcome = service
                    .authorize(order.order_id, order.consumer_id, order.total_cents)
                    .await;
                match outcome {
                    Ok(authorization) => {
                        let event = PaymentAuthorized {
                            event_id: order.event_id(PaymentAuthorized::SUBJECT, None),
                            order,
                            ticket_id: ticket.ticket_id,
                            authorization_id: authorization.id,
                        };
                        publish(&publisher, &event).await
                    }
                    Err(e) if e.is_transient() => Err(aiods::Error::internal(e)),
                    Err(e) => {
                        let failure = match e {
                            AccountingError::UnknownAccount(_) => Failure::NotFound,
                            _ => Failure::Refused,
                        };
                        let event = PaymentDeclined {
                            event_id: order.event_id(PaymentDeclined::SUBJECT, None),
                            order,
                            ticket_id: ticket.ticket_id,
                            refusal: Refusal {
                                failure,
                                code: e.code().to_owned(),
                                reason: e.to_string(),
                            },
                        };
                        publish(&publisher, &event).await
                    }
                }
            }
        },
    )
    .await?;

    consume_once(
        messaging,
        once,
        durable::ACCOUNTING_VOID_PAYMENT,
        move |void: VoidPayment| {
            let service = service.clone();
            async move {
                service
                    .void(void.order.order_id)
                    .await
                    .map(|_| ())
                    .map_err(aiods::Error::internal)
            }
        },
    )
    .await
}
