//! [`Client`]: the HTTP client for calling other services by name.
//!
//! Base URLs come from configuration (`upstreams.<name>`, or `AIODS_UPSTREAMS__<NAME>`).
//! Failures map into [`Error::Upstream`] naming the upstream, so a handler can `?` them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Problem};

/// An HTTP client for other services. Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: aiods::Client) -> aiods::Result<()> {
/// #[derive(serde::Deserialize)]
/// struct Ticket { id: i64 }
/// let ticket: Ticket = client
///     .post_json("kitchen", "/tickets", &serde_json::json!({"order_id": 1}))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    upstreams: Arc<BTreeMap<String, Url>>,
    timeout: Duration,
}

impl Client {
    /// A client knowing `upstreams` (name → base URL), with `timeout` per call.
    pub fn new(upstreams: &BTreeMap<String, String>, timeout: Duration) -> Result<Self, Error> {
        let mut parsed = BTreeMap::new();
        for (name, url) in upstreams {
            let url = Url::parse(url).map_err(|e| {
                Error::internal(format!("upstream {name} has an invalid URL {url:?}: {e}"))
            })?;
            parsed.insert(name.clone(), url);
        }
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            http,
            upstreams: Arc::new(parsed),
            timeout,
        })
    }

    /// The base URL of `upstream`.
    pub fn base_url(&self, upstream: &str) -> Result<&Url, Error> {
        self.upstreams.get(upstream).ok_or_else(|| Error::Upstream {
            upstream: upstream.to_owned(),
            message: format!(
                "no URL configured (set upstreams.{upstream} or AIODS_UPSTREAMS__{})",
                upstream.to_uppercase().replace('-', "_")
            ),
            status: None,
            timed_out: false,
            problem: None,
        })
    }

    /// `GET` a JSON document from `upstream`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        upstream: &str,
        path: &str,
    ) -> Result<T, Error> {
        self.call_json(Method::GET, upstream, path, None::<&()>)
            .await
    }

    /// `POST` a JSON body to `upstream` and read a JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        upstream: &str,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.call_json(Method::POST, upstream, path, Some(body))
            .await
    }

    /// Calls `upstream` with `method` and an optional JSON body; reads a JSON answer.
    pub async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        upstream: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let response = self.call(method, upstream, path, body).await?;
        response.json::<T>().await.map_err(|e| Error::Upstream {
            upstream: upstream.to_owned(),
            message: format!("unreadable response: {e}"),
            status: None,
            timed_out: false,
            problem: None,
        })
    }

    /// Calls `upstream`; a non-2xx answer is an [`Error::Upstream`] carrying its problem.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        upstream: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, Error> {
        let url = self
            .base_url(upstream)?
            .join(path)
            .map_err(|e| Error::Upstream {
                upstream: upstream.to_owned(),
                message: format!("invalid path {path:?}: {e}"),
                status: None,
                timed_out: false,
                problem: None,
            })?;
        let mut request = self.http.request(method, url).timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Error::Upstream {
            upstream: upstream.to_owned(),
            message: crate::error::error_chain(&e),
            status: None,
            timed_out: e.is_timeout(),
            problem: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let problem = response.json::<Problem>().await.ok().map(Box::new);
        Err(Error::Upstream {
            upstream: upstream.to_owned(),
            message: format!(
                "answered {status}{}",
                problem
                    .as_ref()
                    .and_then(|p| p.detail.as_deref())
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            status: Some(status.as_u16()),
            timed_out: false,
            problem,
        })
    }
}
