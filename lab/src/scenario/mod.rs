//! Scenarios: what an experiment sends, as a small TOML file (see `docs/experiments.md`).
//!
//! ```toml
//! name = "jobs"
//! [headers]                       # sent with every request
//! idempotency-key = "${run}-${user}-${seq}"
//!
//! [[request]]
//! name = "submit a job"
//! weight = 9                      # relative share (default 1)
//! method = "POST"                 # default GET
//! path = "/jobs"
//! body = '{"size": ${random:1..5}}'
//! expect = [202]                  # statuses that count as answered (default 2xx)
//! [request.follow_up]             # optional: poll until a final state
//! path = "/jobs/${response.id}"
//! field = "state"
//! until = ["DONE", "FAILED"]
//!
//! [[request]]
//! name = "a job of size 0"
//! weight = 1
//! invalid = true                  # expected to be refused: not a failure
//! method = "POST"
//! path = "/jobs"
//! body = '{"size": 0}'
//! expect = ["4xx"]
//! ```
//!
//! [`Scenario::food_delivery`] is the built-in one (`lab/scenarios/food-delivery.toml`).

pub mod template;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng as _};
use serde::Deserialize;

pub use template::{RenderError, Template, TemplateError, Vars};

/// The built-in food-delivery scenario's text.
pub const FOOD_DELIVERY: &str = include_str!("../../scenarios/food-delivery.toml");
/// The built-in scenario of the event-driven saga: the same orders, each polled until settled.
pub const FOOD_DELIVERY_EVENTS: &str = include_str!("../../scenarios/food-delivery-events.toml");

/// A scenario could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read the scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the scenario's shape.
    #[error("scenario {origin}: {source}")]
    Toml {
        /// The file (or `built-in`).
        origin: String,
        /// What the TOML parser said (with line and column).
        source: toml::de::Error,
    },
    /// A value is out of place.
    #[error("scenario {origin}: {place}: {problem}")]
    Invalid {
        /// The file (or `built-in`).
        origin: String,
        /// Where: `request "place order"`, `request "x" follow_up`…
        place: String,
        /// What is wrong and how to put it right.
        problem: String,
    },
    /// A request goes to a path no service of the topology is routed at.
    #[error(
        "scenario {origin}: request {request:?} goes to {path}, but the topology routes no service there \
         (routes: {routes}); give the experiment a scenario for this topology (--scenario FILE, see \
         docs/experiments.md) or add the route to the topology"
    )]
    Unrouted {
        /// The scenario.
        origin: String,
        /// The request.
        request: String,
        /// Its path's fixed prefix.
        path: String,
        /// The topology's routes.
        routes: String,
    },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, rename = "request")]
    requests: Vec<RawRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    name: String,
    #[serde(default = "one")]
    weight: f64,
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    expect: Vec<RawStatus>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    follow_up: Option<RawFollowUp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollowUp {
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    field: String,
    until: Vec<toml::Value>,
    #[serde(default)]
    expect: Vec<RawStatus>,
    #[serde(default = "hundred_ms")]
    interval: String,
    #[serde(default = "ten_s")]
    timeout: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStatus {
    Code(i64),
    Text(String),
}

fn one() -> f64 {
    1.0
}
fn get() -> String {
    "GET".into()
}
fn hundred_ms() -> String {
    "100ms".into()
}
fn ten_s() -> String {
    "10s".into()
}

/// Statuses that count as the expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl StatusSet {
    /// Whether `status` is one of them.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }

    fn parse(raw: &[RawStatus], default: RangeInclusive<u16>) -> Result<Self, String> {
        if raw.is_empty() {
            return Ok(Self(vec![default]));
        }
        let code = |n: i64| {
            u16::try_from(n)
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| format!("{n} is not an HTTP status (100–599)"))
        };
        let mut ranges = Vec::new();
        for s in raw {
            let range = match s {
                RawStatus::Code(n) => {
                    let c = code(*n)?;
                    c..=c
                }
                RawStatus::Text(t) => {
                    let t = t.trim();
                    let bad =
                        || format!("{t:?} is not a status: write 201, \"2xx\" or \"200-299\"");
                    if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
                        let d: u16 = class.parse().map_err(|_| bad())?;
                        if !(1..=5).contains(&d) {
                            return Err(bad());
                        }
                        d * 100..=d * 100 + 99
                    } else if let Some((a, b)) = t.split_once('-') {
                        let a = code(a.trim().parse().map_err(|_| bad())?)?;
                        let b = code(b.trim().parse().map_err(|_| bad())?)?;
                        if a > b {
                            return Err(bad());
                        }
                        a..=b
                    } else {
                        let c = code(t.parse().map_err(|_| bad())?)?;
                        c..=c
                    }
                }
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }
}

