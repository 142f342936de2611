//! Safety limits of automatic restarts: [`CrashLoopBackoff`] and [`RestartBudget`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Kubernetes-style crash-loop back-off: the first crash restarts at once, each further crash
/// of an instance that did not stay up for `reset_after` doubles the delay, up to `max`.
#[derive(Debug, Clone)]
pub struct CrashLoopBackoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    /// Consecutive quick crashes.
    crashes: u32,
}

impl CrashLoopBackoff {
    /// A back-off with these limits.
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Self {
            initial,
            max,
            reset_after,
            crashes: 0,
        }
    }

    /// Records a crash after `uptime` and answers the delay before the next start.
    pub fn on_crash(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.reset_after {
            self.crashes = 0;
        }
        self.crashes = self.crashes.saturating_add(1);
        if self.crashes == 1 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow((self.crashes - 2).min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Consecutive quick crashes so far.
    pub fn crashes(&self) -> u32 {
        self.crashes
    }

    /// Resumes the count a previous platform run reached (its last crash `ago`): kept when
    /// that crash is more recent than the reset period, so restarting the platform does not
    /// reset a crash loop's back-off.
    pub fn restore(&mut self, crashes: u32, ago: Duration) {
        if ago < self.reset_after {
            self.crashes = crashes;
        }
    }
}

/// At most `limit` restarts per `window`, per service: no action storm.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    limit: u32,
    window: Duration,
    used: VecDeque<Instant>,
}

impl RestartBudget {
    /// A budget of `limit` restarts per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            used: VecDeque::new(),
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while self
            .used
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.used.pop_front();
        }
    }

    /// Takes one restart from the budget; false when it is spent.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.forget_old(now);
        if self.used.len() as u64 >= u64::from(self.limit) {
            return false;
        }
        self.used.push_back(now);
        true
    }

    /// Counts the uses a previous platform run made `ages` ago (those still in the window),
    /// so restarting the platform does not refill the budget.
    pub fn restore(&mut self, now: Instant, ages: impl IntoIterator<Item = Duration>) {
        let mut times: Vec<Instant> = ages
            .into_iter()
            .filter(|age| *age <= self.window)
            .filter_map(|age| now.checked_sub(age))
            .collect();
        times.sort();
        let mut merged: Vec<Instant> = self.used.drain(..).chain(times).collect();
        merged.sort();
        self.used = merged.into();
        self.forget_old(now);
    }

    /// Restarts used within the window.
    pub fn used(&mut self, now: Instant) -> u32 {
        self.forget_old(now);
        u32::try_from(self.used.len()).unwrap_or(u32::MAX)
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_crash_is_immediate_then_doubles_to_the_cap() {
        let ms = Duration::from_millis;
        let mut b = CrashLoopBackoff::new(ms(100), ms(500), Duration::from_secs(10));
        let delays: Vec<_> = (0..6).map(|_| b.on_crash(ms(5))).collect();
        assert_eq!(delays, [ms(0), ms(100), ms(200), ms(400), ms(500), ms(500)]);
        // An instance that stayed up long enough starts the count again.
        assert_eq!(b.on_crash(Duration::from_secs(11)), ms(0));
    }

    #[test]
    fn a_restored_budget_and_back_off_continue_where_the_last_run_stopped() {
        let s = Duration::from_secs;
        let now = Instant::now() + s(3600);
        let mut budget = RestartBudget::new(3, s(60));
        // Two uses 10 s and 50 s ago count; one 2 minutes ago is outside the window.
        budget.restore(now, [s(10), s(120), s(50)]);
        assert_eq!(budget.used(now), 2);
        assert!(budget.try_take(now));
        assert!(
            !budget.try_take(now),
            "the restart of the platform did not refill it"
        );
        assert!(
            budget.try_take(now + s(51)),
            "the oldest restored use expires"
        );

        let ms = Duration::from_millis;
        let mut b = CrashLoopBackoff::new(ms(100), ms(10_000), s(10));
        b.restore(3, s(2));
        assert_eq!(b.on_crash(ms(5)), ms(400), "crash 4 in a row");
        let mut old = CrashLoopBackoff::new(ms(100), ms(10_000), s(10));
        old.restore(3, s(30));
        assert_eq!(
            old.on_crash(ms(5)),
            ms(0),
            "a crash loop long over starts again"
        );
    }

    #[test]
    fn budget_refuses_past_the_limit_and_refills() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(budget.try_take(t0));
        assert!(budget.try_take(t0));
        assert!(!budget.try_take(t0));
        assert!(budget.try_take(t0 + Duration::from_secs(61)));
    }
}
