//! The dashboard: a small single-page app served at `/` of the platform listener.
//!
//! Static HTML, CSS and JavaScript modules, compiled into the binary with `include_str!` (no
//! CDN, no build step). The page itself needs no token; it asks for the API token once, keeps
//! it in `sessionStorage`, and reads everything from the token-protected `/api/v1/` JSON API.
//!
//! Every asset answers with its content type, a strong `ETag` (FNV-1a of the content) and
//! `Cache-Control: no-cache`, so browsers revalidate cheaply (304) and never run stale code
//! after an upgrade. A strict `Content-Security-Policy` allows only the platform's own origin.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::common::problem::Problem;
use crate::common::time::now_nanos;
use crate::web::AppState;

/// One embedded file.
#[derive(Debug)]
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $ty:expr) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_str!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything under `/assets/`, plus `index.html` served at `/`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("charts.js", JS),
    asset!("rates.js", JS),
    asset!("views/overview.js", JS),
    asset!("views/incidents.js", JS),
    asset!("views/traces.js", JS),
    asset!("views/exceptions.js", JS),
    asset!("views/logs.js", JS),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard routes: `/`, `/index.html` and `/assets/{*path}`, all without a token.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/favicon.ico", get(favicon))
        .route("/assets/{*path}", get(asset))
}

/// The dashboard's address for a listener on `addr` (`localhost` for an unspecified address).
pub fn dashboard_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}

/// A dashboard link that signs in by itself: `http://host:port/#token=…`. The token is in the
/// URL fragment, which a browser never sends to the server (so the platform never sees nor
/// logs it); the page moves it to session storage and clears it from the address bar.
pub fn sign_in_link(addr: std::net::SocketAddr, token: &str) -> String {
    let mut link = dashboard_url(addr);
    link.push_str("#token=");
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            link.push(char::from(b));
        } else {
            link.push_str(&format!("%{b:02X}"));
        }
    }
    link
}

/// The dashboard's own API route, nested under `/api/v1` behind the token check:
/// `GET /api/v1/dashboard/requests?bucket_secs=&buckets=`.
pub fn api_router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(requests))
}

/// Request series of one service as the gateway's clients saw them, oldest bucket first.
#[derive(Debug, Serialize)]
struct RequestSeries {
    /// Requests per second.
    rate: Vec<f64>,
    /// 5xx share, `None` without requests.
    error_rate: Vec<Option<f64>>,
    /// p95 latency of successful requests (milliseconds), `None` without any.
    p95_ms: Vec<Option<f64>>,
}

/// Nearest-rank quantile of unsorted values.
fn nearest_rank(mut v: Vec<f64>, q: f64) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

#[cfg(test)]
mod link_tests {
    use super::sign_in_link;

    #[test]
    fn the_token_goes_in_the_fragment_percent_encoded() {
        let addr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(
            sign_in_link(addr, "ab-12_x"),
            "http://127.0.0.1:8080/#token=ab-12_x"
        );
        assert_eq!(
            sign_in_link(addr, "a b&c#"),
            "http://127.0.0.1:8080/#token=a%20b%26c%23"
        );
        let any = "0.0.0.0:9000".parse().expect("addr");
        assert_eq!(sign_in_link(any, "t"), "http://localhost:9000/#token=t");
    }
}

