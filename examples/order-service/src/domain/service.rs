//! The order service (figure 24): places orders through the saga, compensates failures and
//! reconciles orders left pending.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    AccountingPort, Clock, ConsumerPort, Inserted, KitchenPort, NewOrder, NotificationPort, Order,
    OrderError, OrderLine, OrderRepository, OrderState, Orders, PlaceOrder, Rejection, SagaStep,
    StepError, StepFailure, Transition,
};

/// An order placed (or found again by its idempotency key).
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// True when the idempotency key matched an earlier request.
    pub replayed: bool,
}

/// What one reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Orders left pending too long, now rejected.
    pub expired: Vec<i64>,
    /// Rejected orders whose compensation now completed.
    pub compensated: Vec<i64>,
    /// Rejected orders whose compensation still fails.
    pub still_pending: Vec<i64>,
}

/// The ports the order service calls.
pub struct OrderPorts {
    /// Orders storage.
    pub repository: Arc<dyn OrderRepository>,
    /// The consumer service.
    pub consumer: Arc<dyn ConsumerPort>,
    /// The kitchen service.
    pub kitchen: Arc<dyn KitchenPort>,
    /// The accounting service.
    pub accounting: Arc<dyn AccountingPort>,
    /// The notification service.
    pub notification: Arc<dyn NotificationPort>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// Orchestrates the create-order saga.
pub struct OrderService {
    ports: OrderPorts,
    /// Orders whose saga runs in this process: the reconciler leaves them alone.
    in_flight: Arc<Mutex<HashSet<i64>>>,
}

/// Removes an order from the in-flight set when its saga ends, however it ends.
struct InFlight {
    set: Arc<Mutex<HashSet<i64>>>,
    id: i64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

impl OrderService {
    /// A service calling `ports`.
    pub fn new(ports: OrderPorts) -> Self {
        Self {
            ports,
            in_flight: Default::default(),
        }
    }

    /// The order with `id` and its history.
    pub async fn get(&self, id: i64) -> Result<Order, OrderError> {
        self.ports
            .repository
            .get(id)
            .await?
            .ok_or(OrderError::NotFound(id))
    }

    /// The latest orders, optionally in one state.
    pub async fn list(
        &self,
        state: Option<OrderState>,
        limit: u32,
    ) -> Result<Vec<Order>, OrderError> {
        Ok(self.ports.repository.list(state, limit).await?)
    }

    /// Places an order: stores it `APPROVAL_PENDING` and runs the saga to `APPROVED`, or to
    /// `REJECTED` with compensation. A repeated `idempotency_key` returns the first order.
    pub async fn place(
        &self,
        request: PlaceOrder,
        idempotency_key: Option<String>,
    ) -> Result<Placed, OrderError> {
        request.validate()?;
        let fingerprint = request.fingerprint();
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.ports.repository.find_by_idempotency_key(key).await?
        {
            if existing.request_fingerprint == fingerprint
                && existing.state.is_pending()
                && !self.is_in_flight(existing.id)
            {
                return self.resume(existing).await;
            }
            return replay(existing, key, &fingerprint);
        }
        let lines = price(self.ports.kitchen.as_ref(), &request).await?;
        let new = new_order(
            &request,
            lines,
            idempotency_key.clone(),
            fingerprint.clone(),
            self.ports.clock.now_ms(),
        );
        let order = match self.ports.repository.insert(&new).await? {
            Inserted::Created(order) => order,
            Inserted::Existing(existing) => {
                return replay(
                    existing,
                    idempotency_key.as_deref().unwrap_or(""),
                    &fingerprint,
                );
            }
        };
        let _guard = self.track(order.id);
        let order = self.run_saga(order).await?;
        Ok(Placed {
            order,
            replayed: false,
        })
    }

    /// Runs the saga again for a pending order nobody in this process is working on: the
    /// instance that started it died mid-saga and the request was retried (the gateway retries
    /// a request carrying an `Idempotency-Key` when its connection broke). Every step is
    /// idempotent per order, so starting over finishes what was begun instead of answering
    /// with an order stuck in a pending state.
    async fn resume(&self, mut order: Order) -> Result<Placed, OrderError> {
        let _guard = self.track(order.id);
        tracing::info!(order_id = order.id, state = %order.state, "resuming an interrupted saga");
        let state = order.state;
        self.advance(
            &mut order,
            state,
            "saga resumed: the request was retried after the instance running it stopped".into(),
        )
        .await?;
        let order = self.run_saga(order).await?;
        Ok(Placed {
            order,
            replayed: true,
        })
    }

    fn track(&self, id: i64) -> InFlight {
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(id);
        }
        InFlight {
            set: self.in_flight.clone(),
            id,
        }
    }

    fn is_in_flight(&self, id: i64) -> bool {
        self.in_flight
            .lock()
            .map(|s| s.contains(&id))
            .unwrap_or(false)
    }

