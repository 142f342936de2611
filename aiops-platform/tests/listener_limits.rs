//! The platform's and the gateway's listeners under slow and stalled clients (issue 17, items
//! 2 and 8): real `aiops up`, real sockets, real signals.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Platform, eventually, limit_open_files, sample};

/// Connections that send a request head one byte at a time, never finishing it.
struct Trickle {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Trickle {
    fn start(addr: &str, connections: usize, head: &'static [u8]) -> Self {
        let mut streams: Vec<(TcpStream, usize)> = (0..connections)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .map(|s| (s, 0))
            .collect();
        let (stop, open) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(streams.len())),
        );
        let thread = std::thread::spawn({
            let (stop, open) = (stop.clone(), open.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    // One more byte on each connection; a closed one is left behind.
                    streams.retain_mut(|(s, sent)| {
                        let byte = head.get(*sent).copied().unwrap_or(b'x');
                        *sent += 1;
                        s.write_all(&[byte]).is_ok()
                    });
                    open.store(streams.len(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        Self {
            stop,
            open,
            thread: Some(thread),
        }
    }

    fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request on a fresh connection: its status, or `None` if the connection failed.
fn fresh_request(addr: &str, request: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) if !answer.is_empty() => break,
            Err(_) => return None,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() > 12 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text))
}

fn health(addr: &str) -> Option<u16> {
    fresh_request(
        addr,
        "GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(1),
    )
    .map(|(status, _)| status)
}

/// Sends `head` (and whatever body bytes follow it) and keeps the connection open.
fn stalled(addr: &str, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

#[test]
fn slow_header_clients_do_not_take_the_platform_down() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(
        dir.path(),
        "max_connections = 64\nheader_read_timeout_ms = 1500",
        "",
    );
    assert_eq!(health(&p.addr), Some(200));
    // As if `ulimit -n 256`: 300 slow clients would exhaust the descriptors without a cap.
    limit_open_files(p.pid(), 256);
    let attack = Trickle::start(&p.addr, 300, b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n");
    let started = Instant::now();
    eventually(Duration::from_secs(15), || {
        health(&p.addr).filter(|s| *s == 200)
    });
    assert!(
        attack.running(),
        "health must answer while the slow clients still trickle"
    );
    let answered_after = started.elapsed();
    // Each slow connection was cut off (by the cap at once, or by the header timeout).
    eventually(Duration::from_secs(10), || {
        (attack.open.load(Ordering::Relaxed) == 0).then_some(())
    });
    drop(attack);
    let m = p.metrics();
    let refused = sample(
        &m,
        "aiops_listener_connections_refused_total{listener=\"platform\"}",
    );
    let timed_out = sample(
        &m,
        "aiops_listener_header_timeouts_total{listener=\"platform\"}",
    );
    assert!(refused >= 200.0, "refused {refused}\n{m}");
    assert!(timed_out >= 1.0, "header timeouts {timed_out}\n{m}");
    eprintln!("health answered {answered_after:?} into the attack");
}

#[test]
fn half_open_connections_do_not_hold_shutdown_and_children_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // Timeouts far beyond the test: only the shutdown grace can close these connections.
    let mut p = Platform::start(
        dir.path(),
        "header_read_timeout_ms = 60000\nidle_timeout_ms = 60000\nrequest_timeout_ms = 60000\n\
         shutdown_grace_ms = 1000",
        "[[service]]\nname = \"sleeper\"\ncommand = [\"sleep\", \"600\"]\n\
         health = { startup_grace_ms = 60000 }\n",
    );
    let child = eventually(Duration::from_secs(20), || {
        let (_, v) = p.get("/api/v1/instances");
        v["items"][0]["pid"].as_u64()
    });
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(stalled(&p.addr, "POST /v1/traces HTTP/1.1\r\nhost: x\r\n"));
        held.push(stalled(
            &p.addr,
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
             content-length: 1000\r\n\r\n0123456789",
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    p.terminate();
    let exited = p.wait_exit(Duration::from_secs(15));
    let took = stopping.elapsed();
    let alive = std::fs::read_to_string(format!("/proc/{child}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "));
    if alive {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .status();
    }
    assert!(
        exited.is_some(),
        "aiops did not exit within 15 s of SIGTERM"
    );
    assert!(
        took < Duration::from_secs(8),
        "shutdown took {took:?} with a 1 s grace"
    );
    assert!(!alive, "the supervised child {child} outlived the platform");
    drop(held);
}

#[test]
fn ingest_without_the_key_is_refused_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(
        dir.path(),
        "ingest_keys = [\"k-0123456789\"]\nmax_body_bytes = 67108864\n\
         max_decompressed_bytes = 67108864\nrequest_timeout_ms = 60000",
        "",
    );
    // 50 MB announced, 1 KiB sent (an envelope header line without a key, then padding):
    // the answer must not wait for the rest.
    let big = |path: &str, auth: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
             content-length: 52428800\r\n{auth}\r\n{{\"event_id\":\"0\"}}\n{}",
            "x".repeat(1024)
        )
    };
    for (path, auth, what) in [
        ("/v1/traces", "", "missing OTLP key"),
        (
            "/v1/traces",
            "authorization: Bearer wrong-key\r\n",
            "wrong OTLP key",
        ),
        (
            "/api/1/envelope/",
            "x-sentry-auth: Sentry sentry_key=wrong-key, sentry_version=7\r\n",
            "wrong Sentry key",
        ),
        ("/api/1/envelope/", "", "missing Sentry key"),
        ("/api/1/store/", "", "missing Sentry key (store)"),
    ] {
        let started = Instant::now();
        let (status, text) = fresh_request(&p.addr, &big(path, auth), Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{what}: no answer within 10 s"));
        assert_eq!(status, 401, "{what}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: answered after {:?}",
            started.elapsed()
        );
        if path.starts_with("/api/") {
            assert!(text.contains("application/problem+json"), "{what}: {text}");
        }
    }
    // The right key, as OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<key> sends it.
    let ok = |headers: &[(&str, &str)], path: &str, body: &[u8]| {
        let mut req = reqwest::blocking::Client::new()
            .post(format!("{}{path}", p.url))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(
        ok(
            &[
                ("authorization", "Bearer k-0123456789"),
                ("content-type", "application/json")
            ],
            "/v1/traces",
            br#"{"resourceSpans":[]}"#
        ),
        200
    );
    // Sentry: the ingest key as the DSN key, in the header or only in the envelope's dsn.
    let envelope = b"{}\n{\"type\":\"event\"}\n{\"message\":\"m\"}\n";
    assert_eq!(
        ok(
            &[("x-sentry-auth", "Sentry sentry_key=k-0123456789")],
            "/api/1/envelope/",
            envelope
        ),
        200
    );
    let with_dsn = format!(
        "{{\"dsn\":\"http://k-0123456789@{}/1\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"m\"}}\n",
        p.addr
    );
    assert_eq!(ok(&[], "/api/1/envelope/", with_dsn.as_bytes()), 200);
    let wrong_dsn = with_dsn.replace("k-0123456789", "nope");
    assert_eq!(ok(&[], "/api/1/envelope/", wrong_dsn.as_bytes()), 401);
}

#[test]
fn a_chunked_body_over_the_limit_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "max_body_bytes = 1048576", "");
    // 12 MiB in chunks of unknown total length: past the limit and its drain allowance.
    let mut s = TcpStream::connect(&p.addr).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let head = "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes())?;
        let chunk = [b"20000\r\n".as_slice(), &[0u8; 0x20000], b"\r\n"].concat();
        for _ in 0..96 {
            writer.write_all(&chunk)?;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[test]
fn non_loopback_ingest_needs_keys_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |keys: &str| {
        let config = dir.path().join("open.toml");
        std::fs::write(
            &config,
            format!(
                "[platform]\nlisten = \"0.0.0.0:0\"\ndata_dir = {:?}\n{keys}\n",
                dir.path().join("data").display().to_string()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(["up", "-c"])
            .arg(&config)
            .env("AIOPS_API_TOKEN", "t-0123456789")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Either it refuses at once, or it is still running a moment later.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    };
    let err = run("").expect_err("open ingest off loopback must be refused");
    assert!(
        err.contains("OTLP and Sentry ingest open") && err.contains("ingest_keys"),
        "{err}"
    );
    let err = run("sentry_keys = [\"s\"]").expect_err("OTLP still open");
    assert!(err.contains("OTLP ingest open"), "{err}");
    run("ingest_keys = [\"k\"]").expect("keys given");
    run("allow_open_ingest = true").expect("explicitly open");
}

#[test]
fn the_gateway_times_out_stalled_bodies_and_sheds_past_its_cap() {
    use std::net::SocketAddr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream: SocketAddr = runtime.block_on(async {
        let app = axum::Router::new()
            .route(
                "/health/live",
                axum::routing::get(|| async { "{\"status\":\"UP\"}" }),
            )
            .route("/echo", axum::routing::post(|body: String| async { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(
        dir.path(),
        "",
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\nbody_read_timeout_ms = 1500\n\
             max_concurrent_requests = 2\nheader_read_timeout_ms = 800\n\
             [[service]]\nname = \"echo\"\nurl = \"http://{upstream}\"\nroutes = [\"/echo\"]\n\
             health = {{ ready = \"\" }}\n"
        ),
    );
    let gateway = p.gateway_url();
    let gw = gateway.trim_start_matches("http://").to_owned();
    let post = |body: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    eventually(Duration::from_secs(20), || {
        fresh_request(&gw, &post("hi"), Duration::from_secs(2)).filter(|(s, _)| *s == 200)
    });

    // Two uploads that stall hold both permits; a third request is shed at once.
    let stall = "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nabc";
    let mut stalled_a = stalled(&gw, stall);
    let mut stalled_b = stalled(&gw, stall);
    std::thread::sleep(Duration::from_millis(300));
    let (status, text) = fresh_request(&gw, &post("hi"), Duration::from_secs(2)).unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    // The stalled ones get 408 within the body-read timeout, not never.
    for s in [&mut stalled_a, &mut stalled_b] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).expect("an answer to the stalled upload");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
    }
    // Permits are back.
    let (status, _) = fresh_request(&gw, &post("again"), Duration::from_secs(2)).unwrap();
    assert_eq!(status, 200);

    // A head trickled to the gateway is cut off by its header-read timeout.
    let mut slow = stalled(&gw, "GET /echo HTTP/1.1\r\n");
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let closed = match slow.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "the gateway kept a half-sent head open");

    let m = p.metrics();
    assert_eq!(sample(&m, "aiops_gateway_shed_total"), 1.0, "{m}");
    assert_eq!(sample(&m, "aiops_gateway_body_timeouts_total"), 2.0, "{m}");
    assert!(
        sample(
            &m,
            "aiops_listener_header_timeouts_total{listener=\"gateway\"}"
        ) >= 1.0,
        "{m}"
    );
}