/// A follow-up: polls until a field of the answer holds a final value.
#[derive(Debug, Clone)]
pub struct FollowUp {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path, may read the first answer (`/orders/${response.id}`).
    pub path: Template,
    /// Headers (after the scenario's own).
    pub headers: Vec<(String, Template)>,
    /// JSON pointer of the field read from each poll's answer.
    pub pointer: String,
    /// The field as written.
    pub field: String,
    /// Final values: polling stops when the field holds one of them.
    pub until: Vec<serde_json::Value>,
    /// Statuses a poll may answer.
    pub expect: StatusSet,
    /// Time between polls.
    pub interval: Duration,
    /// Longest wait for a final value (a failure past it).
    pub timeout: Duration,
}

/// One kind of request.
#[derive(Debug, Clone)]
pub struct RequestKind {
    /// Its name, for the report.
    pub name: String,
    /// Relative share.
    pub weight: f64,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path (with query), starting with `/`.
    pub path: Template,
    /// Headers: the scenario's, then the request's own.
    pub headers: Vec<(String, Template)>,
    /// Body, when there is one.
    pub body: Option<Template>,
    /// Its content type (`application/json` unless set).
    pub content_type: String,
    /// Statuses that count as the expected answer.
    pub expect: StatusSet,
    /// Expected to be refused (counted as *rejected as expected*, not as a success).
    pub invalid: bool,
    /// Poll until a final state.
    pub follow_up: Option<FollowUp>,
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (the file's stem without one).
    pub name: String,
    /// What it does, in words.
    pub description: Option<String>,
    /// The kinds of request, with their weights.
    pub requests: Vec<RequestKind>,
}

fn method(text: &str) -> Result<reqwest::Method, String> {
    let upper = text.trim().to_ascii_uppercase();
    reqwest::Method::from_bytes(upper.as_bytes())
        .map_err(|_| format!("{text:?} is not an HTTP method"))
}

fn headers(
    base: &BTreeMap<String, String>,
    own: &BTreeMap<String, String>,
    follow_up: bool,
) -> Result<Vec<(String, Template)>, String> {
    let mut merged = base.clone();
    merged.extend(own.clone());
    merged
        .into_iter()
        .map(|(k, v)| {
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{k:?} is not a header name"))?;
            let t = Template::parse(&v, follow_up).map_err(|e| format!("header {k}: {e}"))?;
            Ok((k, t))
        })
        .collect()
}

fn path(text: &str, follow_up: bool) -> Result<Template, String> {
    if !text.starts_with('/') {
        return Err(format!(
            "path {text:?} must start with `/` (it is sent to the platform's gateway)"
        ));
    }
    Template::parse(text, follow_up).map_err(|e| format!("path: {e}"))
}

fn duration(what: &str, text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text)
        .map_err(|e| format!("{what}: {e}"))
        .and_then(|d| {
            if d.is_zero() {
                Err(format!("{what} must be more than 0"))
            } else {
                Ok(d)
            }
        })
}