    async fn run_saga(&self, mut order: Order) -> Result<Order, OrderError> {
        let p = &self.ports;
        if let Err(e) = again(|| p.consumer.verify(order.consumer_id, order.total_cents)).await {
            return Err(self.reject(order, SagaStep::Consumer, e).await);
        }
        let ticket_id = match again(|| p.kitchen.create_ticket(&order)).await {
            Ok(id) => id,
            Err(e) => return Err(self.reject(order, SagaStep::Kitchen, e).await),
        };
        order.ticket_id = Some(ticket_id);
        self.advance(
            &mut order,
            OrderState::CreatePending,
            format!("kitchen ticket {ticket_id} created"),
        )
        .await?;
        let authorization = match again(|| p.accounting.authorize(&order)).await {
            Ok(id) => id,
            Err(e) => return Err(self.reject(order, SagaStep::Accounting, e).await),
        };
        self.advance(
            &mut order,
            OrderState::PaymentConfirmed,
            format!("payment authorization {authorization}"),
        )
        .await?;
        if let Err(e) = again(|| p.kitchen.confirm_ticket(ticket_id)).await {
            return Err(self.reject(order, SagaStep::Kitchen, e).await);
        }
        self.advance(
            &mut order,
            OrderState::Approved,
            format!("kitchen ticket {ticket_id} accepted"),
        )
        .await?;
        // The order is approved whatever happens to the message: it is recorded, not undone.
        let note = match p.notification.notify(&order).await {
            Ok(()) => "customer notified".to_owned(),
            Err(e) => {
                tracing::warn!(order_id = order.id, error = %e, "notification failed");
                format!("notification failed: {e}")
            }
        };
        self.advance(&mut order, OrderState::Approved, note).await?;
        Ok(order)
    }

    async fn advance(
        &self,
        order: &mut Order,
        state: OrderState,
        note: String,
    ) -> Result<(), OrderError> {
        let transition = Transition {
            state,
            at_ms: self.ports.clock.now_ms(),
            note: Some(note),
        };
        order.state = state;
        order.updated_at_ms = transition.at_ms;
        self.ports.repository.update(order, &transition).await?;
        order.history.push(transition);
        Ok(())
    }

    /// Rejects `order` because `step` failed, compensates, stores it; the error to return.
    async fn reject(&self, mut order: Order, step: SagaStep, error: StepError) -> OrderError {
        let reached = order.state;
        order.rejection = Some(Rejection {
            step,
            failure: error.failure,
            code: error.code.clone(),
            reason: error.detail.clone(),
        });
        order.compensation_pending = true;
        let compensated = self
            .compensate(&mut order, reached, step, error.failure)
            .await;
        let note = format!(
            "{step} step failed ({}): {}{compensated}",
            error.failure, error.detail
        );
        match self.advance(&mut order, OrderState::Rejected, note).await {
            Ok(()) => OrderError::Rejected(Box::new(order)),
            Err(e) => e,
        }
    }

    /// Undoes what the saga may have done: voids the payment and cancels the ticket. Sets
    /// `compensation_pending` when something could not be undone now; a summary for the history.
    async fn compensate(
        &self,
        order: &mut Order,
        reached: OrderState,
        step: SagaStep,
        failure: StepFailure,
    ) -> String {
        let p = &self.ports;
        let mut undone = Vec::new();
        let mut failed = Vec::new();
        // The accounting service was called once the ticket existed; a definite refusal from
        // it means nothing was authorized.
        let accounting_called = reached >= OrderState::CreatePending;
        let refused_by_accounting = step == SagaStep::Accounting && failure.is_definite();
        if accounting_called && !refused_by_accounting {
            match p.accounting.void(order.id).await {
                Ok(()) => undone.push("payment voided".to_owned()),
                Err(e) => failed.push(format!("payment void failed: {e}")),
            }
        }
        // A kitchen call that failed without a definite answer may still have created the
        // ticket; so may a saga that died before recording it.
        let ticket = match order.ticket_id {
            Some(id) => Ok(Some(id)),
            None if (step == SagaStep::Kitchen && !failure.is_definite())
                || step == SagaStep::Reconciler =>
            {
                p.kitchen.find_ticket(order.id).await
            }
            None => Ok(None),
        };
        match ticket {
            Ok(Some(id)) => {
                order.ticket_id = Some(id);
                match p.kitchen.cancel_ticket(id).await {
                    Ok(()) => undone.push(format!("ticket {id} cancelled")),
                    Err(e) => failed.push(format!("ticket {id} cancel failed: {e}")),
                }
            }
            Ok(None) => {}
            Err(e) => failed.push(format!("ticket lookup failed: {e}")),
        }
        order.compensation_pending = !failed.is_empty();
        let mut summary: Vec<String> = undone;
        summary.extend(failed);
        if summary.is_empty() {
            String::new()
        } else {
            format!("; {}", summary.join("; "))
        }
    }

