//! `aiods-lab serve <service>` (hidden): runs one of the five food-delivery services in this
//! process, so `aiods-lab demo` needs no separately built binaries (`cargo run` builds only
//! the binary it runs). The platform starts each instance as
//! `[<aiods-lab>, "serve", "order-service"]`: a real, separate process.

use std::process::ExitCode;
use std::time::Duration;

/// The services `aiods-lab serve` can run.
pub const SERVICES: [&str; 5] = [
    "order-service",
    "consumer-service",
    "kitchen-service",
    "accounting-service",
    "notification-service",
];

/// Runs `name` until it stops. An unknown name is an error (exit 2).
pub fn serve(name: &str) -> ExitCode {
    watch_parent();
    match name {
        "order-service" | "order" => order_service::main(),
        "consumer-service" | "consumer" => consumer_service::main(),
        "kitchen-service" | "kitchen" => kitchen_service::main(),
        "accounting-service" | "accounting" => accounting_service::main(),
        "notification-service" | "notification" => notification_service::main(),
        other => {
            eprintln!(
                "aiods-lab: error: unknown service {other:?}; one of {}",
                SERVICES.join(", ")
            );
            ExitCode::from(2)
        }
    }
}

/// Exits when the parent (the platform) is gone, so even a platform killed with SIGKILL
/// leaves no service behind.
fn watch_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let _ = std::thread::Builder::new()
            .name("parent-watch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(500));
                    if std::os::unix::process::parent_id() != parent {
                        std::process::exit(1);
                    }
                }
            });
    }
}
