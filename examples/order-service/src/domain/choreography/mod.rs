//! The create-order saga as choreography (seed figure 31): placing an order stores it and
//! `orders.created` in one transaction and answers at once; the consumer, kitchen and
//! accounting services react to the events in turn, and the order service approves the order
//! or rejects and compensates it as their answers come in ([`react`]). Validation, pricing
//! against the kitchen's menu and idempotency keys are the orchestrated saga's.

mod machine;

use std::sync::Arc;
use std::time::Duration;

pub use machine::{Reaction, SagaChange, SagaEvent, announce, details, react};

use super::service::{new_order, price, replay};
use super::{
    Clock, Inserted, KitchenPort, Order, OrderError, OrderRepository, OrderState, Orders,
    PlaceOrder, Placed, ReconcileReport, Recorded, RepositoryError, SagaStore, Transition,
};

/// What hearing an event did to its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The order changed to this state (and its messages are in the outbox).
    Changed(OrderState),
    /// Nothing changed, for this reason.
    Ignored(String),
}

/// How often an order changed under us before we give up on one event (the broker redelivers
/// it later).
const CONFLICT_RETRIES: usize = 8;

/// Places orders and follows their choreographed saga.
pub struct ChoreographedOrders {
    repository: Arc<dyn OrderRepository>,
    store: Arc<dyn SagaStore>,
    kitchen: Arc<dyn KitchenPort>,
    clock: Arc<dyn Clock>,
}

impl ChoreographedOrders {
    /// Orders read from `repository` and changed through `store`, priced against `kitchen`'s
    /// menus.
    pub fn new(
        repository: Arc<dyn OrderRepository>,
        store: Arc<dyn SagaStore>,
        kitchen: Arc<dyn KitchenPort>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repository,
            store,
            kitchen,
            clock,
        }
    }

    /// Places an order: validates and prices it, stores it `APPROVAL_PENDING` with
    /// `orders.created` in the outbox, and returns it pending; the saga runs on events. A
    /// repeated `idempotency_key` returns the first order, in whatever state it is now.
    pub async fn place(
        &self,
        request: PlaceOrder,
        idempotency_key: Option<String>,
    ) -> Result<Placed, OrderError> {
        request.validate()?;
        let fingerprint = request.fingerprint();
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.repository.find_by_idempotency_key(key).await?
        {
            return replay(existing, key, &fingerprint);
        }
        let lines = price(self.kitchen.as_ref(), &request).await?;
        let new = new_order(
            &request,
            lines,
            idempotency_key.clone(),
            fingerprint.clone(),
            self.clock.now_ms(),
        );
        match self.store.insert_announced(&new, announce).await? {
            Inserted::Created(order) => Ok(Placed {
                order,
                replayed: false,
            }),
            Inserted::Existing(existing) => replay(
                existing,
                idempotency_key.as_deref().unwrap_or(""),
                &fingerprint,
            ),
        }
    }

    /// Applies `event` about order `order_id` ([`react`]): the order's change, its history and
    /// the messages it publishes are written in one transaction. An order changed meanwhile
    /// by someone else is read again and the event decided again.
    pub async fn hear(&self, order_id: i64, event: &SagaEvent) -> Result<Heard, OrderError> {
        self.apply(order_id, |order| react(order, event)).await
    }

    async fn apply(
        &self,
        order_id: i64,
        decide: impl Fn(&Order) -> Reaction,
    ) -> Result<Heard, OrderError> {
        for _ in 0..CONFLICT_RETRIES {
            let read = self
                .repository
                .get(order_id)
                .await?
                .ok_or(OrderError::NotFound(order_id))?;
            let change = match decide(&read) {
                Reaction::Ignore { why } => return Ok(Heard::Ignored(why)),
                Reaction::Change(change) => change,
            };
            // Strictly later than the version read, so a writer that read the same version
            // finds it changed.
            let at_ms = self.clock.now_ms().max(read.updated_at_ms + 1);
            let mut order = read.clone();
            let transitions: Vec<Transition> = change
                .transitions
                .into_iter()
                .map(|(state, note)| Transition {
                    state,
                    at_ms,
                    note: Some(note),
                })
                .collect();
            if let Some(last) = transitions.last() {
                order.state = last.state;
            }
            if change.ticket_id.is_some() {
                order.ticket_id = change.ticket_id;
            }
            if change.rejection.is_some() {
                order.rejection = change.rejection;
            }
            // Compensations are messages in the outbox: delivered, however long it takes.
            order.compensation_pending = false;
            order.updated_at_ms = at_ms;
            match self
                .store
                .record(&read, &order, &transitions, &change.publish)
                .await?
            {
                Recorded::Saved => return Ok(Heard::Changed(order.state)),
                Recorded::Conflict => continue,
            }
        }
        Err(OrderError::Repository(RepositoryError(
            format!("order {order_id} kept changing; the event will be heard again").into(),
        )))
    }

    /// Rejects orders pending for longer than `pending_timeout`, publishing the compensations
    /// their state calls for ([`SagaEvent::Expired`]); an order that moved meanwhile is left
    /// alone.
    pub async fn reconcile(
        &self,
        pending_timeout: Duration,
    ) -> Result<ReconcileReport, OrderError> {
        let mut report = ReconcileReport::default();
        let before = self.clock.now_ms() - pending_timeout.as_millis() as i64;
        let expired = SagaEvent::Expired {
            pending_timeout_ms: pending_timeout.as_millis() as u64,
        };
        for order in self.repository.stale(before).await? {
            let heard = self
                .apply(order.id, |current| {
                    if current.updated_at_ms >= before {
                        return Reaction::Ignore {
                            why: "the order moved meanwhile".into(),
                        };
                    }
                    react(current, &expired)
                })
                .await?;
            if heard == Heard::Changed(OrderState::Rejected) {
                report.expired.push(order.id);
            }
        }
        Ok(report)
    }
}

#[async_trait::async_trait]
impl Orders for ChoreographedOrders {
    async fn place(
        &self,
        request: PlaceOrder,
        idempotency_key: Option<String>,
    ) -> Result<Placed, OrderError> {
        ChoreographedOrders::place(self, request, idempotency_key).await
    }
    async fn get(&self, id: i64) -> Result<Order, OrderError> {
        self.repository
            .get(id)
            .await?
            .ok_or(OrderError::NotFound(id))
    }
    async fn list(&self, state: Option<OrderState>, limit: u32) -> Result<Vec<Order>, OrderError> {
        Ok(self.repository.list(state, limit).await?)
    }
}

#[cfg(test)]
mod tests;
