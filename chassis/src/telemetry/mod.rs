//! What every telemetry path of the chassis shares, and nothing else: the metric names, label
//! values and histogram buckets, the counters of dropped telemetry items, and the bounded queue
//! that counts its drops.
//!
//! This module imports no other module of the chassis; logging, OpenTelemetry, exception
//! tracking and `/metrics` all use it, so a counter is written in one place and read in one
//! place (`/metrics`), and a constant is defined once.

mod batch;
pub(crate) mod dropped;
pub(crate) mod labels;
mod names;

pub(crate) use batch::{BatchConfig, BatchQueue};
pub use names::{
    DURATION_BUCKETS, EXCEPTIONS, HTTP_CLIENT_DURATION, HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION,
    TELEMETRY_DROPPED,
};
