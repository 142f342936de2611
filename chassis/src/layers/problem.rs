//! Every error response is `application/problem+json` (applied by [`super::RequestLayer`]).
//!
//! axum's own rejections (malformed JSON, a bad path parameter, a missing content type), the
//! router's 404 and 405, and any handler that answers an error with plain text are rewritten
//! into RFC 7807 documents, keeping their status and using their text as `detail`. Successful
//! responses pass through untouched, without allocation.

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Response, header};
use http_body_util::BodyExt;

use crate::error::{PROBLEM_JSON, Problem};

/// Bodies of error responses larger than this are not read into `detail`.
const MAX_DETAIL_BODY: usize = 16 * 1024;

/// Whether `response` is an error without a problem+json body (to be rewritten).
pub(crate) fn needs_rewrite(response: &Response<Body>) -> bool {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return false;
    }
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct
            .to_str()
            .map(|ct| ct.starts_with("text/plain"))
            .unwrap_or(false),
    }
}

/// `response` as a problem+json document for a request to `path`, keeping its status and
/// headers and using its text as `detail`.
pub(crate) async fn rewrite(response: Response<Body>, path: String) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let detail = match http_body_util::Limited::new(body, MAX_DETAIL_BODY)
        .collect()
        .await
    {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    };
    let detail = if detail.is_empty() {
        default_detail(parts.status.as_u16(), &path)
    } else {
        detail
    };
    let problem = Problem::new(parts.status)
        .with_detail(detail)
        .with_instance(path);
    let mut rewritten = problem.into_response();
    // Keep the headers the original response carried (Allow on a 405, say), but not its type
    // or length.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten.extensions_mut().extend(parts.extensions);
    debug_assert_eq!(
        rewritten
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(PROBLEM_JSON.as_bytes())
    );
    rewritten
}

fn default_detail(status: u16, path: &str) -> String {
    match status {
        404 => format!("no route matches {path}"),
        405 => format!("method not allowed on {path}"),
        _ => "the request failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use http::Request;
    use tower::ServiceExt;

    async fn take_json(axum::Json(v): axum::Json<serde_json::Value>) -> String {
        v.to_string()
    }

    async fn call(req: Request<Body>) -> (u16, String, serde_json::Value) {
        let app = Router::new()
            .route("/items", post(take_json))
            .layer(super::super::RequestLayer::new());
        let res = app.oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            ct,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn malformed_json_becomes_a_problem() {
        let req = Request::post("/items")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .expect("request");
        let (status, ct, body) = call(req).await;
        assert_eq!(status, 400);
        assert_eq!(ct, PROBLEM_JSON);
        assert_eq!(body["status"], 400);
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    #[tokio::test]
    async fn missing_content_type_and_unknown_route_are_problems() {
        let req = Request::post("/items")
            .body(Body::from("{}"))
            .expect("request");
        let (status, ct, _) = call(req).await;
        assert_eq!((status, ct.as_str()), (415, PROBLEM_JSON));
        let req = Request::get("/nope").body(Body::empty()).expect("request");
        let (status, ct, body) = call(req).await;
        assert_eq!((status, ct.as_str()), (404, PROBLEM_JSON));
        assert_eq!(body["instance"], "/nope");
    }
}
