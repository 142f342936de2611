//! The order domain: the order entity, its saga across the other four services, and the
//! ports it calls them through (figure 24's facades). No HTTP and no SQL here.

mod error;
mod model;
mod ports;
mod service;

pub use error::{OrderError, RepositoryError, StepError, StepFailure};
pub use model::{
    MAX_QUANTITY, MenuItem, NewOrder, Order, OrderLine, OrderLineRequest, OrderState, PlaceOrder,
    Rejection, SagaStep, Transition,
};
pub use ports::{
    AccountingPort, Clock, ConsumerPort, Inserted, KitchenPort, NotificationPort, OrderRepository,
    SystemClock,
};
pub use service::{OrderPorts, OrderService, Placed, ReconcileReport};
