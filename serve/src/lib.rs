//! What every aiods binary needs to serve HTTP and stop well, written once: the hardened
//! listener ([`serve`], used by the chassis, the platform and its gateway) and the shutdown
//! signal ([`shutdown_signal`], used by the chassis, `aiops up` and the lab).

mod listener;
mod signal;

pub use listener::{ListenerCounts, ListenerLimits, ListenerStats, serve};
pub use signal::{ShutdownSignal, shutdown_signal};
