//! The kitchen domain: restaurants with their food items (an aggregate), and the tickets the
//! order saga creates, confirms and rejects. No HTTP and no SQL here.

mod error;
mod model;
mod ports;
mod service;

pub use error::{KitchenError, RepositoryError};
pub use model::{
    MenuItem, NewTicket, Restaurant, Ticket, TicketLine, TicketLineRequest, TicketState,
};
pub use ports::KitchenRepository;
pub use service::KitchenService;
