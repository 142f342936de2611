//! The baseline: a durable JetStream pull consumer written straight on `async-nats`, as a
//! service would without the chassis. It pulls continuously (`Consumer::stream`, batches of
//! 32, each expiring after 1 s as the chassis's do), runs a no-op handler on each message (the payload decoded, as any consumer would) at
//! most 8 at a time, and acks each. No logs, metrics or traces.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use consumer_bench::{BATCH, BenchEnv, CONCURRENCY, OrderPlaced, Start};
use futures_util::StreamExt as _;
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let env = BenchEnv::from_env()?;
    let client = async_nats::connect(env.url.as_str()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let consumer = js
        .create_consumer_on_stream(
            consumer_bench::consumer_config(&env.consumer),
            env.stream.as_str(),
        )
        .await?;
    let handled = Arc::new(AtomicU64::new(0));
    let start: Arc<OnceLock<Start>> = Arc::new(OnceLock::new());
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);

    let fetch = {
        let handled = handled.clone();
        let start = start.clone();
        let n = env.messages;
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(CONCURRENCY));
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(BATCH)
                // As the chassis's pulls: a pull that went astray expires after a second
                // (with async-nats's default of 30 s, two runs of 50,000 took ~36 s).
                .expires(Duration::from_secs(1))
                .heartbeat(Duration::from_millis(500))
                .messages()
                .await?;
            while let Some(msg) = messages.next().await {
                // A missed heartbeat on a loaded machine is reported and the stream goes on.
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("pull: {e}");
                        continue;
                    }
                };
                start.get_or_init(Start::now);
                let permit = permits.clone().acquire_owned().await?;
                let handled = handled.clone();
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    // The no-op handler.
                    if let Ok(event) = serde_json::from_slice::<OrderPlaced>(&msg.payload) {
                        std::hint::black_box(event);
                    }
                    if let Err(e) = msg.ack().await {
                        eprintln!("ack failed: {e}");
                    }
                    drop(permit);
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        let _ = done_tx.send(true);
                    }
                });
            }
            Ok::<(), BoxError>(())
        })
    };

    done_rx.wait_for(|d| *d).await?;
    let Some(start) = start.get().copied() else {
        return Err("no message was received".into());
    };
    let result = consumer_bench::finish(
        &js,
        &env,
        start,
        handled.load(Ordering::Relaxed),
        Duration::from_secs(30),
    )
    .await?;
    fetch.abort();
    consumer_bench::write_result(&env, &result)?;
    client.flush().await?;
    Ok(())
}
