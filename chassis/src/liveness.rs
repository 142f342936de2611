//! Liveness from the runtime's own responsiveness.
//!
//! A service is live while its Tokio runtime runs tasks in time. A heartbeat task on the
//! service's runtime wakes every [`TICK`] and records when its next wake-up is due; a liveness
//! probe compares that with the clock. The service is DOWN when
//!
//! - the heartbeat is overdue by more than the allowed lag (`health.max_lag_ms`,
//!   `AIODS_HEALTH__MAX_LAG_MS`, default 1,000): the runtime has not run it, so every worker is
//!   blocked or the heartbeat task died; or
//! - the heartbeat last woke more than the allowed lag late less than that lag ago: the runtime
//!   just came out of a stall, and probes that queued during it must not be answered UP.
//!
//! When *every* worker is blocked nothing on the runtime runs, the probe's own handler included:
//! the probe gets no answer until a worker frees up, and then gets 503. A prober counts a probe
//! that times out as failed (Kubernetes, the aiops supervisor), so a wedged service fails its
//! probes either way. The decision is [`judge`], a pure function.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the heartbeat wakes. Independent of the allowed lag: lateness is measured against
/// each wake-up's due time.
pub const TICK: Duration = Duration::from_millis(250);

/// The default allowed lag (`AIODS_HEALTH__MAX_LAG_MS`).
pub const DEFAULT_MAX_LAG: Duration = Duration::from_millis(1000);

/// What a liveness probe concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The runtime runs its tasks in time.
    Up,
    /// The heartbeat is overdue by `lag`: the runtime is not running it.
    Stalled {
        /// How late the heartbeat is now.
        lag: Duration,
    },
    /// The runtime came out of a stall of `lag` less than the allowed lag ago.
    Recovering {
        /// How late the heartbeat was.
        lag: Duration,
    },
    /// The service declared itself not live ([`crate::HealthRegistry::set_live`]).
    Declared,
}

impl Verdict {
    /// Whether the service is live.
    pub fn is_up(self) -> bool {
        self == Self::Up
    }

    /// Why the service is not live, for the probe's answer.
    pub fn reason(self) -> Option<String> {
        match self {
            Self::Up => None,
            Self::Stalled { lag } => Some(format!(
                "the runtime has not run its heartbeat for {} ms past its time",
                lag.as_millis()
            )),
            Self::Recovering { lag } => Some(format!(
                "the runtime ran its heartbeat {} ms late moments ago",
                lag.as_millis()
            )),
            Self::Declared => Some("the service declared itself not live".to_owned()),
        }
    }
}

/// The heartbeat's state as a probe reads it; times are offsets from the heartbeat's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// When the heartbeat's pending wake-up is due.
    pub due: Duration,
    /// The last late wake-up: when it happened and how late it was.
    pub last_late: Option<(Duration, Duration)>,
}

/// Decides liveness at `now` from the heartbeat's state, allowing `max_lag`.
pub fn judge(now: Duration, beat: Beat, max_lag: Duration) -> Verdict {
    let overdue = now.saturating_sub(beat.due);
    if overdue > max_lag {
        return Verdict::Stalled { lag: overdue };
    }
    match beat.last_late {
        Some((at, lag)) if now.saturating_sub(at) < max_lag => Verdict::Recovering { lag },
        _ => Verdict::Up,
    }
}

/// The heartbeat of a runtime, shared between its task and the probes.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    max_lag: Duration,
    due_ns: AtomicU64,
    /// When the last late wake-up happened (0: never).
    late_at_ns: AtomicU64,
    late_by_ns: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Heartbeat {
    /// Starts the heartbeat task on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(max_lag: Duration) -> Arc<Self> {
        let beat = Arc::new(Self {
            origin: Instant::now(),
            max_lag,
            due_ns: AtomicU64::new(0),
            late_at_ns: AtomicU64::new(0),
            late_by_ns: AtomicU64::new(0),
        });
        beat.due_ns.store(nanos(TICK), Ordering::Release);
        tokio::spawn(run(beat.clone()));
        beat
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The heartbeat's state now.
    pub fn beat(&self) -> Beat {
        let at = self.late_at_ns.load(Ordering::Acquire);
        Beat {
            due: Duration::from_nanos(self.due_ns.load(Ordering::Acquire)),
            last_late: (at > 0).then(|| {
                (
                    Duration::from_nanos(at),
                    Duration::from_nanos(self.late_by_ns.load(Ordering::Acquire)),
                )
            }),
        }
    }

    /// Liveness now.
    pub fn verdict(&self) -> Verdict {
        judge(self.now(), self.beat(), self.max_lag)
    }
}

async fn run(beat: Arc<Heartbeat>) {
    loop {
        let due = beat.now() + TICK;
        beat.due_ns.store(nanos(due), Ordering::Release);
        tokio::time::sleep(TICK).await;
        let woke = beat.now();
        let late = woke.saturating_sub(due);
        if late > beat.max_lag {
            beat.late_by_ns.store(nanos(late), Ordering::Release);
            beat.late_at_ns.store(nanos(woke).max(1), Ordering::Release);
            tracing::error!(
                target: "aiods::health",
                lag_ms = u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
                max_lag_ms = u64::try_from(beat.max_lag.as_millis()).unwrap_or(u64::MAX),
                "runtime stalled: the liveness heartbeat ran late, liveness is DOWN"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_millis(1000);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn up_while_the_heartbeat_is_on_time_or_slightly_late() {
        let beat = Beat {
            due: ms(5_000),
            last_late: None,
        };
        assert_eq!(judge(ms(4_900), beat, LAG), Verdict::Up);
        assert_eq!(judge(ms(5_900), beat, LAG), Verdict::Up);
    }

    #[test]
    fn stalled_when_overdue_beyond_the_lag() {
        let beat = Beat {
            due: ms(5_000),
            last_late: None,
        };
        assert_eq!(
            judge(ms(6_500), beat, LAG),
            Verdict::Stalled { lag: ms(1_500) }
        );
    }

    #[test]
    fn down_for_one_lag_after_a_stall_then_up() {
        let beat = Beat {
            due: ms(9_250),
            last_late: Some((ms(9_000), ms(3_000))),
        };
        let v = judge(ms(9_100), beat, LAG);
        assert_eq!(v, Verdict::Recovering { lag: ms(3_000) });
        assert!(v.reason().is_some_and(|r| r.contains("3000 ms")));
        assert_eq!(judge(ms(10_100), beat, LAG), Verdict::Up);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_runtime_is_seen_stalled_from_outside_then_recovers() {
        let beat = Heartbeat::start(ms(200));
        tokio::time::sleep(ms(50)).await;
        assert!(beat.verdict().is_up());
        // Block both workers.
        let blockers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(async { std::thread::sleep(ms(900)) }))
            .collect();
        let watcher = beat.clone();
        let seen = std::thread::spawn(move || {
            std::thread::sleep(ms(700));
            watcher.verdict()
        })
        .join()
        .unwrap_or(Verdict::Up);
        assert!(matches!(seen, Verdict::Stalled { .. }), "{seen:?}");
        for b in blockers {
            let _ = b.await;
        }
        tokio::time::sleep(ms(500)).await;
        assert!(beat.verdict().is_up(), "{:?}", beat.verdict());
    }
}
