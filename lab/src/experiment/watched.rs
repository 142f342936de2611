//! Watched services: `--watched kitchen` takes a service out of the platform's hands. The lab
//! starts its process itself (the topology's command and environment, with the telemetry
//! variables the platform would have set) and the topology keeps only its `url`, so the
//! platform watches it like any program it did not start: probes, scrapes, telemetry, the
//! gateway's counters — and no restart. A kill of it is the lab's: SIGKILL, then the lab starts
//! it again on the same port after `--watched-restart-after`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_platform::common::time::now_nanos;
use aiops_platform::config::Topology;
use aiops_platform::supervisor::{InstanceSpec, WorkloadSpec};
use parking_lot::Mutex;

use super::ExperimentError;
use super::chaos::kill9;

/// One watched service: how to start it, and its process.
#[derive(Debug)]
struct Proc {
    spec: InstanceSpec,
    depends_on: Vec<String>,
    upstream_env: String,
    sentry_project: u64,
    child: Option<tokio::process::Child>,
    /// False from a kill until the restart.
    running: bool,
    restarts: u64,
}

/// The services the lab runs itself.
#[derive(Debug)]
pub(crate) struct Watched {
    procs: Mutex<HashMap<String, Proc>>,
    restart_after: Duration,
    /// Platform listener and gateway, once known.
    wiring: Mutex<Option<(SocketAddr, Option<String>)>>,
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

impl Watched {
    /// Takes `names` out of the platform's hands: each keeps its routes and settings, loses
    /// its command and gets `url = http://127.0.0.1:<free port>`.
    pub(crate) fn take_over(
        topology: &mut Topology,
        names: &[String],
        restart_after: Duration,
    ) -> Result<Arc<Self>, ExperimentError> {
        let data_dir = topology.platform.data_dir.clone();
        let mut procs = HashMap::new();
        for name in names {
            let Some(s) = topology.services.iter_mut().find(|s| &s.name == name) else {
                return Err(ExperimentError::Invalid(format!(
                    "--watched {name:?}: no such service in the topology"
                )));
            };
            if s.command.is_empty() {
                return Err(ExperimentError::Invalid(format!(
                    "--watched {name:?}: the topology gives it no command to start it with"
                )));
            }
            let port = free_port().map_err(|source| ExperimentError::Io {
                what: format!("cannot find a free port for {name}"),
                source,
            })?;
            let workload = WorkloadSpec {
                service: s.name.clone(),
                command: std::mem::take(&mut s.command),
                env: s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                port_env: s.port_env.clone(),
                cwd: s.cwd.clone(),
                data_dir: data_dir.clone(),
                drain_grace: Duration::from_secs(3),
            };
            s.url = Some(format!("http://127.0.0.1:{port}"));
            s.replicas = 1;
            procs.insert(
                s.name.clone(),
                Proc {
                    spec: workload.instance(0, port),
                    depends_on: s.depends_on.clone(),
                    upstream_env: s.upstream_env.clone(),
                    sentry_project: s.sentry_project.unwrap_or(1),
                    child: None,
                    running: false,
                    restarts: 0,
                },
            );
        }
        Ok(Arc::new(Self {
            procs: Mutex::new(procs),
            restart_after,
            wiring: Mutex::new(None),
        }))
    }

    /// The watched services' names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.procs.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether `service` is one of them.
    pub(crate) fn contains(&self, service: &str) -> bool {
        self.procs.lock().contains_key(service)
    }

    /// Whether its process runs (false between a kill and the restart).
    pub(crate) fn running(&self, service: &str) -> bool {
        self.procs.lock().get(service).is_some_and(|p| p.running)
    }

