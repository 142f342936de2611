//! New error log templates, end to end: a supervised program's captured stdout; a template
//! learned during the learning period is known, a new one after it opens an incident whose
//! failure start is the line's own timestamp, and a template known before a platform restart
//! opens nothing after it.

mod platform_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform_support::PlatformProcess;
use platform_support::python::python_dir;
use serde_json::Value;

fn topology() -> String {
    format!(
        r#"
[[service]]
name = "logger"
command = ["python3", "{}"]
[service.detection]
learning_secs = 3
"#,
        python_dir().join("logger_app.py").display()
    )
}

async fn log(p: &PlatformProcess, url: &str, message: &str) -> String {
    let r: Value = p
        .client()
        .post(format!("{url}/log"))
        .json(&serde_json::json!({"level": "ERROR", "message": message}))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    r["timestamp"].as_str().unwrap_or_default().to_owned()
}

fn template_incidents(all: &[Value]) -> Vec<Value> {
    all.iter()
        .filter(|i| i["signals"].to_string().contains("log_template"))
        .cloned()
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_error_template_opens_an_incident_and_a_known_one_never_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = PlatformProcess::start_at(dir.path(), &topology());
    p.wait_all_ready(Duration::from_secs(20)).await;
    let url = p.instance("logger#0").await["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Learned while the service is new: not news.
    log(&p, &url, "database pool exhausted after 30 s").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    log(&p, &url, "database pool exhausted after 45 s").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        template_incidents(&p.incidents("logger").await).is_empty(),
        "a known template opened an incident"
    );
    // A new template opens one; its failure start is the line's own time.
    let stamp = log(&p, &url, "payment gateway refused card 4242").await;
    let inc = p
        .wait_for(
            "a log_template incident",
            Duration::from_secs(10),
            || async {
                template_incidents(&p.incidents("logger").await)
                    .into_iter()
                    .next()
            },
        )
        .await;
    assert_eq!(
        inc["failure_start"].as_str().map(|s| &s[..23]),
        Some(&stamp[..23]),
        "{inc:#}"
    );
    let ev = inc["evidence"].to_string();
    assert!(ev.contains("payment gateway refused card"), "{inc:#}");
    let first_id = inc["id"].clone();

    // Restarted: both templates are known, even after the learning period.
    p.stop();
    let restarted = now_ns();
    let p = PlatformProcess::start_at(dir.path(), &topology());
    p.wait_all_ready(Duration::from_secs(20)).await;
    let url = p.instance("logger#0").await["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    log(&p, &url, "payment gateway refused card 1111").await;
    log(&p, &url, "database pool exhausted after 99 s").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<Value> = template_incidents(&p.incidents("logger").await)
        .into_iter()
        .filter(|i| i["id"] != first_id && i["detected_unix_nano"].as_u64() > Some(restarted))
        .collect();
    assert!(
        after.is_empty(),
        "known templates opened incidents after a restart: {after:#?}"
    );
    // And a really new one still does.
    log(&p, &url, "certificate for upstream expired").await;
    p.wait_for(
        "a new template after the restart",
        Duration::from_secs(10),
        || async {
            template_incidents(&p.incidents("logger").await)
                .into_iter()
                .find(|i| {
                    i["evidence"]
                        .to_string()
                        .contains("certificate for upstream")
                })
        },
    )
    .await;
}
