//! `aiops up`'s own log lines: no ANSI escape codes when stderr is not a terminal, and JSON
//! lines like the services' with `--log-format json` (or `AIOPS_LOG_FORMAT=json`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `aiops up` on port 0 with stderr redirected to a file, stops it once it listens, and
/// returns what it wrote on stderr.
fn run_up(extra: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aiods.toml");
    std::fs::write(
        &config,
        format!(
            "[platform]\ndata_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("config");
    let log = dir.path().join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiops"));
    cmd.args(["up", "-c"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("AIOPS_API_TOKEN", "test-token-0123456789")
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("AIOPS_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("aiops starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("\"listening\"") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("aiops printed its listening address");
    // And its own log line is on stderr (written by the logging thread).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("aiops platform listening")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: a graceful stop that logs too.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    std::fs::read(&log).expect("stderr log")
}

#[test]
fn a_redirected_log_holds_no_escape_code() {
    let log = run_up(&[], &[]);
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("aiops platform listening"), "{text}");
    assert!(!log.contains(&0x1b), "ESC in a redirected log: {text:?}");
}

#[test]
fn json_logs_are_one_object_per_line_like_the_services() {
    for (args, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("AIOPS_LOG_FORMAT", "json")][..]),
    ] {
        let log = run_up(args, env);
        let text = String::from_utf8(log).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let listening = lines
            .iter()
            .find(|v| v["message"] == "aiops platform listening")
            .unwrap_or_else(|| panic!("the listening line: {text}"));
        assert_eq!(listening["level"], "INFO");
        assert_eq!(listening["service"], "aiops");
        assert!(listening["addr"].as_str().is_some(), "{listening}");
        assert!(
            listening["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert!(listening["target"].as_str().is_some());
    }
}
