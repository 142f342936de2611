//! `/info`: the service's name, version, instance id and start time.

use serde::Serialize;

/// Who this service instance is.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    /// The service name (`OTEL_SERVICE_NAME`, else the attribute's `name`, else the package).
    pub name: String,
    /// The package version.
    pub version: String,
    /// This instance's id (`AIODS_INSTANCE_ID`, else a random UUID).
    pub instance_id: String,
    /// When the process started (RFC 3339, UTC).
    pub start_time: String,
    /// The configuration environment (`AIODS_ENV`).
    pub env: String,
}
