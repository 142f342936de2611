//! [`NatsServer`]: Debian's `nats-server` with JetStream, on a free port with a temporary
//! store directory, for tests. No mock broker anywhere.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `nats-server -js` on `127.0.0.1:<free port>` with its store in a temporary
/// directory. [`stop`](Self::stop) and [`start`](Self::start) again keep the port and the
/// store (for broker-down tests); dropping it kills the server and removes the store.
///
/// Panics with a clear message when `nats-server` is not installed: the messaging tests need
/// a real broker (`apt-get install nats-server`, as `.ci/run` does), and are never skipped.
pub struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    log: PathBuf,
}

/// The `nats-server` binary: `NATS_SERVER_BIN`, else the first on `PATH`, else Debian's
/// `/usr/sbin/nats-server` (not on a plain user's `PATH`).
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl NatsServer {
    /// Starts a server on a free port with a new store, and waits until it accepts.
    pub fn start_new() -> Self {
        let store = tempfile::Builder::new()
            .prefix("aiods-nats-")
            .tempdir()
            .expect("a temporary directory for the JetStream store");
        let log = store.path().join("nats-server.log");
        let mut server = Self {
            port: free_port(),
            store,
            child: None,
            log,
        };
        server.start();
        server
    }

    /// Starts the server again on the same port and store (no-op when it runs); waits until
    /// it accepts.
    pub fn start(&mut self) {
        if self.child.is_some() {
            return;
        }
        let bin = binary();
        if !bin.is_file() {
            panic!(
                "nats-server is not installed (looked for {}): the messaging tests need a real \
                 JetStream broker. Install Debian's package: `apt-get install nats-server` \
                 (.ci/run does), or set NATS_SERVER_BIN.",
                bin.display()
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server's log file");
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.accepts() && self.jetstream_ready() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server exited at start ({status}) on port {}; its log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "nats-server did not accept on port {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL, as a crashed broker), keeping the port and the store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.store.path().join("jetstream")
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn accepts(&self) -> bool {
        TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
    }

    /// JetStream is up once the server logged that it is ready (it accepts a moment before).
    fn jetstream_ready(&self) -> bool {
        self.log_text().contains("Server is ready") && Path::new(&self.store_dir()).exists()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;

    fn info_line(port: u16) -> String {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let _ = (&stream).write_all(b"CONNECT {}\r\n");
        line
    }

    #[test]
    fn it_serves_jetstream_and_restarts_on_the_same_port_and_store() {
        let mut server = NatsServer::start_new();
        let first = info_line(server.port());
        assert!(first.starts_with("INFO "), "{first}");
        assert!(first.contains("\"jetstream\":true"), "{first}");
        let port = server.port();
        server.stop();
        assert!(!server.is_running());
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "stopped, nothing should accept"
        );
        server.start();
        assert_eq!(server.port(), port);
        assert!(info_line(port).contains("\"jetstream\":true"));
    }
}
