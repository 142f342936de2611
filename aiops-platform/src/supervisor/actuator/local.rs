//! [`LocalProcessActuator`]: instances are child processes of the platform (tokio), killed when
//! it stops; "traffic" is the platform's own gateway routing table.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc};

use super::lines::{LineSplitter, MAX_LINE_BYTES};
use super::{
    Actuator, ActuatorError, InstanceSpec, LifecycleEvent, LifecycleStream, LineSink,
    ObservedInstance, Reason, ScaleOutcome, Traffic, WorkloadSpec,
};
use crate::common::instance::InstanceId;
use crate::common::time::now_nanos;
use crate::gateway::Routes;
use crate::supervisor::ExitReason;

/// How long a restart waits for a killed process to be reaped before starting anew.
const REAP_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Running {
    pid: u32,
    kill: Arc<Notify>,
    reaped: Arc<Notify>,
}

/// One instance the actuator knows: its spec (kept across crashes, so a restart reuses it),
/// its last generation and the process while it runs.
#[derive(Debug)]
struct Managed {
    spec: InstanceSpec,
    generation: u64,
    running: Option<Running>,
}

type Table = Arc<Mutex<HashMap<InstanceId, Managed>>>;

/// Local child processes behind the platform's gateway.
#[derive(Debug)]
pub struct LocalProcessActuator {
    events: mpsc::UnboundedSender<LifecycleEvent>,
    stream: Mutex<Option<LifecycleStream>>,
    sink: Arc<dyn LineSink>,
    routes: Arc<Routes>,
    table: Table,
}

impl LocalProcessActuator {
    /// An actuator sending output lines to `sink` and routing traffic through `routes`.
    pub fn new(routes: Arc<Routes>, sink: Arc<dyn LineSink>) -> Self {
        let (events, stream) = mpsc::unbounded_channel();
        Self {
            events,
            stream: Mutex::new(Some(stream)),
            sink,
            routes,
            table: Arc::default(),
        }
    }

    /// Process ids of running instances.
    pub fn pids(&self) -> Vec<(InstanceId, u32)> {
        self.table
            .lock()
            .iter()
            .filter_map(|(k, m)| m.running.as_ref().map(|r| (k.clone(), r.pid)))
            .collect()
    }

    /// Kills `pid` when it is still the very process a previous platform run started (its
    /// [`process_identity`] is `process`): an instance left running by a platform that died.
    /// A pid reused by anything else — or a row from before identities were kept — is left
    /// alone. Answers whether it killed.
    pub async fn kill_leftover(pid: u32, process: Option<&str>) -> bool {
        let Some(process) = process else {
            tracing::warn!(
                pid,
                "a previous run's instance has no process identity: left alone"
            );
            return false;
        };
        if process_identity(pid).as_deref() != Some(process) {
            return false;
        }
        let _ = send_signal(pid, "KILL").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        true
    }

    /// Spawns the next generation of `spec`; the exit is reported when the child is reaped.
    fn spawn(&self, spec: InstanceSpec) -> Result<(), ActuatorError> {
        let generation = self.next_generation(&spec);
        let id = spec.id.clone();
        let mut child = match command(&spec).spawn() {
            Ok(child) => child,
            Err(source) => {
                let error = ActuatorError::Spawn {
                    id: id.clone(),
                    program: spec.command.first().cloned().unwrap_or_default(),
                    source,
                };
                self.emit(LifecycleEvent::StartFailed {
                    id,
                    generation,
                    error: error.to_string(),
                    at: now_nanos(),
                });
                return Err(error);
            }
        };
        let pid = child.id().unwrap_or(0);
        let (kill, reaped) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        if let Some(m) = self.table.lock().get_mut(&id) {
            m.running = Some(Running {
                pid,
                kill: kill.clone(),
                reaped: reaped.clone(),
            });
        }
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(out, id.clone(), false, self.sink.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(err, id.clone(), true, self.sink.clone()));
        }
        self.emit(LifecycleEvent::Started {
            id: id.clone(),
            generation,
            addr: spec.addr,
            pid: Some(pid),
            at: now_nanos(),
        });
        tokio::spawn(wait_for_exit(
            child,
            Exit {
                id,
                generation,
                kill,
                reaped,
                readers,
            },
            self.events.clone(),
            self.table.clone(),
        ));
        Ok(())
    }

    /// Remembers `spec` (a restart reuses it) and answers its next generation.
    fn next_generation(&self, spec: &InstanceSpec) -> u64 {
        let mut table = self.table.lock();
        let entry = table.entry(spec.id.clone()).or_insert_with(|| Managed {
            spec: spec.clone(),
            generation: 0,
            running: None,
        });
        entry.spec = spec.clone();
        entry.generation += 1;
        entry.generation
    }

    fn emit(&self, event: LifecycleEvent) {
        let _ = self.events.send(event);
    }

    /// SIGTERM, then a kill after `grace`; waits until the process is reaped (bounded).
    async fn terminate(&self, id: &InstanceId, grace: Duration) {
        let found = self.table.lock().get(id).and_then(|m| {
            m.running
                .as_ref()
                .map(|r| (r.pid, r.kill.clone(), r.reaped.clone()))
        });
        let Some((pid, kill, reaped)) = found else {
            return;
        };
        let reaped_now = reaped.notified();
        tokio::pin!(reaped_now);
        reaped_now.as_mut().enable();
        if !grace.is_zero()
            && send_signal(pid, "TERM").await.is_ok()
            && tokio::time::timeout(grace, reaped_now.as_mut())
                .await
                .is_ok()
        {
            return;
        }
        // notify_one keeps a permit, so a kill asked before the waiter polls is not lost.
        kill.notify_one();
        let _ = tokio::time::timeout(REAP_WAIT, reaped_now).await;
    }

    fn count(&self, service: &str) -> Vec<InstanceId> {
        let mut ids: Vec<InstanceId> = self
            .table
            .lock()
            .keys()
            .filter(|i| i.service == service)
            .cloned()
            .collect();
        ids.sort();
        ids
    }
}

