//! The supervisor's decisions as pure functions: what a probe result means
//! ([`assess_probe`]), whether and how to repair an instance ([`decide_restart`]) and whether to
//! scale a service ([`decide_scale`]). They read a situation and answer a typed decision; the
//! controller carries it out through the [`Actuator`](super::Actuator) and records it in the
//! ledger. No process, clock or channel is touched here, so every rule is unit-tested alone.

use std::time::{Duration, Instant};

use crate::config::{RecoveryMode, ScaleConfig};
use crate::incident::ActionKind;

use super::ProbeKind;

// ----- probes -----

/// Probe history of one instance generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    /// Whether it is taken as ready (in traffic).
    pub ready: bool,
    /// Whether it is taken as hung (liveness failed past the threshold).
    pub hung: bool,
    /// Consecutive failed liveness probes.
    pub live_failures: u32,
    /// When the first of them was sent (ns since the epoch).
    pub live_fail_since: Option<u64>,
    /// Consecutive failed readiness probes.
    pub ready_failures: u32,
    /// When the first of them was sent.
    pub ready_fail_since: Option<u64>,
}

/// How many failures make a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeThresholds {
    /// Failed liveness probes before an instance is hung.
    pub live: u32,
    /// Failed readiness probes before an instance leaves the traffic.
    pub ready: u32,
}

/// A change of an instance's state that a probe result caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeOutcome {
    /// It answered ready for the first time since it was not.
    pub became_ready: bool,
    /// Readiness failed `failures` times since `since`: out of traffic.
    pub became_unready: Option<FailureRun>,
    /// Liveness failed `failures` times since `since`: hung.
    pub became_hung: Option<FailureRun>,
}

/// Consecutive failures and when the first was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRun {
    /// How many in a row.
    pub failures: u32,
    /// When the first was sent (ns since the epoch): the failure start.
    pub since: u64,
}

/// Folds one probe result into `c` and answers what changed.
pub fn assess_probe(
    c: &mut ProbeCounters,
    kind: ProbeKind,
    ok: bool,
    sent_at: u64,
    thresholds: ProbeThresholds,
) -> ProbeOutcome {
    let live = matches!(kind, ProbeKind::Live | ProbeKind::Both);
    let ready = matches!(kind, ProbeKind::Ready | ProbeKind::Both);
    let mut out = ProbeOutcome::default();
    if ok {
        if live {
            c.live_failures = 0;
            c.live_fail_since = None;
            c.hung = false;
        }
        if ready {
            c.ready_failures = 0;
            c.ready_fail_since = None;
            out.became_ready = !c.ready;
            c.ready = true;
        }
        return out;
    }
    if ready {
        c.ready_failures += 1;
        let since = *c.ready_fail_since.get_or_insert(sent_at);
        if c.ready_failures >= thresholds.ready && c.ready {
            c.ready = false;
            out.became_unready = Some(FailureRun {
                failures: c.ready_failures,
                since,
            });
        }
    }
    if live {
        c.live_failures += 1;
        let since = *c.live_fail_since.get_or_insert(sent_at);
        if c.live_failures >= thresholds.live && !c.hung {
            c.hung = true;
            c.ready = false;
            out.became_hung = Some(FailureRun {
                failures: c.live_failures,
                since,
            });
        }
    }
    out
}

// ----- restarts -----

/// Everything [`decide_restart`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSituation {
    /// The platform runs the instance through an actuator (false for URL-only services).
    pub managed: bool,
    /// `recovery.restart` of the service.
    pub restart_enabled: bool,
    /// Auto, approval or dry run.
    pub mode: RecoveryMode,
    /// Instances of the service that count now, this one included (on Kubernetes, the pods
    /// of its Deployment, however many the Deployment asks for).
    pub live_instances: u32,
    /// The instance is hung but its process still runs.
    pub hung_and_running: bool,
    /// It must be stopped before it starts again (hung, or restarted on an error burn).
    pub kill_first: bool,
    /// The crash-loop back-off's delay for this failure.
    pub backoff_delay: Duration,
    /// The service's restart budget has a restart left.
    pub budget_available: bool,
}

