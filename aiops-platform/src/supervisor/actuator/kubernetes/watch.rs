//! The pod watch: `kube::runtime::watcher` on the workload's label selector, each sighting
//! handed to the [`PodTable`] and its lifecycle events sent on. The watcher re-watches from
//! the last resourceVersion when a watch ends and re-lists when it is too old (410); a relist
//! that no longer shows a pod counts as its deletion. Failures (a missing permission too)
//! are logged and retried with kube's back-off: never a crash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::actions::Cluster;
use super::error::KubernetesError;
use super::table::PodTable;
use crate::common::time::now_nanos;
use crate::supervisor::actuator::LifecycleEvent;

/// How long to wait before reading a Deployment's selector again after a failure.
const SELECTOR_RETRY: Duration = Duration::from_secs(5);

/// Where the pods are: a selector, or the selector of a Deployment (read at start).
#[derive(Debug, Clone)]
pub(crate) enum PodSource {
    Selector(String),
    Deployment(String),
}

/// Watches the pods until the receiver of `events` is gone.
pub(crate) async fn run(
    cluster: Cluster,
    source: PodSource,
    table: Arc<Mutex<PodTable>>,
    events: mpsc::UnboundedSender<LifecycleEvent>,
) {
    let selector = match source {
        PodSource::Selector(s) => s,
        PodSource::Deployment(d) => loop {
            match cluster.selector_of(&d).await {
                Ok(s) => break s,
                Err(error) => {
                    tracing::error!(deployment = %d, %error, "cannot read the deployment's pod selector");
                    if events.is_closed() {
                        return;
                    }
                    tokio::time::sleep(SELECTOR_RETRY).await;
                }
            }
        },
    };
    let config = watcher::Config::default().labels(&selector);
    let stream = watcher(cluster.pods(), config).default_backoff();
    futures_util::pin_mut!(stream);
    let mut relisted: Option<HashSet<String>> = None;
    while let Some(item) = stream.next().await {
        let now = now_nanos();
        let out = match item {
            Ok(watcher::Event::Init) => {
                relisted = Some(HashSet::new());
                Vec::new()
            }
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(seen), Some(name)) = (relisted.as_mut(), pod.metadata.name.clone()) {
                    seen.insert(name);
                }
                table.lock().apply(&pod, now)
            }
            Ok(watcher::Event::InitDone) => match relisted.take() {
                Some(seen) => table.lock().forget_missing(&seen, now),
                None => Vec::new(),
            },
            Ok(watcher::Event::Apply(pod)) => table.lock().apply(&pod, now),
            Ok(watcher::Event::Delete(pod)) => table.lock().delete(&pod, now),
            Err(error) => {
                log_watch_error(&selector, cluster.namespace(), error);
                Vec::new()
            }
        };
        for e in out {
            if events.send(e).is_err() {
                return;
            }
        }
    }
}

fn log_watch_error(selector: &str, namespace: &str, error: watcher::Error) {
    let (verb, source) = match error {
        watcher::Error::InitialListFailed(e) => ("list", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => ("watch", e),
        other => {
            tracing::warn!(selector, error = %other, "pod watch interrupted; resuming");
            return;
        }
    };
    let error = KubernetesError::from_api(verb, "pods", namespace, source);
    tracing::error!(selector, %error, "pod watch failed; retrying with back-off");
}
