//! `aiops rca` and `aiops rca-bench` end to end, running the real binary.

use std::path::Path;
use std::process::{Command, Output};

use aiops_platform::rca::bench::{BenchOptions, case};
use aiops_platform::rca::{self, RankOptions};

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

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed");
    assert!(out.stdout.is_empty(), "no output on failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `web → api → db`, `db` slows down first, then the others.
fn chain_metrics() -> String {
    let mut s = String::from("timestamp,node,metric,value\n");
    for i in 0..120u32 {
        let t = 1_700_000_000.0 + f64::from(i) * 10.0 + 0.25;
        let jitter = f64::from((i * 7919) % 13) / 13.0;
        for (node, base, onset) in [("db", 5.0, 80), ("api", 20.0, 81), ("web", 40.0, 82)] {
            let slow = if i >= onset { 50.0 } else { 0.0 };
            s += &format!("{t},{node},latency,{}\n", base + jitter + slow);
            s += &format!("{t},{node},error_rate,{}\n", 0.001 * jitter);
        }
    }
    s
}

const CHAIN: &str = "caller,callee\nweb,api\napi,db\nother,db\n";

#[test]
fn ranks_the_slow_dependency_first_as_csv_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "m.csv", &chain_metrics());
    let g = write(dir.path(), "g.csv", CHAIN);
    let base = ["rca", "--metrics", &m, "--graph", &g, "--target", "web"];
    let text = stdout(&aiops(&base));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "rank,node,score");
    assert_eq!(lines.len(), 4, "web, api, db; never `other`: {text}");
    assert!(lines[1].starts_with("1,db,"), "{text}");
    let json = stdout(&aiops(
        &[&base[..], &["--json", "--target-metric", "latency"]].concat(),
    ));
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(rows[0]["rank"], 1);
    assert_eq!(rows[0]["node"], "db");
    assert!(rows[0]["score"].as_f64().expect("score") > rows[1]["score"].as_f64().expect("score"));
    let since = stdout(&aiops(&[&base[..], &["--since", "1700000700"]].concat()));
    assert!(
        since.lines().nth(1).expect("row").starts_with("1,db,"),
        "{since}"
    );
}

#[test]
fn malformed_rows_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_m = write(dir.path(), "m.csv", &chain_metrics());
    let good_g = write(dir.path(), "g.csv", CHAIN);
    let bad_m = write(
        dir.path(),
        "bad_m.csv",
        "timestamp,node,metric,value\n1,web,latency,3\n2,web,latency,fast\n",
    );
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &bad_m,
        "--graph",
        &good_g,
        "--target",
        "web",
    ]));
    assert!(
        err.contains(&format!("{bad_m}:3: bad value `fast`")),
        "{err}"
    );
    let short = write(dir.path(), "short.csv", "1,web,latency\n");
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &short,
        "--graph",
        &good_g,
        "--target",
        "web",
    ]));
    assert!(
        err.contains(&format!("{short}:1: expected 4 fields")),
        "{err}"
    );
    let bad_g = write(dir.path(), "bad_g.csv", "web,api\nweb;db\n");
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &good_m,
        "--graph",
        &bad_g,
        "--target",
        "web",
    ]));
    assert!(
        err.contains(&format!("{bad_g}:2: expected 2 fields")),
        "{err}"
    );
}

#[test]
fn missing_files_and_unknown_targets_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "m.csv", &chain_metrics());
    let g = write(dir.path(), "g.csv", CHAIN);
    let missing = dir.path().join("nope.csv").display().to_string();
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &missing,
        "--graph",
        &g,
        "--target",
        "web",
    ]));
    assert!(err.contains(&missing), "{err}");
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &m,
        "--graph",
        &g,
        "--target",
        "nobody",
    ]));
    assert!(err.contains("unknown target `nobody`"), "{err}");
    let err = failure(&aiops(&[
        "rca",
        "--metrics",
        &m,
        "--graph",
        &g,
        "--target",
        "web",
        "--target-metric",
        "cpu",
    ]));
    assert!(err.contains("has no metric `cpu`"), "{err}");
}

#[test]
fn benchmark_cases_written_to_csv_rank_as_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cases");
    let cases = out.display().to_string();
    let report = stdout(&aiops(&[
        "rca-bench",
        "--cases",
        "8",
        "--seed",
        "3",
        "--write",
        &cases,
    ]));
    assert!(
        report.starts_with("family,held_out,cases,top1,top3\n"),
        "{report}"
    );
    assert!(report.lines().any(|l| l.starts_with("all,,8,")), "{report}");
    let index = std::fs::read_to_string(out.join("cases.csv")).expect("index");
    let options = BenchOptions {
        cases: 8,
        seed: 3,
        ..BenchOptions::default()
    };
    for (id, row) in index.lines().skip(1).enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        let (name, target, metric) = (fields[0], fields[2], fields[3]);
        let expected = case(&options, id).expect("case");
        assert_eq!(
            (target, fields[4]),
            (expected.target.as_str(), expected.root.as_str())
        );
        let case_dir = out.join(name);
        let text = stdout(&aiops(&[
            "rca",
            "--metrics",
            &case_dir.join("metrics.csv").display().to_string(),
            "--graph",
            &case_dir.join("graph.csv").display().to_string(),
            "--target",
            target,
            "--target-metric",
            metric,
        ]));
        let ranked = rca::rank(
            &expected.metrics,
            &expected.graph,
            target,
            &RankOptions::default().with_target_metric(metric),
        )
        .expect("ranked");
        let in_memory: Vec<String> = ranked
            .iter()
            .map(|c| format!("{},{},{:.6}", c.rank, c.node, c.score))
            .collect();
        let from_csv: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(from_csv, in_memory, "{name}");
    }
}
