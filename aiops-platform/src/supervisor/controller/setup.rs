//! From a topology to the controller's initial state: one [`ServiceState`] per service (its
//! workload template, budget, mode), one [`Instance`] per replica on a port (the port a previous
//! platform run used, when free), and each service's transitive dependencies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::instance::Instance;
use super::{ServiceState, Wiring};
use crate::common::instance::InstanceId;
use crate::config::{PlatformConfig, RecoveryMode, ServiceConfig, Topology};
use crate::store::{BudgetKind, StoredInstance};
use crate::supervisor::actuator::{LocalProcessActuator, WorkloadSpec};
use crate::supervisor::backoff::RestartBudget;
use crate::supervisor::policy::ScaleTimers;
use crate::supervisor::{SupervisorError, actuator};

/// How long a scaled-in instance has to drain after SIGTERM.
const SCALE_IN_DRAIN: Duration = Duration::from_secs(10);

/// The initial state.
pub(super) struct Plan {
    pub(super) services: BTreeMap<String, ServiceState>,
    pub(super) instances: BTreeMap<InstanceId, Instance>,
    pub(super) deps: BTreeMap<String, Vec<String>>,
}

/// Plans services and instances; kills instances a platform that died left running.
pub(super) async fn plan(topology: &Topology, wiring: &Wiring) -> Result<Plan, SupervisorError> {
    let stored: HashMap<(String, u32), StoredInstance> = match &wiring.db {
        Some(db) => db
            .instances()
            .await?
            .into_iter()
            .map(|i| ((i.service.clone(), i.index), i))
            .collect(),
        None => HashMap::new(),
    };
    let mut instances = BTreeMap::new();
    for s in &topology.services {
        for index in 0..replica_count(s) {
            let id = InstanceId::new(s.name.clone(), index);
            let addr = instance_addr(s, &id, stored.get(&(s.name.clone(), index))).await?;
            let inst = Instance::new(id.clone(), addr, !s.command.is_empty(), &s.recovery);
            instances.insert(id, inst);
        }
    }
    let mut services = BTreeMap::new();
    let mut deps = BTreeMap::new();
    for s in &topology.services {
        // A Kubernetes service's template names only the service: its Deployment has the rest.
        let workload = (!s.command.is_empty() || s.kubernetes.is_some())
            .then(|| workload(topology, s, wiring, &instances));
        services.insert(
            s.name.clone(),
            service_state(s, topology.incidents.mode, workload),
        );
        deps.insert(s.name.clone(), transitive_deps(&topology.services, &s.name));
    }
    // What the previous run spent: its budget uses within their windows, its crash loops.
    let now = crate::common::time::now_nanos();
    let since = |at: u64| Duration::from_nanos(now.saturating_sub(at));
    if let Some(db) = &wiring.db {
        let uses = db.budget_uses(now).await?;
        let started = std::time::Instant::now();
        for (name, svc) in &mut services {
            let ages = |kind| {
                uses.iter()
                    .filter(|u| &u.service == name && u.budget == kind)
                    .map(|u| since(u.at_unix_nano))
                    .collect::<Vec<_>>()
            };
            svc.budget.restore(started, ages(BudgetKind::Restart));
            svc.scale_budget.restore(started, ages(BudgetKind::Scale));
        }
    }
    for (key, stored) in &stored {
        if let (Some((crashes, at)), Some(inst)) = (
            stored.crashes,
            instances.get_mut(&InstanceId::new(key.0.clone(), key.1)),
        ) {
            inst.backoff.restore(crashes, since(at));
        }
    }
    Ok(Plan {
        services,
        instances,
        deps,
    })
}

/// The controller's state of service `s` (`default_mode` when it sets none).
pub(super) fn service_state(
    s: &ServiceConfig,
    default_mode: RecoveryMode,
    workload: Option<WorkloadSpec>,
) -> ServiceState {
    ServiceState {
        cfg: s.clone(),
        mode: s.recovery.mode.unwrap_or(default_mode),
        budget: RestartBudget::new(
            s.recovery.restart_budget,
            Duration::from_secs(s.recovery.budget_window_secs),
        ),
        scale_budget: RestartBudget::new(
            s.scale.budget,
            Duration::from_secs(s.scale.budget_window_secs),
        ),
        workload,
        scale: ScaleTimers::default(),
        scale_incident: None,
        backlog: None,
        pending_scale_out: None,
        pending_replacements: VecDeque::new(),
        rolling: None,
    }
}

/// The template of a Kubernetes service found while running: its Deployment has everything
/// but the name (the actuator routes by it).
pub(super) fn kubernetes_workload(s: &ServiceConfig, data_dir: &Path) -> WorkloadSpec {
    WorkloadSpec {
        service: s.name.clone(),
        command: Vec::new(),
        env: Vec::new(),
        port_env: s.port_env.clone(),
        cwd: None,
        data_dir: data_dir.to_path_buf(),
        drain_grace: SCALE_IN_DRAIN,
    }
}

/// Instances planned at start; a Kubernetes service's come from its pod watch.
fn replica_count(s: &ServiceConfig) -> u32 {
    if s.kubernetes.is_some() {
        0
    } else if !s.command.is_empty() {
        s.replicas
    } else if s.url.is_some() {
        1
    } else {
        0
    }
}

