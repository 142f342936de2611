//! Ingest throughput benchmark (see docs/platform.md).

fn main() {}
