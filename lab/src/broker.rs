//! The message broker of the event-driven variant: Debian's `nats-server` with JetStream,
//! started by the lab on a free port with its store in the run's directory, stopped with it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `nats-server` is not installed.
    #[error(
        "the event-driven saga needs nats-server (Debian: apt-get install nats-server; or set NATS_SERVER to its path): {0}"
    )]
    Missing(std::io::Error),
    /// A free port or the store directory could not be had.
    #[error("cannot prepare the broker: {0}")]
    Io(#[from] std::io::Error),
    /// It exited, or did not accept connections in time.
    #[error("nats-server did not start: {0}")]
    NotStarted(String),
}

/// A running `nats-server -js`, killed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Broker {
    /// Starts `nats-server` (or `$NATS_SERVER`) with JetStream, its store under `store`, and
    /// waits until it accepts connections.
    pub fn start(store: &Path) -> Result<Self, BrokerError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::create_dir_all(store)?;
        let program: PathBuf = std::env::var_os("NATS_SERVER")
            .map_or_else(|| PathBuf::from("nats-server"), PathBuf::from);
        let mut child = Command::new(program)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(BrokerError::Missing)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(BrokerError::NotStarted(format!("exited with {status}")));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Self { child, addr });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BrokerError::NotStarted(format!(
                    "no connection on {addr} within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_accepts_connections_until_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let broker = Broker::start(&dir.path().join("nats"))
            .unwrap_or_else(|e| panic!("nats-server must be installed for this test: {e}"));
        assert!(broker.url().starts_with("nats://127.0.0.1:"));
        let addr = broker.addr;
        assert!(TcpStream::connect(addr).is_ok());
        drop(broker);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the broker is stopped with its handle"
        );
    }
}
