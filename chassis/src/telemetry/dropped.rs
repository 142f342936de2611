//! The counters of telemetry items dropped, one per signal: the queues and writers add to
//! them, `/metrics` reads them (`aiods_telemetry_dropped_total{signal}`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// A signal whose dropped items are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// JSON log lines on stdout (the log writer's buffer was full).
    Logs,
    /// Spans (the OTLP queue was full or the export failed).
    Spans,
    /// OTLP log records.
    OtlpLogs,
    /// Exception events (the Sentry queue was full or Sentry unreachable).
    Exceptions,
}

impl Signal {
    /// Every signal, in the order `/metrics` renders them.
    pub(crate) const ALL: [Signal; 4] = [
        Signal::Logs,
        Signal::Spans,
        Signal::OtlpLogs,
        Signal::Exceptions,
    ];

    /// The value of the `signal` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Spans => "spans",
            Signal::OtlpLogs => "otlp_logs",
            Signal::Exceptions => "exceptions",
        }
    }

    /// The shared counter of this signal's dropped items; queues hold a clone.
    pub(crate) fn counter(self) -> Arc<AtomicU64> {
        COUNTERS[self as usize].clone()
    }

    /// Items of this signal dropped so far.
    pub(crate) fn dropped(self) -> u64 {
        COUNTERS[self as usize].load(Ordering::Relaxed)
    }
}

static COUNTERS: LazyLock<[Arc<AtomicU64>; 4]> = LazyLock::new(Default::default);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_own_counter_and_label() {
        let before: Vec<u64> = Signal::ALL.iter().map(|s| s.dropped()).collect();
        Signal::OtlpLogs.counter().fetch_add(3, Ordering::Relaxed);
        assert_eq!(Signal::OtlpLogs.dropped(), before[2] + 3);
        assert_eq!(Signal::Spans.dropped(), before[1]);
        let labels: Vec<&str> = Signal::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["logs", "spans", "otlp_logs", "exceptions"]);
    }
}
