//! What to do with a delivered message once its handler is done: a pure decision, tested
//! alone.

use std::time::Duration;

/// How the handling of one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandlerOutcome {
    /// The handler succeeded.
    Done,
    /// The payload did not decode; no delivery can succeed.
    Malformed(String),
    /// The handler returned an error.
    Failed(String),
    /// The handler panicked.
    Panicked(String),
}

/// Why a message went to the dead-letter subject (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The handler failed on every one of `max_deliver` deliveries.
    HandlerError,
    /// The payload does not decode.
    Malformed,
    /// The handler panicked on the last allowed delivery.
    Panic,
}

impl DeadLetterReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::HandlerError => "handler_error",
            Self::Malformed => "malformed",
            Self::Panic => "panic",
        }
    }
}

/// What the consumer does with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Acknowledge: done.
    Ack,
    /// Negative acknowledgement: deliver again after the delay.
    Nak(Duration),
    /// Publish to the dead-letter subject with the reason, then terminate the delivery.
    DeadLetter {
        /// The reason's label.
        reason: DeadLetterReason,
        /// The error, for the `Aiods-Dlq-Reason` header.
        detail: String,
    },
}

/// The back-off of the `delivered`-th delivery (1-based): `backoff_ms[delivered - 1]`, the last
/// value repeating; no delay when the list is empty.
pub(crate) fn backoff(delivered: u64, backoff_ms: &[u64]) -> Duration {
    let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
    backoff_ms
        .get(index)
        .or(backoff_ms.last())
        .map_or(Duration::ZERO, |ms| Duration::from_millis(*ms))
}

/// Decides the fate of a delivery: ack on success; a malformed payload is dead-lettered at
/// once; a failure or panic is nak'ed with back-off, and dead-lettered on delivery
/// `max_deliver` (or later, after a redelivery the broker made on its own).
pub(crate) fn decide(
    outcome: &HandlerOutcome,
    delivered: u64,
    max_deliver: u32,
    backoff_ms: &[u64],
) -> Disposition {
    let last = delivered >= u64::from(max_deliver);
    match outcome {
        HandlerOutcome::Done => Disposition::Ack,
        HandlerOutcome::Malformed(detail) => Disposition::DeadLetter {
            reason: DeadLetterReason::Malformed,
            detail: detail.clone(),
        },
        HandlerOutcome::Failed(detail) if last => Disposition::DeadLetter {
            reason: DeadLetterReason::HandlerError,
            detail: detail.clone(),
        },
        HandlerOutcome::Panicked(detail) if last => Disposition::DeadLetter {
            reason: DeadLetterReason::Panic,
            detail: detail.clone(),
        },
        HandlerOutcome::Failed(_) | HandlerOutcome::Panicked(_) => {
            Disposition::Nak(backoff(delivered, backoff_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: &[u64] = &[100, 500, 2000];

    #[test]
    fn success_is_acked_whatever_the_delivery() {
        assert_eq!(
            decide(&HandlerOutcome::Done, 1, 5, BACKOFF),
            Disposition::Ack
        );
        assert_eq!(
            decide(&HandlerOutcome::Done, 9, 5, BACKOFF),
            Disposition::Ack
        );
    }

    #[test]
    fn failures_back_off_by_delivery_then_dead_letter_at_max_deliver() {
        let failed = HandlerOutcome::Failed("db down".into());
        assert_eq!(
            decide(&failed, 1, 5, BACKOFF),
            Disposition::Nak(Duration::from_millis(100))
        );
        assert_eq!(
            decide(&failed, 2, 5, BACKOFF),
            Disposition::Nak(Duration::from_millis(500))
        );
        assert_eq!(
            decide(&failed, 4, 5, BACKOFF),
            Disposition::Nak(Duration::from_millis(2000))
        );
        assert_eq!(
            decide(&failed, 5, 5, BACKOFF),
            Disposition::DeadLetter {
                reason: DeadLetterReason::HandlerError,
                detail: "db down".into()
            }
        );
        assert!(matches!(
            decide(&failed, 7, 5, BACKOFF),
            Disposition::DeadLetter { .. }
        ));
    }

    #[test]
    fn malformed_is_dead_lettered_on_the_first_delivery() {
        let d = decide(&HandlerOutcome::Malformed("eof".into()), 1, 5, BACKOFF);
        assert_eq!(
            d,
            Disposition::DeadLetter {
                reason: DeadLetterReason::Malformed,
                detail: "eof".into()
            }
        );
    }

    #[test]
    fn a_panic_naks_and_dead_letters_as_panic_at_the_end() {
        let p = HandlerOutcome::Panicked("boom".into());
        assert!(matches!(decide(&p, 1, 3, BACKOFF), Disposition::Nak(_)));
        assert!(matches!(
            decide(&p, 3, 3, BACKOFF),
            Disposition::DeadLetter {
                reason: DeadLetterReason::Panic,
                ..
            }
        ));
    }

    #[test]
    fn no_backoff_list_means_no_delay() {
        assert_eq!(backoff(3, &[]), Duration::ZERO);
        assert_eq!(backoff(0, BACKOFF), Duration::from_millis(100));
    }
}