/// What the waiter of one child needs.
struct Exit {
    id: InstanceId,
    generation: u64,
    kill: Arc<Notify>,
    reaped: Arc<Notify>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Waits for the child (or a kill), reports the exit, then wakes anyone waiting for the reap.
async fn wait_for_exit(
    mut child: tokio::process::Child,
    exit: Exit,
    events: mpsc::UnboundedSender<LifecycleEvent>,
    table: Table,
) {
    let Exit {
        id,
        generation,
        kill,
        reaped,
        readers,
    } = exit;
    let status = tokio::select! {
        s = child.wait() => s,
        () = kill.notified() => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    // Noticed the instant the child is reaped.
    let at = now_nanos();
    if let Some(m) = table.lock().get_mut(&id)
        && m.generation == generation
    {
        m.running = None;
    }
    let exit = match status {
        Ok(s) => ExitReason::from_status(s),
        Err(e) => ExitReason::Unknown(e.to_string()),
    };
    // The exit is on the stream before anyone waiting for the reap starts anew.
    let _ = events.send(LifecycleEvent::Exited {
        id,
        generation,
        exit,
        at,
    });
    reaped.notify_waiters();
    // Let the readers finish the last lines without holding anything up.
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_millis(200), r).await;
    }
}

fn command(spec: &InstanceSpec) -> tokio::process::Command {
    let (program, args) = spec
        .command
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// Sends `signal` to `pid` with the `kill` program.
pub async fn send_signal(pid: u32, signal: &str) -> Result<(), String> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{signal} {pid} failed ({status})"))
    }
}

/// Which process `pid` is: the boot id and the process's start time (clock ticks after boot,
/// field 22 of `/proc/<pid>/stat`), which no later process with a reused pid shares. `None`
/// when the process is gone or there is no `/proc`.
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces and parentheses: the
    // fields after the last ')' start at field 3, so field 22 is the 20th of them.
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let start = after_name.split_whitespace().nth(19)?;
    Some(format!("{}/{start}", boot.trim()))
}

#[async_trait::async_trait]
impl Actuator for LocalProcessActuator {
    async fn start(&self, spec: InstanceSpec) -> Result<(), ActuatorError> {
        if spec.command.is_empty() {
            return Err(ActuatorError::NoCommand(spec.id));
        }
        self.spawn(spec)
    }

    async fn stop(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        tracing::debug!(%id, %why, "stopping");
        self.terminate(id, grace).await;
        // Stopped for good: a later restart or scale does not bring it back.
        self.table.lock().remove(id);
        Ok(())
    }

    async fn restart(
        &self,
        id: &InstanceId,
        grace: Duration,
        why: &Reason,
    ) -> Result<(), ActuatorError> {
        tracing::debug!(%id, %why, "restarting");
        self.terminate(id, grace).await;
        // Stopped for good meanwhile (shutdown, scale-in): do not start it again.
        let spec = self.table.lock().get(id).map(|m| m.spec.clone());
        let spec = spec.ok_or_else(|| ActuatorError::Unknown(id.clone()))?;
        self.spawn(spec)
    }

