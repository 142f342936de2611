//! Test databases for the services' repository suites (feature `test-support`): a SQLite file
//! in a temporary directory, or a database of its own on a real PostgreSQL server that the tests
//! start themselves from Debian's `postgresql` package.
//!
//! The server: `initdb` into a temporary directory, `pg_ctl start` with the unix socket in that
//! directory and TCP on a free port of 127.0.0.1, trust authentication for the `postgres` role,
//! durability off (`fsync`, `synchronous_commit`, `full_page_writes`) since the data is thrown
//! away. The tests running at the same moment share one server (one database each); the last
//! one to finish stops it (`pg_ctl stop -m immediate`) and its directory is removed.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI here), the server
//! runs as the `postgres` system user that Debian's package creates: the temporary directory is
//! handed to it (`chown`) and `initdb`/`pg_ctl` run under `runuser -u postgres --`. As any other
//! user the server runs as that user.
//!
//! The binaries are looked for in `$AIODS_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/<version>/bin`. When they are missing the test fails, naming the package.
//!
//! [`backend_tests!`](crate::backend_tests) instantiates one suite for both backends.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;
use tempfile::TempDir;

use crate::{Database, DbConfig};

/// A test database could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TestSupportError {
    /// No PostgreSQL server binaries.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {searched}: install \
         Debian's `postgresql` package (apt-get install -y postgresql) or point AIODS_PG_BIN at \
         a bin directory holding them"
    )]
    MissingBinaries {
        /// Where they were looked for.
        searched: String,
    },
    /// Running as root without a user to run PostgreSQL as.
    #[error(
        "the tests run as root, PostgreSQL refuses to, and the `postgres` system user (created \
         by Debian's `postgresql` package) or `runuser` (util-linux) is missing: {0}"
    )]
    NoServerUser(String),
    /// A command failed.
    #[error("{command} failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (and the server log, when starting it).
        output: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Creating the test database failed.
    #[error("cannot create a test database: {0}")]
    Sql(#[from] sqlx::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestSupportError {
    let context = context.into();
    move |source| TestSupportError::Io { context, source }
}

/// A database for one test; dropping it removes the SQLite file or releases the server.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    _dir: Option<TempDir>,
    _server: Option<Arc<PgServer>>,
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Result<Self, TestSupportError> {
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Ok(Self {
            url,
            _dir: Some(dir),
            _server: None,
        })
    }

    /// A fresh database on the shared test PostgreSQL server, started if none runs.
    pub async fn postgres() -> Result<Self, TestSupportError> {
        let server = PgServer::shared()?;
        let url = server.create_database().await?;
        Ok(Self {
            url,
            _dir: None,
            _server: Some(server),
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A `[db]` section naming this database, with a pool of `max_connections`.
    pub fn config(&self, max_connections: u32) -> DbConfig {
        DbConfig {
            url: Some(self.url.clone()),
            max_connections: Some(max_connections),
        }
    }
}

/// The number of rows in `table`, on either backend: for suites checking what their
/// repository's trait cannot show (rows nobody reads back, duplicates).
pub async fn count_rows(database: &Database, table: &str) -> Result<i64, sqlx::Error> {
    // Test code naming its own tables, not input.
    let sql = format!("SELECT count(*) FROM {table}");
    let (n,): (i64,) = match database {
        Database::Sqlite(pool) => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?
        }
    };
    Ok(n)
}

/// A PostgreSQL server in a temporary directory, stopped when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    as_postgres_user: bool,
    port: u16,
}

/// The server the running tests share.
static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
/// Numbers the test databases.
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