    /// Rejects orders pending for longer than `pending_timeout` (compensating them) and retries
    /// failed compensations. Orders whose saga runs in this process are left alone.
    pub async fn reconcile(
        &self,
        pending_timeout: Duration,
    ) -> Result<ReconcileReport, OrderError> {
        let mut report = ReconcileReport::default();
        let now = self.ports.clock.now_ms();
        let before = now - pending_timeout.as_millis() as i64;
        for order in self.ports.repository.stale(before).await? {
            if self.is_in_flight(order.id) {
                continue;
            }
            let id = order.id;
            let error = StepError::new(
                StepFailure::Expired,
                format!(
                    "order stayed {} for more than {} ms",
                    order.state,
                    pending_timeout.as_millis()
                ),
            );
            match self.reject(order, SagaStep::Reconciler, error).await {
                OrderError::Rejected(_) => report.expired.push(id),
                other => return Err(other),
            }
        }
        for mut order in self.ports.repository.compensation_pending().await? {
            if self.is_in_flight(order.id) {
                continue;
            }
            let (step, failure) = order
                .rejection
                .as_ref()
                .map(|r| (r.step, r.failure))
                .unwrap_or((SagaStep::Reconciler, StepFailure::Expired));
            // The furthest the saga could have got: the history says.
            let reached = order
                .history
                .iter()
                .map(|t| t.state)
                .filter(|s| s.is_pending())
                .max()
                .unwrap_or(OrderState::ApprovalPending);
            let summary = self.compensate(&mut order, reached, step, failure).await;
            let id = order.id;
            let done = !order.compensation_pending;
            let note = format!("compensation retried{summary}");
            self.advance(&mut order, OrderState::Rejected, note).await?;
            if done {
                report.compensated.push(id);
            } else {
                report.still_pending.push(id);
            }
        }
        Ok(report)
    }
}

/// Prices the lines against the kitchen's menu; unknown items are refused here.
pub(super) async fn price(
    kitchen: &dyn KitchenPort,
    request: &PlaceOrder,
) -> Result<Vec<OrderLine>, OrderError> {
    let menu = kitchen
        .menu(request.restaurant_id)
        .await
        .map_err(|error| match error.failure {
            StepFailure::NotFound => OrderError::UnknownRestaurant(request.restaurant_id),
            _ => OrderError::StepFailed {
                step: SagaStep::Kitchen,
                error,
            },
        })?;
    request
        .lines
        .iter()
        .map(|line| {
            let item = menu.iter().find(|i| i.id == line.menu_item_id).ok_or(
                OrderError::UnknownMenuItem {
                    restaurant_id: request.restaurant_id,
                    menu_item_id: line.menu_item_id,
                },
            )?;
            Ok(OrderLine {
                menu_item_id: item.id,
                name: item.name.clone(),
                quantity: line.quantity,
                unit_price_cents: item.price_cents,
            })
        })
        .collect()
}

/// The order `request` makes once priced, `APPROVAL_PENDING`.
pub(super) fn new_order(
    request: &PlaceOrder,
    lines: Vec<OrderLine>,
    idempotency_key: Option<String>,
    request_fingerprint: String,
    created_at_ms: i64,
) -> NewOrder {
    NewOrder {
        consumer_id: request.consumer_id,
        restaurant_id: request.restaurant_id,
        total_cents: lines.iter().map(|l| l.quantity * l.unit_price_cents).sum(),
        lines,
        idempotency_key,
        request_fingerprint,
        created_at_ms,
    }
}

#[async_trait::async_trait]
impl Orders for OrderService {
    async fn place(
        &self,
        request: PlaceOrder,
        idempotency_key: Option<String>,
    ) -> Result<Placed, OrderError> {
        OrderService::place(self, request, idempotency_key).await
    }
    async fn get(&self, id: i64) -> Result<Order, OrderError> {
        OrderService::get(self, id).await
    }
    async fn list(&self, state: Option<OrderState>, limit: u32) -> Result<Vec<Order>, OrderError> {
        OrderService::list(self, state, limit).await
    }
}

/// The answer to a request whose idempotency key names `existing`: the order again, or its
/// rejection again, unless the key was used for a different request.
pub(super) fn replay(existing: Order, key: &str, fingerprint: &str) -> Result<Placed, OrderError> {
    if existing.request_fingerprint != fingerprint {
        return Err(OrderError::IdempotencyMismatch(key.to_owned()));
    }
    if existing.state == OrderState::Rejected {
        return Err(OrderError::Rejected(Box::new(existing)));
    }
    Ok(Placed {
        order: existing,
        replayed: true,
    })
}

/// Pauses before the retries of a step whose service did not answer.
const STEP_RETRY_PAUSES_MS: [u64; 3] = [50, 200, 500];

/// Runs a saga step, again after a short pause when its service was unavailable (the
/// connection broke, or a gateway answered 502/503): every step is idempotent per order
/// (one ticket and one authorization per order id, confirming twice is confirming once),
/// so a retry is safe, and a service restarted by the platform answers within
/// milliseconds. Refusals, unknown entities and timeouts are not retried.
async fn again<T, F, Fut>(mut step: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let mut pauses = STEP_RETRY_PAUSES_MS.iter();
    loop {
        match step().await {
            Err(e) if e.failure == StepFailure::Unavailable => match pauses.next() {
                Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(*ms)).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
