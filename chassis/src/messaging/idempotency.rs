//! The idempotent consumer (feature `outbox`): a message is processed once per consumer,
//! however often it is delivered, by recording its id in the handler's own transaction.
//!
//! ```no_run
//! # use aiods::messaging::{Delivery, idempotency::{self, Claim}};
//! # #[derive(serde::Deserialize)] struct OrderCreated { id: String }
//! # async fn handle(pool: sqlx::SqlitePool, order: Delivery<OrderCreated>) -> aiods::Result<()> {
//! let mut tx = pool.begin().await.map_err(aiods::Error::internal)?;
//! if idempotency::claim_delivery(&mut tx, &order).await? == Claim::Duplicate {
//!     return Ok(()); // processed before: ack and do nothing
//! }
//! sqlx::query("INSERT INTO tickets (order_id) VALUES (?)")
//!     .bind(&order.payload.id)
//!     .execute(&mut *tx)
//!     .await
//!     .map_err(aiods::Error::internal)?;
//! tx.commit().await.map_err(aiods::Error::internal)?;
//! # Ok(()) }
//! ```
//!
//! The row `(consumer, message_id)` in `processed_messages` commits with the state change or
//! not at all, so a redelivery after a crash before the commit is processed, and one after the
//! commit is not. Concurrent deliveries of one message wait on the key: one wins. Duplicates
//! are counted in `aiods_messaging_duplicates_total{messaging_consumer_group_name}`.

use sqlx::Transaction;

use super::Delivery;
use super::outbox::{OutboxDatabase, OutboxError, now_ms};

pub use super::names::DUPLICATES;

/// Whether a message id was seen before by a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time: process it (the claim commits with the transaction).
    First,
    /// Processed before: skip it.
    Duplicate,
}

/// Claims `message_id` for `consumer` within `tx`.
pub async fn claim<DB: OutboxDatabase>(
    tx: &mut Transaction<'_, DB>,
    consumer: &str,
    message_id: &str,
) -> Result<Claim, OutboxError> {
    if DB::claim(&mut **tx, consumer, message_id, now_ms()).await? {
        Ok(Claim::First)
    } else {
        metrics::counter!(
            DUPLICATES,
            "messaging_system" => super::names::SYSTEM,
            "messaging_consumer_group_name" => consumer.to_owned(),
        )
        .increment(1);
        Ok(Claim::Duplicate)
    }
}

/// Claims a delivery for its consumer, by its message id (or stream sequence without one).
pub async fn claim_delivery<DB: OutboxDatabase, T>(
    tx: &mut Transaction<'_, DB>,
    delivery: &Delivery<T>,
) -> Result<Claim, OutboxError> {
    claim(tx, delivery.consumer(), &delivery.dedup_key()).await
}
