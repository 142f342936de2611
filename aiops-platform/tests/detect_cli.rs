//! `aiops detect` end to end, running the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn aiops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(args)
        .output()
        .expect("run aiops")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write input");
    p.display().to_string()
}

fn series(with_spike: bool) -> String {
    let mut s = String::from("timestamp,value\n");
    for i in 0..600u32 {
        let v =
            10.0 + ((i * 37) % 11) as f64 * 0.1 + if with_spike && i == 500 { 25.0 } else { 0.0 };
        s += &format!("2014-04-01 {:02}:{:02}:00,{v}\n", i / 60 % 24, i % 60);
    }
    s
}

#[test]
fn scores_a_series_and_copies_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.csv", &series(true));
    let output = dir.path().join("out.csv");
    let out = aiops(&[
        "detect",
        "--input",
        &input,
        "--output",
        &output.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).expect("output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,value,anomaly_score");
    assert_eq!(lines.len(), 601);
    let input_text = series(true);
    for (o, i) in lines[1..].iter().zip(input_text.lines().skip(1)) {
        assert!(o.starts_with(&format!("{i},")), "{o} does not copy {i}");
        let score: f64 = o
            .rsplit(',')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("score");
        assert!((0.0..=1.0).contains(&score));
    }
    let score_at = |k: usize| -> f64 {
        lines[k + 1]
            .rsplit(',')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("score")
    };
    let spike = score_at(500);
    let max_other = (130..600)
        .filter(|&k| k != 500)
        .map(score_at)
        .fold(0.0, f64::max);
    assert!(
        spike > 0.5 && spike > max_other,
        "spike {spike}, other max {max_other}"
    );
}

#[test]
fn every_detector_and_epoch_timestamps_to_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..300 {
        csv += &format!("{},{}\n", 1_396_310_400 + i * 300, (i % 7) as f64);
    }
    let input = write(dir.path(), "in.csv", &csv);
    for d in ["robust", "spectral", "novelty", "ensemble"] {
        let out = aiops(&["detect", "--input", &input, "--detector", d]);
        assert!(
            out.status.success(),
            "{d}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 301);
    }
}

#[test]
fn malformed_rows_are_reported_with_line_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n",
            ":3:",
            "bad value",
        ),
        (
            "timestamp,value\n2014-04-01 00:00:00,1\nnot-a-time,2\n",
            ":3:",
            "bad timestamp",
        ),
        (
            "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00\n",
            ":3:",
            "two columns",
        ),
        (
            "timestamp,value\n2014-04-01 00:00:00,1,7\n",
            ":2:",
            "two columns",
        ),
    ];
    for (i, (csv, line, reason)) in cases.iter().enumerate() {
        let input = write(dir.path(), &format!("bad{i}.csv"), csv);
        let output = dir.path().join(format!("out{i}.csv"));
        let out = aiops(&[
            "detect",
            "--input",
            &input,
            "--output",
            &output.display().to_string(),
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(line) && err.contains(reason),
            "case {i}: {err}"
        );
        assert!(!output.exists(), "no partial output on error");
    }
    let out = aiops(&["detect", "--input", "/nonexistent/in.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/in.csv"));
    let input = write(dir.path(), "ok.csv", "timestamp,value\n1,2\n");
    let out = aiops(&["detect", "--input", &input, "--detector", "magic"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown detector"));
}
