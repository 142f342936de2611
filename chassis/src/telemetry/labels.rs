//! The label values of the HTTP metrics, shared by the server middleware and the client:
//! bounded sets of static strings, so recording a sample does not allocate.

use http::Method;
use metrics::SharedString;

/// The method label: the standard methods as themselves, anything else `_OTHER` (bounded
/// cardinality, as the OpenTelemetry conventions say).
pub(crate) fn method_label(method: &Method) -> SharedString {
    SharedString::const_str(METHODS[method_index(method)])
}

/// The method labels, indexed by [`method_index`].
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "_OTHER",
];

/// Where `method`'s label is in [`METHODS`].
pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => 9,
    }
}

/// The status code as a static string for the common codes (no allocation on the hot path).
pub(crate) fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    const COMMON: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    match COMMON.iter().find(|(code, _)| *code == status) {
        Some((_, s)) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(status.to_string()),
    }
}
