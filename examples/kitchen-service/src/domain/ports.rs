//! The ports the kitchen domain needs.

use super::{NewTicket, RepositoryError, Restaurant, Ticket, TicketState};

/// Where restaurants and tickets are kept.
#[async_trait::async_trait]
pub trait KitchenRepository: Send + Sync {
    /// All restaurants with their menus.
    async fn restaurants(&self) -> Result<Vec<Restaurant>, RepositoryError>;
    /// The restaurant with `id` and its menu.
    async fn restaurant(&self, id: i64) -> Result<Option<Restaurant>, RepositoryError>;
    /// The ticket with `id`.
    async fn ticket(&self, id: i64) -> Result<Option<Ticket>, RepositoryError>;
    /// The ticket of order `order_id`.
    async fn ticket_for_order(&self, order_id: i64) -> Result<Option<Ticket>, RepositoryError>;
    /// Stores a new ticket in `CREATE_PENDING`; if the order already has one, returns that one.
    async fn insert_ticket(&self, ticket: &NewTicket) -> Result<Ticket, RepositoryError>;
    /// Changes a ticket's state (nothing when there is no ticket `id`). A cancelled ticket
    /// stays cancelled: changing it to another state is refused with an error, even when the
    /// cancellation lands between the caller's read and this write.
    async fn set_state(&self, id: i64, state: TicketState) -> Result<(), RepositoryError>;
}
