//! Fills the benchmark's stream: creates it (file storage, as `ensure_stream` does) and
//! publishes `BENCH_MESSAGES` small JSON events with a `Nats-Msg-Id` and a W3C `traceparent`
//! header each, as a chassis publisher sends them, keeping many publishes in flight.

use std::collections::VecDeque;

use async_nats::HeaderMap;
use async_nats::jetstream;
use consumer_bench::OrderPlaced;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const IN_FLIGHT: usize = 1024;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let stream = std::env::var("BENCH_STREAM")?;
    let n: u64 = std::env::var("BENCH_MESSAGES")?.parse()?;
    let client = async_nats::connect(url.as_str()).await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![consumer_bench::SUBJECTS.to_owned()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let mut pending = VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..n {
        let event = OrderPlaced {
            id: format!("order-{i:08}"),
            customer: format!("customer-{:04}", i % 1000),
            total_cents: 1000 + i % 5000,
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        headers.insert(
            "traceparent",
            format!("00-{:032x}-{:016x}-01", u128::from(i) + 1, i + 1).as_str(),
        );
        let payload = serde_json::to_vec(&event)?;
        pending.push_back(
            js.publish_with_headers(consumer_bench::SUBJECT, headers, payload.into())
                .await?,
        );
        if pending.len() >= IN_FLIGHT
            && let Some(ack) = pending.pop_front()
        {
            ack.await?;
        }
    }
    for ack in pending {
        ack.await?;
    }
    let info = js.get_stream(&stream).await?.info().await?.state.messages;
    println!("{{\"stream\":\"{stream}\",\"messages\":{info}}}");
    Ok(())
}
