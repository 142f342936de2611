//! HTTP clients of the other services, through the chassis's [`aiods::Client`] (so each call
//! is traced and measured). Upstream names: `consumer`, `kitchen`, `accounting`,
//! `notification` (`AIODS_UPSTREAMS__KITCHEN=http://…`).

use serde::Deserialize;
use serde_json::json;

use crate::domain::{
    AccountingPort, ConsumerPort, KitchenPort, MenuItem, NotificationPort, Order, StepError,
    StepFailure,
};

/// Turns a chassis client error into the domain's view of a failed step.
fn step_error(error: aiods::Error) -> StepError {
    match error {
        aiods::Error::Upstream {
            message,
            status,
            timed_out,
            problem,
            ..
        } => {
            let code = problem
                .as_ref()
                .and_then(|p| p.extensions.get("code"))
                .and_then(|c| c.as_str())
                .map(str::to_owned);
            let detail = problem
                .as_ref()
                .and_then(|p| p.detail.clone())
                .unwrap_or(message);
            let failure = match status {
                Some(404) => StepFailure::NotFound,
                Some(s) if (400..500).contains(&s) => StepFailure::Refused,
                _ if timed_out => StepFailure::TimedOut,
                _ => StepFailure::Unavailable,
            };
            StepError {
                failure,
                detail,
                code,
            }
        }
        other => StepError::new(StepFailure::Unavailable, other.to_string()),
    }
}

/// We read only the fields we need from the other services' answers.
#[derive(Deserialize)]
struct WithId {
    id: i64,
}

#[derive(Deserialize)]
struct RestaurantDto {
    menu: Vec<MenuItemDto>,
}

#[derive(Deserialize)]
struct MenuItemDto {
    id: i64,
    name: String,
    price_cents: i64,
}

/// The consumer service over HTTP.
pub(crate) struct HttpConsumer(pub(crate) aiods::Client);

#[async_trait::async_trait]
impl ConsumerPort for HttpConsumer {
    async fn verify(&self, consumer_id: i64, total_cents: i64) -> Result<(), StepError> {
        self.0
            .post_json::<_, serde_json::Value>(
                "consumer",
                &format!("/consumers/{consumer_id}/validate"),
                &json!({ "order_total_cents": total_cents }),
            )
            .await
            .map(|_| ())
            .map_err(step_error)
    }
}

/// The kitchen service over HTTP.
pub(crate) struct HttpKitchen(pub(crate) aiods::Client);

#[async_trait::async_trait]
impl KitchenPort for HttpKitchen {
    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, StepError> {
        let r: RestaurantDto = self
            .0
            .get_json("kitchen", &format!("/restaurants/{restaurant_id}"))
            .await
            .map_err(step_error)?;
        Ok(r.menu
            .into_iter()
            .map(|i| MenuItem {
                id: i.id,
                name: i.name,
                price_cents: i.price_cents,
            })
            .collect())
    }

    async fn create_ticket(&self, order: &Order) -> Result<i64, StepError> {
        let lines: Vec<_> = order
            .lines
            .iter()
            .map(|l| json!({ "menu_item_id": l.menu_item_id, "quantity": l.quantity }))
            .collect();
        let body = json!({
            "order_id": order.id,
            "restaurant_id": order.restaurant_id,
            "lines": lines,
        });
        let ticket: WithId = self
            .0
            .post_json("kitchen", "/tickets", &body)
            .await
            .map_err(step_error)?;
        Ok(ticket.id)
    }

    async fn confirm_ticket(&self, ticket_id: i64) -> Result<(), StepError> {
        self.0
            .post_json::<_, serde_json::Value>(
                "kitchen",
                &format!("/tickets/{ticket_id}/confirm"),
                &json!({}),
            )
            .await
            .map(|_| ())
            .map_err(step_error)
    }