    /// Restarts done by the lab, per service.
    pub(crate) fn restarts(&self) -> HashMap<String, u64> {
        self.procs
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), p.restarts))
            .collect()
    }

    /// The restart delay.
    pub(crate) fn restart_after(&self) -> Duration {
        self.restart_after
    }

    fn spawn(&self, service: &str) -> Result<u32, String> {
        let Some((platform, gateway)) = self.wiring.lock().clone() else {
            return Err("the platform is not started".into());
        };
        let mut procs = self.procs.lock();
        let Some(p) = procs.get_mut(service) else {
            return Err(format!("{service} is not watched"));
        };
        let Some((program, args)) = p.spec.command.split_first() else {
            return Err(format!("{service}: empty command"));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{platform}"))
            .env("OTEL_SERVICE_NAME", service)
            .env(
                "SENTRY_DSN",
                format!("http://aiops@{platform}/{}", p.sentry_project),
            );
        for dep in &p.depends_on {
            let upper = dep.to_uppercase().replace('-', "_");
            let name = aiops_platform::config::topology::expand(
                &p.upstream_env,
                &[("NAME", upper.as_str()), ("name", dep.as_str())],
            );
            if let Some(gw) = &gateway {
                cmd.env(name, gw);
            }
        }
        cmd.envs(p.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(dir) = &p.spec.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {service} ({program}): {e}"))?;
        let pid = child.id().unwrap_or_default();
        p.child = Some(child);
        p.running = true;
        Ok(pid)
    }

    /// Starts every watched service (the platform listens at `platform`; upstream calls go to
    /// `gateway` when there is one) and waits for each to answer `/health/ready`.
    pub(crate) async fn start_all(
        &self,
        platform: SocketAddr,
        gateway: Option<String>,
        client: &reqwest::Client,
    ) -> Result<(), ExperimentError> {
        *self.wiring.lock() = Some((platform, gateway));
        for name in self.names() {
            self.spawn(&name).map_err(ExperimentError::Invalid)?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for name in self.names() {
            let url = self.url(&name).unwrap_or_default();
            loop {
                let ok = client
                    .get(format!("{url}/health/ready"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ExperimentError::NotReady(
                        Duration::from_secs(30),
                        format!("watched {name} at {url}"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// `http://127.0.0.1:port` of `service`.
    pub(crate) fn url(&self, service: &str) -> Option<String> {
        self.procs
            .lock()
            .get(service)
            .map(|p| format!("http://{}", p.spec.addr))
    }

    /// Kills `service`'s process with SIGKILL and starts it again after the restart delay.
    /// Answers the pid killed and the fault time (ns, taken just before the signal).
    pub(crate) async fn kill(self: &Arc<Self>, service: &str) -> Result<(u32, u64), String> {
        let child = {
            let mut procs = self.procs.lock();
            let p = procs
                .get_mut(service)
                .ok_or_else(|| format!("{service} is not watched"))?;
            p.running = false;
            p.child.take()
        };
        let Some(mut child) = child else {
            return Err(format!("{service}: no process"));
        };
        let pid = child.id().unwrap_or_default();
        let at = now_nanos();
        let result = kill9(pid);
        let _ = child.wait().await;
        let me = self.clone();
        let name = service.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(me.restart_after).await;
            match me.spawn(&name) {
                Ok(_) => {
                    if let Some(p) = me.procs.lock().get_mut(&name) {
                        p.restarts += 1;
                    }
                }
                Err(e) => eprintln!("aiods-lab: cannot restart watched {name}: {e}"),
            }
        });
        result.map(|()| (pid, at))
    }

    /// Stops every process (SIGKILL; the services also exit when the lab does).
    pub(crate) async fn stop_all(&self) {
        let children: Vec<tokio::process::Child> = self
            .procs
            .lock()
            .values_mut()
            .filter_map(|p| {
                p.running = false;
                p.child.take()
            })
            .collect();
        for mut c in children {
            let _ = c.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_service_keeps_its_settings_and_loses_its_command() {
        let mut t = Topology::parse(
            r#"
[[service]]
name = "kitchen"
command = ["/bin/kitchen", "--port", "{port}"]
routes = ["/tickets"]
[service.env]
DB = "sqlite://{data_dir}/{service}.db"
[[service]]
name = "order"
command = ["/bin/order"]
depends_on = ["kitchen"]
"#,
        )
        .expect("valid");
        let w = Watched::take_over(&mut t, &["kitchen".into()], Duration::from_secs(1))
            .expect("taken over");
        assert_eq!(w.names(), ["kitchen"]);
        assert!(w.contains("kitchen") && !w.contains("order"));
        assert!(!w.running("kitchen"), "not started yet");
        let k = &t.services[0];
        assert!(k.command.is_empty());
        assert_eq!(k.routes, ["/tickets"]);
        let url = k.url.clone().expect("a url");
        assert_eq!(w.url("kitchen"), Some(url.clone()));
        let procs = w.procs.lock();
        let spec = &procs["kitchen"].spec;
        let port = url.rsplit(':').next().expect("port");
        assert_eq!(spec.command, ["/bin/kitchen", "--port", port]);
        assert!(
            spec.env
                .iter()
                .any(|(k, v)| k == "DB" && v.ends_with("/kitchen.db"))
        );
        assert!(spec.env.iter().any(|(k, v)| k == "AIODS_PORT" && v == port));
        drop(procs);
        assert!(t.validate().is_ok(), "a url and routes, no command: valid");

        assert!(Watched::take_over(&mut t, &["nope".into()], Duration::ZERO).is_err());
        assert!(
            Watched::take_over(&mut t, &["kitchen".into()], Duration::ZERO).is_err(),
            "no command left to start it with"
        );
    }
}
