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
    fn budget_refuses_past_the_limit_and_refills() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(budget.try_take(t0));
        assert!(budget.try_take(t0));
        assert!(!budget.try_take(t0));
        assert!(budget.try_take(t0 + Duration::from_secs(61)));
    }
}
