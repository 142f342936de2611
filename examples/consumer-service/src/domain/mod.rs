//! The consumer domain: customers, their standing, and the verification the order saga asks
//! for. No HTTP and no SQL here; the adapters implement the ports.

mod error;
mod model;
mod ports;
mod service;

pub use error::{ConsumerError, RepositoryError};
pub use model::{Consumer, Verification};
pub use ports::ConsumerRepository;
pub use service::ConsumerService;