    async fn scale(
        &self,
        workload: &WorkloadSpec,
        replicas: u32,
        why: &Reason,
    ) -> Result<ScaleOutcome, ActuatorError> {
        tracing::debug!(service = %workload.service, replicas, %why, "scaling");
        let ids = self.count(&workload.service);
        let mut outcome = ScaleOutcome::default();
        let have = ids.len() as u32;
        if replicas > have {
            let first = ids.iter().map(|i| i.index + 1).max().unwrap_or(0);
            for next in first..first + (replicas - have) {
                let port = free_port().map_err(|source| ActuatorError::Port {
                    service: workload.service.clone(),
                    source,
                })?;
                let spec = workload.instance(next, port);
                self.set_traffic(&spec.id, Traffic::Registered(spec.addr));
                outcome.started.push(spec.id.clone());
                self.spawn(spec)?;
            }
        } else {
            // The newest go first.
            for id in ids.iter().rev().take((have - replicas) as usize) {
                self.set_traffic(id, Traffic::Out);
                outcome.stopping.push(id.clone());
            }
            for id in &outcome.stopping {
                self.terminate(id, workload.drain_grace).await;
                self.table.lock().remove(id);
            }
        }
        Ok(outcome)
    }

    fn set_traffic(&self, id: &InstanceId, traffic: Traffic) {
        match traffic {
            Traffic::Registered(addr) => self.routes.set(id, addr, false),
            Traffic::In(addr) => self.routes.set(id, addr, true),
            Traffic::Out => self.routes.set_unready(id),
            Traffic::Forgotten => self.routes.remove(id),
        }
    }

    async fn list(&self) -> Result<Vec<ObservedInstance>, ActuatorError> {
        let mut out: Vec<ObservedInstance> = self
            .table
            .lock()
            .iter()
            .map(|(id, m)| ObservedInstance {
                id: id.clone(),
                addr: m.spec.addr,
                generation: m.generation,
                pid: m.running.as_ref().map(|r| r.pid),
                running: m.running.is_some(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn watch(&self) -> Result<LifecycleStream, ActuatorError> {
        self.stream
            .lock()
            .take()
            .ok_or(ActuatorError::AlreadyWatched)
    }
}

/// A free loopback port for an instance, below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): an instance is restarted on its port, and a
/// port from the ephemeral range may meanwhile be given to an outbound connection (a broker
/// client's, which lives for hours), so the restarted instance could not listen on it again.
/// Any free port when the range cannot be read or nothing below it is free.
pub(crate) fn free_port() -> std::io::Result<u16> {
    let low = ephemeral_low().unwrap_or(32768);
    for port in port_candidates(low, &mut rand::rng(), 64) {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// The first port of the kernel's ephemeral range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `n` random ports to try, below `ephemeral_low`: from 20000 up when the range leaves at
/// least a thousand there, else from 1024 up; none when nothing is below it.
fn port_candidates(ephemeral_low: u16, rng: &mut impl rand::Rng, n: usize) -> Vec<u16> {
    let from: u16 = if ephemeral_low >= 21_000 {
        20_000
    } else {
        1024
    };
    if ephemeral_low <= from {
        return Vec::new();
    }
    (0..n)
        .map(|_| rng.random_range(from..ephemeral_low))
        .collect()
}

fn spawn_reader(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    id: InstanceId,
    stderr: bool,
    sink: Arc<dyn LineSink>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = stream;
        let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
        let mut buf = vec![0u8; 8192];
        let send = |line: String| {
            if !line.trim().is_empty() {
                sink.line(&id, stderr, line);
            }
        };
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => splitter.push(&buf[..n]).into_iter().for_each(send),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(%id, %error, "cannot read the instance's output");
                    break;
                }
            }
        }
        splitter.finish().into_iter().for_each(send);
    })
}

#[cfg(test)]
mod port_tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn instance_ports_are_below_the_ephemeral_range() {
        for seed in 0..50 {
            let ports = port_candidates(32768, &mut StdRng::seed_from_u64(seed), 64);
            assert_eq!(ports.len(), 64);
            assert!(
                ports.iter().all(|p| (20_000..32768).contains(p)),
                "{ports:?}"
            );
        }
        // A low range: from 1024; none below 1024.
        assert!(
            port_candidates(5000, &mut rand::rng(), 8)
                .iter()
                .all(|p| (1024..5000).contains(p))
        );
        assert!(port_candidates(1024, &mut rand::rng(), 8).is_empty());
        assert!(port_candidates(80, &mut rand::rng(), 8).is_empty());
        if let Some(low) = ephemeral_low() {
            let port = free_port().unwrap_or_else(|e| panic!("{e}"));
            assert!(port < low, "{port} is in the ephemeral range from {low}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topology::Balance;

    #[derive(Debug)]
    struct Discard;
    impl LineSink for Discard {
        fn line(&self, _: &InstanceId, _: bool, _: String) {}
    }

    fn workload() -> WorkloadSpec {
        WorkloadSpec {
            service: "sleeper".into(),
            command: vec!["sleep".into(), "30".into()],
            env: vec![("WHO".into(), "{service}#{index}:{port}".into())],
            port_env: "AIODS_PORT".into(),
            cwd: None,
            data_dir: std::env::temp_dir(),
            drain_grace: Duration::from_millis(100),
        }
    }

    async fn next(stream: &mut LifecycleStream) -> LifecycleEvent {
        match tokio::time::timeout(Duration::from_secs(5), stream.recv()).await {
            Ok(Some(e)) => e,
            other => panic!("no lifecycle event: {other:?}"),
        }
    }

    #[test]
    fn a_workload_renders_each_instance() {
        let spec = workload().instance(2, 4000);
        assert_eq!(spec.id, InstanceId::new("sleeper", 2));
        assert!(spec.env.contains(&("AIODS_PORT".into(), "4000".into())));
        assert!(spec.env.contains(&("WHO".into(), "sleeper#2:4000".into())));
        assert_eq!(spec.addr.port(), 4000);
    }

    #[tokio::test]
    async fn start_restart_scale_and_stop_are_reported_on_the_stream() {
        let routes = Arc::new(Routes::new(Balance::RoundRobin));
        let actuator = LocalProcessActuator::new(routes.clone(), Arc::new(Discard));
        let mut stream = actuator.watch().unwrap_or_else(|e| panic!("{e}"));
        assert!(actuator.watch().is_err(), "the stream is answered once");
        let w = workload();
        let first = w.instance(0, 1);
        let id = first.id.clone();
        actuator
            .start(first)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            next(&mut stream).await,
            LifecycleEvent::Started {
                generation: 1,
                pid: Some(_),
                ..
            }
        ));

        restart_then_scale(&actuator, &routes, &mut stream, &id).await;
    }

