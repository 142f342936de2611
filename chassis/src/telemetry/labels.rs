//! The label values of the HTTP metrics, shared by the server middleware and the client:
//! bounded sets of static strings, so recording a sample does not allocate.

use http::Method;
use metrics::SharedString;

/// The method label: the standard methods as themselves, anything else `_OTHER` (bounded
/// cardinality, as the OpenTelemetry conventions say).
pub(crate) fn method_label(method: &Method) -> SharedString {
    let m: &'static str = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    };
    SharedString::const_str(m)
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
