//! The aiods AIOps platform.
//!
//! The `aiops` binary receives telemetry from services (OTLP, Sentry, Prometheus), supervises
//! and probes them, detects incidents and repairs them. This library holds its parts so they
//! can be tested and benchmarked on their own.
