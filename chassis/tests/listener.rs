//! The service's listener under slow and stalled clients: a header-read timeout, an idle
//! timeout and a connection cap (`AIODS_SERVER__*`), on a real service process.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Service, parse_exposition};

/// One request on a fresh connection: its status, or `None` if the connection failed.
fn status_of(port: u16, request: &str) -> Option<u16> {
    let addr = format!("127.0.0.1:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .get(9..12)?
        .parse()
        .ok()
}

fn health(port: u16) -> Option<u16> {
    status_of(
        port,
        "GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
}

/// Whether the server closed `s` within `within` (not merely stayed silent).
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn counter(port: u16, name: &str) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    parse_exposition(body)
        .into_iter()
        .find(|s| s.name == name)
        .map_or(0.0, |s| s.value)
}

#[test]
fn slow_header_clients_do_not_take_the_service_down() {
    let svc = Service::start(&[
        ("AIODS_SERVER__MAX_CONNECTIONS", "32"),
        ("AIODS_SERVER__HEADER_READ_TIMEOUT", "1500ms"),
        ("AIODS_ACCESS_LOG", "false"),
    ]);
    assert_eq!(health(svc.port), Some(200));
    // As if `ulimit -n 128`: 200 slow clients would exhaust the descriptors without a cap.
    let limited = Command::new("prlimit")
        .args([
            format!("--pid={}", svc.child.id()),
            "--nofile=128:128".to_owned(),
        ])
        .status()
        .unwrap();
    assert!(limited.success());
    let addr = format!("127.0.0.1:{}", svc.port);
    let mut slow: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    let head = b"GET /hello/slow HTTP/1.1\r\nhost: x\r\n";
    let started = Instant::now();
    let mut sent = 0;
    let answered = loop {
        // One more byte on each slow connection, then a health check on a fresh one.
        let byte = head.get(sent).copied().unwrap_or(b'x');
        sent += 1;
        slow.retain_mut(|s| s.write_all(&[byte]).is_ok());
        if health(svc.port) == Some(200) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "health did not answer while slow clients trickled"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "health answered {answered:?} into the attack; {} slow connections still open",
        slow.len()
    );
    drop(slow);
    assert!(counter(svc.port, "aiods_listener_connections_refused_total") >= 100.0);
    assert!(counter(svc.port, "aiods_listener_header_timeouts_total") >= 1.0);
}

#[test]
fn a_stalled_body_is_closed_and_shutdown_does_not_wait_on_half_open_connections() {
    let mut svc = Service::start(&[
        ("AIODS_SERVER__HEADER_READ_TIMEOUT", "60s"),
        ("AIODS_SERVER__IDLE_TIMEOUT", "1s"),
        ("AIODS_SHUTDOWN_GRACE", "1s"),
    ]);
    let addr = format!("127.0.0.1:{}", svc.port);
    // Headers of a 1000-byte JSON body, then 3 bytes, then nothing.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(
            b"POST /items HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"a",
        )
        .unwrap();
    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(10)),
        "a stalled upload held its connection"
    );
    assert!(counter(svc.port, "aiods_listener_idle_closed_total") >= 1.0);

    let mut half_open = TcpStream::connect(&addr).unwrap();
    half_open.write_all(b"GET /hello/x HTTP/1.1\r\nho").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    svc.signal("TERM");
    let status = svc
        .wait_exit(Duration::from_secs(10))
        .expect("the service exits within its grace");
    assert!(status.success(), "{status:?}");
    assert!(stopping.elapsed() < Duration::from_secs(6));
    drop(half_open);
}
