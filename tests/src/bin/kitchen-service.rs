//! The kitchen service, built as a binary of this package so tests find it by `CARGO_BIN_EXE_kitchen-service`.

fn main() -> std::process::ExitCode {
    kitchen_service::main()
}
