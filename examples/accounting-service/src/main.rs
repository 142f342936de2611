//! The accounting service binary: everything lives in the library so tests can run it too.

fn main() -> std::process::ExitCode {
    accounting_service::main()
}
