//! On SIGTERM the exception queue is drained within the shutdown grace, not for a fixed time:
//! exceptions queued behind a slow Sentry still arrive before the service exits.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::Service;

/// How long the receiver takes to answer each envelope: longer than the fixed flush the
/// service had before (2 s, plus 2 s more when the client guard closed), and than the
/// chassis's 5 s send timeout, after which it sends the next envelope.
const SLOW: Duration = Duration::from_secs(6);

/// A Sentry receiver that counts envelopes as they arrive and answers each after [`SLOW`].
fn slow_sentry() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let count = count.clone();
            std::thread::spawn(move || serve(stream, &count));
        }
    });
    (format!("http://publickey@{addr}/1"), received)
}

fn serve(stream: TcpStream, count: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(SLOW);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn get(port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn exceptions_queued_behind_a_slow_sentry_are_sent_before_exit() {
    let (dsn, received) = slow_sentry();
    let mut svc = Service::start(&[("SENTRY_DSN", &dsn), ("AIODS_SHUTDOWN_GRACE", "15s")]);
    // Two exceptions: the second waits in the queue while the first is at the receiver.
    assert_eq!(get(svc.port, "/fail"), 500);
    assert_eq!(get(svc.port, "/panic"), 500);
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first exception never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    svc.signal("TERM");
    let status = svc
        .wait_exit(Duration::from_secs(20))
        .expect("the service exits within its grace");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        received.load(Ordering::SeqCst),
        2,
        "an exception queued at SIGTERM was lost"
    );
}
