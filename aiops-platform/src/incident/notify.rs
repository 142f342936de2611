//! Webhook notifications on open and resolve: JSON with a Slack-compatible `text` field.

use std::time::Duration;

use super::{Incident, IncidentStatus};

/// Posts incident changes to a webhook, in the background; failures are logged.
#[derive(Debug, Clone)]
pub struct Notifier {
    url: Option<String>,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier for `url` (none: silent).
    pub fn new(url: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { url, client }
    }

    /// The message text for an incident.
    pub fn text(incident: &Incident) -> String {
        match incident.status {
            IncidentStatus::Open => format!(
                ":rotating_light: incident {} opened on *{}*: {} (MTTD {:.0} ms){}",
                incident.id,
                incident.service,
                incident.title,
                incident.mttd_ms,
                incident
                    .probable_root_cause
                    .as_ref()
                    .map(|d| format!("; probable root cause: {d}"))
                    .unwrap_or_default()
            ),
            IncidentStatus::Resolved => format!(
                ":white_check_mark: incident {} on *{}* resolved: MTTD {:.0} ms, MTTR {:.0} ms, downtime {:.0} ms, {} restart(s)",
                incident.id,
                incident.service,
                incident.mttd_ms,
                incident.mttr_ms.unwrap_or(0.0),
                incident.downtime_ms.unwrap_or(0.0),
                incident.restarts
            ),
        }
    }

    /// Sends `event` (`incident.opened`, `incident.resolved`, `incident.attention`).
    pub fn send(&self, event: &str, incident: &Incident) {
        let Some(url) = self.url.clone() else {
            return;
        };
        let body = serde_json::json!({
            "text": Self::text(incident),
            "event": event,
            "incident": {
                "id": incident.id,
                "service": incident.service,
                "status": incident.status,
                "title": incident.title,
                "signals": incident.signals,
                "probable_root_cause": incident.probable_root_cause,
                "needs_attention": incident.needs_attention,
                "failure_start": incident.failure_start,
                "detected_at": incident.detected_at,
                "recovered_at": incident.recovered_at,
                "mttd_ms": incident.mttd_ms,
                "mttr_ms": incident.mttr_ms,
                "downtime_ms": incident.downtime_ms,
            }
        });
        let client = self.client.clone();
        tokio::spawn(async move {
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), %url, "webhook refused"),
                Err(error) => tracing::warn!(%error, %url, "webhook failed"),
            }
        });
    }
}
