//! The same consumer through the chassis: `#[aiods::service]`, `ctx.messaging()`,
//! `consume(ConsumerSpec::durable(..))` with its defaults and a no-op handler. Everything the
//! chassis does is on: JSON logs, metrics (`/metrics`), a CONSUMER span per message exported
//! over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), Sentry (`SENTRY_DSN`), readiness, faults.
//!
//! When every message is acked it writes its result to `BENCH_RESULT` and keeps serving until
//! SIGTERM, so the benchmark can read `/metrics` and then stop it (which flushes the spans).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aiods::messaging::{ConsumerSpec, Delivery};
use aiods::prelude::*;
use consumer_bench::{BenchEnv, OrderPlaced, Start};

#[aiods::service(name = "consumer-bench")]
async fn main(ctx: ServiceContext) -> aiods::Result<Router> {
    let env = BenchEnv::from_env().map_err(aiods::Error::internal)?;
    let messaging = ctx.messaging().await?;
    messaging
        .ensure_stream(&env.stream, &[consumer_bench::SUBJECTS])
        .await?;
    let handled = Arc::new(AtomicU64::new(0));
    let start: Arc<OnceLock<Start>> = Arc::new(OnceLock::new());
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let n = env.messages;
    {
        let handled = handled.clone();
        let start = start.clone();
        messaging
            .consume(
                ConsumerSpec::durable(&env.consumer, &env.stream, consumer_bench::SUBJECT),
                move |event: Delivery<OrderPlaced>| {
                    start.get_or_init(Start::now);
                    std::hint::black_box(&event.payload);
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        let _ = done_tx.send(true);
                    }
                    async { Ok::<(), aiods::Error>(()) }
                },
            )
            .await?;
    }
    let js = messaging.jetstream().clone();
    tokio::spawn(async move {
        if done_rx.wait_for(|d| *d).await.is_err() {
            return;
        }
        let Some(start) = start.get().copied() else {
            return;
        };
        let handled = handled.load(Ordering::Relaxed);
        match consumer_bench::finish(&js, &env, start, handled, Duration::from_secs(30)).await {
            Ok(result) => {
                if let Err(e) = consumer_bench::write_result(&env, &result) {
                    eprintln!("cannot write the result: {e}");
                }
            }
            Err(e) => eprintln!("cannot read the consumer: {e}"),
        }
    });
    Ok(Router::new())
}
