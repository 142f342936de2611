//! `aiops logs templates` end to end, running the real binary.

use std::process::{Command, Output};

fn aiops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(args)
        .output()
        .expect("run aiops")
}

#[test]
fn one_line_per_input_line_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = String::new();
    for i in 0..50 {
        log += &format!(
            "Dec 10 06:{:02}:46 LabSZ sshd[{}]: Failed password for root from 10.0.0.{i} port {} ssh2\n",
            i % 60,
            24000 + i,
            40000 + i
        );
        log += &format!(
            "{{\"level\":\"INFO\",\"message\":\"request finished\",\"status\":200,\"latency_ms\":{i}}}\n"
        );
        log += &format!(
            "081109 2036{:02} 148 INFO dfs.DataNode: Deleting block blk_{i} file /data/{i}\n",
            i % 60
        );
    }
    let input = dir.path().join("app.log");
    std::fs::write(&input, &log).expect("write");
    let output = dir.path().join("assignments.tsv");
    let out = aiops(&[
        "logs",
        "templates",
        "--input",
        &input.display().to_string(),
        "--output",
        &output.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).expect("output");
    let rows: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split_once('\t').expect("tab-separated"))
        .collect();
    assert_eq!(rows.len(), 150);
    // three formats, three ids, each repeating in input order
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row, &rows[k % 3], "line {} has a different template", k + 1);
    }
    assert!(rows[0].0 != rows[1].0 && rows[1].0 != rows[2].0 && rows[0].0 != rows[2].0);
    assert_eq!(rows[0].1, "Failed password for root from <*> port <*> ssh2");
}

#[test]
fn stdout_and_missing_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("a.log");
    std::fs::write(&input, "hello world 1\nhello world 2\n\u{fffd} odd bytes\n").expect("write");
    let out = aiops(&["logs", "templates", "--input", &input.display().to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3);
    let out = aiops(&["logs", "templates", "--input", "/nonexistent.log"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.log"));
}
