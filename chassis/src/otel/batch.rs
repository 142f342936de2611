//! A bounded batching queue that counts what it drops.
//!
//! The SDK's batch processors drop silently when their queue is full and keep no count a
//! service can expose. The telemetry contract wants every dropped item counted in `/metrics`,
//! so spans and log records go through this queue instead: `push` never blocks (a full queue
//! drops and counts), a worker thread exports batches by size or age, and a failed export
//! counts its items as dropped too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Sizes of a [`BatchQueue`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchConfig {
    /// Items held at most; beyond, new items are dropped.
    pub(crate) max_queue: usize,
    /// Items per export.
    pub(crate) max_batch: usize,
    /// Longest time an item waits before its batch is exported.
    pub(crate) delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_queue: 4096,
            max_batch: 512,
            delay: Duration::from_millis(500),
        }
    }
}

enum Msg<T> {
    Item(T),
    Flush(SyncSender<()>),
}

/// The sending side of a bounded batching queue.
pub(crate) struct BatchQueue<T> {
    tx: SyncSender<Msg<T>>,
    dropped: Arc<AtomicU64>,
}

impl<T> std::fmt::Debug for BatchQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Starts the worker thread `name`, which calls `export` with each batch; `export` returns
    /// whether the batch was delivered. Drops are added to `dropped`.
    pub(crate) fn start<E>(
        name: &str,
        cfg: BatchConfig,
        dropped: Arc<AtomicU64>,
        export: E,
    ) -> std::io::Result<Self>
    where
        E: FnMut(Vec<T>) -> bool + Send + 'static,
    {
        let (tx, rx) = sync_channel(cfg.max_queue);
        let worker_dropped = dropped.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || worker(rx, cfg, worker_dropped, export))?;
        Ok(Self { tx, dropped })
    }

    /// Queues an item; never blocks. A full queue drops it and counts the drop.
    pub(crate) fn push(&self, item: T) {
        match self.tx.try_send(Msg::Item(item)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Exports everything queued so far; waits at most `timeout`. Returns whether it finished.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        // The flush request waits for room in the queue, but not past the deadline.
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

fn worker<T, E>(rx: Receiver<Msg<T>>, cfg: BatchConfig, dropped: Arc<AtomicU64>, mut export: E)
where
    E: FnMut(Vec<T>) -> bool,
{
    let mut batch: Vec<T> = Vec::with_capacity(cfg.max_batch);
    let mut oldest: Option<Instant> = None;
    let mut send = |batch: &mut Vec<T>| {
        if batch.is_empty() {
            return;
        }
        let items = std::mem::replace(batch, Vec::with_capacity(cfg.max_batch));
        let n = items.len() as u64;
        if !export(items) {
            dropped.fetch_add(n, Ordering::Relaxed);
        }
    };
    loop {
        let wait = match oldest {
            Some(t) => cfg.delay.saturating_sub(t.elapsed()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Item(item)) => {
                if batch.is_empty() {
                    oldest = Some(Instant::now());
                }
                batch.push(item);
                if batch.len() >= cfg.max_batch {
                    send(&mut batch);
                    oldest = None;
                }
            }
            Ok(Msg::Flush(ack)) => {
                send(&mut batch);
                oldest = None;
                let _ = ack.try_send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                send(&mut batch);
                oldest = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                send(&mut batch);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn batches_by_size_and_flushes_on_demand() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let dropped = Arc::new(AtomicU64::new(0));
        let q = BatchQueue::start(
            "test-batch",
            BatchConfig {
                max_queue: 100,
                max_batch: 10,
                delay: Duration::from_secs(60),
            },
            dropped.clone(),
            move |b: Vec<u32>| sink.lock().map(|mut g| g.push(b.len())).is_ok(),
        )
        .expect("thread");
        for i in 0..25 {
            q.push(i);
        }
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(*got.lock().expect("lock"), vec![10, 10, 5]);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_and_failed_exports_are_counted() {
        let dropped = Arc::new(AtomicU64::new(0));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let q = BatchQueue::start(
            "test-batch",
            BatchConfig {
                max_queue: 4,
                max_batch: 1,
                delay: Duration::from_millis(1),
            },
            dropped.clone(),
            move |_b: Vec<u32>| {
                // A backend that hangs until released, then fails.
                let _ = gate_rx.recv();
                false
            },
        )
        .expect("thread");
        for i in 0..50 {
            q.push(i);
        }
        let after_push = dropped.load(Ordering::Relaxed);
        assert!(
            after_push >= 45,
            "queue of 4 (+1 in flight) kept at most 5: {after_push}"
        );
        drop(gate_tx);
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            50,
            "failed exports count too"
        );
    }
}
