//! On SIGTERM the platform writes every exception group still queued for SQLite before it
//! exits (a drain bounded by `shutdown_grace_ms`, not a fixed sleep): they all come back after
//! a restart, even when SQLite was busy at the time.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Platform, items};

const GROUPS: usize = 1000;

#[test]
fn exception_groups_queued_at_sigterm_are_written_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Platform::start(dir.path(), "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Another writer holds SQLite's write lock: the platform's writer waits, its queue fills.
    let db = format!("sqlite://{}", p.data_dir.join("aiops.db").display());
    let mut lock = runtime.block_on(async {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });
    for batch in 0..GROUPS / 500 {
        let mut envelope = String::from("{}\n");
        for i in 0..500 {
            envelope.push_str("{\"type\":\"event\"}\n");
            envelope.push_str(&format!(
                "{{\"message\":\"m\",\"fingerprint\":[\"g{}\"],\"tags\":{{\"service\":\"drain\"}}}}\n",
                batch * 500 + i
            ));
        }
        let (status, _, _) = p.post("/api/1/envelope/", &[], envelope.into_bytes());
        assert_eq!(status, 200);
    }
    p.terminate();
    // The lock goes away well within the shutdown grace (5 s) and SQLite's busy timeout.
    std::thread::sleep(Duration::from_millis(1500));
    runtime.block_on(async {
        sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    });
    let exited = p.wait_exit(Duration::from_secs(30));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    drop(p);

    let p = Platform::start(dir.path(), "", "");
    let mut restored = 0;
    let mut cursor = String::new();
    loop {
        let (status, v) = p.get(&format!(
            "/api/v1/exceptions?service=drain&limit=1000{cursor}"
        ));
        assert_eq!(status, 200);
        restored += items(&v).len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(restored, GROUPS, "exception groups lost at shutdown");
}
