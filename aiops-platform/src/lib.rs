//! The aiods AIOps platform.
//!
//! The `aiops` binary receives telemetry from services (OTLP, Sentry, Prometheus), supervises
//! and probes them, detects incidents and repairs them. This library holds its parts so they
//! can be tested and benchmarked on their own.

// The folders in the order the data flows through them (docs/architecture.md says what each
// owns and what it may import; tests/tests/module_graph.rs refuses an import circle).
pub mod anomaly;
pub mod cli;
pub mod common;
pub mod config;
pub mod detect;
pub mod gateway;
pub mod incident;
pub mod logmine;
pub mod platform;
pub mod rca;
pub mod receive;
pub mod store;
pub mod supervisor;
pub mod web;
