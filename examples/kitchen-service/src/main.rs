//! The kitchen service binary: everything lives in the library so tests can run it too.

fn main() -> std::process::ExitCode {
    kitchen_service::main()
}
