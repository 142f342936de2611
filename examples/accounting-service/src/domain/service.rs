//! The accounting service: `authorizePayment()` of the seed's figure 27.

use std::sync::Arc;

use super::{
    AccountingError, AccountingRepository, Authorization, AuthorizationState, NewAuthorization,
    PaymentProvider, ProviderDecision,
};

/// Authorizes and voids payments.
pub struct AccountingService {
    repository: Arc<dyn AccountingRepository>,
    provider: Arc<dyn PaymentProvider>,
}

impl AccountingService {
    /// A service over `repository`, asking `provider`.
    pub fn new(
        repository: Arc<dyn AccountingRepository>,
        provider: Arc<dyn PaymentProvider>,
    ) -> Self {
        Self {
            repository,
            provider,
        }
    }

    /// The authorization with `id`.
    pub async fn authorization(&self, id: i64) -> Result<Option<Authorization>, AccountingError> {
        Ok(self.repository.authorization(id).await?)
    }

    /// Authorizes the payment of `order_id`. The outcome is stored (declines included) and a
    /// repeated request gets the stored outcome, so the provider is asked once per order.
    pub async fn authorize(
        &self,
        order_id: i64,
        consumer_id: i64,
        amount_cents: i64,
    ) -> Result<Authorization, AccountingError> {
        if amount_cents <= 0 {
            return Err(AccountingError::InvalidAmount(amount_cents));
        }
        let existing = self.repository.authorization_for_order(order_id).await?;
        let authorization = match existing {
            Some(a) if a.consumer_id != consumer_id || a.amount_cents != amount_cents => {
                return Err(AccountingError::Conflict(order_id));
            }
            Some(a) => a,
            None => {
                let account = self
                    .repository
                    .account(consumer_id)
                    .await?
                    .ok_or(AccountingError::UnknownAccount(consumer_id))?;
                let decision = self
                    .provider
                    .authorize(&account.card_token, amount_cents, order_id)
                    .await?;
                let (state, provider_reference, reason) = match decision {
                    ProviderDecision::Approved { reference } => {
                        (AuthorizationState::Authorized, Some(reference), None)
                    }
                    ProviderDecision::Declined { reason } => {
                        (AuthorizationState::Declined, None, Some(reason))
                    }
                };
                self.repository
                    .insert(&NewAuthorization {
                        order_id,
                        consumer_id,
                        amount_cents,
                        state,
                        provider_reference,
                        reason,
                    })
                    .await?
            }
        };
        match authorization.state {
            AuthorizationState::Authorized => Ok(authorization),
            AuthorizationState::Declined => Err(AccountingError::Declined {
                order_id,
                reason: authorization.reason.unwrap_or_default(),
            }),
            AuthorizationState::Voided => Err(AccountingError::Declined {
                order_id,
                reason: "the authorization was voided".into(),
            }),
        }
    }

    /// Voids the authorization of `order_id` (the saga's compensation). Nothing to void is
    /// fine; the answer is the authorization, if any.
    pub async fn void(&self, order_id: i64) -> Result<Option<Authorization>, AccountingError> {
        let Some(mut a) = self.repository.authorization_for_order(order_id).await? else {
            return Ok(None);
        };
        if a.state == AuthorizationState::Authorized {
            self.repository
                .set_state(a.id, AuthorizationState::Voided)
                .await?;
            a.state = AuthorizationState::Voided;
        }
        Ok(Some(a))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::adapters::payment::SimulatedPaymentProvider;
    use crate::domain::{Account, RepositoryError};

    #[derive(Default)]
    struct InMemory {
        accounts: Vec<Account>,
        authorizations: Mutex<Vec<Authorization>>,
    }

    #[async_trait::async_trait]
    impl AccountingRepository for InMemory {
        async fn account(&self, consumer_id: i64) -> Result<Option<Account>, RepositoryError> {
            Ok(self
                .accounts
                .iter()
                .find(|a| a.consumer_id == consumer_id)
                .cloned())
        }
        async fn authorization_for_order(
            &self,
            order_id: i64,
        ) -> Result<Option<Authorization>, RepositoryError> {
            let all = self.authorizations.lock().expect("lock");
            Ok(all.iter().find(|a| a.order_id == order_id).cloned())
        }
        async fn authorization(&self, id: i64) -> Result<Option<Authorization>, RepositoryError> {
            let all = self.authorizations.lock().expect("lock");
            Ok(all.iter().find(|a| a.id == id).cloned())
        }
        async fn insert(&self, n: &NewAuthorization) -> Result<Authorization, RepositoryError> {
            let mut all = self.authorizations.lock().expect("lock");
            let a = Authorization {
                id: all.len() as i64 + 1,
                order_id: n.order_id,
                consumer_id: n.consumer_id,
                amount_cents: n.amount_cents,
                state: n.state,
                provider_reference: n.provider_reference.clone(),
                reason: n.reason.clone(),
            };
            all.push(a.clone());
            Ok(a)
        }
        async fn set_state(
            &self,
            id: i64,
            state: AuthorizationState,
        ) -> Result<(), RepositoryError> {
            let mut all = self.authorizations.lock().expect("lock");
            if let Some(a) = all.iter_mut().find(|a| a.id == id) {
                a.state = state;
            }
            Ok(())
        }
    }

    fn service() -> (AccountingService, Arc<InMemory>) {
        let account = |consumer_id, card: &str| Account {
            consumer_id,
            holder: "h".into(),
            card_token: card.into(),
        };
        let repo = Arc::new(InMemory {
            accounts: vec![account(1, "tok_visa_4242"), account(5, "tok_decline_0002")],
            ..Default::default()
        });
        (
            AccountingService::new(repo.clone(), Arc::new(SimulatedPaymentProvider)),
            repo,
        )
    }

    #[tokio::test]
    async fn a_payment_is_authorized_once_per_order_and_voided() {
        let (svc, repo) = service();
        let a = svc.authorize(10, 1, 2500).await.expect("authorized");
        assert_eq!(a.state, AuthorizationState::Authorized);
        let again = svc.authorize(10, 1, 2500).await.expect("same");
        assert_eq!(again.id, a.id);
        assert!(matches!(
            svc.authorize(10, 1, 9999).await,
            Err(AccountingError::Conflict(10))
        ));
        let voided = svc.void(10).await.expect("void").expect("found");
        assert_eq!(voided.state, AuthorizationState::Voided);
        assert!(svc.void(11).await.expect("nothing to void").is_none());
        assert_eq!(repo.authorizations.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_declined_card_is_stored_and_refused_and_unknown_accounts_too() {
        let (svc, repo) = service();
        assert!(matches!(
            svc.authorize(20, 5, 1000).await,
            Err(AccountingError::Declined { order_id: 20, .. })
        ));
        let stored = repo.authorizations.lock().expect("lock").clone();
        assert_eq!(stored[0].state, AuthorizationState::Declined);
        assert!(matches!(
            svc.authorize(21, 6, 1000).await,
            Err(AccountingError::UnknownAccount(6))
        ));
        assert!(matches!(
            svc.authorize(22, 1, 0).await,
            Err(AccountingError::InvalidAmount(0))
        ));
    }
}
