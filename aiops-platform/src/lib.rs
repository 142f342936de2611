//! The aiods AIOps platform.
//!
//! The `aiops` binary receives telemetry from services (OTLP, Sentry, Prometheus), supervises
//! and probes them, detects incidents and repairs them. This library holds its parts so they
//! can be tested and benchmarked on their own.

pub mod anomaly;
pub mod api;
pub mod api_incidents;
pub mod app;
pub mod cli;
pub mod cli_client;
pub mod cli_detect;
pub mod cli_logs;
pub mod cli_rca;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod detect;
pub mod exposition;
pub mod gateway;
pub mod incident;
pub mod ingest;
pub mod instance;
pub mod listener;
pub mod log_format;
pub mod logmine;
pub mod openapi;
pub mod platform;
pub mod problem;
pub mod rca;
pub mod scrape;
pub mod store;
pub mod supervisor;
pub mod topology;
