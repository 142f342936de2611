//! The choreographed saga's state machine: an order and what the order service heard give the
//! order's next state and the messages to publish. Pure: no storage, no clock, no broker.

use food_events::{Failure, OrderDetails, OrderMessage, Refusal, Step};

use crate::domain::{Order, OrderState, Rejection, SagaStep, StepFailure};

/// What the order service hears about an order during the choreographed saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaEvent {
    /// `consumers.verified`.
    ConsumerVerified,
    /// `consumers.rejected`.
    ConsumerRejected(Refusal),
    /// `kitchen.ticket_created`.
    TicketCreated {
        /// The ticket.
        ticket_id: i64,
    },
    /// `kitchen.ticket_rejected`.
    TicketRejected(Refusal),
    /// `accounting.authorized`.
    PaymentAuthorized {
        /// The ticket paid for.
        ticket_id: i64,
        /// The authorization.
        authorization_id: i64,
    },
    /// `accounting.declined`.
    PaymentDeclined {
        /// The ticket that was to be paid for.
        ticket_id: i64,
        /// Why.
        refusal: Refusal,
    },
    /// The reconciler found the order pending for longer than the timeout.
    Expired {
        /// The timeout, in milliseconds.
        pending_timeout_ms: u64,
    },
}

/// The change an event makes to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaChange {
    /// The states entered, in order, each with its history note (the last is the order's new
    /// state; a state entered again is a note).
    pub transitions: Vec<(OrderState, String)>,
    /// The order's ticket, when the event made it known.
    pub ticket_id: Option<i64>,
    /// Why the order is rejected, when the event rejects it.
    pub rejection: Option<Rejection>,
    /// What to publish, through the outbox, in the same transaction.
    pub publish: Vec<OrderMessage>,
}

/// What the order service does with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing: the event repeats what the order already records, or comes after the order
    /// settled and needs no undoing.
    Ignore {
        /// Why, for the log.
        why: String,
    },
    /// The order changes.
    Change(SagaChange),
}

