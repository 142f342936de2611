//! The RBAC manifest grants exactly what the Kubernetes actuator uses: every request the
//! mocked-client scenarios send (verb, API group, resource, subresource) is allowed by Role
//! `aiops-actuator`, and the Role allows nothing that no request used.

mod kube_support;

use std::collections::BTreeSet;

use kube_support::api_server::{Permission, recorded};
use kube_support::scenarios;
use serde::Deserialize;

const RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/kubernetes/base/aiops/rbac.yaml"
);

fn documents() -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(RBAC).unwrap_or_else(|e| panic!("{RBAC}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{RBAC}: {e}")))
        .collect()
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// Every (verb, group, resource, subresource) the Role grants.
fn granted(role: &serde_yaml::Value) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    let rules = role["rules"].as_sequence().cloned().unwrap_or_default();
    for rule in &rules {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    assert!(
                        verb != "*" && resource != "*" && group != "*",
                        "no wildcards"
                    );
                    let (resource, subresource) =
                        resource.split_once('/').unwrap_or((resource.as_str(), ""));
                    out.insert(Permission {
                        verb,
                        group: group.clone(),
                        resource: resource.to_owned(),
                        subresource: subresource.to_owned(),
                    });
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_role_grants_every_request_and_nothing_unused() {
    scenarios::all().await;
    let used: BTreeSet<Permission> = recorded().into_iter().collect();
    assert!(
        used.len() >= 8,
        "the scenarios used too few calls: {used:?}"
    );

    let docs = documents();
    let kinds: Vec<&str> = docs.iter().map(|d| str_at(d, &["kind"])).collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "Role", "RoleBinding"],
        "namespaced only"
    );
    for d in &docs {
        assert_eq!(str_at(d, &["metadata", "namespace"]), "aiods");
    }
    assert_eq!(str_at(&docs[0], &["metadata", "name"]), "aiops");
    assert_eq!(str_at(&docs[1], &["metadata", "name"]), "aiops-actuator");
    let binding = &docs[2];
    assert_eq!(str_at(binding, &["metadata", "name"]), "aiops-actuator");
    assert_eq!(
        (
            str_at(binding, &["roleRef", "kind"]),
            str_at(binding, &["roleRef", "name"])
        ),
        ("Role", "aiops-actuator")
    );
    let subject = &binding["subjects"][0];
    assert_eq!(
        (
            str_at(subject, &["kind"]),
            str_at(subject, &["name"]),
            str_at(subject, &["namespace"])
        ),
        ("ServiceAccount", "aiops", "aiods")
    );

    let grants = granted(&docs[1]);
    let missing: Vec<&Permission> = used.difference(&grants).collect();
    assert!(
        missing.is_empty(),
        "requests the Role does not grant: {missing:#?}"
    );
    let unused: Vec<&Permission> = grants.difference(&used).collect();
    assert!(unused.is_empty(), "grants no request used: {unused:#?}");
}

#[test]
fn requests_map_to_kubernetes_verbs() {
    use kube_support::api_server::permission;
    let none = Default::default();
    let watch = [("watch".to_owned(), "true".to_owned())]
        .into_iter()
        .collect();
    let p = |m, path, q| {
        let p = permission(m, path, q);
        (p.verb, p.group, p.resource, p.subresource)
    };
    let s = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned())
    };
    assert_eq!(
        p("GET", "/api/v1/namespaces/n/pods", &none),
        s("list", "", "pods", "")
    );
    assert_eq!(
        p("GET", "/api/v1/namespaces/n/pods", &watch),
        s("watch", "", "pods", "")
    );
    assert_eq!(
        p("GET", "/api/v1/namespaces/n/pods/a", &none),
        s("get", "", "pods", "")
    );
    assert_eq!(
        p("DELETE", "/api/v1/namespaces/n/pods/a", &none),
        s("delete", "", "pods", "")
    );
    assert_eq!(
        p("POST", "/api/v1/namespaces/n/events", &none),
        s("create", "", "events", "")
    );
    assert_eq!(
        p(
            "PATCH",
            "/apis/apps/v1/namespaces/n/deployments/d/scale",
            &none
        ),
        s("patch", "apps", "deployments", "scale")
    );
}
