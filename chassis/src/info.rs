//! `/info`: the service's name, version, instance id and start time.

use serde::Serialize;

/// Who this service instance is.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    /// The service name (`OTEL_SERVICE_NAME`, else `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else the attribute's `name`, else the package).
    pub name: String,
    /// The package version.
    pub version: String,
    /// This instance's id (`AIODS_INSTANCE_ID`, else `service.instance.id` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else a random UUID).
    pub instance_id: String,
    /// When the process started (RFC 3339, UTC).
    pub start_time: String,
    /// The configuration environment (`AIODS_ENV`).
    pub env: String,
}

/// Picks an identity value: the dedicated setting, else the resource attribute, else the
/// fallback — the order OpenTelemetry gives `OTEL_SERVICE_NAME` over `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn pick(
    setting: Option<String>,
    resource_attribute: Option<String>,
    fallback: impl FnOnce() -> String,
) -> String {
    let given = |v: &String| !v.trim().is_empty();
    setting
        .filter(given)
        .or(resource_attribute.filter(given))
        .unwrap_or_else(fallback)
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn the_setting_wins_then_the_resource_attribute_then_the_fallback() {
        let fallback = || "random".to_owned();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(pick(s("a"), s("b"), fallback), "a");
        assert_eq!(pick(None, s("b"), fallback), "b");
        assert_eq!(pick(s(" "), s("b"), fallback), "b");
        assert_eq!(pick(None, s(""), fallback), "random");
        assert_eq!(pick(None, None, fallback), "random");
    }
}
