//! The stdout writer behind the JSON log: lines are appended to a shared buffer and written by
//! a background thread in one `write` every few milliseconds.
//!
//! Why not `tracing-appender`'s non-blocking writer: it sends each line through a channel and
//! wakes its writer thread per line. Measured with `bench/overhead.py` (wrk -t1 -c16, logs into
//! a pipe), those wake-ups and per-line writes were the largest cost of the chassis's access
//! log — kernel context switches dominated the profile. Appending to a buffer swapped out on a
//! timer costs one uncontended lock and a `memcpy` per line and one syscall per flush.
//! The buffer is bounded: lines past it are dropped and counted
//! (`aiods_telemetry_dropped_total{signal="logs"}`), never blocking the caller.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often buffered lines are written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Bytes held at most between two flushes.
const CAPACITY: usize = 8 * 1024 * 1024;

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: Arc<AtomicU64>,
}

/// A cheap handle for appending whole lines.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Stops the writer thread after a last flush when dropped.
#[derive(Debug)]
pub struct LogWriterGuard {
    writer: LogWriter,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer thread writing to `out`.
    pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, LogWriterGuard)> {
        Self::start_counting(out, Arc::default())
    }

    /// Like [`LogWriter::start`], adding the lines it drops to `dropped` (a counter shared with
    /// whoever reports it).
    pub fn start_counting<W: Write + Send + 'static>(
        out: W,
        dropped: Arc<AtomicU64>,
    ) -> std::io::Result<(Self, LogWriterGuard)> {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("aiods-log-writer".into())
            .spawn(move || run(worker, out))?;
        let writer = Self { shared };
        Ok((
            writer.clone(),
            LogWriterGuard {
                writer,
                thread: Some(thread),
            },
        ))
    }

    /// Appends one complete line (with its newline); drops and counts it when the buffer is full.
    pub fn write_line(&self, line: &[u8]) {
        match self.shared.buffer.lock() {
            Ok(mut buf) if buf.len() + line.len() <= CAPACITY => buf.extend_from_slice(line),
            _ => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn run<W: Write>(shared: Arc<Shared>, mut out: W) {
    let mut spare: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let stopping = {
            let Ok(guard) = shared.buffer.lock() else {
                return;
            };
            let (mut guard, _) = match shared.wake.wait_timeout(guard, FLUSH_INTERVAL) {
                Ok(r) => r,
                Err(_) => return,
            };
            std::mem::swap(&mut *guard, &mut spare);
            shared.stop.load(Ordering::Acquire)
        };
        if !spare.is_empty() {
            // A closed stdout is not worth dying for; the lines are gone either way.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            if spare.capacity() > 1024 * 1024 {
                spare.shrink_to(64 * 1024);
            }
        }
        if stopping {
            return;
        }
    }
}

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        self.writer.shared.stop.store(true, Ordering::Release);
        self.writer.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_line(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_everything_is_flushed_on_drop() {
        let sink = Sink::default();
        let (w, guard) = LogWriter::start(sink.clone()).expect("thread");
        for i in 0..10_000 {
            w.write_line(format!("{i}\n").as_bytes());
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let nums: Vec<u32> = out.lines().map(|l| l.parse().expect("number")).collect();
        assert_eq!(nums, (0..10_000).collect::<Vec<_>>());
        assert_eq!(w.dropped(), 0);
    }

    #[test]
    fn a_stuck_output_drops_and_counts_instead_of_blocking() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (w, guard) = LogWriter::start(Stuck).expect("thread");
        let line = vec![b'x'; 1024];
        let started = std::time::Instant::now();
        for _ in 0..20_000 {
            w.write_line(&line);
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(w.dropped() > 0);
        std::mem::forget(guard);
    }
}
