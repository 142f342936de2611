//! The messaging adapter (`saga.mode = events`): `orders.approved` and `orders.rejected` →
//! tell the customer (the same [`NotificationService::notify`] as `POST /notifications`), once
//! per event.

use std::sync::Arc;

use aiods::messaging::Messaging;
use food_delivery_db::events::{Once, consume_once};
use food_events::subjects::durable;
use food_events::{OrderApproved, OrderDetails, OrderRejected};

use crate::domain::NotificationService;

/// Starts the notification service's two consumers.
pub(crate) async fn consume(
    messaging: &Messaging,
    once: &Once,
    service: Arc<NotificationService>,
) -> aiods::Result<()> {
    let svc = service.clone();
    consume_once(
        messaging,
        once,
        durable::NOTIFICATION_APPROVED,
        move |approved: OrderApproved| {
            let service = svc.clone();
            async move {
                let body = format!(
                    "Order {} from restaurant {} for {} is APPROVED.",
                    approved.order.order_id,
                    approved.order.restaurant_id,
                    amount(&approved.order)
                );
                tell(&service, &approved.order, "APPROVED", body).await
            }
        },
    )
    .await?;
    consume_once(
        messaging,
        once,
        durable::NOTIFICATION_REJECTED,
        move |rejected: OrderRejected| {
            let service = service.clone();
            async move {
                let body = format!(
                    "Order {} from restaurant {} for {} is REJECTED: {}.",
                    rejected.order.order_id,
                    rejected.order.restaurant_id,
                    amount(&rejected.order),
                    rejected.rejection.refusal.reason
                );
                tell(&service, &rejected.order, "REJECTED", body).await
            }
        },
    )
    .await
}

fn amount(order: &OrderDetails) -> String {
    format!("{}.{:02}", order.total_cents / 100, order.total_cents % 100)
}

async fn tell(
    service: &NotificationService,
    order: &OrderDetails,
    state: &str,
    body: String,
) -> aiods::Result<()> {
    service
        .notify(
            order.order_id,
            order.consumer_id,
            None,
            format!("Your order {} is {state}", order.order_id),
            body,
        )
        .await
        .map(|_| ())
        .map_err(aiods::Error::from)
}
