//! The notification service, built as a binary of this package so tests find it by `CARGO_BIN_EXE_notification-service`.

fn main() -> std::process::ExitCode {
    notification_service::main()
}
