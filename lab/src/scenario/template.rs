//! Templates of a scenario's paths, headers and bodies: literal text with `${…}` placeholders,
//! parsed once when the scenario is loaded and rendered for every request.
//!
//! | placeholder | value |
//! |---|---|
//! | `${run}` | the run's id (unique per run and load phase) |
//! | `${user}` | the virtual user, `0..users` (open loop: `0`) |
//! | `${seq}` | the user's request counter, from 0 (open loop: the run's counter) |
//! | `${n}` | the run's request counter over all users, from 0 |
//! | `${uuid}` | a fresh random UUID (v4) |
//! | `${random:A..B}` | a random integer from A to B, both included |
//! | `${response.a.b}` | field `a.b` of the JSON answer to the request (follow-ups only) |
//!
//! `$$` is a literal `$`; any other `$` is literal too.

use rand::Rng;
use serde_json::Value;

/// A template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` without its `}`.
    #[error("`${{` at byte {0} has no closing `}}`")]
    Unterminated(usize),
    /// A name that is not a placeholder.
    #[error(
        "unknown placeholder `${{{0}}}` (known: run, user, seq, n, uuid, random:A..B, response.FIELD)"
    )]
    Unknown(String),
    /// `${random:…}` with a malformed or empty range.
    #[error("`${{random:{0}}}` is not a range `A..B` of integers with A <= B")]
    BadRange(String),
    /// `${response.…}` where there is no response yet.
    #[error("`${{response.{0}}}` is only available in a follow-up (it reads the first answer)")]
    ResponseOutsideFollowUp(String),
    /// `${response}` without a field.
    #[error("`${{response}}` needs a field: `${{response.id}}`")]
    ResponseWithoutField,
}

/// A template could not be rendered for one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The answer has no such field (or is not JSON).
    #[error("the answer has no field `{0}`")]
    MissingField(String),
}

/// One placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Run,
    User,
    Seq,
    N,
    Uuid,
    Random(i64, i64),
    /// A JSON pointer into the first answer.
    Response {
        field: String,
        pointer: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// `${run}`.
    pub run: &'a str,
    /// `${user}`.
    pub user: usize,
    /// `${seq}`.
    pub seq: u64,
    /// `${n}`.
    pub n: u64,
    /// The JSON answer a follow-up reads, when there is one.
    pub response: Option<&'a Value>,
}

/// A dotted field path (`order.state`) or a JSON pointer (`/order/state`) as a JSON pointer.
pub(crate) fn json_pointer(field: &str) -> String {
    if field.starts_with('/') {
        field.to_owned()
    } else {
        field
            .split('.')
            .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
            .collect()
    }
}

fn parse_var(name: &str, follow_up: bool) -> Result<Var, TemplateError> {
    let name = name.trim();
    Ok(match name {
        "run" => Var::Run,
        "user" => Var::User,
        "seq" => Var::Seq,
        "n" => Var::N,
        "uuid" => Var::Uuid,
        "response" => return Err(TemplateError::ResponseWithoutField),
        _ => {
            if let Some(range) = name.strip_prefix("random:") {
                let bad = || TemplateError::BadRange(range.to_owned());
                let (a, b) = range.split_once("..").ok_or_else(bad)?;
                let a: i64 = a.trim().parse().map_err(|_| bad())?;
                let b: i64 = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                Var::Random(a, b)
            } else if let Some(field) = name.strip_prefix("response.") {
                if !follow_up {
                    return Err(TemplateError::ResponseOutsideFollowUp(field.to_owned()));
                }
                if field.is_empty() {
                    return Err(TemplateError::ResponseWithoutField);
                }
                Var::Response {
                    field: field.to_owned(),
                    pointer: json_pointer(field),
                }
            } else {
                return Err(TemplateError::Unknown(name.to_owned()));
            }
        }
    })
}

