//! The accounting service, built as a binary of this package so tests find it by `CARGO_BIN_EXE_accounting-service`.

fn main() -> std::process::ExitCode {
    accounting_service::main()
}
