//! Runs the five food-delivery services as real processes for the end-to-end tests: each on
//! a free port (`AIODS_PORT=0`, the port read from the `service started`
//! log line), with its own SQLite file in a temporary directory, the order service pointed at
//! the other four, and every process killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The five services, by the name used in upstream configuration.
pub const SERVICES: [&str; 5] = ["consumer", "kitchen", "accounting", "notification", "order"];

/// Log lines kept per process (older ones are dropped, so a long load run stays small).
const KEPT_LINES: usize = 2_000;

/// A service could not be started or restarted.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The binary could not be run.
    #[error("cannot run {exe}: {source}")]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The process never logged `service started`.
    #[error("{name} did not start within {timeout:?}; its output:\n{output}")]
    NotStarted {
        /// The service.
        name: String,
        /// How long we waited.
        timeout: Duration,
        /// What it printed.
        output: String,
    },
    /// The temporary directory could not be made.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[from] std::io::Error),
}

/// The food-delivery service binaries Cargo built for the calling test target: a macro, since
/// `CARGO_BIN_EXE_*` is set only when a test target itself is compiled. Naming all five makes
/// a missing one a compile error rather than a failed start.
#[macro_export]
macro_rules! food_binaries {
    () => {{
        let _ = (
            env!("CARGO_BIN_EXE_consumer-service"),
            env!("CARGO_BIN_EXE_kitchen-service"),
            env!("CARGO_BIN_EXE_accounting-service"),
            env!("CARGO_BIN_EXE_notification-service"),
        );
        $crate::Binaries::in_dir(
            ::std::path::Path::new(env!("CARGO_BIN_EXE_order-service"))
                .parent()
                .expect("the binaries' directory"),
        )
    }};
}

/// Where the service binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Binaries named `<service>-service` in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The path of `service`'s binary.
    pub fn path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}-service"))
    }
}

/// One running service process.
#[derive(Debug)]
pub struct ServiceProcess {
    /// The service name (`order`, `kitchen`, …).
    pub name: String,
    /// The port it listens on.
    pub port: u16,
    exe: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    output: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts `exe` with `env` on `port` (0 = any) and waits for its `service started` event.
    pub fn start(
        name: &str,
        exe: &Path,
        env: Vec<(String, String)>,
        port: u16,
    ) -> Result<Self, StartError> {
        let mut process = Self {
            name: name.to_owned(),
            port,
            exe: exe.to_owned(),
            env,
            child: None,
            output: Arc::default(),
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(&self.exe);
        cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("SENTRY_DSN")
            .env("RUST_LOG", "info")
            .env("AIODS_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|source| StartError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v["message"] == "service started"
                        && let Some(port) = v["port"].as_u64()
                    {
                        let _ = port_tx.send(port as u16);
                    }
                    keep(&sink, line);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    keep(&sink, line);
                }
            });
        }
        self.child = Some(child);
        self.output = output;
        let timeout = Duration::from_secs(30);
        match port_rx.recv_timeout(timeout) {
            Ok(port) => {
                self.port = port;
                Ok(())
            }
            Err(_) => {
                self.kill();
                Err(StartError::NotStarted {
                    name: self.name.clone(),
                    timeout,
                    output: self.output(),
                })
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything it printed (the last lines), one line each.
    pub fn output(&self) -> String {
        self.output.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Kills it with SIGKILL (`kill -9`): no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, …) with `kill -<signal> <pid>`.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other("not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {pid} failed"
            )))
        }
    }

    /// Starts it again on the same port with the same environment plus `extra_env`.
    pub fn restart(&mut self, extra_env: &[(&str, &str)]) -> Result<(), StartError> {
        self.kill();
        for (k, v) in extra_env {
            self.env.retain(|(key, _)| key != k);
            self.env.push(((*k).to_owned(), (*v).to_owned()));
        }
        self.spawn()
    }
}

fn keep(sink: &Mutex<Vec<String>>, line: String) {
    if let Ok(mut lines) = sink.lock() {
        if lines.len() >= KEPT_LINES {
            lines.drain(..KEPT_LINES / 2);
        }
        lines.push(line);
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on some systems.
        let _ = self.signal("CONT");
        self.kill();
    }
}

/// The five services running together, each with its own database in a temporary directory.
#[derive(Debug)]
pub struct FoodDelivery {
    /// The consumer service.
    pub consumer: ServiceProcess,
    /// The kitchen service.
    pub kitchen: ServiceProcess,
    /// The accounting service.
    pub accounting: ServiceProcess,
    /// The notification service.
    pub notification: ServiceProcess,
    /// The order service, pointed at the other four.
    pub order: ServiceProcess,
    dir: tempfile::TempDir,
}

impl FoodDelivery {
    /// Starts the four downstream services, then the order service, with `extra_env` given to
    /// all of them (for example `AIODS_ORDERS__PENDING_TIMEOUT_MS`).
    pub fn start(bins: &Binaries, extra_env: &[(&str, &str)]) -> Result<Self, StartError> {
        let dir = tempfile::tempdir()?;
        let env_for = |name: &str| {
            let mut env = vec![(
                "AIODS_DB__URL".to_owned(),
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{name}.db")).display()
                ),
            )];
            env.extend(
                extra_env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            env
        };
        let start = |name: &str, env: Vec<(String, String)>| {
            ServiceProcess::start(name, &bins.path(name), env, 0)
        };
        let consumer = start("consumer", env_for("consumer"))?;
        let kitchen = start("kitchen", env_for("kitchen"))?;
        let accounting = start("accounting", env_for("accounting"))?;
        let notification = start("notification", env_for("notification"))?;
        let mut order_env = env_for("order");
        for upstream in [&consumer, &kitchen, &accounting, &notification] {
            order_env.push((
                format!("AIODS_UPSTREAMS__{}", upstream.name.to_uppercase()),
                upstream.url(),
            ));
        }
        let order = start("order", order_env)?;
        Ok(Self {
            consumer,
            kitchen,
            accounting,
            notification,
            order,
            dir,
        })
    }

    /// The SQLite URL of `service`'s database (read-only, for checking stored rows).
    pub fn db_url(&self, service: &str) -> String {
        format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join(format!("{service}.db")).display()
        )
    }

    /// A read-only pool on `service`'s database.
    pub async fn db(&self, service: &str) -> Result<sqlx::SqlitePool, sqlx::Error> {
        sqlx::SqlitePool::connect(&self.db_url(service)).await
    }

    /// The order service's base URL.
    pub fn order_url(&self) -> String {
        self.order.url()
    }
}

/// An HTTP client for talking to the services (installs the rustls crypto provider once).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Polls `check` every 50 ms until it returns `Some`, or gives `None` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of `POST /orders`: `lines` as (menu item, quantity), restaurant 1.
pub fn order_request(consumer_id: i64, lines: &[(i64, i64)]) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|(item, qty)| serde_json::json!({"menu_item_id": item, "quantity": qty}))
        .collect();
    serde_json::json!({"consumer_id": consumer_id, "restaurant_id": 1, "lines": lines})
}

/// The text column `sql` (one `?` bound to `id`) selects, if a row matches.
pub async fn one_str(
    pool: &sqlx::SqlitePool,
    sql: &'static str,
    id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(sql).bind(id).fetch_optional(pool).await
}
