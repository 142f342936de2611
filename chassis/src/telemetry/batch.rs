//! A bounded batching queue that counts what it drops.
//!
//! The SDK's batch processors drop silently when their queue is full and keep no count a
//! service can expose. The telemetry contract wants every dropped item counted in `/metrics`,
//! so spans and log records go through this queue instead: `push` never blocks (a full queue
//! drops and counts), a worker thread exports batches by size or age, and a failed export
//! counts its items as dropped too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
            max_queue: 8192,
            // Larger batches mean fewer HTTP posts per span; 2048 spans encode to ~1 MB.
            max_batch: 2048,
            delay: Duration::from_millis(500),
        }
    }
}

struct State<T> {
    items: Vec<T>,
    flush_requested: u64,
    flush_done: u64,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the worker: a full batch, a flush request, or closing.
    work: Condvar,
    /// Wakes flushers when a flush is done.
    done: Condvar,
    dropped: Arc<AtomicU64>,
    cfg: BatchConfig,
}

/// The sending side of a bounded batching queue.
///
/// Items are appended under a mutex and the worker is woken only when a batch is full (or on
/// flush): waking it per item cost more than exporting (measured with `bench/overhead.py`).
pub(crate) struct BatchQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for BatchQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue")
            .field("dropped", &self.shared.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Starts the worker thread `name`, which calls `export` with each batch (at most
    /// `max_batch` items; `export` may take them, what it leaves is dropped after); `export`
    /// returns whether the batch was delivered. Drops are added to `dropped`.
    pub(crate) fn start<E>(
        name: &str,
        cfg: BatchConfig,
        dropped: Arc<AtomicU64>,
        export: E,
    ) -> std::io::Result<Self>
    where
        E: FnMut(&mut Vec<T>) -> bool + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: Vec::with_capacity(cfg.max_batch),
                flush_requested: 0,
                flush_done: 0,
                closed: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            dropped,
            cfg,
        });
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || worker(worker_shared, export))?;
        Ok(Self { shared })
    }

    /// Queues an item; never blocks for long. A full queue drops it and counts the drop.
    pub(crate) fn push(&self, item: T) {
        let Ok(mut state) = self.shared.state.lock() else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if state.closed || state.items.len() >= self.shared.cfg.max_queue {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.items.push(item);
        if state.items.len() == self.shared.cfg.max_batch {
            self.shared.work.notify_one();
        }
    }

    /// Exports everything queued so far; waits at most `timeout`. Returns whether it finished.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut state) = self.shared.state.lock() else {
            return false;
        };
        state.flush_requested += 1;
        let ticket = state.flush_requested;
        self.shared.work.notify_one();
        while state.flush_done < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.shared.done.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
        true
    }
}

impl<T> Drop for BatchQueue<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closed = true;
        }
        self.shared.work.notify_one();
    }
}

fn worker<T, E>(shared: Arc<Shared<T>>, mut export: E)
where
    E: FnMut(&mut Vec<T>) -> bool,
{
    let cfg = shared.cfg;
    let mut spare: Vec<T> = Vec::with_capacity(cfg.max_batch);
    // Batches of a queue longer than one batch.
    let mut chunk: Vec<T> = Vec::new();
    loop {
        let (mut items, flush_ticket, closed) = {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            let waiting_since = Instant::now();
            while state.items.len() < cfg.max_batch
                && state.flush_requested == state.flush_done
                && !state.closed
            {
                let left = cfg.delay.saturating_sub(waiting_since.elapsed());
                if left.is_zero() {
                    break;
                }
                state = match shared.work.wait_timeout(state, left) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                };
            }
            // The spare (emptied, its capacity kept) takes the queued items' place: the
            // same memory is filled again rather than a fresh ~1 MB allocation per batch,
            // whose pages the kernel faults in anew (0.1 page faults per request under the
            // overhead benchmark's load, ~1 µs each).
            let items = std::mem::replace(&mut state.items, std::mem::take(&mut spare));
            (items, state.flush_requested, state.closed)
        };
        let mut export_counted = |batch: &mut Vec<T>| {
            let n = batch.len() as u64;
            if !export(batch) {
                shared.dropped.fetch_add(n, Ordering::Relaxed);
            }
            batch.clear();
        };
        if items.len() <= cfg.max_batch {
            if !items.is_empty() {
                export_counted(&mut items);
            }
        } else {
            let mut rest = items.drain(..);
            loop {
                chunk.extend(rest.by_ref().take(cfg.max_batch));
                if chunk.is_empty() {
                    break;
                }
                export_counted(&mut chunk);
            }
        }
        items.clear();
        if items.capacity() > 2 * cfg.max_batch {
            items.shrink_to(cfg.max_batch);
        }
        spare = items;
        if let Ok(mut state) = shared.state.lock() {
            state.flush_done = state.flush_done.max(flush_ticket);
        }
        shared.done.notify_all();
        if closed {
            return;
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
            move |b: &mut Vec<u32>| sink.lock().map(|mut g| g.push(b.len())).is_ok(),
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
            move |_b: &mut Vec<u32>| {
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
