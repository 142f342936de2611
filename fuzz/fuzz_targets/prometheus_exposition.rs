#![no_main]
//! `cargo fuzz run prometheus_exposition`: see `harness.rs`.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::prometheus_exposition(data));
