//! The scorer on tiny hand-made graphs.

use super::*;

/// Deterministic jitter in `[-0.5, 0.5)`.
fn jitter(i: usize, salt: usize) -> f64 {
    ((i * 7919 + salt * 104_729) % 17) as f64 / 17.0 - 0.5
}

/// Adds `metric` for `node`: `level` plus jitter, plus `step` from index `from` on.
fn add(m: &mut MetricSeries, node: &str, metric: &str, level: f64, step: f64, from: usize) {
    let salt = node.len() * 31 + metric.len();
    for i in 0..120 {
        let v = level + level * 0.05 * jitter(i, salt) + if i >= from { step } else { 0.0 };
        m.push(node, metric, i as f64 * 10.0, v);
    }
}

fn chain() -> CallGraph {
    let mut g = CallGraph::new();
    g.add_edge("a", "b");
    g.add_edge("b", "c");
    g
}

fn names(r: &[RankedCause]) -> Vec<&str> {
    r.iter().map(|c| c.node.as_str()).collect()
}

#[test]
fn chain_with_the_fault_at_the_bottom_ranks_it_first() {
    let mut m = MetricSeries::new();
    add(&mut m, "c", "latency", 10.0, 40.0, 80);
    add(&mut m, "b", "latency", 30.0, 40.0, 81);
    add(&mut m, "a", "latency", 50.0, 40.0, 82);
    let r = rank(&m, &chain(), "a", &RankOptions::default()).expect("ranked");
    assert_eq!(names(&r), ["c", "b", "a"]);
    assert_eq!(r[0].rank, 1);
    assert!(r[0].score > r[1].score);
    let e = r[0].evidence.as_ref().expect("evidence");
    assert_eq!((e.metric.as_str(), e.onset), ("latency", 800.0));
}

#[test]
fn a_fault_at_the_target_itself_ranks_the_target_first() {
    let mut m = MetricSeries::new();
    add(&mut m, "c", "latency", 10.0, 0.0, 0);
    add(&mut m, "b", "latency", 30.0, 0.0, 0);
    add(&mut m, "a", "latency", 50.0, 60.0, 80);
    let r = rank(&m, &chain(), "a", &RankOptions::default()).expect("ranked");
    assert_eq!(r[0].node, "a");
    assert_eq!(r[1].score, 0.0);
}

#[test]
fn errors_at_a_dependency_explain_the_target_errors() {
    let mut m = MetricSeries::new();
    for (node, lag) in [("a", 2), ("b", 1), ("c", 0)] {
        add(&mut m, node, "latency", 20.0, 0.0, 0);
        add(&mut m, node, "error_rate", 0.01, 0.3, 70 + lag);
    }
    // A traffic change at `b` that is not the cause.
    add(&mut m, "b", "requests", 100.0, -30.0, 30);
    let options = RankOptions::default().with_target_metric("error_rate");
    let r = rank(&m, &chain(), "a", &options).expect("ranked");
    assert_eq!(r[0].node, "c");
}

#[test]
fn unrelated_nodes_are_not_candidates() {
    let mut g = chain();
    g.add_edge("x", "y");
    g.add_edge("x", "c");
    let mut m = MetricSeries::new();
    add(&mut m, "y", "latency", 10.0, 500.0, 60);
    add(&mut m, "x", "latency", 10.0, 500.0, 61);
    add(&mut m, "b", "latency", 10.0, 50.0, 60);
    add(&mut m, "a", "latency", 10.0, 50.0, 61);
    let r = rank(&m, &g, "a", &RankOptions::default()).expect("ranked");
    assert_eq!(names(&r), ["b", "a", "c"], "{r:?}");
    assert_eq!(r[2].evidence, None);
}

#[test]
fn since_sets_the_baseline() {
    let mut m = MetricSeries::new();
    // An old change at `c` (before the incident window) and the incident's change at `b`.
    add(&mut m, "c", "latency", 10.0, 40.0, 20);
    add(&mut m, "b", "latency", 30.0, 40.0, 80);
    add(&mut m, "a", "latency", 50.0, 40.0, 81);
    let options = RankOptions::default().with_since(700.0);
    let r = rank(&m, &chain(), "a", &options).expect("ranked");
    assert_eq!(r[0].node, "b", "{r:?}");
}

#[test]
fn unknown_target_and_target_metric_are_errors() {
    let mut m = MetricSeries::new();
    add(&mut m, "a", "latency", 10.0, 0.0, 0);
    let g = chain();
    assert_eq!(
        rank(&m, &g, "zz", &RankOptions::default()),
        Err(RcaError::UnknownTarget("zz".into()))
    );
    let err = rank(
        &m,
        &g,
        "a",
        &RankOptions::default().with_target_metric("cpu"),
    )
    .expect_err("no cpu");
    assert_eq!(
        err.to_string(),
        "target `a` has no metric `cpu` (it has: latency)"
    );
}

#[test]
fn no_data_anywhere_is_ranked_by_name_with_zero_scores() {
    let mut g = CallGraph::new();
    g.add_edge("t", "q");
    g.add_edge("t", "p");
    let r = rank(&MetricSeries::new(), &g, "t", &RankOptions::default()).expect("ranked");
    assert_eq!(names(&r), ["p", "q", "t"]);
    assert!(r.iter().all(|c| c.score == 0.0));
}

#[test]
fn a_target_only_in_the_metrics_is_its_own_only_candidate() {
    let mut m = MetricSeries::new();
    add(&mut m, "solo", "latency", 10.0, 30.0, 60);
    let r = rank(&m, &CallGraph::new(), "solo", &RankOptions::default()).expect("ranked");
    assert_eq!(names(&r), ["solo"]);
    assert!(r[0].score > 0.5);
}