impl Template {
    /// Parses `text`; `follow_up` allows `${response.…}`.
    pub fn parse(text: &str, follow_up: bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                literal.push('$');
                offset += i + 2;
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let end = tail
                    .find('}')
                    .ok_or(TemplateError::Unterminated(offset + i))?;
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(parse_var(&tail[..end], follow_up)?));
                offset += i + 2 + end + 1;
                rest = &tail[end + 1..];
            } else {
                literal.push('$');
                offset += i + 1;
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The text before the first placeholder (a path's fixed prefix).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// Whether the template reads the first answer.
    pub fn uses_response(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Response { .. })))
    }

    /// Renders the template for one request.
    pub fn render(&self, vars: &Vars<'_>, rng: &mut impl Rng) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match v {
                    Var::Run => out.push_str(vars.run),
                    Var::User => out.push_str(&vars.user.to_string()),
                    Var::Seq => out.push_str(&vars.seq.to_string()),
                    Var::N => out.push_str(&vars.n.to_string()),
                    Var::Uuid => {
                        let bytes: [u8; 16] = rng.random();
                        out.push_str(
                            &uuid::Builder::from_random_bytes(bytes)
                                .into_uuid()
                                .to_string(),
                        );
                    }
                    Var::Random(a, b) => out.push_str(&rng.random_range(*a..=*b).to_string()),
                    Var::Response { field, pointer } => {
                        match vars.response.and_then(|r| r.pointer(pointer)) {
                            Some(Value::String(s)) => out.push_str(s),
                            Some(Value::Null) | None => {
                                return Err(RenderError::MissingField(field.clone()));
                            }
                            Some(other) => out.push_str(&other.to_string()),
                        }
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    fn vars(response: Option<&Value>) -> Vars<'_> {
        Vars {
            run: "r1",
            user: 3,
            seq: 7,
            n: 42,
            response,
        }
    }

    fn render(text: &str) -> String {
        Template::parse(text, false)
            .expect("parses")
            .render(&vars(None), &mut StdRng::seed_from_u64(1))
            .expect("renders")
    }

    #[test]
    fn counters_and_run() {
        assert_eq!(render("${run}-${user}-${seq}/${n}"), "r1-3-7/42");
        assert_eq!(render("no placeholder"), "no placeholder");
        assert_eq!(render(""), "");
    }

    #[test]
    fn json_braces_and_dollars_stay_literal() {
        assert_eq!(
            render(r#"{"a": ${user}, "b": {"c": "$5", "d": "$$"}}"#),
            r#"{"a": 3, "b": {"c": "$5", "d": "$"}}"#
        );
        assert_eq!(render("cost $"), "cost $");
    }

    #[test]
    fn random_stays_in_its_range() {
        let t = Template::parse("${random:11..13}", false).expect("parses");
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let v: i64 = t
                .render(&vars(None), &mut rng)
                .expect("renders")
                .parse()
                .expect("int");
            assert!((11..=13).contains(&v), "{v}");
            seen.insert(v);
        }
        assert_eq!(seen.len(), 3, "every value of the range comes up: {seen:?}");
        assert_eq!(render("${random:-2..-2}"), "-2");
    }

    #[test]
    fn uuids_are_fresh() {
        let t = Template::parse("${uuid}", false).expect("parses");
        let mut rng = StdRng::seed_from_u64(2);
        let a = t.render(&vars(None), &mut rng).expect("renders");
        let b = t.render(&vars(None), &mut rng).expect("renders");
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a}");
    }

    #[test]
    fn response_fields_in_follow_ups() {
        let t =
            Template::parse("/orders/${response.id}/${response.meta.kind}", true).expect("parses");
        assert!(t.uses_response());
        assert_eq!(t.literal_prefix(), "/orders/");
        let answer = json!({"id": 17, "meta": {"kind": "x/y"}});
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(
            t.render(&vars(Some(&answer)), &mut rng),
            Ok("/orders/17/x/y".to_owned())
        );
        assert_eq!(
            t.render(&vars(Some(&json!({"id": 1}))), &mut rng),
            Err(RenderError::MissingField("meta.kind".into()))
        );
        assert_eq!(
            t.render(&vars(None), &mut rng),
            Err(RenderError::MissingField("id".into()))
        );
        let pointer = Template::parse("${response./a/0}", true).expect("parses");
        assert_eq!(
            pointer.render(&vars(Some(&json!({"a": ["z"]}))), &mut rng),
            Ok("z".to_owned())
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            Template::parse("/a/${usr}", false),
            Err(TemplateError::Unknown("usr".into()))
        );
        assert_eq!(
            Template::parse("ab${user", false),
            Err(TemplateError::Unterminated(2))
        );
        assert_eq!(
            Template::parse("${random:3..1}", false),
            Err(TemplateError::BadRange("3..1".into()))
        );
        assert_eq!(
            Template::parse("${random:1-3}", false),
            Err(TemplateError::BadRange("1-3".into()))
        );
        assert_eq!(
            Template::parse("${response.id}", false),
            Err(TemplateError::ResponseOutsideFollowUp("id".into()))
        );
        assert_eq!(
            Template::parse("${response}", true),
            Err(TemplateError::ResponseWithoutField)
        );
        let msg = Template::parse("${usr}", false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("`${usr}`") && msg.contains("random:A..B"),
            "{msg}"
        );
    }
}
