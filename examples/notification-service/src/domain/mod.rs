//! The notification domain: messages to customers, sent through an e-mail port (figure 28's
//! `EmailFacade`) and kept in an outbox. No HTTP and no SQL here.

use std::sync::Arc;

/// A storage failure behind a port.
#[derive(Debug, thiserror::Error)]
#[error("notification storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The e-mail could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("e-mail not sent: {0}")]
pub struct EmailError(pub String);

/// Why a notification failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// The message is empty.
    #[error("a notification needs a subject and a message")]
    Empty,
    /// Sending failed (the attempt is recorded).
    #[error(transparent)]
    Email(#[from] EmailError),
    /// The storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// An e-mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
}

/// A notification, as recorded in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its id (0 before it is stored).
    pub id: i64,
    /// The order it is about.
    pub order_id: i64,
    /// The customer.
    pub consumer_id: i64,
    /// `email`.
    pub channel: String,
    /// The e-mail sent.
    pub email: Email,
    /// `SENT` or `FAILED`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// `EmailFacade`: sends e-mail.
#[async_trait::async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends `email`.
    async fn send(&self, email: &Email) -> Result<(), EmailError>;
}

/// The outbox.
#[async_trait::async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Records a notification; returns it with its id.
    async fn record(&self, n: &Notification) -> Result<Notification, RepositoryError>;
    /// The notifications about order `order_id`.
    async fn for_order(&self, order_id: i64) -> Result<Vec<Notification>, RepositoryError>;
}

/// Tells customers about their orders (`notifyUser()`).
pub struct NotificationService {
    sender: Arc<dyn EmailSender>,
    outbox: Arc<dyn OutboxRepository>,
}

impl NotificationService {
    /// A service sending through `sender` and recording in `outbox`.
    pub fn new(sender: Arc<dyn EmailSender>, outbox: Arc<dyn OutboxRepository>) -> Self {
        Self { sender, outbox }
    }

    /// Sends a message to consumer `consumer_id` about `order_id` and records it, sent or not.
    pub async fn notify(
        &self,
        order_id: i64,
        consumer_id: i64,
        recipient: Option<String>,
        subject: String,
        body: String,
    ) -> Result<Notification, NotificationError> {
        if subject.trim().is_empty() || body.trim().is_empty() {
            return Err(NotificationError::Empty);
        }
        let email = Email {
            // Without an address book, customers are reached at a per-customer alias.
            to: recipient.unwrap_or_else(|| format!("consumer-{consumer_id}@customers.example")),
            subject,
            body,
        };
        let sent = self.sender.send(&email).await;
        let record = Notification {
            id: 0,
            order_id,
            consumer_id,
            channel: "email".into(),
            email,
            status: if sent.is_ok() { "SENT" } else { "FAILED" }.into(),
            error: sent.as_ref().err().map(ToString::to_string),
        };
        let stored = self.outbox.record(&record).await?;
        sent?;
        Ok(stored)
    }

    /// The notifications about an order.
    pub async fn for_order(&self, order_id: i64) -> Result<Vec<Notification>, NotificationError> {
        Ok(self.outbox.for_order(order_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Fakes {
        fail: bool,
        sent: Mutex<Vec<Email>>,
        outbox: Mutex<Vec<Notification>>,
    }

    #[async_trait::async_trait]
    impl EmailSender for Fakes {
        async fn send(&self, email: &Email) -> Result<(), EmailError> {
            if self.fail {
                return Err(EmailError("smtp down".into()));
            }
            self.sent.lock().expect("lock").push(email.clone());
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl OutboxRepository for Fakes {
        async fn record(&self, n: &Notification) -> Result<Notification, RepositoryError> {
            let mut all = self.outbox.lock().expect("lock");
            let stored = Notification {
                id: all.len() as i64 + 1,
                ..n.clone()
            };
            all.push(stored.clone());
            Ok(stored)
        }
        async fn for_order(&self, order_id: i64) -> Result<Vec<Notification>, RepositoryError> {
            let all = self.outbox.lock().expect("lock");
            Ok(all
                .iter()
                .filter(|n| n.order_id == order_id)
                .cloned()
                .collect())
        }
    }

    #[tokio::test]
    async fn a_notification_is_sent_and_recorded() {
        let fakes = Arc::new(Fakes::default());
        let svc = NotificationService::new(fakes.clone(), fakes.clone());
        let n = svc
            .notify(1, 2, None, "Order 1".into(), "approved".into())
            .await
            .expect("sent");
        assert_eq!(n.status, "SENT");
        assert_eq!(
            fakes.sent.lock().expect("lock")[0].to,
            "consumer-2@customers.example"
        );
        assert_eq!(svc.for_order(1).await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn a_failed_send_is_recorded_and_reported_and_empty_messages_refused() {
        let fakes = Arc::new(Fakes {
            fail: true,
            ..Default::default()
        });
        let svc = NotificationService::new(fakes.clone(), fakes.clone());
        assert!(matches!(
            svc.notify(1, 2, None, "s".into(), "b".into()).await,
            Err(NotificationError::Email(_))
        ));
        assert_eq!(fakes.outbox.lock().expect("lock")[0].status, "FAILED");
        assert!(matches!(
            svc.notify(1, 2, None, " ".into(), "b".into()).await,
            Err(NotificationError::Empty)
        ));
    }
}
