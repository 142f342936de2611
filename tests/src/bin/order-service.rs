//! The order service, built as a binary of this package so tests find it by `CARGO_BIN_EXE_order-service`.

fn main() -> std::process::ExitCode {
    order_service::main()
}
