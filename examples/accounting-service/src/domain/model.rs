//! Accounting entities.

/// A consumer's payment account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The consumer it belongs to.
    pub consumer_id: i64,
    /// The card holder.
    pub holder: String,
    /// The provider's token for the card.
    pub card_token: String,
}

/// The state of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationState {
    /// The provider accepted it.
    Authorized,
    /// The provider declined it.
    Declined,
    /// Voided by the order saga's compensation.
    Voided,
}

impl AuthorizationState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "AUTHORIZED",
            Self::Declined => "DECLINED",
            Self::Voided => "VOIDED",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Authorized, Self::Declined, Self::Voided]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// What the payment provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderDecision {
    /// Accepted, with the provider's reference.
    Approved {
        /// The provider's reference.
        reference: String,
    },
    /// Declined, with the provider's reason.
    Declined {
        /// Why.
        reason: String,
    },
}

/// An authorization about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthorization {
    /// The order paid.
    pub order_id: i64,
    /// The paying consumer.
    pub consumer_id: i64,
    /// The amount, in cents.
    pub amount_cents: i64,
    /// The outcome.
    pub state: AuthorizationState,
    /// The provider's reference when approved.
    pub provider_reference: Option<String>,
    /// The provider's reason when declined.
    pub reason: Option<String>,
}

/// A payment authorization (one per order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Its id.
    pub id: i64,
    /// The order paid.
    pub order_id: i64,
    /// The paying consumer.
    pub consumer_id: i64,
    /// The amount, in cents.
    pub amount_cents: i64,
    /// Its state.
    pub state: AuthorizationState,
    /// The provider's reference when approved.
    pub provider_reference: Option<String>,
    /// The provider's reason when declined.
    pub reason: Option<String>,
}
