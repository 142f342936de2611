//! Errors of the kitchen domain.

use super::TicketState;

/// A storage failure behind a port.
#[derive(Debug, thiserror::Error)]
#[error("kitchen storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Why a ticket cannot be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum KitchenError {
    /// No restaurant has this id.
    #[error("restaurant {0} does not exist")]
    UnknownRestaurant(i64),
    /// The restaurant has no such item.
    #[error("restaurant {restaurant_id} has no menu item {menu_item_id}")]
    UnknownMenuItem {
        /// The restaurant.
        restaurant_id: i64,
        /// The item asked for.
        menu_item_id: i64,
    },
    /// The item is sold out.
    #[error("menu item {menu_item_id} ({name}) is not available")]
    ItemUnavailable {
        /// The item.
        menu_item_id: i64,
        /// Its name.
        name: String,
    },
    /// A ticket needs at least one line.
    #[error("a ticket needs at least one line")]
    EmptyTicket,
    /// A quantity is zero or negative.
    #[error("quantity of menu item {menu_item_id} must be positive, got {quantity}")]
    InvalidQuantity {
        /// The item.
        menu_item_id: i64,
        /// The quantity given.
        quantity: i64,
    },
    /// No ticket has this id.
    #[error("ticket {0} does not exist")]
    UnknownTicket(i64),
    /// The ticket cannot make this transition.
    #[error("ticket {id} is {from}, it cannot become {to}")]
    InvalidTransition {
        /// The ticket.
        id: i64,
        /// Its state.
        from: TicketState,
        /// The state asked for.
        to: TicketState,
    },
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl KitchenError {
    /// The machine-readable code, the same in problem documents and in
    /// `kitchen.ticket_rejected` events; `None` for a storage failure.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::UnknownRestaurant(_) => "unknown-restaurant",
            Self::UnknownTicket(_) => "unknown-ticket",
            Self::UnknownMenuItem { .. } => "unknown-menu-item",
            Self::ItemUnavailable { .. } => "item-unavailable",
            Self::EmptyTicket => "empty-ticket",
            Self::InvalidQuantity { .. } => "invalid-quantity",
            Self::InvalidTransition { .. } => "invalid-transition",
            Self::Repository(_) => return None,
        })
    }
}
