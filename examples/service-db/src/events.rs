//! What the five services share when the saga runs on events (`saga.mode = events`): the
//! setting, the connection with the saga's streams declared, and processing a message once.
//!
//! | key | env | default |
//! |---|---|---|
//! | `saga.mode` | `AIODS_SAGA__MODE` | `http`: the order service orchestrates the saga over HTTP; `events`: the services choreograph it over NATS JetStream (`messaging.url` then required) |

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aiods::messaging::idempotency::{self, Claim};
use aiods::messaging::{ConsumerSpec, Delivery, Messaging};
use food_events::{Checked, Event};

use crate::Database;

/// How the create-order saga runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SagaMode {
    /// The order service calls the other services over HTTP (the seed's first use case).
    #[default]
    Http,
    /// Each service reacts to the previous one's event over NATS JetStream (figure 31).
    Events,
}

/// The `[saga]` section (`AIODS_SAGA__MODE`).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(default)]
pub struct SagaConfig {
    /// `http` (default) or `events`.
    pub mode: SagaMode,
}

impl SagaConfig {
    /// Reads `[saga]` from the service's settings.
    pub fn of(ctx: &aiods::ServiceContext) -> aiods::Result<Self> {
        Ok(ctx.settings().section_or_default("saga")?)
    }
}

/// Connects to the broker (`messaging.url`; the readiness check `nats` comes with it), declares
/// the saga's streams, and creates the outbox and idempotency tables in `database` when
/// missing.
pub async fn connect(ctx: &aiods::ServiceContext, database: &Database) -> aiods::Result<Messaging> {
    let messaging = ctx.messaging().await.map_err(aiods::Error::internal)?;
    for stream in food_events::subjects::STREAMS {
        messaging
            .ensure_stream(stream.name, &[stream.subjects])
            .await
            .map_err(aiods::Error::internal)?;
    }
    match database {
        Database::Sqlite(pool) => aiods::messaging::outbox::create_tables(pool).await,
        Database::Postgres(pool) => aiods::messaging::outbox::create_tables(pool).await,
    }
    .map_err(aiods::Error::internal)?;
    Ok(messaging)
}

/// Whether [`Once::run`] ran the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// The work ran and its key is recorded.
    Now,
    /// The key was processed before: nothing ran (counted in
    /// `aiods_messaging_duplicates_total`).
    Before,
}

/// Processes each event once per consumer, by the event's id, with the chassis's idempotent
/// consumer (`processed_messages`).
///
/// The services' domain operations keep their own transactions, so the key is claimed in a
/// transaction of its own around the work: looked up before (a duplicate is skipped), recorded
/// after. Work that fails records nothing and is retried; a crash between the work and the
/// record runs the work again on redelivery, which the domain operations absorb (one ticket
/// and one authorization per order, a repeated cancel or void changes nothing). Two copies
/// of one event handled at once in this process are serialized: the second is refused while
/// the first runs (and retried by the broker).
#[derive(Clone)]
pub struct Once {
    database: Database,
    running: Arc<Mutex<HashSet<(String, String)>>>,
}

/// The work of another copy of the same event is running; the broker delivers this one again.
#[derive(Debug, thiserror::Error)]
#[error("event {key} is being processed by {consumer} already")]
pub struct AlreadyRunning {
    /// The consumer.
    pub consumer: String,
    /// The event id.
    pub key: String,
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

/// Removes a key from the running set when its work ends, however it ends.
struct Running<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.key);
        }
    }
}

impl Once {
    /// Keys recorded in `database`.
    pub fn new(database: Database) -> Self {
        Self {
            database,
            running: Arc::default(),
        }
    }

    /// Runs `work` unless `consumer` processed `key` before; records `key` once it succeeded.
    pub async fn run<F, Fut>(&self, consumer: &str, key: &str, work: F) -> aiods::Result<Ran>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = aiods::Result<()>>,
    {
        let id = (consumer.to_owned(), key.to_owned());
        {
            let mut running = self
                .running
                .lock()
                .map_err(|_| aiods::Error::internal("poisoned lock"))?;
            if !running.insert(id.clone()) {
                return Err(aiods::Error::internal(AlreadyRunning {
                    consumer: consumer.to_owned(),
                    key: key.to_owned(),
                }));
            }
        }
        let _running = Running {
            set: &self.running,
            key: id,
        };
        if self.claim(consumer, key, false).await? == Claim::Duplicate {
            return Ok(Ran::Before);
        }
        work().await?;
        self.claim(consumer, key, true).await?;
        Ok(Ran::Now)
    }

