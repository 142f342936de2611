//! Health checks: liveness, readiness with registered checks, and the combined view.
//!
//! Readiness checks run concurrently, each under its own timeout; their results are cached for
//! a short time (and computed once for concurrent probes) so that a storm of probes does not
//! hammer a database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::liveness::{Heartbeat, Verdict};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The status of a component, as in Spring Boot Actuator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Healthy.
    Up,
    /// Not healthy.
    Down,
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
}

/// The readiness report: the overall status and each check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Readiness {
    /// `UP` when every check passed and the service is not shutting down.
    pub status: Status,
    /// Each check's result.
    pub checks: Vec<CheckResult>,
}

struct Check {
    name: String,
    timeout: Duration,
    run: CheckFn,
}

struct Cached {
    at: Instant,
    report: Readiness,
}

struct Inner {
    checks: std::sync::RwLock<Vec<Arc<Check>>>,
    cache: Mutex<Option<Cached>>,
    cache_ttl: Duration,
    default_timeout: Duration,
    shutting_down: AtomicBool,
    live: AtomicBool,
    heartbeat: std::sync::OnceLock<Arc<Heartbeat>>,
}

/// The registry of readiness checks of a service. Cheap to clone.
///
/// ```
/// # async fn demo() {
/// use std::time::Duration;
/// let health = aiods::HealthRegistry::new(Duration::from_millis(500), Duration::from_secs(1));
/// health.register("database", || async { Ok::<(), std::io::Error>(()) });
/// assert_eq!(health.readiness().await.status, aiods::health::Status::Up);
/// # }
/// ```
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

impl HealthRegistry {
    /// A registry whose results are reused for `cache_ttl`, with `default_timeout` per check.
    pub fn new(cache_ttl: Duration, default_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                checks: Default::default(),
                cache: Mutex::new(None),
                cache_ttl,
                default_timeout,
                shutting_down: AtomicBool::new(false),
                live: AtomicBool::new(true),
                heartbeat: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Registers a readiness check with the default timeout.
    pub fn register<F, Fut, E>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.register_with_timeout(name, self.inner.default_timeout, check);
    }

    /// Registers a readiness check that fails when it takes longer than `timeout`.
    pub fn register_with_timeout<F, Fut, E>(
        &self,
        name: impl Into<String>,
        timeout: Duration,
        check: F,
    ) where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let run: CheckFn = Arc::new(move || {
            let fut = check();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        let check = Arc::new(Check {
            name: name.into(),
            timeout,
            run,
        });
        if let Ok(mut checks) = self.inner.checks.write() {
            checks.push(check);
        }
        // A new check invalidates what was cached.
        if let Ok(mut cache) = self.inner.cache.try_lock() {
            *cache = None;
        }
    }

    /// Marks the service as shutting down: readiness is DOWN from now on.
    pub fn set_shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Sets whether the process reports itself live: a service that knows it cannot recover
    /// (a poisoned state, say) turns liveness DOWN so that it is restarted.
    pub fn set_live(&self, live: bool) {
        self.inner.live.store(live, Ordering::SeqCst);
    }

    /// Starts watching the current Tokio runtime: liveness is DOWN when it fails to run a
    /// heartbeat task within `max_lag` (see [`crate::liveness`]). Once per registry; the
    /// chassis calls it when the service starts, unless `health.max_lag_ms` is 0.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn watch_runtime(&self, max_lag: Duration) {
        let _ = self
            .inner
            .heartbeat
            .get_or_init(|| Heartbeat::start(max_lag));
    }

    /// Liveness now: the runtime's heartbeat, and what [`set_live`](Self::set_live) said.
    pub fn liveness(&self) -> Verdict {
        if !self.inner.live.load(Ordering::SeqCst) {
            return Verdict::Declared;
        }
        self.inner
            .heartbeat
            .get()
            .map_or(Verdict::Up, |h| h.verdict())
    }

    /// Whether the process reports itself live.
    pub fn is_live(&self) -> bool {
        self.liveness().is_up()
    }

    /// Runs the checks (or reuses a fresh result) and reports readiness.
    pub async fn readiness(&self) -> Readiness {
        let mut report = {
            let mut cache = self.inner.cache.lock().await;
            match cache.as_ref() {
                Some(c) if c.at.elapsed() < self.inner.cache_ttl => c.report.clone(),
                _ => {
                    let report = self.run_checks().await;
                    *cache = Some(Cached {
                        at: Instant::now(),
                        report: report.clone(),
                    });
                    report
                }
            }
        };
        if self.is_shutting_down() {
            report.status = Status::Down;
            report.checks.push(CheckResult {
                name: "shutdown".into(),
                status: Status::Down,
                error: Some("the service is shutting down".into()),
                duration_ms: 0.0,
            });
        }
        report
    }

    async fn run_checks(&self) -> Readiness {
        let checks: Vec<Arc<Check>> = match self.inner.checks.read() {
            Ok(c) => c.clone(),
            Err(_) => Vec::new(),
        };
        let runs = checks.into_iter().map(|check| async move {
            let started = Instant::now();
            // Each check runs in its own task, so a panicking check is a failed check.
            let task = tokio::spawn((check.run)());
            let outcome = match tokio::time::timeout(check.timeout, task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(join)) => Err(format!("check failed: {join}")),
                Err(_) => Err(format!("timed out after {:?}", check.timeout)),
            };
            CheckResult {
                name: check.name.clone(),
                status: if outcome.is_ok() {
                    Status::Up
                } else {
                    Status::Down
                },
                error: outcome.err(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let status = if results.iter().all(|r| r.status == Status::Up) {
            Status::Up
        } else {
            Status::Down
        };
        Readiness {
            status,
            checks: results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn failing_and_slow_checks_are_down_with_reasons() {
        let h = HealthRegistry::new(Duration::ZERO, Duration::from_millis(50));
        h.register("ok", || async { Ok::<_, String>(()) });
        h.register("broken", || async { Err::<(), _>("no connection") });
        h.register("slow", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, String>(())
        });
        let r = h.readiness().await;
        assert_eq!(r.status, Status::Down);
        let by_name = |n: &str| r.checks.iter().find(|c| c.name == n).cloned();
        assert_eq!(by_name("ok").map(|c| c.status), Some(Status::Up));
        assert_eq!(
            by_name("broken").and_then(|c| c.error),
            Some("no connection".into())
        );
        assert!(
            by_name("slow")
                .and_then(|c| c.error)
                .is_some_and(|e| e.contains("timed out"))
        );
    }

    #[tokio::test]
    async fn results_are_cached_and_shared() {
        let runs = Arc::new(AtomicUsize::new(0));
        let h = HealthRegistry::new(Duration::from_secs(60), Duration::from_secs(1));
        let counter = runs.clone();
        h.register("db", move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>(())
            }
        });
        let probes = (0..50).map(|_| h.readiness());
        futures_util::future::join_all(probes).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_makes_readiness_down() {
        let h = HealthRegistry::new(Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!(h.readiness().await.status, Status::Up);
        h.set_shutting_down();
        assert_eq!(h.readiness().await.status, Status::Down);
    }
}
