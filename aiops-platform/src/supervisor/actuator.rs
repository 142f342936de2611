//! [`Actuator`]: how the supervisor starts and stops instances. [`LocalProcessActuator`] runs
//! local processes; a Kubernetes actuator (scale a Deployment, delete a Pod) fits the same trait.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, mpsc};

use super::{Event, ExitReason, InstanceId};
use crate::store::now_nanos;

/// Errors of an actuator.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The command is empty.
    #[error("instance {0} has no command")]
    NoCommand(InstanceId),
    /// The program could not be started.
    #[error("cannot start {program} for {id}: {source}")]
    Spawn {
        /// The instance.
        id: InstanceId,
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("cannot signal {id}: {message}")]
    Signal {
        /// The instance.
        id: InstanceId,
        /// What went wrong.
        message: String,
    },
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Which instance.
    pub id: InstanceId,
    /// Its generation (bumped at every start), echoed in its exit event.
    pub generation: u64,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment added to the platform's.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// Where output lines of an instance go.
pub trait LineSink: Send + Sync + std::fmt::Debug {
    /// One line from stdout (`stderr == false`) or stderr.
    fn line(&self, id: &InstanceId, stderr: bool, line: String);
}

/// Starts and stops instances; reports exits as [`Event::Exited`].
#[async_trait::async_trait]
pub trait Actuator: Send + Sync + std::fmt::Debug {
    /// Starts an instance and answers its process id (or another handle number).
    async fn start(&self, spec: InstanceSpec) -> Result<u32, ActuatorError>;
    /// Stops an instance: SIGTERM, then SIGKILL after `grace` (zero: SIGKILL at once).
    async fn stop(&self, id: &InstanceId, grace: Duration) -> Result<(), ActuatorError>;
    /// Whether the actuator can start this kind of instance (false for URL-only services).
    fn manages(&self, id: &InstanceId) -> bool;
}

#[derive(Debug)]
struct Running {
    pid: u32,
    generation: u64,
    kill: Arc<Notify>,
}

/// Local child processes (tokio), killed when the platform stops.
#[derive(Debug)]
pub struct LocalProcessActuator {
    events: mpsc::UnboundedSender<Event>,
    sink: Arc<dyn LineSink>,
    running: Arc<Mutex<HashMap<InstanceId, Running>>>,
}

impl LocalProcessActuator {
    /// An actuator reporting to `events` and sending output lines to `sink`.
    pub fn new(events: mpsc::UnboundedSender<Event>, sink: Arc<dyn LineSink>) -> Self {
        Self {
            events,
            sink,
            running: Arc::default(),
        }
    }

    /// Process ids of running instances.
    pub fn pids(&self) -> Vec<(InstanceId, u32)> {
        self.running
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.pid))
            .collect()
    }
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

#[async_trait::async_trait]
impl Actuator for LocalProcessActuator {
    async fn start(&self, spec: InstanceSpec) -> Result<u32, ActuatorError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(ActuatorError::NoCommand(spec.id));
        };
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
        let mut child = cmd.spawn().map_err(|source| ActuatorError::Spawn {
            id: spec.id.clone(),
            program: program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let kill = Arc::new(Notify::new());
        self.running.lock().insert(
            spec.id.clone(),
            Running {
                pid,
                generation: spec.generation,
                kill: kill.clone(),
            },
        );
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(out, spec.id.clone(), false, self.sink.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(err, spec.id.clone(), true, self.sink.clone()));
        }
        let (events, running, id, generation) = (
            self.events.clone(),
            self.running.clone(),
            spec.id,
            spec.generation,
        );
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                () = kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Noticed the instant the child is reaped.
            let at = now_nanos();
            {
                let mut r = running.lock();
                if r.get(&id).is_some_and(|x| x.generation == generation) {
                    r.remove(&id);
                }
            }
            let exit = match status {
                Ok(s) => ExitReason::from_status(s),
                Err(e) => ExitReason::Unknown(e.to_string()),
            };
            let _ = events.send(Event::Exited {
                id,
                generation,
                exit,
                at,
            });
            // Let the readers finish the last lines without holding anything up.
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_millis(200), r).await;
            }
        });
        Ok(pid)
    }

    async fn stop(&self, id: &InstanceId, grace: Duration) -> Result<(), ActuatorError> {
        let found = self
            .running
            .lock()
            .get(id)
            .map(|r| (r.pid, r.generation, r.kill.clone()));
        let Some((pid, generation, kill)) = found else {
            return Ok(());
        };
        if !grace.is_zero() && send_signal(pid, "TERM").await.is_ok() {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                let still = self
                    .running
                    .lock()
                    .get(id)
                    .is_some_and(|r| r.generation == generation);
                if !still {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // notify_one keeps a permit, so a kill asked before the waiter polls is not lost.
        kill.notify_one();
        Ok(())
    }

    fn manages(&self, _id: &InstanceId) -> bool {
        true
    }
}

fn spawn_reader(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    id: InstanceId,
    stderr: bool,
    sink: Arc<dyn LineSink>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() {
                sink.line(&id, stderr, line);
            }
        }
    })
}