    async fn restart_then_scale(
        actuator: &LocalProcessActuator,
        routes: &Routes,
        stream: &mut LifecycleStream,
        id: &InstanceId,
    ) {
        let w = workload();
        actuator
            .restart(id, Duration::from_millis(100), &Reason::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            next(stream).await,
            LifecycleEvent::Exited {
                generation: 1,
                exit: ExitReason::Signal(15),
                ..
            }
        ));
        assert!(matches!(
            next(stream).await,
            LifecycleEvent::Started { generation: 2, .. }
        ));

        let out = actuator
            .scale(&w, 2, &Reason::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.started, [InstanceId::new("sleeper", 1)]);
        assert!(matches!(next(stream).await, LifecycleEvent::Started { .. }));
        assert_eq!(
            routes.endpoints("sleeper").len(),
            1,
            "the new one is registered"
        );
        assert_eq!(actuator.list().await.map(|l| l.len()).ok(), Some(2));

        let out = actuator
            .scale(&w, 1, &Reason::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.stopping,
            [InstanceId::new("sleeper", 1)],
            "the newest goes"
        );
        assert!(matches!(next(stream).await, LifecycleEvent::Exited { .. }));

        actuator
            .stop(id, Duration::ZERO, &Reason::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            next(stream).await,
            LifecycleEvent::Exited {
                exit: ExitReason::Signal(9),
                ..
            }
        ));
        assert!(actuator.list().await.is_ok_and(|l| l.is_empty()));
        assert!(
            actuator
                .restart(id, Duration::ZERO, &Reason::default())
                .await
                .is_err(),
            "stopped for good"
        );
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_is_reported() {
        let actuator = LocalProcessActuator::new(
            Arc::new(Routes::new(Balance::RoundRobin)),
            Arc::new(Discard),
        );
        let mut stream = actuator.watch().unwrap_or_else(|e| panic!("{e}"));
        let mut spec = workload().instance(0, 1);
        spec.command = vec!["/nonexistent/program".into()];
        assert!(actuator.start(spec).await.is_err());
        assert!(matches!(
            next(&mut stream).await,
            LifecycleEvent::StartFailed { .. }
        ));
    }
}
