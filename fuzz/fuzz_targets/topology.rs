#![no_main]
//! `cargo fuzz run topology`: see `harness.rs`.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::topology(data));
