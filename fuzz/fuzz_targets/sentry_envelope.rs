#![no_main]
//! `cargo fuzz run sentry_envelope`: see `harness.rs`.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sentry_envelope(data));
