//! The order domain: the order entity, its saga across the other four services (orchestrated
//! over HTTP, or choreographed over events), and the ports it calls them through (figure 24's
//! facades). No HTTP, no SQL and no broker here.

mod choreography;
mod error;
mod model;
mod ports;
mod service;

pub use choreography::{
    ChoreographedOrders, Heard, Reaction, SagaChange, SagaEvent, announce, details, react,
};
pub use error::{OrderError, RepositoryError, StepError, StepFailure};
pub use model::{
    MAX_QUANTITY, MenuItem, NewOrder, ORDER_RECEIVED, Order, OrderLine, OrderLineRequest,
    OrderState, PlaceOrder, Rejection, SagaStep, Transition,
};
pub use ports::{
    AccountingPort, Announce, Clock, ConsumerPort, Inserted, KitchenPort, NotificationPort,
    OrderRepository, Orders, Recorded, SagaStore, SystemClock,
};
pub use service::{OrderPorts, OrderService, Placed, ReconcileReport};
