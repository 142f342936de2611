//! The signal that asks a process to stop: SIGTERM (Kubernetes, systemd, `kill`) or SIGINT
//! (Ctrl-C), whichever comes first.

use std::fmt;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl ShutdownSignal {
    /// The signal's conventional name (`SIGINT`, `SIGTERM`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resolves when the process receives SIGTERM or SIGINT, saying which. Where SIGTERM cannot
/// be listened for (not Unix, or the handler could not be installed), only SIGINT counts.
pub async fn shutdown_signal() -> ShutdownSignal {
    let interrupt = async {
        // An error means no handler could be installed: wait for ever rather than stop now.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                () = interrupt => ShutdownSignal::Interrupt,
                _ = terminate.recv() => ShutdownSignal::Terminate,
            },
            Err(_) => {
                interrupt.await;
                ShutdownSignal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        interrupt.await;
        ShutdownSignal::Interrupt
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigterm_is_seen_as_terminate() {
        // Tokio's handler, installed first, keeps SIGTERM from killing the test process.
        let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut waiting = tokio::spawn(shutdown_signal());
        let pid = std::process::id().to_string();
        // Signal until it is seen: the task may not have subscribed when the first one lands.
        for _ in 0..100 {
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap_or_else(|e| panic!("kill: {e}"));
            assert!(sent.success());
            if let Ok(got) =
                tokio::time::timeout(std::time::Duration::from_millis(100), &mut waiting).await
            {
                let got = got.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(got, ShutdownSignal::Terminate);
                assert_eq!(got.to_string(), "SIGTERM");
                return;
            }
        }
        panic!("SIGTERM not seen within 10 s");
    }
}