/// A managed instance's port (the stored one when free), or an external one's address.
async fn instance_addr(
    s: &ServiceConfig,
    id: &InstanceId,
    stored: Option<&StoredInstance>,
) -> Result<SocketAddr, SupervisorError> {
    if s.command.is_empty() {
        let url = s.url.clone().unwrap_or_default();
        return url_addr(&url).ok_or_else(|| SupervisorError::Url(s.name.clone(), url));
    }
    if let Some(StoredInstance {
        pid: Some(pid),
        process,
        ..
    }) = stored
        && LocalProcessActuator::kill_leftover(*pid, process.as_deref()).await
    {
        tracing::warn!(%id, pid, "stopped an instance left by a previous platform run");
    }
    let port = match stored.map(|i| i.port) {
        Some(port) if port != 0 && port_is_free(port) => port,
        _ => actuator::free_port().map_err(|e| SupervisorError::Port(id.to_string(), e))?,
    };
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The template of a service's instances: telemetry endpoints, upstream URLs, its own env.
fn workload(
    topology: &Topology,
    s: &ServiceConfig,
    wiring: &Wiring,
    instances: &BTreeMap<InstanceId, Instance>,
) -> WorkloadSpec {
    let platform = wiring.platform_addr;
    let project = s.sentry_project.unwrap_or(1);
    let (sentry_key, otlp_headers) = child_credentials(&topology.platform);
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://{platform}"),
        ),
        ("OTEL_SERVICE_NAME".to_owned(), s.name.clone()),
        (
            "SENTRY_DSN".to_owned(),
            format!("http://{sentry_key}@{platform}/{project}"),
        ),
    ];
    if let Some(headers) = otlp_headers {
        env.push(("OTEL_EXPORTER_OTLP_HEADERS".to_owned(), headers));
    }
    for dep in &s.depends_on {
        let url = match (topology.gateway.upstreams_via_gateway, wiring.gateway_addr) {
            (true, Some(gw)) => format!("http://{gw}"),
            _ => instances
                .get(&InstanceId::new(dep.clone(), 0))
                .map(|i| format!("http://{}", i.addr))
                .unwrap_or_default(),
        };
        let upper = dep.to_uppercase().replace('-', "_");
        let name = crate::config::topology::expand(
            &s.upstream_env,
            &[("NAME", upper.as_str()), ("name", dep.as_str())],
        );
        env.push((name, url));
    }
    env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    WorkloadSpec {
        service: s.name.clone(),
        command: s.command.clone(),
        env,
        port_env: s.port_env.clone(),
        cwd: s.cwd.clone(),
        data_dir: topology.platform.data_dir.clone(),
        drain_grace: SCALE_IN_DRAIN,
    }
}

/// What the platform's own children send with their telemetry, so that the ingest keys the
/// platform requires never refuse them: the first ingest key as the Sentry DSN's public key
/// and as an OTLP bearer token (`OTEL_EXPORTER_OTLP_HEADERS`, percent-encoded as the
/// OpenTelemetry specification asks); else the older header/key pair and the first Sentry
/// key; else an open ingest's placeholder key.
fn child_credentials(p: &PlatformConfig) -> (String, Option<String>) {
    let encode = |v: &str| {
        v.replace('%', "%25")
            .replace(' ', "%20")
            .replace(',', "%2C")
    };
    if let Some(key) = p.ingest_keys.first() {
        return (
            key.clone(),
            Some(format!("authorization=Bearer%20{}", encode(key))),
        );
    }
    let sentry = p
        .sentry_keys
        .first()
        .cloned()
        .unwrap_or_else(|| "aiops".to_owned());
    let header = p
        .otlp_ingest_header
        .as_ref()
        .zip(p.otlp_ingest_key.as_ref())
        .map(|(h, k)| format!("{}={}", encode(h), encode(k)));
    (sentry, header)
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn url_addr(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let host = rest.split('/').next()?;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    host.to_socket_addrs().ok()?.next()
}

fn transitive_deps(all: &[ServiceConfig], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stack = vec![name.to_owned()];
    while let Some(n) = stack.pop() {
        if let Some(s) = all.iter().find(|s| s.name == n) {
            for d in &s.depends_on {
                if d != name && !out.contains(d) {
                    out.push(d.clone());
                    stack.push(d.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_followed_transitively_without_cycles() {
        let svc = |name: &str, deps: &[&str]| {
            let mut s = ServiceConfig::named(name).unwrap_or_else(|e| panic!("{e}"));
            s.depends_on = deps.iter().map(|d| (*d).to_owned()).collect();
            s
        };
        let all = [
            svc("order", &["kitchen"]),
            svc("kitchen", &["accounting"]),
            svc("accounting", &["order"]),
        ];
        let mut deps = transitive_deps(&all, "order");
        deps.sort();
        assert_eq!(deps, ["accounting", "kitchen"]);
    }

    #[test]
    fn children_send_the_key_the_platform_requires() {
        let mut p = PlatformConfig::default();
        assert_eq!(child_credentials(&p), ("aiops".to_owned(), None));
        p.sentry_keys = vec!["pub".into()];
        p.otlp_ingest_header = Some("x-aiops-key".into());
        p.otlp_ingest_key = Some("old".into());
        assert_eq!(
            child_credentials(&p),
            ("pub".to_owned(), Some("x-aiops-key=old".to_owned()))
        );
        p.ingest_keys = vec!["k 1".into(), "k2".into()];
        assert_eq!(
            child_credentials(&p),
            (
                "k 1".to_owned(),
                Some("authorization=Bearer%20k%201".to_owned())
            )
        );
    }

    #[test]
    fn urls_resolve_with_a_default_port() {
        assert_eq!(
            url_addr("http://127.0.0.1:8080/x"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(url_addr("http://127.0.0.1").map(|a| a.port()), Some(80));
        assert_eq!(url_addr("ftp://x"), None);
    }
}