fn follow_up(raw: &RawFollowUp, base: &BTreeMap<String, String>) -> Result<FollowUp, String> {
    if raw.until.is_empty() {
        return Err("`until` needs at least one final value".into());
    }
    if raw.field.trim().is_empty() {
        return Err("`field` is empty".into());
    }
    let until = raw
        .until
        .iter()
        .map(|v| serde_json::to_value(v).map_err(|e| format!("`until` value {v}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FollowUp {
        method: method(&raw.method)?,
        path: path(&raw.path, true)?,
        headers: headers(base, &raw.headers, true)?,
        pointer: template::json_pointer(raw.field.trim()),
        field: raw.field.trim().to_owned(),
        until,
        expect: StatusSet::parse(&raw.expect, 200..=200)?,
        interval: duration("interval", &raw.interval)?,
        timeout: duration("timeout", &raw.timeout)?,
    })
}

impl Scenario {
    /// Parses a scenario; `origin` names it in errors (a file, or `built-in`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|source| ScenarioError::Toml {
            origin: origin.to_owned(),
            source,
        })?;
        let invalid = |place: String, problem: String| ScenarioError::Invalid {
            origin: origin.to_owned(),
            place,
            problem,
        };
        if raw.requests.is_empty() {
            return Err(invalid(
                "the file".into(),
                "no `[[request]]`: a scenario needs at least one kind of request".into(),
            ));
        }
        let mut requests: Vec<RequestKind> = Vec::new();
        for r in &raw.requests {
            let place = format!("request {:?}", r.name);
            let err = |problem: String| invalid(place.clone(), problem);
            if requests.iter().any(|k| k.name == r.name) {
                return Err(err("another request has the same name".into()));
            }
            if !(r.weight.is_finite() && r.weight > 0.0) {
                return Err(err(format!("weight {} must be more than 0", r.weight)));
            }
            let body = match &r.body {
                Some(b) => Some(Template::parse(b, false).map_err(|e| err(format!("body: {e}")))?),
                None => None,
            };
            let content_type = r
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into());
            let follow = match &r.follow_up {
                Some(f) => Some(
                    follow_up(f, &raw.headers)
                        .map_err(|p| invalid(format!("{place} follow_up"), p))?,
                ),
                None => None,
            };
            let kind = RequestKind {
                name: r.name.clone(),
                weight: r.weight,
                method: method(&r.method).map_err(err)?,
                path: path(&r.path, false).map_err(err)?,
                headers: headers(&raw.headers, &r.headers, false).map_err(err)?,
                body,
                content_type,
                expect: StatusSet::parse(&r.expect, 200..=299).map_err(err)?,
                invalid: r.invalid,
                follow_up: follow,
            };
            kind.check_json_body()
                .map_err(|p| invalid(place.clone(), p))?;
            requests.push(kind);
        }
        let name = raw.name.unwrap_or_else(|| {
            Path::new(origin)
                .file_stem()
                .map_or_else(|| origin.to_owned(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Self {
            name,
            description: raw.description,
            requests,
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in scenario: the food-delivery orders the demo places.
    pub fn food_delivery() -> Result<Self, ScenarioError> {
        Self::parse(FOOD_DELIVERY, "built-in food-delivery")
    }

    /// The built-in scenario of the event-driven saga (`lab/scenarios/food-delivery-events.toml`).
    pub fn food_delivery_events() -> Result<Self, ScenarioError> {
        Self::parse(FOOD_DELIVERY_EVENTS, "built-in food-delivery (events)")
    }

    /// The share of the weight on `invalid` requests.
    pub fn invalid_share(&self) -> f64 {
        let total: f64 = self.requests.iter().map(|r| r.weight).sum();
        let invalid: f64 = self
            .requests
            .iter()
            .filter(|r| r.invalid)
            .map(|r| r.weight)
            .sum();
        if total > 0.0 { invalid / total } else { 0.0 }
    }

    /// Scales the weights so that `invalid` requests have `share` of the total, keeping the
    /// proportions inside each group (`--invalid-share`).
    pub fn set_invalid_share(&mut self, share: f64) -> Result<(), String> {
        if !(0.0..=1.0).contains(&share) {
            return Err("--invalid-share must be between 0 and 1".into());
        }
        let sum = |invalid: bool| -> f64 {
            self.requests
                .iter()
                .filter(|r| r.invalid == invalid)
                .map(|r| r.weight)
                .sum()
        };
        let (valid_w, invalid_w) = (sum(false), sum(true));
        if share > 0.0 && invalid_w == 0.0 {
            return Err(format!(
                "--invalid-share {share}: the scenario {:?} has no request marked `invalid = true`",
                self.name
            ));
        }
        if share < 1.0 && valid_w == 0.0 {
            return Err(format!(
                "--invalid-share {share}: the scenario {:?} has only invalid requests",
                self.name
            ));
        }
        for r in &mut self.requests {
            r.weight = if r.invalid {
                r.weight * share / invalid_w.max(f64::MIN_POSITIVE)
            } else {
                r.weight * (1.0 - share) / valid_w.max(f64::MIN_POSITIVE)
            };
        }
        // Weight 0 is never picked.
        Ok(())
    }

    /// Picks a kind of request by weight.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<&RequestKind> {
        let total: f64 = self.requests.iter().map(|r| r.weight).sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = rng.random::<f64>() * total;
        for r in &self.requests {
            if r.weight <= 0.0 {
                continue;
            }
            if x < r.weight {
                return Some(r);
            }
            x -= r.weight;
        }
        self.requests.iter().rev().find(|r| r.weight > 0.0)
    }

    /// Every path's fixed prefix, with its request's name: the requests and the follow-ups.
    pub fn path_prefixes(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for r in &self.requests {
            out.push((r.name.as_str(), r.path.literal_prefix()));
            if let Some(f) = &r.follow_up {
                out.push((r.name.as_str(), f.path.literal_prefix()));
            }
        }
        out
    }

    /// The services the scenario's requests reach through a gateway routing `routes`
    /// (`(prefix, service)`, longest prefix first as the gateway matches); an error names a
    /// request no route takes.
    pub fn services(
        &self,
        origin: &str,
        routes: &[(String, String)],
    ) -> Result<Vec<String>, ScenarioError> {
        let mut routes: Vec<(String, String)> = routes
            .iter()
            .map(|(p, s)| (p.trim_end_matches('/').to_owned(), s.clone()))
            .collect();
        routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let mut services: Vec<String> = Vec::new();
        for (request, prefix) in self.path_prefixes() {
            // The path's fixed part up to its last `/` is a path the gateway matches on.
            let path = prefix.split(['?', '#']).next().unwrap_or_default();
            let hit = routes.iter().find(|(p, _)| {
                p.is_empty()
                    || path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            });
            match hit {
                Some((_, s)) => {
                    if !services.contains(s) {
                        services.push(s.clone());
                    }
                }
                None => {
                    return Err(ScenarioError::Unrouted {
                        origin: origin.to_owned(),
                        request: request.to_owned(),
                        path: prefix.to_owned(),
                        routes: if routes.is_empty() {
                            "none".into()
                        } else {
                            routes
                                .iter()
                                .map(|(p, s)| format!("{p} → {s}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                    });
                }
            }
        }
        Ok(services)
    }
}

impl RequestKind {
    /// A JSON body must stay JSON once rendered: checked once with sample values.
    fn check_json_body(&self) -> Result<(), String> {
        let Some(body) = &self.body else {
            return Ok(());
        };
        if !self.content_type.contains("json") {
            return Ok(());
        }
        let vars = Vars {
            run: "run",
            user: 0,
            seq: 0,
            n: 0,
            response: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let text = body
            .render(&vars, &mut rng)
            .map_err(|e| format!("body: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&text).map(|_| ()).map_err(|e| {
            format!(
                "body is not JSON once rendered ({e}): {text} (set `content_type` for other bodies; \
                 a placeholder inside a JSON string needs its quotes: \"${{uuid}}\")"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const JOBS: &str = r#"
name = "jobs"
[headers]
idempotency-key = "${run}-${user}-${seq}"

[[request]]
name = "submit"
weight = 3
method = "post"
path = "/jobs"
body = '{"size": ${random:1..5}, "tag": "${uuid}"}'
expect = [202, "200-201"]
[request.follow_up]
path = "/jobs/${response.id}"
field = "state"
until = ["DONE", "FAILED"]
interval = "50ms"
timeout = "5s"

[[request]]
name = "too small"
invalid = true
method = "POST"
path = "/jobs"
body = '{"size": 0}'
expect = ["4xx"]
"#;

    fn err(text: &str) -> String {
        match Scenario::parse(text, "t.toml") {
            Ok(s) => panic!("parsed: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_scenario_with_a_follow_up() {
        let s = Scenario::parse(JOBS, "jobs.toml").expect("valid");
        assert_eq!(s.name, "jobs");
        assert_eq!(s.requests.len(), 2);
        let submit = &s.requests[0];
        assert_eq!(submit.method, reqwest::Method::POST);
        assert!(submit.expect.contains(202) && submit.expect.contains(201));
        assert!(!submit.expect.contains(204) && !submit.expect.contains(400));
        assert_eq!(submit.headers.len(), 1);
        assert_eq!(submit.content_type, "application/json");
        let f = submit.follow_up.as_ref().expect("follow-up");
        assert_eq!(f.method, reqwest::Method::GET);
        assert_eq!(f.pointer, "/state");
        assert_eq!(
            f.until,
            vec![serde_json::json!("DONE"), serde_json::json!("FAILED")]
        );
        assert!(f.expect.contains(200) && !f.expect.contains(201));
        assert_eq!(f.interval, Duration::from_millis(50));
        assert_eq!(
            f.headers.len(),
            1,
            "the scenario's headers go with polls too"
        );
        let small = &s.requests[1];
        assert!(small.invalid && small.expect.contains(404) && !small.expect.contains(500));
        assert!(small.follow_up.is_none());
        assert!((s.invalid_share() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn defaults_and_the_name_from_the_file() {
        let s = Scenario::parse(
            "[[request]]\nname = \"home\"\npath = \"/\"\n",
            "dir/hello.toml",
        )
        .expect("valid");
        assert_eq!(s.name, "hello");
        let r = &s.requests[0];
        assert_eq!(r.method, reqwest::Method::GET);
        assert!((r.weight - 1.0).abs() < 1e-12);
        assert!(r.expect.contains(200) && r.expect.contains(299) && !r.expect.contains(301));
        assert!(r.body.is_none() && r.follow_up.is_none() && !r.invalid);
    }

    #[test]
    fn the_built_in_scenario_places_orders() {
        let s = Scenario::food_delivery().expect("the built-in scenario parses");
        assert!(
            (s.invalid_share() - 0.1).abs() < 1e-9,
            "{}",
            s.invalid_share()
        );
        assert!(
            s.requests
                .iter()
                .all(|r| r.path.literal_prefix() == "/orders")
        );
        let valid = s.requests.iter().filter(|r| !r.invalid).count();
        assert!(valid >= 2 && s.requests.len() - valid == 4);
        let routes = vec![
            ("/orders".to_owned(), "order".to_owned()),
            ("/consumers".to_owned(), "consumer".to_owned()),
        ];
        assert_eq!(s.services("built-in", &routes).expect("routed"), ["order"]);
    }

    #[test]
    fn the_event_driven_scenario_polls_every_accepted_order_until_it_settles() {
        let s = Scenario::food_delivery_events().expect("the built-in events scenario parses");
        let plain = Scenario::food_delivery().expect("valid");
        // The same orders, same weights.
        assert_eq!(s.requests.len(), plain.requests.len());
        for (e, p) in s.requests.iter().zip(&plain.requests) {
            assert_eq!(e.weight, p.weight, "{}", e.name);
            match &e.follow_up {
                Some(f) => {
                    assert!(!e.invalid, "{}", e.name);
                    assert_eq!(f.field, "state");
                    assert_eq!(
                        f.until,
                        [serde_json::json!("APPROVED"), serde_json::json!("REJECTED")]
                    );
                    assert_eq!(f.timeout, Duration::from_secs(30));
                }
                None => assert!(e.invalid, "{} is accepted but never polled", e.name),
            }
        }
        // The blocked customer is rejected by the saga, asynchronously: a valid request.
        let blocked = s
            .requests
            .iter()
            .find(|r| r.name.starts_with("blocked customer"))
            .expect("the blocked customer's order");
        assert!(!blocked.invalid && blocked.follow_up.is_some());
    }

    #[test]
    fn rendered_bodies_are_json() {
        let s = Scenario::food_delivery().expect("valid");
        let mut rng = StdRng::seed_from_u64(5);
        for r in &s.requests {
            for seq in 0..20 {
                let vars = Vars {
                    run: "r",
                    user: 1,
                    seq,
                    n: seq,
                    response: None,
                };
                let body = r
                    .body
                    .as_ref()
                    .expect("orders have bodies")
                    .render(&vars, &mut rng)
                    .expect("renders");
                let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                assert!(v["consumer_id"].is_i64(), "{body}");
            }
        }
    }

    #[test]
    fn invalid_share_rescales_the_weights() {
        let mut s = Scenario::parse(JOBS, "jobs.toml").expect("valid");
        s.set_invalid_share(0.5).expect("has invalid requests");
        assert!((s.invalid_share() - 0.5).abs() < 1e-12);
        s.set_invalid_share(0.0).expect("zero is fine");
        assert_eq!(s.invalid_share(), 0.0);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(s.pick(&mut rng).map(|r| r.invalid), Some(false));
        }
        let mut plain =
            Scenario::parse("[[request]]\nname = \"a\"\npath = \"/a\"\n", "t").expect("valid");
        let e = plain
            .set_invalid_share(0.1)
            .expect_err("no invalid requests");
        assert!(e.contains("invalid = true"), "{e}");
        assert!(plain.set_invalid_share(1.5).is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let s = Scenario::parse(JOBS, "jobs.toml").expect("valid");
        let mut rng = StdRng::seed_from_u64(11);
        let n = 4000;
        let invalid = (0..n)
            .filter(|_| s.pick(&mut rng).is_some_and(|r| r.invalid))
            .count();
        let share = invalid as f64 / f64::from(n);
        assert!((0.2..0.3).contains(&share), "{share}");
    }

    #[test]
    fn unrouted_paths_are_named() {
        let s = Scenario::parse(JOBS, "jobs.toml").expect("valid");
        let e = s
            .services("jobs.toml", &[("/orders".into(), "order".into())])
            .expect_err("no /jobs route")
            .to_string();
        assert!(
            e.contains("\"submit\"") && e.contains("/jobs") && e.contains("--scenario"),
            "{e}"
        );
        // `/jobsx` is not under `/jobs`.
        let s2 =
            Scenario::parse("[[request]]\nname = \"x\"\npath = \"/jobsx\"\n", "t").expect("valid");
        assert!(
            s2.services("t", &[("/jobs".into(), "jobs".into())])
                .is_err()
        );
        assert_eq!(
            s.services("t", &[("/jobs/".into(), "jobs".into())])
                .expect("routed"),
            ["jobs"]
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let docs = include_str!("../../../docs/experiments.md");
        let section = docs
            .split("## Scenarios")
            .nth(1)
            .expect("docs/experiments.md has a Scenarios section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a TOML example");
        let s = Scenario::parse(example, "docs/experiments.md").expect("the example is valid");
        assert_eq!(s.name, "jobs");
        assert_eq!(s.requests[0].headers.len(), 2);
        assert!(s.requests[0].follow_up.is_some());
        let jobs = include_str!("../../examples/jobs/scenario.toml");
        let s = Scenario::parse(jobs, "jobs").expect("the jobs example is valid");
        assert_eq!(
            s.services("jobs", &[("/jobs".into(), "jobs".into())])
                .expect("routed"),
            ["jobs"]
        );
    }

    #[test]
    fn mistakes_say_where_and_what() {
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nmethd = \"GET\"\n");
        assert!(e.contains("t.toml") && e.contains("methd"), "{e}");
        let e = err("name = \"x\"\n");
        assert!(e.contains("[[request]]"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"a\"\n");
        assert!(
            e.contains("request \"a\"") && e.contains("start with `/`"),
            "{e}"
        );
        let e = err("[[request]]\nname = \"a\"\npath = \"/a/${who}\"\n");
        assert!(e.contains("`${who}`"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nexpect = [700]\n");
        assert!(e.contains("700"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nexpect = [\"6xx\"]\n");
        assert!(e.contains("6xx"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nweight = 0\n");
        assert!(e.contains("weight"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nmethod = \"GE T\"\n");
        assert!(e.contains("HTTP method"), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nbody = '{\"id\": ${uuid}}'\n");
        assert!(e.contains("not JSON") && e.contains("\"${uuid}\""), "{e}");
        let e = err("[[request]]\nname = \"a\"\npath = \"/a\"\nbody = '${response.id}'\n");
        assert!(e.contains("follow-up"), "{e}");
        let e = err(
            "[[request]]\nname = \"a\"\npath = \"/a\"\n[request.follow_up]\npath = \"/a\"\nfield = \"s\"\nuntil = []\n",
        );
        assert!(e.contains("follow_up") && e.contains("until"), "{e}");
        let e = err(
            "[[request]]\nname = \"a\"\npath = \"/a\"\n[request.follow_up]\npath = \"/a\"\nfield = \"s\"\nuntil = [\"X\"]\ninterval = \"soon\"\n",
        );
        assert!(e.contains("interval"), "{e}");
        let e = err(
            "[[request]]\nname = \"a\"\npath = \"/a\"\n[[request]]\nname = \"a\"\npath = \"/b\"\n",
        );
        assert!(e.contains("same name"), "{e}");
        let e = err(
            "[[request]]\nname = \"a\"\npath = \"/a\"\n[request.headers]\n\"bad header\" = \"x\"\n",
        );
        assert!(e.contains("header name"), "{e}");
    }
}
