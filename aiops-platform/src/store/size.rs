//! Estimated heap bytes of stored items: what the byte budgets of retention count.
//!
//! An estimate, not an allocator measurement: the lengths of every string and a fixed
//! overhead per record, attribute and point, so that large items count as large and many
//! small ones are not free. Cost is linear in the item's size.

use std::collections::BTreeMap;

/// Fixed cost counted per record (its struct, the queue slot, the `Arc`).
pub(super) const RECORD_OVERHEAD: usize = 256;
/// Fixed cost counted per map entry or JSON value.
const ENTRY_OVERHEAD: usize = 48;

/// Estimated bytes of a JSON value.
pub(super) fn json_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    ENTRY_OVERHEAD
        + match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(json_bytes).sum(),
            Value::Object(m) => map_bytes(m),
        }
}

/// Estimated bytes of a JSON object.
pub(super) fn map_bytes(m: &serde_json::Map<String, serde_json::Value>) -> usize {
    m.iter().map(|(k, v)| k.len() + json_bytes(v)).sum()
}

/// Estimated bytes of a label set.
pub(super) fn labels_bytes(m: &BTreeMap<String, String>) -> usize {
    m.iter()
        .map(|(k, v)| ENTRY_OVERHEAD + k.len() + v.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_count_as_large() {
        let big = serde_json::json!({"a": "x".repeat(10_000), "b": [1, 2, {"c": "yy"}]});
        let n = json_bytes(&big);
        assert!((10_000..11_000).contains(&n), "{n}");
        assert!(json_bytes(&serde_json::Value::Null) > 0);
    }
}
