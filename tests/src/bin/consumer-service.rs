//! The consumer service, built as a binary of this package so tests find it by `CARGO_BIN_EXE_consumer-service`.

fn main() -> std::process::ExitCode {
    consumer_service::main()
}
