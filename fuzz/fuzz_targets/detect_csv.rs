#![no_main]
//! `cargo fuzz run detect_csv`: see `harness.rs`.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::detect_csv(data));
