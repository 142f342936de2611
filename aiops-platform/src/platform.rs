//! [`Platform`]: builds storage, receivers, scraper and API from a topology, then serves.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::common::time::now_nanos;
use crate::config::{ConfigError, Topology};
use crate::receive::Receivers;
use crate::receive::scrape::{ScrapeTarget, Scraper};
use crate::store::Store;
use crate::store::durable::{Database, DbError, DurableWriter};
use crate::supervisor::actuator::kubernetes::{self, Discovered};
use crate::supervisor::actuator::{
    Actuator, ByService, KubernetesActuator, KubernetesWorkload, LocalProcessActuator,
};
use crate::supervisor::discovery::{self, DiscoveryPlan};
use crate::supervisor::{Supervision, SupervisorError};
use crate::web::{AppState, Limits, PlatformShared};
use aiods_serve::ListenerStats;

/// Errors while starting or running the platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The topology is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// A non-loopback listener was asked for without a configured token.
    #[error(
        "refusing to listen on non-loopback address {0} without an API token: set [platform] api_token or AIOPS_API_TOKEN"
    )]
    NonLoopbackWithoutToken(SocketAddr),
    /// A non-loopback listener was asked for with ingest open to anyone.
    #[error(
        "refusing to listen on non-loopback address {addr} with {open} ingest open to anyone: set [platform] ingest_keys (or otlp_ingest_key and sentry_keys), or allow_open_ingest = true"
    )]
    NonLoopbackOpenIngest {
        /// The address.
        addr: SocketAddr,
        /// What is open (`OTLP`, `Sentry`).
        open: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The supervisor could not start.
    #[error("supervisor: {0}")]
    Supervisor(#[from] SupervisorError),
    /// Services run on Kubernetes but no cluster can be reached.
    #[error("kubernetes: {0}")]
    Kubernetes(#[from] kubernetes::KubernetesError),
}

/// Where the API token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `[platform] api_token`.
    Config,
    /// `AIOPS_API_TOKEN`.
    Environment,
    /// Generated at start (print it once).
    Generated,
}

/// A built platform, bound and ready to serve.
#[derive(Debug)]
pub struct Platform {
    /// Shared state (store, database, scraper, keys).
    pub state: AppState,
    /// The bound address.
    pub local_addr: SocketAddr,
    /// Where the API token came from.
    pub token_source: TokenSource,
    /// Print the machine-readable `{"event":"gateway"}` line on stdout (default true;
    /// the lab's experiment prints its report there instead).
    pub announce: bool,
    listener: TcpListener,
    limits: Limits,
    receivers: Arc<Receivers>,
    topology: Topology,
    /// The Kubernetes discovery watch, started with the supervisor.
    discovery: Option<DiscoveryPlan>,
    durable: DurableWriter,
}

impl Platform {
    /// Opens storage and binds the listener. `env_token` is `AIOPS_API_TOKEN`, when set.
    pub async fn build(
        mut topology: Topology,
        env_token: Option<String>,
    ) -> Result<Self, PlatformError> {
        crate::common::install_crypto_provider();
        topology.validate()?;
        let namespaces = topology.platform.kubernetes.watch_namespaces.clone();
        let cluster = if namespaces.is_empty() && kubernetes_workloads(&topology).is_empty() {
            None
        } else {
            Some(kubernetes::connect().await?)
        };
        // Services the topology names itself; discovery adds the rest.
        let named: BTreeSet<String> = topology.services.iter().map(|s| s.name.clone()).collect();
        let mut known = Vec::new();
        if let Some(client) = &cluster {
            if !namespaces.is_empty() {
                match kubernetes::discover(client, &namespaces).await {
                    Ok(found) => known = found,
                    // A missing permission or an API server not there yet: the discovery
                    // watch retries with back-off and adds them when it can.
                    Err(error) => {
                        tracing::error!(%error, "cannot list the Deployments to discover; the discovery watch retries")
                    }
                }
                add_discovered(&mut topology, &known)?;
                topology.validate()?;
            }
            deployment_floors(client, &mut topology).await;
        }
        let p = &topology.platform;
        let (api_token, token_source) = match (&p.api_token, env_token.filter(|t| !t.is_empty())) {
            (Some(t), _) if !t.is_empty() => (t.clone(), TokenSource::Config),
            (_, Some(t)) => (t, TokenSource::Environment),
            _ => (
                crate::common::token::generate_token(),
                TokenSource::Generated,
            ),
        };
        if token_source == TokenSource::Generated && !p.listen.ip().is_loopback() {
            return Err(PlatformError::NonLoopbackWithoutToken(p.listen));
        }
        let open = p.open_ingest();
        if !p.listen.ip().is_loopback() && !p.allow_open_ingest && !open.is_empty() {
            return Err(PlatformError::NonLoopbackOpenIngest {
                addr: p.listen,
                open: open.join(" and "),
            });
        }

        let db = Database::open(&p.database_path()).await?;
        let retention = p.retention.clone();
        // The store needs the writer, and the writer needs the store's counters: build the
        // counters-less store first only to get them, then the real one.
        let stats = Arc::new(crate::store::Stats::default());
        let (writer, _writer_task) = db.spawn_writer(stats.clone(), 4096);
        let durable = writer.clone();
        let mut store = Store::new(retention, Some(writer));
        store.stats = stats;
        let store = Arc::new(store);
        let restored = db.load_exception_groups().await?;
        tracing::info!(
            groups = restored.len(),
            "exception groups restored from SQLite"
        );
        store.restore_exceptions(restored);
        {
            let mut services = store.services.write();
            for s in &topology.services {
                services.declare(&s.name, now_nanos());
            }
        }

        let targets = static_targets(&topology);
        let mut projects: HashSet<u64> = p.sentry_projects.iter().copied().collect();
        projects.extend(topology.services.iter().filter_map(|s| s.sentry_project));

        let listener = TcpListener::bind(p.listen)
            .await
            .map_err(|source| PlatformError::Bind {
                addr: p.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| PlatformError::Bind {
                addr: p.listen,
                source,
            })?;

        // Always: a service known only from its telemetry gets incidents too.
        let kubernetes = kubernetes_workloads(&topology);
        let mut discovery = None;
        let supervision = if let Some(client) = cluster {
            let pool = Some(db.pool.clone());
            let mut actuators = None;
            let supervision =
                Supervision::with_actuator(&topology, store.clone(), pool, local_addr, |cx| {
                    let local: Arc<dyn Actuator> =
                        Arc::new(LocalProcessActuator::new(cx.routes, cx.sink));
                    let pods = kubernetes
                        .into_iter()
                        .map(|w| {
                            let a: Arc<dyn Actuator> =
                                Arc::new(KubernetesActuator::new(client.clone(), w.clone()));
                            (w.service, a)
                        })
                        .collect();
                    let by_service = Arc::new(ByService::new(local, pods));
                    actuators = Some(by_service.clone());
                    by_service
                })
                .await?;
            if let Some(actuators) = actuators.filter(|_| !namespaces.is_empty()) {
                discovery = Some(DiscoveryPlan {
                    client,
                    namespaces,
                    known,
                    named,
                    actuators,
                });
            }
            supervision
        } else {
            Supervision::new(&topology, store.clone(), Some(db.pool.clone()), local_addr).await?
        };
        let supervision = Some(supervision);
        let receivers = Arc::new(Receivers {
            sink: store.clone(),
            ingest_keys: p.ingest_keys.clone(),
            otlp_ingest_key: p.otlp_ingest_header.clone().zip(p.otlp_ingest_key.clone()),
            sentry_keys: p.sentry_keys.clone(),
            sentry_projects: projects,
            max_body_bytes: p.max_body_bytes,
            max_decompressed_bytes: p.max_decompressed_bytes,
        });
        let state = Arc::new(PlatformShared {
            store,
            db: Some(db),
            scraper: Arc::new(Scraper::new(targets)),
            api_token,
            listener: Arc::new(ListenerStats::default()),
            started_at: now_nanos(),
            supervision,
        });
        let limits = Limits {
            max_body_bytes: p.max_body_bytes,
            request_timeout: Duration::from_millis(p.request_timeout_ms),
        };
        Ok(Self {
            state,
            local_addr,
            token_source,
            announce: true,
            listener,
            limits,
            receivers,
            topology,
            discovery,
            durable,
        })
    }

    /// The API token.
    pub fn api_token(&self) -> &str {
        &self.state.api_token
    }

    /// Serves until `shutdown` completes, with the scraper and retention pruning running.
    pub async fn serve(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), PlatformError> {
        let p = &self.topology.platform;
        let scraper = crate::receive::scrape::spawn(
            self.state.scraper.clone(),
            self.state.store.clone(),
            Duration::from_millis(p.scrape_interval_ms),
            Duration::from_millis(p.scrape_timeout_ms),
        );
        let store = self.state.store.clone();
        let pruner = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                store.prune();
            }
        });
        let mut follow = None;
        let mut discovering = None;
        if let Some(s) = &self.state.supervision {
            s.start(self.state.store.clone(), &self.topology).await?;
            if let Some(plan) = self.discovery.take() {
                discovering = Some(tokio::spawn(discovery::follow(plan, s.clone())));
            }
            follow = Some(tokio::spawn(follow_instances(
                s.clone(),
                self.state.scraper.clone(),
                static_targets(&self.topology),
            )));
            if let Some(url) = s.gateway_url().filter(|_| self.announce) {
                // Machine-readable, like the `listening` line.
                println!("{}", serde_json::json!({ "event": "gateway", "url": url }));
            }
        }
        let app = crate::web::router(self.state.clone(), self.receivers.clone(), self.limits);
        let grace = Duration::from_millis(p.shutdown_grace_ms);
        aiods_serve::serve(
            self.listener,
            app,
            p.listener_limits(),
            self.state.listener.clone(),
            shutdown,
        )
        .await;
        if let Some(s) = &self.state.supervision {
            s.shutdown().await;
        }
        scraper.abort();
        pruner.abort();
        for task in follow.into_iter().chain(discovering) {
            task.abort();
        }
        // Let the durable writer drain what is queued, within the grace.
        if tokio::time::timeout(grace, self.durable.flush())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "exception groups still queued for SQLite at exit");
        }
        Ok(())
    }
}

