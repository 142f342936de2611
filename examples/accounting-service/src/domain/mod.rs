//! The accounting domain: accounts and payment authorizations through a payment provider
//! port (figure 27's `PaymentFacade`). No HTTP and no SQL here.

mod error;
mod model;
mod ports;
mod service;

pub use error::{AccountingError, ProviderError, RepositoryError};
pub use model::{Account, Authorization, AuthorizationState, NewAuthorization, ProviderDecision};
pub use ports::{AccountingRepository, PaymentProvider};
pub use service::AccountingService;
