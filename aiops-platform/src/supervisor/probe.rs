//! Health probes of one instance generation: fast polling until the first ready answer (that
//! moment is the recovery time of a restart), then liveness and readiness every interval.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Event, InstanceId, ProbeKind, ProbeResult};
use crate::common::time::now_nanos;
use crate::config::HealthConfig;

/// Polling interval while an instance starts.
const STARTUP_POLL: Duration = Duration::from_millis(5);

async fn check(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<(), String> {
    match client.get(url).timeout(timeout).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("status {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", timeout.as_millis())),
        Err(e) if e.is_connect() => Err("connection refused".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Probes `addr` until aborted.
pub(crate) async fn run(
    client: reqwest::Client,
    id: InstanceId,
    generation: u64,
    addr: SocketAddr,
    health: HealthConfig,
    events: mpsc::UnboundedSender<Event>,
) {
    let live = format!("http://{addr}{}", health.live);
    let ready = format!("http://{addr}{}", health.ready_path());
    let same = ready == live;
    let send = |kind, result: Result<(), String>, sent_at| {
        let _ = events.send(Event::Probe(ProbeResult {
            id: id.clone(),
            generation,
            kind,
            ok: result.is_ok(),
            sent_at,
            done_at: now_nanos(),
            detail: result.err().unwrap_or_default(),
        }));
    };
    let started = Instant::now();
    let grace = Duration::from_millis(health.startup_grace_ms);
    let ready_kind = if same {
        ProbeKind::Both
    } else {
        ProbeKind::Ready
    };
    // Startup: failures do not count yet.
    loop {
        let sent = now_nanos();
        if check(&client, &ready, health.timeout()).await.is_ok() {
            send(ready_kind, Ok(()), sent);
            break;
        }
        if started.elapsed() > grace {
            break;
        }
        tokio::time::sleep(STARTUP_POLL).await;
    }
    let mut tick = tokio::time::interval(health.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let sent = now_nanos();
        if same {
            send(
                ProbeKind::Both,
                check(&client, &live, health.timeout()).await,
                sent,
            );
        } else {
            let (l, r) = tokio::join!(
                check(&client, &live, health.timeout()),
                check(&client, &ready, health.timeout())
            );
            send(ProbeKind::Live, l, sent);
            send(ProbeKind::Ready, r, sent);
        }
    }
}
