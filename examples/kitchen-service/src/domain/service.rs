//! The kitchen service: `createTicket()` and `rejectTicket()` of the seed's figure 26.

use std::sync::Arc;

use super::{
    KitchenError, KitchenRepository, NewTicket, Restaurant, Ticket, TicketLineRequest, TicketState,
};

/// Creates, confirms and rejects tickets against the restaurants' menus.
pub struct KitchenService {
    repository: Arc<dyn KitchenRepository>,
}

impl KitchenService {
    /// A service over `repository`.
    pub fn new(repository: Arc<dyn KitchenRepository>) -> Self {
        Self { repository }
    }

    /// All restaurants.
    pub async fn restaurants(&self) -> Result<Vec<Restaurant>, KitchenError> {
        Ok(self.repository.restaurants().await?)
    }

    /// One restaurant.
    pub async fn restaurant(&self, id: i64) -> Result<Restaurant, KitchenError> {
        self.repository
            .restaurant(id)
            .await?
            .ok_or(KitchenError::UnknownRestaurant(id))
    }

    /// One ticket.
    pub async fn ticket(&self, id: i64) -> Result<Ticket, KitchenError> {
        self.repository
            .ticket(id)
            .await?
            .ok_or(KitchenError::UnknownTicket(id))
    }

    /// The ticket of an order, if it has one.
    pub async fn ticket_for_order(&self, order_id: i64) -> Result<Option<Ticket>, KitchenError> {
        Ok(self.repository.ticket_for_order(order_id).await?)
    }

    /// Creates the ticket of `order_id` in `CREATE_PENDING`. Creating it again returns the
    /// existing ticket, so a retried saga step is harmless.
    pub async fn create_ticket(
        &self,
        order_id: i64,
        restaurant_id: i64,
        lines: &[TicketLineRequest],
    ) -> Result<Ticket, KitchenError> {
        if let Some(existing) = self.repository.ticket_for_order(order_id).await? {
            return Ok(existing);
        }
        let restaurant = self.restaurant(restaurant_id).await?;
        let lines = restaurant.price(lines)?;
        let total_cents = lines.iter().map(|l| l.quantity * l.unit_price_cents).sum();
        let ticket = NewTicket {
            order_id,
            restaurant_id,
            lines,
            total_cents,
        };
        Ok(self.repository.insert_ticket(&ticket).await?)
    }

    /// Confirms a ticket: the kitchen will cook it.
    pub async fn confirm(&self, id: i64) -> Result<Ticket, KitchenError> {
        self.transition(id, Ticket::confirm).await
    }

    /// Rejects (cancels) a ticket; the saga's compensation. Safe to repeat.
    pub async fn cancel(&self, id: i64) -> Result<Ticket, KitchenError> {
        self.transition(id, |t| Ok(t.cancel())).await
    }

