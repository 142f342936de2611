//! The messaging adapter (`saga.mode = events`, figure 34), on the same [`KitchenService`] as
//! the HTTP controller, once per event:
//!
//! - `consumers.verified` → create the order's ticket → `kitchen.ticket_created` or
//!   `kitchen.ticket_rejected`;
//! - `orders.approved` → confirm the ticket;
//! - `orders.ticket_cancel` → cancel the ticket (compensation; nothing when there is none).

use std::sync::Arc;

use aiods::messaging::Messaging;
use food_delivery_db::events::{Once, consume_once, publish};
use food_events::subjects::durable;
use food_events::{
    CancelTicket, ConsumerVerified, Event, Failure, OrderApproved, Refusal, TicketCreated,
    TicketRejected,
};

use crate::domain::{KitchenError, KitchenService, TicketLineRequest};

/// Starts the kitchen's three consumers.
pub(crate) async fn consume(
    messaging: &Messaging,
    once: &Once,
    service: Arc<KitchenService>,
) -> aiods::Result<()> {
    let (svc, publisher) = (service.clone(), messaging.clone());
    consume_once(
        messaging,
        once,
        durable::KITCHEN_CREATE_TICKET,
        move |verified: ConsumerVerified| {
            let (service, publisher) = (svc.clone(), publisher.clone());
            async move {
                let order = verified.order;
                let lines: Vec<TicketLineRequest> = order
                    .lines
                    .iter()
                    .map(|l| TicketLineRequest {
                        menu_item_id: l.menu_item_id,
                        quantity: l.quantity,
                    })
                    .collect();
                match service
                    .create_ticket(order.order_id, order.restaurant_id, &lines)
                    .await
                {
                    Ok(ticket) => {
                        let event = TicketCreated {
                            event_id: order.event_id(TicketCreated::SUBJECT, None),
                            order,
                            ticket_id: ticket.id,
                        };
                        publish(&publisher, &event).await
                    }
                    Err(e) => {
                        let refusal = refusal(&e).ok_or_else(|| aiods::Error::internal(e))?;
                        let event = TicketRejected {
                            event_id: order.event_id(TicketRejected::SUBJECT, None),
                            order,
                            refusal,
                        };
                        publish(&publisher, &event).await
                    }
                }
            }
        },
    )
    .await?;

    let svc = service.clone();
    consume_once(
        messaging,
        once,
        durable::KITCHEN_CONFIRM_TICKET,
        move |approved: OrderApproved| {
            let service = svc.clone();
            async move {
                match service.confirm(approved.ticket_id).await {
                    Ok(_) => Ok(()),
                    Err(e @ KitchenError::Repository(_)) => Err(aiods::Error::internal(e)),
                    // Nothing to retry: the ticket is gone or cancelled.
                    Err(e) => {
                        tracing::warn!(order_id = approved.order.order_id, error = %e, "ticket not confirmed");
                        Ok(())
                    }
                }
            }
        },
    )
    .await?;

    consume_once(
        messaging,
        once,
        durable::KITCHEN_CANCEL_TICKET,
        move |cancel: CancelTicket| {
            let service = service.clone();
            async move {
                let ticket = match cancel.ticket_id {
                    Some(id) => Some(id),
                    None => service
                        .ticket_for_order(cancel.order.order_id)
                        .await
                        .map_err(aiods::Error::internal)?
                        .map(|t| t.id),
                };
                let Some(id) = ticket else {
                    return Ok(());
                };
                match service.cancel(id).await {
                    Ok(_) => Ok(()),
                    Err(e @ KitchenError::Repository(_)) => Err(aiods::Error::internal(e)),
                    Err(e) => {
                        tracing::warn!(order_id = cancel.order.order_id, error = %e, "ticket not cancelled");
                        Ok(())
                    }
                }
            }
        },
    )
    .await
}

/// The refusal `e` is, or `None` when it is a failure to retry.
fn refusal(e: &KitchenError) -> Option<Refusal> {
    let failure = match e {
        KitchenError::UnknownRestaurant(_) => Failure::NotFound,
        _ => Failure::Refused,
    };
    Some(Refusal {
        failure,
        code: e.code()?.to_owned(),
        reason: e.to_string(),
    })
}
