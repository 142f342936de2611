//! `EmailAdapter`: the default sender writes the message to the log (the outbox keeps it).
//! An SMTP or provider client replaces it behind the same [`EmailSender`] port.

use crate::domain::{Email, EmailError, EmailSender};

/// Logs each e-mail instead of sending it, as the seed's adapter does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogEmailSender;

#[async_trait::async_trait]
impl EmailSender for LogEmailSender {
    async fn send(&self, email: &Email) -> Result<(), EmailError> {
        tracing::info!(to = %email.to, subject = %email.subject, "e-mail sent");
        Ok(())
    }
}