/// Request rate, error rate and p95 latency per service, as the gateway's clients saw them.
#[utoipa::path(get, path = "/dashboard/requests", tag = "dashboard",
    params(("bucket_secs" = Option<u32>, Query, minimum = 1, maximum = 60, description = "Bucket width in seconds (default 15)"),
        ("buckets" = Option<u32>, Query, minimum = 1, maximum = 60, description = "How many buckets (default 20)")),
    responses((status = 200, description = "Series per service, oldest bucket first", body = Object), (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json")))]
async fn requests(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let number = |k: &str, default: u64, max: u64| -> Result<u64, Problem> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Problem::bad_request(format!("{k} must be 1 to {max}"))),
            },
        }
    };
    if let Some(k) = q.keys().find(|k| *k != "bucket_secs" && *k != "buckets") {
        return Err(Problem::bad_request(format!(
            "unknown query parameter {k:?}; allowed: bucket_secs, buckets"
        )));
    }
    let bucket_secs = number("bucket_secs", 15, 60)?;
    let buckets = number("buckets", 20, 60)?;
    let now = now_nanos();
    let mut services = BTreeMap::new();
    if let Some(s) = &state.supervision {
        for name in s.stats.services() {
            let mut series = RequestSeries {
                rate: Vec::new(),
                error_rate: Vec::new(),
                p95_ms: Vec::new(),
            };
            // The stats answer "since `end - secs`" (up to now), so one bucket is the
            // difference of two such answers; latency samples are in time order, so the
            // bucket's samples are the prefix the later answer does not have.
            for i in (0..buckets).rev() {
                let end = now.saturating_sub(i * bucket_secs * 1_000_000_000);
                let after = s.stats.window(&name, end, 0);
                let since = s.stats.window(&name, end, bucket_secs);
                let total = since.total.saturating_sub(after.total);
                let errors = since.errors.saturating_sub(after.errors);
                series.rate.push(total as f64 / bucket_secs as f64);
                series
                    .error_rate
                    .push((total > 0).then(|| errors as f64 / total as f64));
                let (later, _) = s.stats.latencies(&name, end, 0, 0);
                let (mut samples, _) = s.stats.latencies(&name, end, bucket_secs, 0);
                samples.truncate(samples.len().saturating_sub(later.len()));
                series.p95_ms.push(nearest_rank(samples, 0.95));
            }
            services.insert(name, series);
        }
    }
    Ok(Json(serde_json::json!({
        "source": "gateway",
        "bucket_secs": bucket_secs,
        "end": crate::common::time::rfc3339(now),
        "services": services,
    }))
    .into_response())
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

async fn index(req: Request) -> Response {
    serve(find("index.html"), req.headers())
}

async fn favicon(req: Request) -> Response {
    serve(find("favicon.svg"), req.headers())
}

async fn asset(Path(path): Path<String>, req: Request) -> Response {
    // index.html lives at `/` only, so relative asset URLs in it resolve one way.
    serve(
        find(&path).filter(|a| a.path != "index.html"),
        req.headers(),
    )
}

fn etag(body: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(asset: Option<&'static Asset>, headers: &HeaderMap) -> Response {
    let Some(asset) = asset else {
        return Problem::not_found("no such dashboard asset").into_response();
    };
    let tag = etag(asset.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.path == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::builder().uri(path);
        if let Some(t) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        let req = req.body(Body::empty()).expect("request");
        router::<()>().oneshot(req).await.expect("infallible")
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn index_is_html_with_a_strict_policy() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(header_of(&r, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache");
    }

    #[tokio::test]
    async fn assets_have_types_and_revalidate() {
        let r = get("/assets/app.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CONTENT_TYPE), JS);
        let tag = header_of(&r, header::ETAG).to_owned();
        assert!(tag.starts_with('"'));
        let again = get("/assets/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let css = get("/assets/app.css", None).await;
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        let view = get("/assets/views/overview.js", None).await;
        assert_eq!(view.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_assets_are_404() {
        assert_eq!(
            get("/assets/nope.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/assets/../Cargo.toml", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/assets/index.html", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn nearest_rank_quantile() {
        assert_eq!(nearest_rank(vec![], 0.95), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(v, 0.95), Some(95.0));
    }

    #[test]
    fn every_module_import_is_embedded() {
        // A module imported by another but missing from ASSETS would break the page at run time.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let dir = a.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    find(&target).is_some(),
                    "{} imports {spec} ({target}), which is not embedded",
                    a.path
                );
            }
        }
    }
}
