//! The routing table: path prefixes to services, services to their ready instances.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::Notify;

use crate::common::instance::InstanceId;
use crate::config::Balance;

/// One instance as the gateway sees it.
#[derive(Debug)]
pub struct Endpoint {
    /// The instance.
    pub instance: InstanceId,
    /// Its address.
    pub addr: SocketAddr,
    ready: AtomicBool,
    inflight: AtomicUsize,
}

impl Endpoint {
    /// Whether requests go to it.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Requests in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.clone())
    }
}

/// Decrements the in-flight count when dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<Endpoint>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Prefixes, endpoints and a wake-up for requests held while no instance is ready.
#[derive(Debug, Default)]
pub struct Routes {
    prefixes: RwLock<Vec<(String, String)>>,
    endpoints: RwLock<HashMap<String, Vec<Arc<Endpoint>>>>,
    changed: Notify,
    rotation: AtomicUsize,
    balance: Balance,
}

impl Routes {
    /// A table with this balancing policy.
    pub fn new(balance: Balance) -> Self {
        Self {
            balance,
            ..Self::default()
        }
    }

    /// Routes `prefix` to `service` (longest prefix wins).
    pub fn add_prefix(&self, prefix: &str, service: &str) {
        let mut p = self.prefixes.write();
        p.push((prefix.trim_end_matches('/').to_owned(), service.to_owned()));
        p.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    /// The service a path goes to.
    pub fn service_for(&self, path: &str) -> Option<String> {
        self.prefixes
            .read()
            .iter()
            .find(|(prefix, _)| {
                prefix.is_empty()
                    || path == prefix
                    || (path.starts_with(prefix.as_str())
                        && path.as_bytes().get(prefix.len()) == Some(&b'/'))
            })
            .map(|(_, s)| s.clone())
    }

    /// Adds or updates an instance; a change to ready wakes held requests.
    pub fn set(&self, id: &InstanceId, addr: SocketAddr, ready: bool) {
        let mut table = self.endpoints.write();
        let list = table.entry(id.service.clone()).or_default();
        match list.iter().find(|e| e.instance == *id) {
            Some(e) if e.addr == addr => {
                let was = e.ready.swap(ready, Ordering::AcqRel);
                drop(table);
                if ready && !was {
                    self.changed.notify_waiters();
                }
                return;
            }
            Some(_) => list.retain(|e| e.instance != *id),
            None => {}
        }
        list.push(Arc::new(Endpoint {
            instance: id.clone(),
            addr,
            ready: AtomicBool::new(ready),
            inflight: AtomicUsize::new(0),
        }));
        drop(table);
        if ready {
            self.changed.notify_waiters();
        }
    }

    /// Forgets an instance (a replaced or scaled-in one).
    pub fn remove(&self, id: &InstanceId) {
        if let Some(list) = self.endpoints.write().get_mut(&id.service) {
            list.retain(|e| e.instance != *id);
        }
    }

    /// Takes an instance out (not ready) without forgetting it.
    pub fn set_unready(&self, id: &InstanceId) {
        if let Some(list) = self.endpoints.read().get(&id.service) {
            for e in list.iter().filter(|e| e.instance == *id) {
                e.ready.store(false, Ordering::Release);
            }
        }
    }

    /// Endpoints of a service.
    pub fn endpoints(&self, service: &str) -> Vec<Arc<Endpoint>> {
        self.endpoints
            .read()
            .get(service)
            .cloned()
            .unwrap_or_default()
    }

    /// A ready instance of `service`, avoiding `avoid` when another is ready.
    pub fn pick(&self, service: &str, avoid: Option<&InstanceId>) -> Option<Arc<Endpoint>> {
        let table = self.endpoints.read();
        let list = table.get(service)?;
        let ready: Vec<&Arc<Endpoint>> = list.iter().filter(|e| e.is_ready()).collect();
        let candidates: Vec<&Arc<Endpoint>> = match avoid {
            Some(a) if ready.iter().any(|e| e.instance != *a) => {
                ready.into_iter().filter(|e| e.instance != *a).collect()
            }
            _ => ready,
        };
        if candidates.is_empty() {
            return None;
        }
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % candidates.len();
        let rotated = candidates[start..].iter().chain(candidates[..start].iter());
        let chosen = match self.balance {
            Balance::RoundRobin => candidates.get(start).copied(),
            Balance::LeastRequests => rotated.min_by_key(|e| e.inflight()).copied(),
        };
        chosen.cloned()
    }

    /// Like [`Routes::pick`], waiting until `deadline` for an instance to become ready.
    pub async fn wait_pick(
        &self,
        service: &str,
        avoid: Option<&InstanceId>,
        deadline: Instant,
    ) -> Option<Arc<Endpoint>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.pick(service, avoid) {
                return Some(e);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // Also re-check now and then, in case a wake-up raced the registration.
            let slice = left.min(std::time::Duration::from_millis(50));
            let _ = tokio::time::timeout(slice, notified).await;
            if Instant::now() >= deadline {
                return self.pick(service, avoid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str, i: u32) -> InstanceId {
        InstanceId {
            service: s.into(),
            index: i,
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = Routes::default();
        r.add_prefix("/orders", "order");
        r.add_prefix("/orders/special", "special");
        assert_eq!(r.service_for("/orders").as_deref(), Some("order"));
        assert_eq!(r.service_for("/orders/7").as_deref(), Some("order"));
        assert_eq!(
            r.service_for("/orders/special/1").as_deref(),
            Some("special")
        );
        assert_eq!(r.service_for("/ordersx"), None);
    }

    #[test]
    fn picks_only_ready_and_avoids_when_it_can() {
        let r = Routes::default();
        let a: SocketAddr = ([127, 0, 0, 1], 1).into();
        let b: SocketAddr = ([127, 0, 0, 1], 2).into();
        r.set(&id("s", 0), a, true);
        r.set(&id("s", 1), b, false);
        for _ in 0..4 {
            assert_eq!(r.pick("s", None).map(|e| e.addr), Some(a));
        }
        r.set(&id("s", 1), b, true);
        assert_eq!(r.pick("s", Some(&id("s", 0))).map(|e| e.addr), Some(b));
        r.set_unready(&id("s", 0));
        r.set_unready(&id("s", 1));
        assert!(r.pick("s", None).is_none());
    }
}
