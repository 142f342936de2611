//! Consumer entities.

/// A customer of the food-delivery service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Its id.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// A blocked consumer cannot order.
    pub blocked: bool,
    /// The largest order total accepted, in cents.
    pub order_limit_cents: i64,
}

impl Consumer {
    /// Whether this consumer may place an order of `total_cents`; the reason when not.
    pub fn check_order(&self, total_cents: i64) -> Result<(), super::ConsumerError> {
        use super::ConsumerError;
        if total_cents <= 0 {
            return Err(ConsumerError::InvalidTotal(total_cents));
        }
        if self.blocked {
            return Err(ConsumerError::Blocked(self.id));
        }
        if total_cents > self.order_limit_cents {
            return Err(ConsumerError::LimitExceeded {
                consumer_id: self.id,
                total_cents,
                limit_cents: self.order_limit_cents,
            });
        }
        Ok(())
    }
}

/// The record of one verification, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The consumer verified.
    pub consumer_id: i64,
    /// The order total asked about.
    pub total_cents: i64,
    /// Whether the order may go ahead.
    pub approved: bool,
    /// Why not, when refused.
    pub reason: Option<String>,
}