/// The wire view of an order, carried by every event.
pub fn details(order: &Order) -> OrderDetails {
    OrderDetails {
        order_id: order.id,
        placed_at_ms: order.created_at_ms,
        consumer_id: order.consumer_id,
        restaurant_id: order.restaurant_id,
        lines: order
            .lines
            .iter()
            .map(|l| food_events::OrderLine {
                menu_item_id: l.menu_item_id,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        total_cents: order.total_cents,
    }
}

/// What to publish when `order` has just been stored: `orders.created`.
pub fn announce(order: &Order) -> Vec<OrderMessage> {
    vec![OrderMessage::created(&details(order))]
}

/// The order service's reaction to `event` about `order`.
///
/// - While pending: a verification is a note; a ticket moves the order to `CREATE_PENDING`;
///   an authorization to `PAYMENT_CONFIRMED` and `APPROVED`, publishing `orders.approved`
///   (the kitchen confirms the ticket on it). A refusal rejects it, publishing
///   `orders.rejected` and the compensations what was done needs: a declined payment cancels
///   the ticket; an expired order cancels whatever ticket and voids whatever payment it has.
///   Events may arrive out of order (each subject has its own consumer): an authorization
///   before its ticket still approves.
/// - Once rejected: a ticket or an authorization that comes later (the step ran after the
///   order expired) is undone: the ticket cancelled, the payment voided.
/// - Once approved, and for anything else: nothing.
pub fn react(order: &Order, event: &SagaEvent) -> Reaction {
    let wire = details(order);
    match (order.state, event) {
        (OrderState::Approved, _) => ignore("the order is already approved"),
        (OrderState::Rejected, SagaEvent::TicketCreated { ticket_id }) => {
            if order.ticket_id == Some(*ticket_id) {
                return ignore("its cancellation was already requested");
            }
            Reaction::Change(SagaChange {
                transitions: vec![(
                    OrderState::Rejected,
                    format!(
                        "kitchen ticket {ticket_id} created after the rejection; cancelling it"
                    ),
                )],
                ticket_id: Some(*ticket_id),
                rejection: None,
                publish: vec![OrderMessage::cancel_ticket(&wire, Some(*ticket_id))],
            })
        }
        (
            OrderState::Rejected,
            SagaEvent::PaymentAuthorized {
                ticket_id,
                authorization_id,
            },
        ) => {
            let mut publish = vec![OrderMessage::void_payment(
                &wire,
                &format!("authorization-{authorization_id}"),
            )];
            if order.ticket_id != Some(*ticket_id) {
                publish.push(OrderMessage::cancel_ticket(&wire, Some(*ticket_id)));
            }
            Reaction::Change(SagaChange {
                transitions: vec![(
                    OrderState::Rejected,
                    format!(
                        "payment authorization {authorization_id} came after the rejection; \
                         voiding it"
                    ),
                )],
                ticket_id: Some(*ticket_id),
                rejection: None,
                publish,
            })
        }
        (OrderState::Rejected, _) => ignore("the order is already rejected"),
        (state, SagaEvent::ConsumerVerified) => {
            if state != OrderState::ApprovalPending {
                return ignore("the order is past the consumer step");
            }
            Reaction::Change(SagaChange {
                transitions: vec![(OrderState::ApprovalPending, "consumer verified".into())],
                ticket_id: None,
                rejection: None,
                publish: Vec::new(),
            })
        }
        (_, SagaEvent::ConsumerRejected(refusal)) => {
            Reaction::Change(reject(&wire, SagaStep::Consumer, refusal))
        }
        (state, SagaEvent::TicketCreated { ticket_id }) => {
            if state != OrderState::ApprovalPending {
                return ignore("the order already has its ticket");
            }
            Reaction::Change(SagaChange {
                transitions: vec![(
                    OrderState::CreatePending,
                    format!("kitchen ticket {ticket_id} created"),
                )],
                ticket_id: Some(*ticket_id),
                rejection: None,
                publish: Vec::new(),
            })
        }
        (_, SagaEvent::TicketRejected(refusal)) => {
            Reaction::Change(reject(&wire, SagaStep::Kitchen, refusal))
        }
        (
            _,
            SagaEvent::PaymentAuthorized {
                ticket_id,
                authorization_id,
            },
        ) => Reaction::Change(SagaChange {
            transitions: vec![
                (
                    OrderState::PaymentConfirmed,
                    format!("payment authorization {authorization_id}"),
                ),
                (
                    OrderState::Approved,
                    format!("order approved; kitchen ticket {ticket_id} to be confirmed"),
                ),
            ],
            ticket_id: Some(*ticket_id),
            rejection: None,
            publish: vec![OrderMessage::approved(&wire, *ticket_id)],
        }),
        (_, SagaEvent::PaymentDeclined { ticket_id, refusal }) => {
            let mut change = reject(&wire, SagaStep::Accounting, refusal);
            change.ticket_id = Some(*ticket_id);
            change
                .publish
                .push(OrderMessage::cancel_ticket(&wire, Some(*ticket_id)));
            append_compensation_note(&mut change, &format!("cancelling ticket {ticket_id}"));
            Reaction::Change(change)
        }
        (state, SagaEvent::Expired { pending_timeout_ms }) => {
            let refusal = Refusal {
                failure: Failure::Expired,
                code: format!("{}-{}", SagaStep::Reconciler, StepFailure::Expired),
                reason: format!("order stayed {state} for more than {pending_timeout_ms} ms"),
            };
            let mut change = reject(&wire, SagaStep::Reconciler, &refusal);
            // The reconciler's rejection has no service code, as in the orchestrated saga.
            if let Some(r) = change.rejection.as_mut() {
                r.code = None;
            }
            change
                .publish
                .push(OrderMessage::cancel_ticket(&wire, order.ticket_id));
            change
                .publish
                .push(OrderMessage::void_payment(&wire, "expired"));
            append_compensation_note(&mut change, "cancelling any ticket, voiding any payment");
            Reaction::Change(change)
        }
    }
}

fn ignore(why: &str) -> Reaction {
    Reaction::Ignore { why: why.into() }
}

fn append_compensation_note(change: &mut SagaChange, what: &str) {
    if let Some((_, note)) = change.transitions.last_mut() {
        note.push_str("; ");
        note.push_str(what);
    }
}

/// Rejects the order at `step` because of `refusal`, publishing `orders.rejected`.
fn reject(wire: &OrderDetails, step: SagaStep, refusal: &Refusal) -> SagaChange {
    let failure = match refusal.failure {
        Failure::NotFound => StepFailure::NotFound,
        Failure::Refused => StepFailure::Refused,
        Failure::Expired => StepFailure::Expired,
    };
    let wire_step = match step {
        SagaStep::Consumer => Step::Consumer,
        SagaStep::Kitchen | SagaStep::Notification => Step::Kitchen,
        SagaStep::Accounting => Step::Accounting,
        SagaStep::Reconciler => Step::Reconciler,
    };
    SagaChange {
        transitions: vec![(
            OrderState::Rejected,
            format!("{step} step failed ({failure}): {}", refusal.reason),
        )],
        ticket_id: None,
        rejection: Some(Rejection {
            step,
            failure,
            code: Some(refusal.code.clone()),
            reason: refusal.reason.clone(),
        }),
        publish: vec![OrderMessage::rejected(
            wire,
            food_events::Rejection {
                step: wire_step,
                refusal: refusal.clone(),
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderLine, Transition};

    fn order(state: OrderState, ticket_id: Option<i64>) -> Order {
        Order {
            id: 7,
            consumer_id: 1,
            restaurant_id: 1,
            lines: vec![OrderLine {
                menu_item_id: 11,
                name: "Margherita".into(),
                quantity: 2,
                unit_price_cents: 1250,
            }],
            total_cents: 2500,
            state,
            ticket_id,
            rejection: None,
            compensation_pending: false,
            idempotency_key: None,
            request_fingerprint: String::new(),
            created_at_ms: 1_000,
            updated_at_ms: 1_000,
            history: vec![Transition {
                state: OrderState::ApprovalPending,
                at_ms: 1_000,
                note: None,
            }],
        }
    }

    fn refusal(failure: Failure, code: &str) -> Refusal {
        Refusal {
            failure,
            code: code.into(),
            reason: format!("because {code}"),
        }
    }

    fn change(r: Reaction) -> SagaChange {
        match r {
            Reaction::Change(c) => c,
            Reaction::Ignore { why } => panic!("ignored: {why}"),
        }
    }

    fn subjects(c: &SagaChange) -> Vec<&'static str> {
        c.publish.iter().map(OrderMessage::subject).collect()
    }

    fn states(c: &SagaChange) -> Vec<OrderState> {
        c.transitions.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn the_happy_path_verifies_creates_the_ticket_and_approves_publishing_the_outcome() {
        let o = order(OrderState::ApprovalPending, None);
        assert_eq!(announce(&o)[0].subject(), "orders.created");

        let c = change(react(&o, &SagaEvent::ConsumerVerified));
        assert_eq!(states(&c), [OrderState::ApprovalPending]);
        assert!(c.publish.is_empty());

        let c = change(react(&o, &SagaEvent::TicketCreated { ticket_id: 3 }));
        assert_eq!(states(&c), [OrderState::CreatePending]);
        assert_eq!(c.ticket_id, Some(3));
        assert!(c.publish.is_empty());

        let o = order(OrderState::CreatePending, Some(3));
        let c = change(react(
            &o,
            &SagaEvent::PaymentAuthorized {
                ticket_id: 3,
                authorization_id: 9,
            },
        ));
        assert_eq!(
            states(&c),
            [OrderState::PaymentConfirmed, OrderState::Approved]
        );
        assert_eq!(subjects(&c), ["orders.approved"]);
        let food_events::OrderMessage::Approved(approved) = &c.publish[0] else {
            panic!("{:?}", c.publish)
        };
        assert_eq!(approved.ticket_id, 3);
        assert_eq!(approved.order.order_id, 7);
        assert_eq!(approved.order.total_cents, 2500);
    }

    #[test]
    fn an_authorization_overtaking_its_ticket_still_approves_and_the_late_ticket_is_ignored() {
        let o = order(OrderState::ApprovalPending, None);
        let c = change(react(
            &o,
            &SagaEvent::PaymentAuthorized {
                ticket_id: 3,
                authorization_id: 9,
            },
        ));
        assert_eq!(
            c.transitions.last().map(|t| t.0),
            Some(OrderState::Approved)
        );
        assert_eq!(c.ticket_id, Some(3));
        let approved = order(OrderState::Approved, Some(3));
        for late in [
            SagaEvent::TicketCreated { ticket_id: 3 },
            SagaEvent::ConsumerVerified,
            SagaEvent::Expired {
                pending_timeout_ms: 1,
            },
        ] {
            assert!(matches!(react(&approved, &late), Reaction::Ignore { .. }));
        }
        let created = order(OrderState::CreatePending, Some(3));
        assert!(matches!(
            react(&created, &SagaEvent::ConsumerVerified),
            Reaction::Ignore { .. }
        ));
        assert!(matches!(
            react(&created, &SagaEvent::TicketCreated { ticket_id: 3 }),
            Reaction::Ignore { .. }
        ));
    }

    #[test]
    fn a_refusal_by_the_consumer_or_the_kitchen_rejects_with_nothing_to_undo() {
        let o = order(OrderState::ApprovalPending, None);
        let c = change(react(
            &o,
            &SagaEvent::ConsumerRejected(refusal(Failure::Refused, "consumer-blocked")),
        ));
        assert_eq!(states(&c), [OrderState::Rejected]);
        assert_eq!(subjects(&c), ["orders.rejected"]);
        let r = c.rejection.expect("rejection");
        assert_eq!(
            (r.step, r.failure, r.code.as_deref()),
            (
                SagaStep::Consumer,
                StepFailure::Refused,
                Some("consumer-blocked")
            )
        );

        let c = change(react(
            &o,
            &SagaEvent::TicketRejected(refusal(Failure::Refused, "item-unavailable")),
        ));
        assert_eq!(subjects(&c), ["orders.rejected"]);
        assert_eq!(c.rejection.map(|r| r.step), Some(SagaStep::Kitchen));
        let food_events::OrderMessage::Rejected(rejected) = &c.publish[0] else {
            panic!("{:?}", c.publish)
        };
        assert_eq!(rejected.rejection.step, Step::Kitchen);
        assert_eq!(rejected.rejection.refusal.code, "item-unavailable");
    }

    #[test]
    fn a_declined_payment_rejects_and_cancels_the_ticket() {
        let o = order(OrderState::CreatePending, Some(3));
        let c = change(react(
            &o,
            &SagaEvent::PaymentDeclined {
                ticket_id: 3,
                refusal: refusal(Failure::Refused, "payment-declined"),
            },
        ));
        assert_eq!(states(&c), [OrderState::Rejected]);
        assert_eq!(subjects(&c), ["orders.rejected", "orders.ticket_cancel"]);
        let food_events::OrderMessage::CancelTicket(cancel) = &c.publish[1] else {
            panic!("{:?}", c.publish)
        };
        assert_eq!(cancel.ticket_id, Some(3));
        assert!(c.transitions[0].1.contains("cancelling ticket 3"));
        assert_eq!(c.rejection.map(|r| r.step), Some(SagaStep::Accounting));
    }

    #[test]
    fn an_expired_order_is_rejected_and_whatever_was_done_is_undone() {
        let o = order(OrderState::CreatePending, Some(3));
        let c = change(react(
            &o,
            &SagaEvent::Expired {
                pending_timeout_ms: 30_000,
            },
        ));
        assert_eq!(states(&c), [OrderState::Rejected]);
        assert_eq!(
            subjects(&c),
            [
                "orders.rejected",
                "orders.ticket_cancel",
                "orders.payment_void"
            ]
        );
        let r = c.rejection.expect("rejection");
        assert_eq!(
            (r.step, r.failure, r.code),
            (SagaStep::Reconciler, StepFailure::Expired, None)
        );
        assert!(r.reason.contains("CREATE_PENDING"), "{}", r.reason);
    }

    #[test]
    fn a_step_that_ran_after_the_rejection_is_undone_once() {
        let rejected = order(OrderState::Rejected, None);
        let c = change(react(&rejected, &SagaEvent::TicketCreated { ticket_id: 4 }));
        assert_eq!(states(&c), [OrderState::Rejected]);
        assert_eq!(subjects(&c), ["orders.ticket_cancel"]);
        assert_eq!(c.ticket_id, Some(4));

        // Its cancellation is recorded with the ticket: hearing of it again changes nothing.
        let cancelled = order(OrderState::Rejected, Some(4));
        assert!(matches!(
            react(&cancelled, &SagaEvent::TicketCreated { ticket_id: 4 }),
            Reaction::Ignore { .. }
        ));

        let c = change(react(
            &cancelled,
            &SagaEvent::PaymentAuthorized {
                ticket_id: 4,
                authorization_id: 8,
            },
        ));
        assert_eq!(subjects(&c), ["orders.payment_void"]);
        let c = change(react(
            &rejected,
            &SagaEvent::PaymentAuthorized {
                ticket_id: 4,
                authorization_id: 8,
            },
        ));
        assert_eq!(
            subjects(&c),
            ["orders.payment_void", "orders.ticket_cancel"]
        );

        for other in [
            SagaEvent::ConsumerVerified,
            SagaEvent::ConsumerRejected(refusal(Failure::Refused, "x")),
            SagaEvent::TicketRejected(refusal(Failure::Refused, "x")),
            SagaEvent::Expired {
                pending_timeout_ms: 1,
            },
        ] {
            assert!(matches!(react(&rejected, &other), Reaction::Ignore { .. }));
        }
    }
}
