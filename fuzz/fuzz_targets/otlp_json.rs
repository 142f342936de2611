#![no_main]
//! `cargo fuzz run otlp_json`: see `harness.rs`.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::otlp_json(data));
