//! A scripted Kubernetes API server behind kube's mocked client (`tower_test::mock::pair`):
//! each test awaits the requests it expects in order, asserts method, path, query and body,
//! and answers with JSON shaped like a real API server's. Every request is also recorded as
//! the RBAC permission it needs (verb, API group, resource, subresource), for the RBAC test.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::{Handle, SendResponse};

/// The permission a request needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// `get`, `list`, `watch`, `create`, `patch`, `delete`, `update`.
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    /// `pods`, `deployments`, ...
    pub resource: String,
    /// `scale`, or empty.
    pub subresource: String,
}

static RECORDED: Mutex<Vec<Permission>> = Mutex::new(Vec::new());

/// Every permission the scripted servers of this process saw used.
pub fn recorded() -> Vec<Permission> {
    let mut v = RECORDED.lock().map(|r| r.clone()).unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// The permission of `method path?query` (namespaced paths only: the actuator uses no
/// cluster-scoped call).
pub fn permission(method: &str, path: &str, query: &BTreeMap<String, String>) -> Permission {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", "namespaces", _ns, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, "namespaces", _ns, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("not a namespaced API path: {path}"),
    };
    let (resource, named, subresource) = match rest {
        [resource] => (*resource, false, ""),
        [resource, _name] => (*resource, true, ""),
        [resource, _name, sub] => (*resource, true, *sub),
        _ => panic!("unexpected API path: {path}"),
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if query.get("watch").is_some_and(|w| w == "true") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => panic!("unexpected method {method} {path}"),
    };
    Permission {
        verb: verb.into(),
        group,
        resource: resource.into(),
        subresource: subresource.into(),
    }
}

/// The server's end of the mocked client.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// A client whose requests reach the returned [`ApiServer`].
pub fn mocked() -> (kube::Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), ApiServer { handle })
}

/// One request received, waiting for its answer.
pub struct Call {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path.
    pub path: String,
    /// The query pairs.
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// Waits (5 s at most) for the next request and asserts its method, path and exact
    /// query.
    pub async fn expect(&mut self, method: &str, path: &str, query: &[(&str, &str)]) -> Call {
        let next = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request()).await;
        let Ok(Some((request, send))) = next else {
            panic!("no request came; expected {method} {path}");
        };
        let (parts, body) = request.into_parts();
        let got: BTreeMap<String, String> = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (decode(k), decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let call_method = parts.method.as_str().to_owned();
        let call_path = parts.uri.path().to_owned();
        assert_eq!(
            (call_method.as_str(), call_path.as_str()),
            (method, path),
            "request {call_method} {call_path}?{got:?}"
        );
        let wanted: BTreeMap<String, String> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(
            query_of(&got),
            query_of(&wanted),
            "query of {method} {path}"
        );
        let bytes = body
            .collect_bytes()
            .await
            .unwrap_or_else(|e| panic!("request body: {e}"));
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("request body not JSON: {e}"))
        };
        if let Ok(mut r) = RECORDED.lock() {
            r.push(permission(&call_method, &call_path, &got));
        }
        Call {
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            method: call_method,
            path: call_path,
            query: got,
            body,
            send,
        }
    }
}

impl ApiServer {
    /// Asserts that no further request comes within `ms` milliseconds.
    pub async fn expect_nothing(&mut self, ms: u64) {
        let next =
            tokio::time::timeout(Duration::from_millis(ms), self.handle.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

fn query_of(q: &BTreeMap<String, String>) -> Vec<String> {
    q.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Call {
    /// Answers `status` with a JSON body.
    pub fn json(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{e}"));
        self.send.send_response(response);
    }

    /// Answers a watch with these events (`{"type": ..., "object": ...}`), one JSON
    /// document a line; the body then ends, as when the server's watch timeout expires or
    /// the connection drops.
    pub fn watch(self, events: &[Value]) {
        let mut body = Vec::new();
        for e in events {
            body.extend(serde_json::to_vec(e).unwrap_or_default());
            body.push(b'\n');
        }
        let response = Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("{e}"));
        self.send.send_response(response);
    }

    /// Asserts the `Content-Type` of a PATCH.
    pub fn assert_merge_patch(&self) {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/merge-patch+json"),
            "{} {}",
            self.method,
            self.path
        );
    }
}
