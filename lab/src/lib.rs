//! The lab beside the aiods platform.
//!
//! The platform (`aiops`, crate `aiops-platform`) watches and repairs any service that honours
//! the telemetry contract and links none of them. This crate is the other side of the glass:
//! it runs the platform as a library, starts a topology under it, sends load described by a
//! [`scenario::Scenario`], injects faults, and reports what clients saw beside what the
//! platform recorded. It also links the five food-delivery example services, so that
//! `cargo run --release -p aiods-lab -- demo` needs nothing else built: each service runs as a
//! process of this very program (`aiods-lab serve order-service`).
//!
//! Verbs: `demo`, `experiment`, `load` (no faults, or straight at a URL), `mttr` (kill and
//! hang each service in turn, MTTD / MTTR percentiles), `serve` (hidden).

pub mod broker;
pub mod cli;
pub mod duration;
pub mod experiment;
pub mod mttr;
pub mod scenario;
pub mod serve;
pub mod topology;