/// Scrape targets the topology names (watched services' URLs and explicit `scrape` lists).
fn static_targets(topology: &Topology) -> Vec<ScrapeTarget> {
    topology
        .services
        .iter()
        .flat_map(|s| {
            s.scrape_targets().into_iter().map(|url| ScrapeTarget {
                service: s.name.clone(),
                url,
            })
        })
        .collect()
}

/// The services that run on Kubernetes, as the actuator's workloads.
fn kubernetes_workloads(topology: &Topology) -> Vec<KubernetesWorkload> {
    topology
        .services
        .iter()
        .filter_map(|s| {
            let k = s.kubernetes.as_ref()?;
            Some(KubernetesWorkload {
                service: s.name.clone(),
                namespace: k.namespace.clone(),
                deployment: k.deployment.clone(),
                selector: k.selector.clone(),
                port: k.port,
            })
        })
        .collect()
}

/// Adds the discovered Deployments not already named by a `[[service]]`.
fn add_discovered(topology: &mut Topology, found: &[Discovered]) -> Result<(), ConfigError> {
    for d in found {
        if topology
            .services
            .iter()
            .any(|s| s.name == d.workload.service)
        {
            continue;
        }
        tracing::info!(service = %d.workload.service, namespace = %d.workload.namespace, replicas = d.replicas, "discovered an annotated Deployment");
        topology.services.push(discovery::service_of(d)?);
    }
    Ok(())
}

