//! Sentry ingest with the real `sentry` crate: events grouped by fingerprint with counts,
//! attributed to the `service` tag, kept in SQLite across a platform restart.

mod common;

use std::time::Duration;

use common::{Platform, eventually, items};
use sentry::protocol::{Event, Exception, Frame, Level, Stacktrace, Values};

fn panic_event(line: u64) -> Event<'static> {
    Event {
        level: Level::Error,
        exception: Values::from(vec![Exception {
            ty: "PaymentError".into(),
            value: Some("card declined".into()),
            stacktrace: Some(Stacktrace {
                frames: vec![
                    Frame {
                        function: Some("std::rt::lang_start".into()),
                        in_app: Some(false),
                        lineno: Some(1),
                        ..Default::default()
                    },
                    Frame {
                        function: Some("payments::charge".into()),
                        in_app: Some(true),
                        lineno: Some(line),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn client(p: &Platform, key: &str) -> sentry::ClientInitGuard {
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(format!("http://{key}@{}/1", p.addr).parse().expect("dsn"));
    options.server_name = Some("host-a".into());
    sentry::init(options)
}

#[test]
fn events_are_grouped_counted_attributed_and_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::start(dir.path(), "sentry_keys = [\"pubkey\"]", "");
    {
        let guard = client(&p, "pubkey");
        sentry::with_scope(
            |scope| scope.set_tag("service", "payments"),
            || {
                // Same exception from different lines: one group.
                sentry::capture_event(panic_event(10));
                sentry::capture_event(panic_event(42));
            },
        );
        // No service tag: attributed to server_name.
        sentry::capture_message("disk almost full", Level::Warning);
        sentry::with_scope(
            |scope| {
                scope.set_tag("service", "payments");
                scope.set_fingerprint(Some(&["db-unreachable"]));
            },
            || {
                sentry::capture_message("db down: timeout", Level::Error);
                sentry::capture_message("db down: refused", Level::Error);
            },
        );
        assert!(guard.flush(Some(Duration::from_secs(10))));
    }

    let groups = eventually(Duration::from_secs(10), || {
        let (_, v) = p.get("/api/v1/exceptions?service=payments");
        let g = items(&v);
        (g.iter()
            .map(|g| g["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
            == 4)
            .then_some(g)
    });
    assert_eq!(groups.len(), 2, "{groups:?}");
    let panic_group = groups
        .iter()
        .find(|g| g["exception_type"] == "PaymentError")
        .expect("panic group");
    assert_eq!(panic_group["count"], 2);
    assert_eq!(panic_group["title"], "PaymentError: card declined");
    assert!(panic_group["first_seen"].is_string() && panic_group["last_seen"].is_string());
    assert_eq!(
        panic_group["sample_event"]["exception"]["values"][0]["type"],
        "PaymentError"
    );
    let custom = groups
        .iter()
        .find(|g| g["exception_type"].is_null())
        .expect("custom group");
    assert_eq!(custom["count"], 2);

    let (_, host) = p.get("/api/v1/exceptions?service=host-a");
    assert_eq!(items(&host).len(), 1);
    assert_eq!(items(&host)[0]["title"], "disk almost full");

    let (_, services) = p.get("/api/v1/services");
    assert!(
        items(&services)
            .iter()
            .any(|s| s["name"] == "payments" && s["last_seen_by_signal"]["exceptions"].is_string())
    );

    // Restart on the same data directory: the groups come back from SQLite.
    let fingerprint = panic_group["fingerprint"].clone();
    std::thread::sleep(Duration::from_millis(500));
    p.stop();
    let p = Platform::start(dir.path(), "sentry_keys = [\"pubkey\"]", "");
    let (status, v) = p.get("/api/v1/exceptions?service=payments");
    assert_eq!(status, 200);
    let restored = items(&v);
    let g = restored
        .iter()
        .find(|g| g["fingerprint"] == fingerprint)
        .expect("restored group");
    assert_eq!(g["count"], 2);

    // And counting continues from there.
    {
        let guard = client(&p, "pubkey");
        sentry::with_scope(
            |scope| scope.set_tag("service", "payments"),
            || sentry::capture_event(panic_event(7)),
        );
        assert!(guard.flush(Some(Duration::from_secs(10))));
    }
    eventually(Duration::from_secs(10), || {
        let (_, v) = p.get("/api/v1/exceptions?service=payments");
        items(&v)
            .iter()
            .any(|g| g["fingerprint"] == fingerprint && g["count"] == 3)
            .then_some(())
    });
}
