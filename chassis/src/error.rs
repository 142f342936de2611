//! Errors that become RFC 7807 `application/problem+json` responses.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of an RFC 7807 problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The result type of chassis and service code: `Result<T, aiods::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An RFC 7807 problem document.
///
/// ```
/// use aiods::Problem;
/// use axum::http::StatusCode;
///
/// let problem = Problem::new(StatusCode::CONFLICT).with_detail("order 42 was already paid");
/// assert_eq!(problem.status, 409);
/// assert_eq!(problem.title, "Conflict");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// A URI reference identifying the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub type_uri: Cow<'static, str>,
    /// A short, human-readable summary of the problem type.
    pub title: Cow<'static, str>,
    /// The HTTP status code.
    pub status: u16,
    /// A human-readable explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A URI reference identifying this occurrence (the request path, usually).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members, flattened into the document.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem for `status`, titled with the status's canonical reason.
    pub fn new(status: StatusCode) -> Self {
        Self {
            type_uri: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            detail: None,
            instance: None,
            extensions: serde_json::Map::new(),
        }
    }

    /// Sets the `detail` member.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the `title` member.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the `type` member.
    #[must_use]
    pub fn with_type(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    /// Sets the `instance` member.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Adds an extension member (for example `"step": "kitchen"`).
    #[must_use]
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.extensions.insert(key.into(), value);
        self
    }

    /// The status as a [`StatusCode`] (500 if the stored number is not a valid status).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// The OpenAPI schema of a problem document, for documenting error responses:
/// `responses((status = 404, body = aiods::error::ProblemDetails, content_type = "application/problem+json"))`.
///
/// It describes what [`Problem`] serialises to: the RFC 7807 members and the extension members
/// the chassis and the example services use.
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct ProblemDetails {
    /// A URI naming the problem type (`about:blank` when the status says it all).
    #[schema(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this occurrence.
    pub detail: Option<String>,
    /// The request path.
    pub instance: Option<String>,
    /// A machine-readable code, when the service gives one (`consumer-blocked`, …).
    pub code: Option<String>,
    /// The other service that failed, for errors of calls made through [`crate::Client`].
    pub upstream: Option<String>,
}

/// A server error (a 5xx [`Error`], or a panic) as exception tracking reports it. A 5xx
/// [`Error`] puts one in its response's extensions; the exception layer takes it from there.
#[derive(Debug, Clone)]
pub struct ServerErrorReport {
    /// The error type, for grouping (for example `aiods::Error::Internal`, or `panic`).
    pub kind: &'static str,
    /// The error with its source chain, `: `-separated.
    pub message: String,
    /// Where it happened, when known (a panic's `file:line:column`).
    pub location: Option<String>,
    /// The stack trace (`std::backtrace` format), when exception tracking is on.
    pub stacktrace: Option<String>,
    /// Whether the failure was unexpected (`Error::Internal`, a panic): only then is a stack
    /// trace worth its cost.
    pub unexpected: bool,
}

/// The error type of aiods services. Every variant maps to a problem+json response.
///
/// ```
/// use aiods::Error;
///
/// async fn find_order(id: u64) -> aiods::Result<String> {
///     if id == 0 {
///         return Err(Error::not_found(format!("no order {id}")));
///     }
///     Ok(format!("order {id}"))
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The resource does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with the resource's state (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is well-formed but semantically invalid (422).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// The caller is not authorised (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The service cannot serve now (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A call to another service failed (502, or 504 on timeout).
    #[error("upstream {upstream} failed: {message}")]
    Upstream {
        /// The name of the upstream service.
        upstream: String,
        /// What went wrong.
        message: String,
        /// The upstream's status code, when it answered.
        status: Option<u16>,
        /// Whether the call timed out (gives 504).
        timed_out: bool,
        /// The upstream's own problem document, when it answered with one.
        problem: Option<Box<Problem>>,
    },
    /// A fully specified problem.
    #[error("{}", .0.detail.as_deref().unwrap_or(&.0.title))]
    Problem(Box<Problem>),
    /// An unexpected failure (500). The message is reported as an exception, not sent to
    /// the client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// A 400 error.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }
    /// A 404 error.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(detail.into())
    }
    /// A 409 error.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(detail.into())
    }
    /// A 422 error.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::Unprocessable(detail.into())
    }
    /// A 503 error.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(detail.into())
    }
    /// A 500 error wrapping any error.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Internal(source.into())
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Problem(p) => p.status_code(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "aiods::Error::BadRequest",
            Self::NotFound(_) => "aiods::Error::NotFound",
            Self::Conflict(_) => "aiods::Error::Conflict",
            Self::Unprocessable(_) => "aiods::Error::Unprocessable",
            Self::Unauthorized(_) => "aiods::Error::Unauthorized",
            Self::Unavailable(_) => "aiods::Error::Unavailable",
            Self::Upstream { .. } => "aiods::Error::Upstream",
            Self::Problem(_) => "aiods::Error::Problem",
            Self::Internal(_) => "aiods::Error::Internal",
        }
    }

    /// The problem document sent to the client.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        match self {
            Self::BadRequest(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Unprocessable(d)
            | Self::Unauthorized(d)
            | Self::Unavailable(d) => Problem::new(status).with_detail(d.clone()),
            Self::Upstream {
                upstream,
                message,
                problem,
                ..
            } => {
                let mut p = Problem::new(status)
                    .with_detail(format!("call to {upstream} failed: {message}"))
                    .with_extension("upstream", upstream);
                if let Some(inner) = problem {
                    p = p.with_extension("upstream_problem", inner.as_ref());
                }
                p
            }
            Self::Problem(p) => p.as_ref().clone(),
            // Internal details stay in logs and exception reports, not in the response.
            Self::Internal(_) => Problem::new(status)
                .with_detail("the service failed to handle the request; it has been reported"),
        }
    }
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

/// Renders an error with its source chain, `: `-separated.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = self.to_problem().into_response();
        if status.is_server_error() {
            // Described here, where the error is known; logged, counted and reported once, by
            // the request layer (`aiods::layers::RequestLayer`).
            response.extensions_mut().insert(ServerErrorReport {
                kind: self.kind(),
                message: error_chain(&self),
                location: None,
                stacktrace: None,
                unexpected: matches!(self, Self::Internal(_)),
            });
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_timeout_is_504_and_names_the_upstream() {
        let e = Error::Upstream {
            upstream: "kitchen".into(),
            message: "timed out after 2s".into(),
            status: None,
            timed_out: true,
            problem: None,
        };
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        let p = e.to_problem();
        assert_eq!(p.extensions["upstream"], "kitchen");
    }

    #[test]
    fn internal_details_are_not_leaked() {
        let e = Error::internal(std::io::Error::other("disk on fire"));
        let p = e.to_problem();
        assert!(!p.detail.unwrap_or_default().contains("disk"));
    }

    #[test]
    fn problem_serialises_per_rfc7807() {
        let p = Problem::new(StatusCode::NOT_FOUND)
            .with_detail("x")
            .with_extension("step", "kitchen");
        let v = serde_json::to_value(&p).expect("serialises");
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["status"], 404);
        assert_eq!(v["step"], "kitchen");
    }
}
