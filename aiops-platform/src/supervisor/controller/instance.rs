//! The controller's record of one instance.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::instance::InstanceId;
use crate::config::RecoveryConfig;
use crate::incident::ActionRef;
use crate::supervisor::backoff::CrashLoopBackoff;
use crate::supervisor::policy::ProbeCounters;
use crate::supervisor::{InstanceStatus, InstanceView};

/// A replacement for a hung instance: the hung one is stopped once this one is ready.
#[derive(Debug, Clone)]
pub(super) struct Replacement {
    /// The hung instance.
    pub(super) old: InstanceId,
    /// The `replace` action it executes.
    pub(super) action: ActionRef,
}

#[derive(Debug)]
pub(super) struct Instance {
    pub(super) id: InstanceId,
    pub(super) addr: SocketAddr,
    /// Run by the actuator (false for URL-only services).
    pub(super) managed: bool,
    pub(super) generation: u64,
    pub(super) pid: Option<u32>,
    /// Its process (or pod) runs: between `Started` and `Exited`.
    pub(super) running: bool,
    pub(super) status: InstanceStatus,
    pub(super) started: Instant,
    pub(super) probes: ProbeCounters,
    pub(super) backoff: CrashLoopBackoff,
    pub(super) restarts: u64,
    pub(super) last_exit: Option<String>,
    /// The action the next start of this instance settles.
    pub(super) awaiting_start: Option<ActionRef>,
    /// This instance replaces a hung one.
    pub(super) replaces: Option<Replacement>,
    /// Forget the instance when its process exits (replaced or scaled in).
    pub(super) retire_on_exit: bool,
    pub(super) probe: Option<tokio::task::JoinHandle<()>>,
}

impl Instance {
    /// An instance not started yet (or an external one, when not `managed`).
    pub(super) fn new(
        id: InstanceId,
        addr: SocketAddr,
        managed: bool,
        recovery: &RecoveryConfig,
    ) -> Self {
        Self {
            id,
            addr,
            managed,
            generation: 0,
            pid: None,
            running: false,
            status: if managed {
                InstanceStatus::Exited
            } else {
                InstanceStatus::External
            },
            started: Instant::now(),
            probes: ProbeCounters::default(),
            backoff: CrashLoopBackoff::new(
                Duration::from_millis(recovery.backoff_initial_ms),
                Duration::from_millis(recovery.backoff_max_ms),
                Duration::from_millis(recovery.backoff_reset_ms),
            ),
            restarts: 0,
            last_exit: None,
            awaiting_start: None,
            replaces: None,
            retire_on_exit: false,
            probe: None,
        }
    }

    /// Stops probing it.
    pub(super) fn stop_probe(&mut self) {
        if let Some(p) = self.probe.take() {
            p.abort();
        }
    }

    /// Running, or being started or stopped: it counts toward the service's instances.
    pub(super) fn is_live(&self) -> bool {
        self.managed && !self.retire_on_exit && self.status != InstanceStatus::Stopping
    }

    /// The API's view.
    pub(super) fn view(&self) -> InstanceView {
        InstanceView {
            id: self.id.to_string(),
            service: self.id.service.clone(),
            index: self.id.index,
            addr: self.addr.to_string(),
            url: format!("http://{}", self.addr),
            status: self.status,
            pid: self.pid,
            generation: self.generation,
            restarts: self.restarts,
            crash_loop_count: self.backoff.crashes(),
            last_exit: self.last_exit.clone(),
            managed: self.managed,
            running: self.running,
        }
    }
}
