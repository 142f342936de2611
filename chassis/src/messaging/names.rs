//! Metric names and header names of the messaging contract (`docs/telemetry-contract.md`).

/// `messaging.client.sent.messages`.
pub const SENT_MESSAGES: &str = "messaging_client_sent_messages_total";
/// `messaging.client.consumed.messages`, with `outcome`.
pub const CONSUMED_MESSAGES: &str = "messaging_client_consumed_messages_total";
/// `messaging.process.duration`, in seconds.
pub const PROCESS_DURATION: &str = "messaging_process_duration_seconds";
/// JetStream `num_pending` of a consumer.
pub const CONSUMER_PENDING: &str = "aiods_messaging_consumer_pending";
/// JetStream `num_ack_pending` of a consumer.
pub const CONSUMER_ACK_PENDING: &str = "aiods_messaging_consumer_ack_pending";
/// JetStream `num_redelivered` of a consumer.
pub const CONSUMER_REDELIVERED: &str = "aiods_messaging_consumer_redelivered";
/// Messages this instance received for a consumer and has not settled yet (in a handler, or
/// waiting for one): what a wedged instance holds.
pub const CONSUMER_IN_FLIGHT: &str = "aiods_messaging_consumer_in_flight";
/// Messages sent to the dead-letter subject, with `reason`.
pub const DEAD_LETTERS: &str = "aiods_messaging_dead_letters_total";

/// Deliveries the idempotent consumer skipped as already processed.
pub const DUPLICATES: &str = "aiods_messaging_duplicates_total";
/// Outbox rows published by the relay.
pub const OUTBOX_RELAYED: &str = "aiods_messaging_outbox_relayed_total";
/// Outbox rows waiting for the relay, after its last pass.
pub const OUTBOX_PENDING: &str = "aiods_messaging_outbox_pending";

/// The `messaging.system` value (semconv has no registered value for NATS).
pub const SYSTEM: &str = "nats";

/// JetStream's deduplication header: the event's id.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// Why a message was dead-lettered.
pub const DLQ_REASON_HEADER: &str = "Aiods-Dlq-Reason";
/// The subject the dead letter was first published to.
pub const DLQ_SUBJECT_HEADER: &str = "Aiods-Dlq-Subject";
/// How many times it was delivered.
pub const DLQ_DELIVERIES_HEADER: &str = "Aiods-Dlq-Deliveries";
/// The label value of the dead-letter reason (`handler_error`, `malformed`, `panic`).
pub const DLQ_REASON_KIND_HEADER: &str = "Aiods-Dlq-Reason-Kind";

/// The original `Nats-Msg-Id` of a dead letter (its own id is `<stream>.<consumer>.<id>`, so
/// two consumers' dead letters of one event are not taken for duplicates in the DLQ stream).
pub const DLQ_MSG_ID_HEADER: &str = "Aiods-Dlq-Msg-Id";

/// The stream holding dead letters.
pub const DLQ_STREAM: &str = "DLQ";

/// The dead-letter subject of a consumer: `dlq.<stream>.<consumer>`.
pub fn dead_letter_subject(stream: &str, consumer: &str) -> String {
    format!("dlq.{stream}.{consumer}")
}

/// The CONSUMER span's name (`process <subject>`) and the subject as an attribute value.
#[derive(Debug, Clone)]
pub(crate) struct ProcessNames {
    /// `process <subject>`.
    pub(crate) span: std::borrow::Cow<'static, str>,
    /// The subject.
    pub(crate) subject: opentelemetry::StringValue,
}

/// Distinct subjects whose names are kept for good; beyond, each message builds its own.
const MAX_INTERNED_SUBJECTS: usize = 1024;

/// Subject → (span name, subject), both leaked once.
type Interned = std::collections::HashMap<Box<str>, (&'static str, &'static str)>;

static INTERNED: std::sync::LazyLock<std::sync::RwLock<Interned>> =
    std::sync::LazyLock::new(Default::default);

/// The names of `subject`, built once per subject (up to [`MAX_INTERNED_SUBJECTS`]): a
/// `format!` and two string copies per message showed in the consumer benchmark's profile.
pub(crate) fn process_names(subject: &str) -> ProcessNames {
    let found = INTERNED
        .read()
        .ok()
        .and_then(|map| map.get(subject).copied());
    let interned = found.or_else(|| {
        let mut map = INTERNED.write().ok()?;
        if let Some(names) = map.get(subject) {
            return Some(*names);
        }
        if map.len() >= MAX_INTERNED_SUBJECTS {
            return None;
        }
        let span: &'static str = Box::leak(format!("process {subject}").into_boxed_str());
        let names = (span, &span["process ".len()..]);
        map.insert(Box::from(subject), names);
        Some(names)
    });
    match interned {
        Some((span, subject)) => ProcessNames {
            span: span.into(),
            subject: subject.into(),
        },
        None => ProcessNames {
            span: format!("process {subject}").into(),
            subject: subject.to_owned().into(),
        },
    }
}

pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SENT_MESSAGES, "Messages published.");
    describe_counter!(
        CONSUMED_MESSAGES,
        "Messages consumed, by outcome (ack, nak, dead_letter)."
    );
    describe_histogram!(
        PROCESS_DURATION,
        Unit::Seconds,
        "Duration of processing a message."
    );
    describe_gauge!(
        CONSUMER_PENDING,
        "Messages in the stream not yet delivered to the consumer."
    );
    describe_gauge!(
        CONSUMER_ACK_PENDING,
        "Messages delivered to the consumer and not yet acknowledged."
    );
    describe_gauge!(
        CONSUMER_REDELIVERED,
        "Messages delivered more than once and not yet acknowledged."
    );
    describe_gauge!(
        CONSUMER_IN_FLIGHT,
        "Messages this instance received and has not settled yet."
    );
    describe_counter!(DEAD_LETTERS, "Messages sent to the dead-letter subject.");
    describe_counter!(
        DUPLICATES,
        "Deliveries skipped by the idempotent consumer as already processed."
    );
    describe_counter!(OUTBOX_RELAYED, "Outbox rows published by the relay.");
    describe_gauge!(
        OUTBOX_PENDING,
        "Outbox rows waiting for the relay after its last pass."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_are_the_span_name_and_the_subject() {
        let names = process_names("orders.created");
        assert_eq!(names.span, "process orders.created");
        assert_eq!(names.subject.as_str(), "orders.created");
        // The second time, the same interned text.
        let again = process_names("orders.created");
        assert!(std::ptr::eq(names.span.as_ref(), again.span.as_ref()));
    }
}
