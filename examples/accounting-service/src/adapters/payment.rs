//! `PaymentAdapter`: a deterministic simulated payment provider, as in the seed. A real
//! provider's client replaces it behind the same [`PaymentProvider`] port.

use crate::domain::{PaymentProvider, ProviderDecision, ProviderError};

/// Approves every card except tokens starting with `tok_decline`, and amounts over 5,000.00.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SimulatedPaymentProvider;

/// Largest amount the simulated provider approves, in cents.
const LIMIT_CENTS: i64 = 500_000;

#[async_trait::async_trait]
impl PaymentProvider for SimulatedPaymentProvider {
    async fn authorize(
        &self,
        card_token: &str,
        amount_cents: i64,
        order_id: i64,
    ) -> Result<ProviderDecision, ProviderError> {
        if card_token.starts_with("tok_decline") {
            return Ok(ProviderDecision::Declined {
                reason: "card declined by the issuer".into(),
            });
        }
        if amount_cents > LIMIT_CENTS {
            return Ok(ProviderDecision::Declined {
                reason: "amount over the card's limit".into(),
            });
        }
        Ok(ProviderDecision::Approved {
            reference: format!("sim-{order_id}-{amount_cents}"),
        })
    }
}
