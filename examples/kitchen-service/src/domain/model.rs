//! Kitchen entities.

use std::fmt;

/// A food item on a restaurant's menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// Whether the kitchen can make it now.
    pub available: bool,
}

/// A restaurant and its menu: the kitchen's aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restaurant {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its food items.
    pub menu: Vec<MenuItem>,
}

/// The state of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// Created by the saga, waiting for the payment.
    CreatePending,
    /// Confirmed: the kitchen will cook it.
    Accepted,
    /// Rejected or compensated.
    Cancelled,
}

impl TicketState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatePending => "CREATE_PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE_PENDING" => Some(Self::CreatePending),
            "ACCEPTED" => Some(Self::Accepted),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line of a ticket request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketLineRequest {
    /// The food item.
    pub menu_item_id: i64,
    /// How many.
    pub quantity: i64,
}

/// A priced line of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketLine {
    /// The food item.
    pub menu_item_id: i64,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Its price, in cents.
    pub unit_price_cents: i64,
}

/// A ticket about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// The order it cooks.
    pub order_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// Its lines, priced.
    pub lines: Vec<TicketLine>,
    /// The sum of the lines.
    pub total_cents: i64,
}

/// A kitchen ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub id: i64,
    /// The order it cooks (one ticket per order).
    pub order_id: i64,
    /// The restaurant.
    pub restaurant_id: i64,
    /// Its state.
    pub state: TicketState,
    /// Its lines.
    pub lines: Vec<TicketLine>,
    /// The sum of the lines, in cents.
    pub total_cents: i64,
}

impl Restaurant {
    /// Prices `lines` against this menu: every item must exist, be available, and have a
    /// positive quantity.
    pub fn price(
        &self,
        lines: &[TicketLineRequest],
    ) -> Result<Vec<TicketLine>, super::KitchenError> {
        use super::KitchenError;
        if lines.is_empty() {
            return Err(KitchenError::EmptyTicket);
        }
        lines
            .iter()
            .map(|line| {
                if line.quantity <= 0 {
                    return Err(KitchenError::InvalidQuantity {
                        menu_item_id: line.menu_item_id,
                        quantity: line.quantity,
                    });
                }
                let item = self.menu.iter().find(|i| i.id == line.menu_item_id).ok_or(
                    KitchenError::UnknownMenuItem {
                        restaurant_id: self.id,
                        menu_item_id: line.menu_item_id,
                    },
                )?;
                if !item.available {
                    return Err(KitchenError::ItemUnavailable {
                        menu_item_id: item.id,
                        name: item.name.clone(),
                    });
                }
                Ok(TicketLine {
                    menu_item_id: item.id,
                    name: item.name.clone(),
                    quantity: line.quantity,
                    unit_price_cents: item.price_cents,
                })
            })
            .collect()
    }
}

impl Ticket {
    /// The state after confirming: `CREATE_PENDING` → `ACCEPTED` (again: no change).
    pub fn confirm(&self) -> Result<TicketState, super::KitchenError> {
        match self.state {
            TicketState::CreatePending | TicketState::Accepted => Ok(TicketState::Accepted),
            TicketState::Cancelled => Err(super::KitchenError::InvalidTransition {
                id: self.id,
                from: self.state,
                to: TicketState::Accepted,
            }),
        }
    }

    /// The state after rejecting (`rejectTicket`): always `CANCELLED`, so compensation can be
    /// retried safely.
    pub fn cancel(&self) -> TicketState {
        TicketState::Cancelled
    }
}