    async fn transition(
        &self,
        id: i64,
        next: impl FnOnce(&Ticket) -> Result<TicketState, KitchenError>,
    ) -> Result<Ticket, KitchenError> {
        let mut ticket = self.ticket(id).await?;
        let state = next(&ticket)?;
        if state != ticket.state {
            self.repository.set_state(id, state).await?;
            ticket.state = state;
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{MenuItem, RepositoryError};

    #[derive(Default)]
    struct InMemory {
        restaurants: Vec<Restaurant>,
        tickets: Mutex<Vec<Ticket>>,
    }

    #[async_trait::async_trait]
    impl KitchenRepository for InMemory {
        async fn restaurants(&self) -> Result<Vec<Restaurant>, RepositoryError> {
            Ok(self.restaurants.clone())
        }
        async fn restaurant(&self, id: i64) -> Result<Option<Restaurant>, RepositoryError> {
            Ok(self.restaurants.iter().find(|r| r.id == id).cloned())
        }
        async fn ticket(&self, id: i64) -> Result<Option<Ticket>, RepositoryError> {
            Ok(self
                .tickets
                .lock()
                .expect("lock")
                .iter()
                .find(|t| t.id == id)
                .cloned())
        }
        async fn ticket_for_order(&self, order_id: i64) -> Result<Option<Ticket>, RepositoryError> {
            let tickets = self.tickets.lock().expect("lock");
            Ok(tickets.iter().find(|t| t.order_id == order_id).cloned())
        }
        async fn insert_ticket(&self, new: &NewTicket) -> Result<Ticket, RepositoryError> {
            let mut tickets = self.tickets.lock().expect("lock");
            let ticket = Ticket {
                id: tickets.len() as i64 + 1,
                order_id: new.order_id,
                restaurant_id: new.restaurant_id,
                state: TicketState::CreatePending,
                lines: new.lines.clone(),
                total_cents: new.total_cents,
            };
            tickets.push(ticket.clone());
            Ok(ticket)
        }
        async fn set_state(&self, id: i64, state: TicketState) -> Result<(), RepositoryError> {
            let mut tickets = self.tickets.lock().expect("lock");
            if let Some(t) = tickets.iter_mut().find(|t| t.id == id) {
                t.state = state;
            }
            Ok(())
        }
    }

    fn service() -> KitchenService {
        let item = |id, price, available| MenuItem {
            id,
            name: format!("item {id}"),
            price_cents: price,
            available,
        };
        KitchenService::new(Arc::new(InMemory {
            restaurants: vec![Restaurant {
                id: 1,
                name: "r".into(),
                menu: vec![
                    item(11, 1000, true),
                    item(12, 300, true),
                    item(13, 900, false),
                ],
            }],
            ..Default::default()
        }))
    }

    fn line(menu_item_id: i64, quantity: i64) -> TicketLineRequest {
        TicketLineRequest {
            menu_item_id,
            quantity,
        }
    }

    #[tokio::test]
    async fn a_ticket_is_priced_confirmed_and_created_once_per_order() {
        let svc = service();
        let t = svc
            .create_ticket(7, 1, &[line(11, 2), line(12, 1)])
            .await
            .expect("created");
        assert_eq!(t.state, TicketState::CreatePending);
        assert_eq!(t.total_cents, 2300);
        let again = svc.create_ticket(7, 1, &[line(11, 5)]).await.expect("same");
        assert_eq!(again.id, t.id);
        assert_eq!(
            svc.confirm(t.id).await.expect("confirm").state,
            TicketState::Accepted
        );
    }

    #[tokio::test]
    async fn unavailable_unknown_empty_and_bad_quantities_are_refused() {
        let svc = service();
        assert!(matches!(
            svc.create_ticket(1, 1, &[line(13, 1)]).await,
            Err(KitchenError::ItemUnavailable {
                menu_item_id: 13,
                ..
            })
        ));
        assert!(matches!(
            svc.create_ticket(1, 1, &[line(99, 1)]).await,
            Err(KitchenError::UnknownMenuItem { .. })
        ));
        assert!(matches!(
            svc.create_ticket(1, 1, &[]).await,
            Err(KitchenError::EmptyTicket)
        ));
        assert!(matches!(
            svc.create_ticket(1, 1, &[line(11, -1)]).await,
            Err(KitchenError::InvalidQuantity { .. })
        ));
        assert!(matches!(
            svc.create_ticket(1, 5, &[line(11, 1)]).await,
            Err(KitchenError::UnknownRestaurant(5))
        ));
    }

    #[tokio::test]
    async fn a_cancelled_ticket_cannot_be_confirmed_and_cancel_repeats() {
        let svc = service();
        let t = svc
            .create_ticket(3, 1, &[line(11, 1)])
            .await
            .expect("created");
        assert_eq!(
            svc.cancel(t.id).await.expect("cancel").state,
            TicketState::Cancelled
        );
        assert_eq!(
            svc.cancel(t.id).await.expect("again").state,
            TicketState::Cancelled
        );
        assert!(matches!(
            svc.confirm(t.id).await,
            Err(KitchenError::InvalidTransition { .. })
        ));
    }
}