impl PgServer {
    /// The server the tests running now share; started when none runs.
    pub fn shared() -> Result<Arc<Self>, TestSupportError> {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = shared.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&server);
        Ok(server)
    }

    /// Initialises a cluster in a new temporary directory and starts a server on it.
    pub fn start() -> Result<Self, TestSupportError> {
        let bin = find_binaries()?;
        let as_postgres_user = running_as_root()?;
        if as_postgres_user && !Path::new("/usr/sbin/runuser").exists() {
            return Err(TestSupportError::NoServerUser(
                "/usr/sbin/runuser not found".into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("aiods-pg-")
            .tempdir()
            .map_err(io("creating the server's temporary directory"))?;
        if as_postgres_user {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .output()
                .map_err(io("running chown"))?;
            if !chown.status.success() {
                return Err(TestSupportError::NoServerUser(
                    String::from_utf8_lossy(&chown.stderr).trim().to_owned(),
                ));
            }
        }
        let mut server = Self {
            dir,
            bin,
            as_postgres_user,
            port: 0,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        // A port found free may be taken before the server binds it: try a few.
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TestSupportError::Command {
            command: "pg_ctl start".into(),
            status: "not run".into(),
            output: String::new(),
        }))
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl_start(&self) -> Result<(), TestSupportError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let started = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        started.map_err(|e| match e {
            TestSupportError::Command {
                command,
                status,
                output,
            } => TestSupportError::Command {
                command,
                status,
                output: format!(
                    "{output}\nserver log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            },
            other => other,
        })?;
        Ok(())
    }

    /// Runs one of the server's programs, as `postgres` when the tests run as root.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, TestSupportError> {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("/usr/sbin/runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir.path());
        let shown = format!("{} {}", program.display(), args.join(" "));
        let output = command.output().map_err(io(format!("running {shown}")))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(TestSupportError::Command {
                command: shown,
                status: output.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    /// The URL of database `name` on this server, as the `postgres` superuser over TCP.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database; its URL.
    pub async fn create_database(&self) -> Result<String, TestSupportError> {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        // The name is ours (digits and underscores), not input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(self.url(&name))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data_dir();
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// `$AIODS_PG_BIN`, or the newest `/usr/lib/postgresql/<version>/bin` holding the programs.
fn find_binaries() -> Result<PathBuf, TestSupportError> {
    find_binaries_in(
        std::env::var_os("AIODS_PG_BIN").map(PathBuf::from),
        Path::new("/usr/lib/postgresql"),
    )
}

/// `explicit` if it holds the programs, else the newest `<root>/<version>/bin` that does.
fn find_binaries_in(explicit: Option<PathBuf>, root: &Path) -> Result<PathBuf, TestSupportError> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(dir) = explicit {
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(TestSupportError::MissingBinaries {
                searched: format!("AIODS_PG_BIN={}", dir.display()),
            })
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| TestSupportError::MissingBinaries {
            searched: format!("{}/<version>/bin", root.display()),
        })
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective user).
fn running_as_root() -> Result<bool, TestSupportError> {
    let meta = std::fs::metadata("/proc/self").map_err(io("reading /proc/self"))?;
    Ok(meta.uid() == 0)
}

fn free_port() -> Result<u16, TestSupportError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port();
    Ok(port)
}

/// Instantiates a repository suite for both backends: for each named `async fn name(db:
/// &TestDb)` of the calling module, a test `sqlite::name` on a fresh SQLite file and a test
/// `postgres::name` on a fresh database of the test PostgreSQL server. The tests run on a
/// two-thread runtime so that concurrent tasks really overlap.
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        /// The suite against SQLite.
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $crate::test_support::TestDb::sqlite()
                        .unwrap_or_else(|e| panic!("no SQLite test database: {e}"));
                    super::$test(&db).await;
                }
            )+
        }
        /// The suite against a real PostgreSQL.
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $crate::test_support::TestDb::postgres()
                        .await
                        .unwrap_or_else(|e| panic!("no PostgreSQL test database: {e}"));
                    super::$test(&db).await;
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_server_serves_separate_databases() {
        let first = TestDb::postgres().await.expect("a PostgreSQL database");
        let second = TestDb::postgres().await.expect("another one");
        assert_ne!(first.url(), second.url());
        let mut conn = sqlx::PgConnection::connect(first.url())
            .await
            .expect("connect");
        let (one,): (i32,) = sqlx::query_as("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(one, 1);
    }

    #[test]
    fn missing_binaries_fail_naming_the_package() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("17/bin")).expect("mkdir");
        let err = find_binaries_in(None, root.path()).expect_err("no binaries there");
        let message = err.to_string();
        assert!(
            message.contains("apt-get install -y postgresql"),
            "{message}"
        );
        let err = find_binaries_in(Some(root.path().join("17/bin")), root.path())
            .expect_err("an incomplete AIODS_PG_BIN");
        assert!(matches!(err, TestSupportError::MissingBinaries { .. }));
    }

    #[test]
    fn the_newest_complete_version_is_chosen() {
        let root = tempfile::tempdir().expect("tempdir");
        for version in ["15", "17"] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            for program in ["initdb", "pg_ctl", "postgres"] {
                std::fs::write(bin.join(program), "").expect("write");
            }
        }
        std::fs::create_dir_all(root.path().join("18/bin")).expect("an incomplete 18");
        let bin = find_binaries_in(None, root.path()).expect("found");
        assert_eq!(bin, root.path().join("17/bin"));
    }
}