/// A service on a named Deployment is never scaled in below the replicas the Deployment
/// asks for now (nor below its topology's `replicas`). Unreadable (a missing permission):
/// the topology's value stands, and the log says why.
async fn deployment_floors(client: &kube::Client, topology: &mut Topology) {
    for s in &mut topology.services {
        let Some(k) = &s.kubernetes else { continue };
        let Some(deployment) = &k.deployment else {
            continue;
        };
        match kubernetes::deployment_replicas(client, &k.namespace, deployment).await {
            Ok(replicas) => s.replicas = s.replicas.max(replicas),
            Err(error) => {
                tracing::warn!(service = %s.name, %error, "cannot read the Deployment's replicas; the topology's stand")
            }
        }
    }
}

/// How often scrape targets are matched to the live instances.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Keeps the scrape targets equal to the topology's plus every live managed instance: a
/// replacement or scaled-out instance is scraped from its start, a retired one no more.
async fn follow_instances(
    supervision: Arc<Supervision>,
    scraper: Arc<Scraper>,
    fixed: Vec<ScrapeTarget>,
) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    let mut last = Vec::new();
    loop {
        tick.tick().await;
        let mut targets = fixed.clone();
        targets.extend(
            supervision
                .instances()
                .into_iter()
                .filter(|i| i.managed && i.running)
                .map(|i| ScrapeTarget {
                    service: i.service,
                    url: format!("{}/metrics", i.url),
                }),
        );
        if targets != last {
            scraper.set_targets(targets.clone());
            last = targets;
        }
    }
}
