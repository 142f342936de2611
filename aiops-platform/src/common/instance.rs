//! [`InstanceId`]: the name of one running copy of a service, shared by the supervisor, the
//! gateway's routing table and the incident ledger (so none of them imports another for it).

use serde::Serialize;

/// One instance of a service: `order#0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct InstanceId {
    /// The service.
    pub service: String,
    /// Its index among the service's replicas.
    pub index: u32,
}

impl InstanceId {
    /// `service#index`.
    pub fn new(service: impl Into<String>, index: u32) -> Self {
        Self {
            service: service.into(),
            index,
        }
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.service, self.index)
    }
}

/// A text that is not `service#index`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an instance id (service#index)")]
pub struct InstanceIdError(pub String);

impl std::str::FromStr for InstanceId {
    type Err = InstanceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (service, index) = s
            .rsplit_once('#')
            .ok_or_else(|| InstanceIdError(s.to_owned()))?;
        let index = index.parse().map_err(|_| InstanceIdError(s.to_owned()))?;
        if service.is_empty() {
            return Err(InstanceIdError(s.to_owned()));
        }
        Ok(Self::new(service, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        let id = InstanceId::new("order-service", 3);
        assert_eq!(id.to_string().parse::<InstanceId>(), Ok(id));
        assert!("order".parse::<InstanceId>().is_err());
        assert!("#1".parse::<InstanceId>().is_err());
        assert!("a#b".parse::<InstanceId>().is_err());
    }
}