/// Who lets a planned action run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The platform acts at once (after the delay).
    Auto,
    /// An operator approves it through the API first.
    AwaitApproval,
    /// Recorded, never executed.
    DryRun,
}

/// What to do about a failed instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Nothing: the platform does not run this instance, or restarts are off.
    Leave,
    /// The budget is spent: no restart, a human is needed; a hung process is still stopped
    /// (`stop_hung`) so it does not hold its port.
    GiveUp {
        /// Stop the hung process anyway.
        stop_hung: bool,
    },
    /// Repair it.
    Act {
        /// Restart, kill-and-restart or replace.
        kind: ActionKind,
        /// Wait this long first (crash-loop back-off).
        delay: Duration,
        /// Who lets it run.
        gate: Gate,
    },
}

/// Decides a repair: back-off, budget, mode, and "replace before kill" for a hung replica.
pub fn decide_restart(s: &RestartSituation) -> RestartDecision {
    if !s.managed || !s.restart_enabled {
        return RestartDecision::Leave;
    }
    if !s.budget_available {
        return RestartDecision::GiveUp {
            stop_hung: s.kill_first,
        };
    }
    let gate = match s.mode {
        RecoveryMode::Auto => Gate::Auto,
        RecoveryMode::Approval => Gate::AwaitApproval,
        RecoveryMode::DryRun => Gate::DryRun,
    };
    // A hung (still running) instance of a replicated service: start a replacement first,
    // so the service never has fewer ready instances than before.
    let replace = s.kill_first && gate == Gate::Auto && s.live_instances >= 2 && s.hung_and_running;
    let (kind, delay) = if replace {
        (ActionKind::Replace, Duration::ZERO)
    } else if s.kill_first {
        (ActionKind::KillAndRestart, s.backoff_delay)
    } else {
        (ActionKind::Restart, s.backoff_delay)
    };
    RestartDecision::Act { kind, delay, gate }
}

// ----- scaling -----

/// The scaling timers of one service, carried from one decision to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScaleTimers {
    /// Saturated since (monotonic, and ns since the epoch for the incident).
    pub high_since: Option<(Instant, u64)>,
    /// Quiet since.
    pub low_since: Option<Instant>,
    /// The last scale action.
    pub last_scale: Option<Instant>,
}

/// Everything [`decide_scale`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct ScaleSituation<'a> {
    /// The service's scaling settings.
    pub cfg: &'a ScaleConfig,
    /// Configured replicas: never scale in below.
    pub replicas: u32,
    /// Ready instances (in traffic).
    pub ready: usize,
    /// In-flight requests per ready instance, as the gateway counts them.
    pub inflight_per_ready: f64,
    /// Messages waiting for the service's consumers per live instance (0 without messaging).
    pub backlog_per_live: f64,
    /// Instances running or starting (not being stopped).
    pub live: u32,
    /// One of them is still starting.
    pub starting: bool,
    /// Now.
    pub now: Instant,
    /// Now, ns since the epoch.
    pub now_unix_nano: u64,
    /// The timers so far.
    pub timers: ScaleTimers,
}

/// A scaling step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleDecision {
    /// Nothing to do.
    Hold,
    /// Add an instance: saturated for `held` since `since_unix_nano`.
    Out {
        /// What is saturated.
        by: Saturation,
        /// Target instance count.
        to: u32,
        /// How long the saturation held.
        held: Duration,
        /// When it started (ns since the epoch).
        since_unix_nano: u64,
    },
    /// Remove the newest instance: quiet for `quiet`.
    In {
        /// Target instance count.
        to: u32,
        /// How long it was quiet.
        quiet: Duration,
    },
}