    /// Claims `key` in a transaction, committed when `keep` (else rolled back: a look-up).
    async fn claim(&self, consumer: &str, key: &str, keep: bool) -> aiods::Result<Claim> {
        macro_rules! claim_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.map_err(aiods::Error::internal)?;
                let claim = idempotency::claim(&mut tx, consumer, key).await?;
                if keep {
                    tx.commit().await.map_err(aiods::Error::internal)?;
                } else {
                    tx.rollback().await.map_err(aiods::Error::internal)?;
                }
                Ok(claim)
            }};
        }
        match &self.database {
            Database::Sqlite(pool) => claim_in!(pool),
            Database::Postgres(pool) => claim_in!(pool),
        }
    }
}

/// Publishes `event` on its subject with its id as `Nats-Msg-Id`; returns once JetStream
/// stored it.
pub async fn publish<E: Event>(messaging: &Messaging, event: &E) -> aiods::Result<()> {
    messaging
        .publish_with_id(E::SUBJECT, event.event_id(), event)
        .await
        .map(|_| ())
        .map_err(aiods::Error::internal)
}

/// Consumes `E`'s subject as the durable consumer `name` (on the stream of the subject), and
/// runs `work` once per event id ([`Once`]). Payloads that do not decode into a
/// [`Checked`] event are dead-lettered at once by the chassis, as malformed.
pub async fn consume_once<E, F, Fut>(
    messaging: &Messaging,
    once: &Once,
    name: &'static str,
    work: F,
) -> aiods::Result<()>
where
    E: Event,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = aiods::Result<()>> + Send + 'static,
{
    let stream = food_events::subjects::stream_of(E::SUBJECT)
        .ok_or_else(|| aiods::Error::internal(format!("no stream keeps {}", E::SUBJECT)))?;
    let once = once.clone();
    let work = Arc::new(work);
    messaging
        .consume(
            ConsumerSpec::durable(name, stream.name, E::SUBJECT),
            move |delivery: Delivery<Checked<E>>| {
                let (once, work) = (once.clone(), work.clone());
                async move {
                    let event = delivery.payload.0;
                    let key = event.event_id().to_owned();
                    let order_id = event.order().order_id;
                    let ran = once.run(name, &key, || work(event)).await?;
                    if ran == Ran::Before {
                        tracing::info!(order_id, event_id = %key, consumer = name, "duplicate event skipped");
                    }
                    Ok::<(), aiods::Error>(())
                }
            },
        )
        .await
        .map_err(aiods::Error::internal)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn once() -> Once {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("sqlite");
        aiods::messaging::outbox::create_tables(&pool)
            .await
            .expect("tables");
        Once::new(Database::Sqlite(pool))
    }

    #[tokio::test]
    async fn work_runs_once_per_key_and_consumer_and_a_failure_records_nothing() {
        let once = once().await;
        let runs = AtomicUsize::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        assert_eq!(once.run("a", "k1", work).await.expect("ran"), Ran::Now);
        assert_eq!(once.run("a", "k1", work).await.expect("ran"), Ran::Before);
        assert_eq!(once.run("b", "k1", work).await.expect("ran"), Ran::Now);
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        let failed = once
            .run("a", "k2", || async {
                Err(aiods::Error::internal("database down"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(once.run("a", "k2", work).await.expect("ran"), Ran::Now);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_copy_arriving_while_the_first_runs_is_refused_for_now() {
        let once = once().await;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let once = once.clone();
            tokio::spawn(async move {
                once.run("a", "k", || async move {
                    let _ = started_tx.send(());
                    let _ = finish_rx.await;
                    Ok(())
                })
                .await
            })
        };
        started_rx.await.expect("started");
        let copy = once.run("a", "k", || async { Ok(()) }).await;
        assert!(copy.is_err(), "the copy waits for the broker's redelivery");
        let _ = finish_tx.send(());
        assert_eq!(first.await.expect("joined").expect("ran"), Ran::Now);
        assert_eq!(
            once.run("a", "k", || async { Ok(()) }).await.expect("ran"),
            Ran::Before
        );
    }
}