    async fn cancel_ticket(&self, ticket_id: i64) -> Result<(), StepError> {
        self.0
            .post_json::<_, serde_json::Value>(
                "kitchen",
                &format!("/tickets/{ticket_id}/cancel"),
                &json!({}),
            )
            .await
            .map(|_| ())
            .map_err(step_error)
    }

    async fn find_ticket(&self, order_id: i64) -> Result<Option<i64>, StepError> {
        let found: Vec<WithId> = self
            .0
            .get_json("kitchen", &format!("/tickets?order_id={order_id}"))
            .await
            .map_err(step_error)?;
        Ok(found.first().map(|t| t.id))
    }
}

/// The accounting service over HTTP.
pub(crate) struct HttpAccounting(pub(crate) aiods::Client);

#[async_trait::async_trait]
impl AccountingPort for HttpAccounting {
    async fn authorize(&self, order: &Order) -> Result<i64, StepError> {
        let body = json!({
            "order_id": order.id,
            "consumer_id": order.consumer_id,
            "amount_cents": order.total_cents,
        });
        let authorization: WithId = self
            .0
            .post_json("accounting", "/authorizations", &body)
            .await
            .map_err(step_error)?;
        Ok(authorization.id)
    }

    async fn void(&self, order_id: i64) -> Result<(), StepError> {
        self.0
            .post_json::<_, serde_json::Value>(
                "accounting",
                "/authorizations/void",
                &json!({ "order_id": order_id }),
            )
            .await
            .map(|_| ())
            .map_err(step_error)
    }
}

/// The notification service over HTTP.
pub(crate) struct HttpNotification(pub(crate) aiods::Client);

#[async_trait::async_trait]
impl NotificationPort for HttpNotification {
    async fn notify(&self, order: &Order) -> Result<(), StepError> {
        let body = json!({
            "order_id": order.id,
            "consumer_id": order.consumer_id,
            "subject": format!("Your order {} is {}", order.id, order.state),
            "message": format!(
                "Order {} from restaurant {} for {}.{:02} is {}.",
                order.id,
                order.restaurant_id,
                order.total_cents / 100,
                order.total_cents % 100,
                order.state
            ),
        });
        self.0
            .post_json::<_, serde_json::Value>("notification", "/notifications", &body)
            .await
            .map(|_| ())
            .map_err(step_error)
    }
}

/// The kitchen's menus, kept from the last answer: with `saga.mode = events` the kitchen is
/// asked only to price a new order, and while it is down (restarting after a crash, say) the
/// last menu it gave prices the order instead (the kitchen prices the ticket again).
pub(crate) struct CachedMenus {
    kitchen: HttpKitchen,
    menus: std::sync::Mutex<std::collections::HashMap<i64, Vec<MenuItem>>>,
}

impl CachedMenus {
    /// Menus asked of `kitchen`.
    pub(crate) fn new(kitchen: HttpKitchen) -> Self {
        Self {
            kitchen,
            menus: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl KitchenPort for CachedMenus {
    async fn menu(&self, restaurant_id: i64) -> Result<Vec<MenuItem>, StepError> {
        match self.kitchen.menu(restaurant_id).await {
            Ok(menu) => {
                if let Ok(mut menus) = self.menus.lock() {
                    menus.insert(restaurant_id, menu.clone());
                }
                Ok(menu)
            }
            Err(e) if matches!(e.failure, StepFailure::Unavailable | StepFailure::TimedOut) => {
                let cached = self
                    .menus
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&restaurant_id).cloned());
                cached.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn create_ticket(&self, order: &Order) -> Result<i64, StepError> {
        self.kitchen.create_ticket(order).await
    }

    async fn confirm_ticket(&self, ticket_id: i64) -> Result<(), StepError> {
        self.kitchen.confirm_ticket(ticket_id).await
    }

    async fn cancel_ticket(&self, ticket_id: i64) -> Result<(), StepError> {
        self.kitchen.cancel_ticket(ticket_id).await
    }

    async fn find_ticket(&self, order_id: i64) -> Result<Option<i64>, StepError> {
        self.kitchen.find_ticket(order_id).await
    }
}