/// What saturates a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saturation {
    /// In-flight requests per ready instance.
    Requests,
    /// Messages waiting per live instance.
    Messages,
}

/// The answer of [`decide_scale`]: new timers, the step, and whether the service is
/// saturated now (its saturation condition clears when it is not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalePlan {
    /// The timers to keep.
    pub timers: ScaleTimers,
    /// What to do.
    pub decision: ScaleDecision,
    /// In-flight per ready instance, or messages waiting per live instance, is above its
    /// scale-out threshold.
    pub saturated: bool,
}

/// What is above its scale-out threshold, requests first.
fn saturation(s: &ScaleSituation<'_>) -> Option<Saturation> {
    let cfg = s.cfg;
    if s.inflight_per_ready > cfg.out_when_inflight_per_instance && s.ready > 0 {
        Some(Saturation::Requests)
    } else if cfg.out_when_backlog_per_instance > 0.0
        && s.backlog_per_live > cfg.out_when_backlog_per_instance
    {
        Some(Saturation::Messages)
    } else {
        None
    }
}

/// Whether requests or messages are above half their scale-out threshold (not quiet).
fn above_half(s: &ScaleSituation<'_>) -> bool {
    let cfg = s.cfg;
    s.inflight_per_ready > cfg.out_when_inflight_per_instance / 2.0
        || (cfg.out_when_backlog_per_instance > 0.0
            && s.backlog_per_live > cfg.out_when_backlog_per_instance / 2.0)
}

/// Scale out when in-flight requests per ready instance, or messages waiting per live
/// instance, stay above their threshold for `out_for_ms`, back in (never below `replicas`)
/// when both stay under half of theirs for `in_after_ms` with at least one instance in
/// traffic; one step per `cooldown_ms`, none while an instance is still starting.
pub fn decide_scale(s: &ScaleSituation<'_>) -> ScalePlan {
    let cfg = s.cfg;
    let mut timers = s.timers;
    let cooled = timers
        .last_scale
        .is_none_or(|t| s.now.duration_since(t) >= Duration::from_millis(cfg.cooldown_ms));
    if let Some(by) = saturation(s) {
        timers.low_since = None;
        let (since, since_unix_nano) = *timers.high_since.get_or_insert((s.now, s.now_unix_nano));
        let held = s.now.duration_since(since);
        let mut decision = ScaleDecision::Hold;
        if held >= Duration::from_millis(cfg.out_for_ms)
            && s.live < cfg.max_replicas
            && cooled
            && !s.starting
        {
            timers.last_scale = Some(s.now);
            timers.high_since = None;
            decision = ScaleDecision::Out {
                by,
                to: s.live + 1,
                held,
                since_unix_nano,
            };
        }
        return ScalePlan {
            timers,
            decision,
            saturated: true,
        };
    }
    timers.high_since = None;
    let hold = |timers| ScalePlan {
        timers,
        decision: ScaleDecision::Hold,
        saturated: false,
    };
    if above_half(s) {
        timers.low_since = None;
        return hold(timers);
    }
    if s.ready == 0 {
        // No instance in traffic: nothing measured (a Kubernetes service, whose traffic does
        // not cross the gateway, or every instance out): no reason to scale in.
        timers.low_since = None;
        return hold(timers);
    }
    let since = *timers.low_since.get_or_insert(s.now);
    let quiet = s.now.duration_since(since);
    if quiet >= Duration::from_millis(cfg.in_after_ms) && s.live > s.replicas && cooled {
        timers.last_scale = Some(s.now);
        timers.low_since = None;
        return ScalePlan {
            timers,
            decision: ScaleDecision::In {
                to: s.live - 1,
                quiet,
            },
            saturated: false,
        };
    }
    hold(timers)
}

// ----- rolling restart on an error burn -----

