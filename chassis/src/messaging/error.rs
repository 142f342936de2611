//! [`MessagingError`]: what can go wrong publishing, consuming and setting up streams.

/// A messaging operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// `messaging.url` is not set.
    #[error(
        "messaging is not configured: set `messaging.url` (AIODS_MESSAGING__URL), e.g. nats://127.0.0.1:4222"
    )]
    NotConfigured,
    /// A setting is out of range.
    #[error("invalid messaging configuration: {0}")]
    InvalidConfig(String),
    /// The broker could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// An event could not be serialized.
    #[error("cannot encode the event for {subject}: {source}")]
    Encode {
        /// The subject.
        subject: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The broker did not take a message (no ack, no stream for the subject, disconnected).
    #[error("cannot publish to {subject}: {message}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        message: String,
    },
    /// A stream or consumer could not be created or read.
    #[error("JetStream {what} failed: {message}")]
    JetStream {
        /// What was being done (`create stream ORDERS`, ...).
        what: String,
        /// Why.
        message: String,
    },
}

impl MessagingError {
    pub(crate) fn jetstream(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::JetStream {
            what: what.into(),
            message: e.to_string(),
        }
    }

    /// The `error.type` label of a failed publish.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::InvalidConfig(_) => "invalid_config",
            Self::Connect { .. } => "connect",
            Self::Encode { .. } => "encode",
            Self::Publish { .. } => "publish",
            Self::JetStream { .. } => "jetstream",
        }
    }
}

/// A broker that cannot be reached or does not take a message answers 503; anything else
/// is a 500.
impl From<MessagingError> for crate::Error {
    fn from(e: MessagingError) -> Self {
        match e {
            MessagingError::Connect { .. } | MessagingError::Publish { .. } => {
                crate::Error::unavailable(e.to_string())
            }
            other => crate::Error::internal(other),
        }
    }
}
