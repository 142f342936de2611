//! Schemathesis (pinned in `tests/python/requirements-schemathesis.txt`) against the OpenAPI
//! documents the services and the platform serve: with a fixed seed and a bounded number of
//! examples, no server error, no status or content type the document does not declare.
#![allow(clippy::unwrap_used, missing_docs)]

mod platform_support;

use std::process::Command;

use aiods_e2e::FoodDelivery;
use platform_support::python::python_with;
use platform_support::{PlatformProcess, TOKEN};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance";

/// Runs schemathesis against `base`'s `/openapi.json`; panics with its report on any failure.
fn schemathesis(name: &str, base: &str, headers: &[&str]) {
    let python = python_with("requirements-schemathesis.txt");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python.with_file_name("schemathesis"));
    cmd.arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--checks", CHECKS])
        .args(["--seed", "7", "--max-examples", "15"])
        .args(["--request-timeout", "10", "--no-color"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1");
    for h in headers {
        cmd.args(["--header", h]);
    }
    let out = cmd.output().expect("run schemathesis");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis against {name} failed:\n{report}"
    );
    // It ran: operations were tested, none skipped for want of a valid document.
    assert!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis against {name} tested nothing:\n{report}"
    );
    eprintln!("schemathesis against {name}:\n{report}");
}

#[test]
fn the_example_services_answer_only_what_their_documents_declare() {
    let fd = FoodDelivery::start(&aiods_e2e::food_binaries!(), &[]).unwrap();
    for svc in [
        &fd.kitchen,
        &fd.accounting,
        &fd.consumer,
        &fd.notification,
        &fd.order,
    ] {
        schemathesis(&svc.name, &svc.url(), &[]);
    }
}

#[tokio::test]
async fn the_platform_api_answers_only_what_its_document_declares() {
    let p = PlatformProcess::start("");
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || {
        schemathesis(
            "the platform",
            &url,
            &[&format!("Authorization: Bearer {TOKEN}")],
        );
    })
    .await
    .unwrap();
}