/// How long a restarted instance serves, ready, before its effect is judged.
pub const ROLL_SETTLE: Duration = Duration::from_secs(5);
/// Requests the judged window needs; fewer, and the judgement waits (up to three settles).
pub const ROLL_MIN_REQUESTS: u64 = 20;

/// Everything [`decide_roll`] looks at, once the instance restarted last is ready.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollSituation {
    /// How long the restarted instance has been ready (`None`: not ready yet).
    pub ready_for: Option<Duration>,
    /// The service's 5xx share before the first restart.
    pub share_before: f64,
    /// Requests and the 5xx share over the settle period just past.
    pub requests_after: u64,
    /// The 5xx share over the settle period just past.
    pub share_after: f64,
    /// Instances still to restart.
    pub more: bool,
}

/// The next step of a rolling restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RollStep {
    /// Keep waiting.
    Wait,
    /// The restart helped (the 5xx share at most half what it was): restart the next one.
    Next,
    /// The restart helped and it was the last: done.
    Done,
    /// The restart did not help (or nothing could be measured): stop, leave the others.
    Stop {
        /// Measured requests after the restart.
        requests_after: u64,
    },
}

/// One replica at a time: a restarted instance must serve, ready, for [`ROLL_SETTLE`], and
/// the service's 5xx share over that period must be at most half of what it was before the
/// roll began; otherwise the roll stops (restarting the rest would only add downtime).
pub fn decide_roll(s: &RollSituation) -> RollStep {
    let Some(ready_for) = s.ready_for else {
        return RollStep::Wait;
    };
    if ready_for < ROLL_SETTLE {
        return RollStep::Wait;
    }
    if s.requests_after < ROLL_MIN_REQUESTS {
        return if ready_for < ROLL_SETTLE * 3 {
            RollStep::Wait
        } else {
            RollStep::Stop {
                requests_after: s.requests_after,
            }
        };
    }
    if s.share_after <= s.share_before * 0.5 {
        if s.more {
            RollStep::Next
        } else {
            RollStep::Done
        }
    } else {
        RollStep::Stop {
            requests_after: s.requests_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ProbeThresholds = ProbeThresholds { live: 3, ready: 2 };

    #[test]
    fn a_first_ready_answer_puts_the_instance_in_traffic_once() {
        let mut c = ProbeCounters::default();
        assert!(assess_probe(&mut c, ProbeKind::Ready, true, 1, T).became_ready);
        assert!(!assess_probe(&mut c, ProbeKind::Ready, true, 2, T).became_ready);
    }

    #[test]
    fn readiness_failures_take_it_out_at_the_threshold_with_the_first_failure_as_start() {
        let mut c = ProbeCounters {
            ready: true,
            ..Default::default()
        };
        assert_eq!(
            assess_probe(&mut c, ProbeKind::Ready, false, 10, T),
            ProbeOutcome::default()
        );
        let out = assess_probe(&mut c, ProbeKind::Ready, false, 20, T);
        assert_eq!(
            out.became_unready,
            Some(FailureRun {
                failures: 2,
                since: 10
            })
        );
        // Only once.
        assert_eq!(
            assess_probe(&mut c, ProbeKind::Ready, false, 30, T).became_unready,
            None
        );
        // A success resets the run and brings it back.
        assert!(assess_probe(&mut c, ProbeKind::Ready, true, 40, T).became_ready);
        assert_eq!(c.ready_fail_since, None);
    }

    #[test]
    fn liveness_failures_make_it_hung_once() {
        let mut c = ProbeCounters {
            ready: true,
            ..Default::default()
        };
        for at in [1, 2] {
            assert_eq!(
                assess_probe(&mut c, ProbeKind::Live, false, at, T).became_hung,
                None
            );
        }
        let out = assess_probe(&mut c, ProbeKind::Live, false, 3, T);
        assert_eq!(
            out.became_hung,
            Some(FailureRun {
                failures: 3,
                since: 1
            })
        );
        assert!(!c.ready, "a hung instance is out of traffic");
        assert_eq!(
            assess_probe(&mut c, ProbeKind::Live, false, 4, T).became_hung,
            None
        );
    }

    #[test]
    fn one_path_for_both_counts_both() {
        let mut c = ProbeCounters {
            ready: true,
            ..Default::default()
        };
        let t = ProbeThresholds { live: 1, ready: 1 };
        let out = assess_probe(&mut c, ProbeKind::Both, false, 5, t);
        assert!(out.became_unready.is_some() && out.became_hung.is_some());
    }

    fn situation() -> RestartSituation {
        RestartSituation {
            managed: true,
            restart_enabled: true,
            mode: RecoveryMode::Auto,
            live_instances: 1,
            hung_and_running: false,
            kill_first: false,
            backoff_delay: Duration::ZERO,
            budget_available: true,
        }
    }

    #[test]
    fn a_crash_restarts_at_once_then_after_the_back_off() {
        assert_eq!(
            decide_restart(&situation()),
            RestartDecision::Act {
                kind: ActionKind::Restart,
                delay: Duration::ZERO,
                gate: Gate::Auto
            }
        );
        let later = RestartSituation {
            backoff_delay: Duration::from_millis(400),
            ..situation()
        };
        assert_eq!(
            decide_restart(&later),
            RestartDecision::Act {
                kind: ActionKind::Restart,
                delay: Duration::from_millis(400),
                gate: Gate::Auto
            }
        );
    }

    #[test]
    fn back_off_delays_come_from_the_crash_loop_back_off() {
        use super::super::CrashLoopBackoff;
        let mut b = CrashLoopBackoff::new(
            Duration::from_millis(100),
            Duration::from_millis(350),
            Duration::from_secs(10),
        );
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..5).map(|_| b.on_crash(quick).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 350, 350]);
        // Up long enough: the loop is over.
        assert_eq!(b.on_crash(Duration::from_secs(11)), Duration::ZERO);
    }

    #[test]
    fn a_spent_budget_gives_up_but_still_stops_a_hung_process() {
        let spent = RestartSituation {
            budget_available: false,
            ..situation()
        };
        assert_eq!(
            decide_restart(&spent),
            RestartDecision::GiveUp { stop_hung: false }
        );
        let hung = RestartSituation {
            kill_first: true,
            hung_and_running: true,
            ..spent
        };
        assert_eq!(
            decide_restart(&hung),
            RestartDecision::GiveUp { stop_hung: true }
        );
    }

    #[test]
    fn the_budget_refills_after_its_window() {
        use super::super::RestartBudget;
        let mut budget = RestartBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(budget.try_take(t0));
        assert!(budget.try_take(t0));
        assert!(!budget.try_take(t0 + Duration::from_secs(1)));
        assert!(budget.try_take(t0 + Duration::from_secs(61)));
    }

    #[test]
    fn a_hung_replica_is_replaced_and_a_hung_single_instance_killed() {
        let hung = RestartSituation {
            kill_first: true,
            hung_and_running: true,
            backoff_delay: Duration::from_millis(100),
            ..situation()
        };
        assert_eq!(
            decide_restart(&hung),
            RestartDecision::Act {
                kind: ActionKind::KillAndRestart,
                delay: Duration::from_millis(100),
                gate: Gate::Auto
            }
        );
        let replicated = RestartSituation {
            live_instances: 2,
            ..hung
        };
        assert_eq!(
            decide_restart(&replicated),
            RestartDecision::Act {
                kind: ActionKind::Replace,
                delay: Duration::ZERO,
                gate: Gate::Auto
            }
        );
    }

    #[test]
    fn approval_and_dry_run_gate_the_action_and_never_replace() {
        let hung = RestartSituation {
            kill_first: true,
            hung_and_running: true,
            live_instances: 3,
            mode: RecoveryMode::Approval,
            ..situation()
        };
        assert_eq!(
            decide_restart(&hung),
            RestartDecision::Act {
                kind: ActionKind::KillAndRestart,
                delay: Duration::ZERO,
                gate: Gate::AwaitApproval
            }
        );
        let dry = RestartSituation {
            mode: RecoveryMode::DryRun,
            ..situation()
        };
        assert!(matches!(
            decide_restart(&dry),
            RestartDecision::Act {
                gate: Gate::DryRun,
                ..
            }
        ));
    }

    #[test]
    fn unmanaged_or_disabled_is_left_alone() {
        let external = RestartSituation {
            managed: false,
            ..situation()
        };
        assert_eq!(decide_restart(&external), RestartDecision::Leave);
        let off = RestartSituation {
            restart_enabled: false,
            ..situation()
        };
        assert_eq!(decide_restart(&off), RestartDecision::Leave);
    }

    fn scale_cfg() -> ScaleConfig {
        ScaleConfig {
            max_replicas: 3,
            out_when_inflight_per_instance: 4.0,
            out_for_ms: 1000,
            in_after_ms: 5000,
            cooldown_ms: 2000,
            ..ScaleConfig::default()
        }
    }

    fn scale_at<'a>(cfg: &'a ScaleConfig, t0: Instant, ms: u64, per: f64) -> ScaleSituation<'a> {
        ScaleSituation {
            cfg,
            replicas: 1,
            ready: 1,
            inflight_per_ready: per,
            backlog_per_live: 0.0,
            live: 1,
            starting: false,
            now: t0 + Duration::from_millis(ms),
            now_unix_nano: 1_000_000 * ms,
            timers: ScaleTimers::default(),
        }
    }

    #[test]
    fn saturation_held_long_enough_scales_out_by_one() {
        let cfg = scale_cfg();
        let t0 = Instant::now();
        let first = decide_scale(&scale_at(&cfg, t0, 0, 6.0));
        assert_eq!(first.decision, ScaleDecision::Hold);
        assert!(first.saturated);
        let second = decide_scale(&ScaleSituation {
            timers: first.timers,
            ..scale_at(&cfg, t0, 1000, 6.0)
        });
        assert_eq!(
            second.decision,
            ScaleDecision::Out {
                by: Saturation::Requests,
                to: 2,
                held: Duration::from_millis(1000),
                since_unix_nano: 0
            }
        );
        // Within the cool-down, no second step.
        let third = decide_scale(&ScaleSituation {
            timers: ScaleTimers {
                high_since: Some((t0, 0)),
                ..second.timers
            },
            live: 2,
            ..scale_at(&cfg, t0, 1500, 6.0)
        });
        assert_eq!(third.decision, ScaleDecision::Hold);
    }

    #[test]
    fn messages_waiting_scale_consumers_out_and_a_short_queue_lets_them_back_in() {
        let cfg = scale_cfg(); // backlog threshold 100 per instance
        let t0 = Instant::now();
        let backlog = |ms, per_live, timers| ScaleSituation {
            backlog_per_live: per_live,
            timers,
            ..scale_at(&cfg, t0, ms, 0.0)
        };
        let first = decide_scale(&backlog(0, 250.0, ScaleTimers::default()));
        assert!(first.saturated);
        assert_eq!(first.decision, ScaleDecision::Hold);
        let second = decide_scale(&backlog(1000, 250.0, first.timers));
        assert!(matches!(
            second.decision,
            ScaleDecision::Out {
                by: Saturation::Messages,
                to: 2,
                ..
            }
        ));
        // Between half and the whole threshold: neither out nor quiet.
        let held = decide_scale(&ScaleSituation {
            live: 2,
            ..backlog(4000, 80.0, second.timers)
        });
        assert!(!held.saturated);
        assert_eq!(held.timers.low_since, None);
        // Off with a threshold of 0.
        let off = ScaleConfig {
            out_when_backlog_per_instance: 0.0,
            ..scale_cfg()
        };
        let s = ScaleSituation {
            cfg: &off,
            ..backlog(0, 1e6, ScaleTimers::default())
        };
        assert!(!decide_scale(&s).saturated);
    }

    #[test]
    fn no_scale_out_past_max_or_while_starting() {
        let cfg = scale_cfg();
        let t0 = Instant::now();
        let timers = ScaleTimers {
            high_since: Some((t0, 0)),
            ..Default::default()
        };
        let at_max = ScaleSituation {
            live: 3,
            timers,
            ..scale_at(&cfg, t0, 5000, 9.0)
        };
        assert_eq!(decide_scale(&at_max).decision, ScaleDecision::Hold);
        let starting = ScaleSituation {
            starting: true,
            timers,
            ..scale_at(&cfg, t0, 5000, 9.0)
        };
        assert_eq!(decide_scale(&starting).decision, ScaleDecision::Hold);
    }

    #[test]
    fn a_roll_goes_on_only_while_each_restart_halves_the_error_share() {
        let ready = |secs| Some(Duration::from_secs(secs));
        let s = RollSituation {
            ready_for: ready(6),
            share_before: 0.4,
            requests_after: 200,
            share_after: 0.1,
            more: true,
        };
        assert_eq!(decide_roll(&s), RollStep::Next);
        assert_eq!(
            decide_roll(&RollSituation { more: false, ..s }),
            RollStep::Done
        );
        // Not ready, or not ready for long enough: wait.
        assert_eq!(
            decide_roll(&RollSituation {
                ready_for: None,
                ..s
            }),
            RollStep::Wait
        );
        assert_eq!(
            decide_roll(&RollSituation {
                ready_for: ready(2),
                ..s
            }),
            RollStep::Wait
        );
        // No better: stop.
        assert_eq!(
            decide_roll(&RollSituation {
                share_after: 0.3,
                ..s
            }),
            RollStep::Stop {
                requests_after: 200
            }
        );
        // Too few requests to tell: wait, then stop.
        let quiet = RollSituation {
            requests_after: 3,
            share_after: 0.0,
            ..s
        };
        assert_eq!(decide_roll(&quiet), RollStep::Wait);
        assert_eq!(
            decide_roll(&RollSituation {
                ready_for: ready(16),
                ..quiet
            }),
            RollStep::Stop { requests_after: 3 }
        );
    }

    #[test]
    fn quiet_long_enough_scales_in_but_never_below_replicas() {
        let cfg = scale_cfg();
        let t0 = Instant::now();
        let timers = ScaleTimers {
            low_since: Some(t0),
            ..Default::default()
        };
        let quiet = ScaleSituation {
            live: 2,
            timers,
            ..scale_at(&cfg, t0, 5000, 0.5)
        };
        let plan = decide_scale(&quiet);
        assert_eq!(
            plan.decision,
            ScaleDecision::In {
                to: 1,
                quiet: Duration::from_millis(5000)
            }
        );
        assert!(!plan.saturated);
        let at_floor = ScaleSituation { live: 1, ..quiet };
        assert_eq!(decide_scale(&at_floor).decision, ScaleDecision::Hold);
        // Nothing in traffic (a Kubernetes service: no gateway counts its requests): nothing
        // measured, no scale-in, and no quiet period running.
        let unmeasured = ScaleSituation {
            ready: 0,
            inflight_per_ready: 0.0,
            ..quiet
        };
        let plan = decide_scale(&unmeasured);
        assert_eq!(plan.decision, ScaleDecision::Hold);
        assert_eq!(plan.timers.low_since, None);
        // Between half the threshold and the threshold: neither.
        let middle = ScaleSituation {
            live: 2,
            timers,
            ..scale_at(&cfg, t0, 9000, 3.0)
        };
        let plan = decide_scale(&middle);
        assert_eq!(plan.decision, ScaleDecision::Hold);
        assert_eq!(plan.timers.low_since, None);
    }
}
