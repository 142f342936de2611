//! Receivers: OTLP/HTTP, Sentry ingest, and the request-body handling they share.

pub mod body;
pub mod otlp;
pub mod sentry;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Why an ingest request was refused. Each maps to one 4xx status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 400: the body does not decode.
    #[error("{0}")]
    BadRequest(String),
    /// 401: credentials missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: unknown target (e.g. Sentry project).
    #[error("{0}")]
    NotFound(String),
    /// 413: body too large, before or after decompression.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: content type or encoding not understood.
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl IngestError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        crate::problem::Problem::new(self.status(), self.to_string()).into_response()
    }
}

/// Constant-time comparison for secrets: both sides are hashed to SHA-256 first, so neither
/// a differing byte nor a differing length shows in the time taken.
pub fn secret_eq(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    let (a, b) = (
        sha2::Sha256::digest(a.as_bytes()),
        sha2::Sha256::digest(b.as_bytes()),
    );
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_by_content_whatever_their_length() {
        assert!(super::secret_eq("s3cret", "s3cret"));
        assert!(!super::secret_eq("s3cret", "s3creT"));
        assert!(!super::secret_eq("s3cret", "s3cret-and-more"));
        assert!(!super::secret_eq("", "s3cret"));
    }
}
