//! The consumer service binary: everything lives in the library so tests can run it too.

fn main() -> std::process::ExitCode {
    consumer_service::main()
}
