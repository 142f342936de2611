//! A synthetic root-cause benchmark: random call graphs, one injected fault at a known node,
//! its effects propagated to the callers with delay and attenuation, noise, gaps and
//! distractors; then [`super::rank`] is scored on it (top-1, top-3, per fault family).
//!
//! Everything derives from a seed through a small SplitMix64 generator, so a case is the same
//! on every machine and every release of the dependencies.
//!
//! # The generated world
//!
//! - **Graph**: 5–40 nodes in layers (depth 2–5 calls), 1–3 entry points in the top layer;
//!   every other node has a caller in the layer above, and nodes call 0–2 more nodes deeper
//!   down. Node names are shuffled so that names say nothing about depth.
//! - **Series** (240 points, 10 s apart) per node: `latency` (own time plus the callees'
//!   latency weighted by call fraction 0.3–1, lognormal noise of 3–20 %, 1 % spikes),
//!   `error_rate` (own rate plus the callees', each attenuated by retries), `requests` (entry
//!   load with a slow wave, times fan-out along edges, 3 % noise) and `cpu` (following the
//!   load, noise 0.01–0.06). Each edge delays what crosses it by 0–2 points; each node is sampled at its own
//!   phase within the step; 2 % of points are missing.
//! - **Faults** at a uniformly drawn root, at a uniformly drawn point 120–180:
//!   [`FaultFamily::Latency`] (root latency ×1.2–4), [`FaultFamily::Errors`] (a burst of
//!   2–40 % errors lasting 40–120 points), [`FaultFamily::Saturation`] (capacity cut to
//!   70–95 % of the load: requests plateau, latency up 1.2–2.5×, some rejections) and
//!   [`FaultFamily::Cpu`] (a CPU hog: CPU up 0.05–0.3, own latency up 10–60 %, no errors).
//! - **Distractors**: half the cases have a benign change at another node at any time (a
//!   traffic shift or a CPU step after a deploy); 30 % have a real latency fault at a node
//!   that is not a candidate (outside the target's dependencies).
//! - **Target**: the node where the incident shows, an entry point above the root (70 %) or
//!   any node above it or the root itself (30 %); the target metric is `error_rate` for
//!   error faults, `latency` otherwise.

use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use super::graph::CallGraph;
use super::series::MetricSeries;
use super::{RankOptions, rank};

/// Points per series.
const POINTS: usize = 240;
/// Seconds between points.
const STEP: f64 = 10.0;
/// Time of the first point.
const START: f64 = 1_700_000_000.0;

/// A family of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultFamily {
    /// A latency step at the root.
    Latency,
    /// An error burst at the root.
    Errors,
    /// Saturation: latency up and requests capped at a plateau.
    Saturation,
    /// A CPU hog: CPU up, latency up a little, no errors.
    Cpu,
}

impl FaultFamily {
    /// Every family, in report order.
    pub const ALL: [Self; 4] = [Self::Latency, Self::Errors, Self::Saturation, Self::Cpu];
    /// The families the defaults of [`RankOptions`] were tuned on.
    pub const TUNED: [Self; 2] = [Self::Latency, Self::Errors];

    /// The family's name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Errors => "errors",
            Self::Saturation => "saturation",
            Self::Cpu => "cpu",
        }
    }

    /// Whether the family was kept out of all tuning.
    #[must_use]
    pub fn held_out(self) -> bool {
        !Self::TUNED.contains(&self)
    }

    fn target_metric(self) -> &'static str {
        match self {
            Self::Errors => "error_rate",
            _ => "latency",
        }
    }
}

impl fmt::Display for FaultFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown fault family name.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("unknown fault family `{0}` (expected latency, errors, saturation or cpu)")]
pub struct UnknownFamily(pub String);

impl FromStr for FaultFamily {
    type Err = UnknownFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFamily(s.to_owned()))
    }
}

/// SplitMix64: tiny, fast and stable forever (unlike a library RNG's stream).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.int(0, items.len() - 1)]
    }
}

const NAMES: [&str; 40] = [
    "accounts",
    "ads",
    "api",
    "auth",
    "billing",
    "cache",
    "cart",
    "catalog",
    "checkout",
    "config",
    "currency",
    "delivery",
    "discounts",
    "email",
    "events",
    "fraud",
    "frontend",
    "gateway",
    "geo",
    "images",
    "inventory",
    "invoices",
    "kitchen",
    "ledger",
    "loyalty",
    "media",
    "notify",
    "orders",
    "payments",
    "pricing",
    "profile",
    "queue",
    "ratings",
    "recommend",
    "search",
    "session",
    "shipping",
    "sms",
    "tax",
    "users",
];

/// One generated case: inputs for [`super::rank`] and the known answer.
#[derive(Debug, Clone)]
pub struct BenchCase {
    /// Index of the case in its run.
    pub id: usize,
    /// The injected fault's family.
    pub family: FaultFamily,
    /// `caller → callee` edges, in generation order.
    pub edges: Vec<(String, String)>,
    /// The same edges as a graph.
    pub graph: CallGraph,
    /// Per-node series: `latency`, `error_rate`, `requests`, `cpu`.
    pub metrics: MetricSeries,
    /// Where the incident shows.
    pub target: String,
    /// The metric it shows on.
    pub target_metric: String,
    /// The node where the fault was injected: the right answer.
    pub root: String,
    /// When the fault was injected (epoch seconds).
    pub fault_time: f64,
}

/// The generated topology.
struct World {
    names: Vec<String>,
    level: Vec<usize>,
    /// `(caller, callee, call fraction, delay in points, fan-out, retry absorption)`.
    edges: Vec<(usize, usize, f64, usize, f64, f64)>,
}

impl World {
    fn generate(rng: &mut SplitMix) -> Self {
        let n = rng.int(5, 40);
        let depth = rng.int(2, 5).min(n - 1);
        let entries = rng.int(1, 3).min(n - depth);
        let mut level = vec![0; entries];
        level.extend(1..=depth);
        while level.len() < n {
            level.push(rng.int(1, depth));
        }
        let mut pool: Vec<&str> = NAMES.to_vec();
        for i in (1..pool.len()).rev() {
            pool.swap(i, rng.int(0, i));
        }
        let names = pool[..n].iter().map(|s| (*s).to_owned()).collect();
        let mut edges = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut add = |rng: &mut SplitMix, a: usize, b: usize| {
            if seen.insert((a, b)) {
                edges.push((
                    a,
                    b,
                    rng.range(0.3, 1.0),
                    rng.int(0, 2),
                    rng.range(0.5, 2.0),
                    rng.range(0.0, 0.5),
                ));
            }
        };
        for b in 0..n {
            if level[b] > 0 {
                let above: Vec<usize> = (0..n).filter(|&a| level[a] + 1 == level[b]).collect();
                let a = *rng.pick(&above);
                add(rng, a, b);
            }
        }
        for a in 0..n {
            if level[a] == depth {
                continue;
            }
            for _ in 0..rng.int(0, 2) {
                let next: Vec<usize> = (0..n).filter(|&b| level[b] == level[a] + 1).collect();
                let deeper: Vec<usize> = (0..n).filter(|&b| level[b] > level[a]).collect();
                let b = if rng.chance(0.7) {
                    *rng.pick(&next)
                } else {
                    *rng.pick(&deeper)
                };
                add(rng, a, b);
            }
        }
        Self {
            names,
            level,
            edges,
        }
    }

    /// Nodes from the deepest layer up (callees before callers).
    fn bottom_up(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.level[i]));
        order
    }
}

/// What the fault does to the root over time, before propagation.
#[derive(Default)]
struct Injected {
    own_latency: Vec<Vec<f64>>,
    own_errors: Vec<Vec<f64>>,
    cpu: Vec<Vec<f64>>,
    /// Capacity of a saturated node from the fault on: (node, capacity, latency factor).
    saturation: Option<(usize, f64, f64)>,
}

impl BenchCase {
    /// Generates case `id` of the run seeded `seed`, with a fault of `family`.
    #[must_use]
    pub fn generate(seed: u64, id: usize, family: FaultFamily) -> Self {
        let mut rng = SplitMix(seed ^ (id as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        let _ = rng.next();
        let world = World::generate(&mut rng);
        let n = world.names.len();
        let order = world.bottom_up();
        let t = POINTS;

        // Baselines.
        let own_latency: Vec<f64> = (0..n).map(|_| rng.range(2.0, 60.0)).collect();
        let own_errors: Vec<f64> = (0..n).map(|_| rng.range(0.0, 0.01)).collect();
        let latency_noise: Vec<f64> = (0..n).map(|_| rng.range(0.03, 0.2)).collect();
        let cpu_base: Vec<f64> = (0..n).map(|_| rng.range(0.1, 0.5)).collect();
        let cpu_noise: Vec<f64> = (0..n).map(|_| rng.range(0.01, 0.06)).collect();

        // Load: entries get a slow wave, the rest what their callers send.
        let mut requests = vec![vec![0.0; t]; n];
        for i in (0..n).filter(|&i| world.level[i] == 0) {
            let (r0, period, phase) = (
                rng.range(20.0, 200.0),
                rng.range(150.0, 400.0),
                rng.range(0.0, 6.3),
            );
            for (k, r) in requests[i].iter_mut().enumerate() {
                *r = r0 * (1.0 + 0.15 * (std::f64::consts::TAU * k as f64 / period + phase).sin());
            }
        }

        let fault_at = rng.int(120, 180);
        let root = rng.int(0, n - 1);
        let mut inj = Injected {
            own_latency: own_latency.iter().map(|&l| vec![l; t]).collect(),
            own_errors: own_errors.iter().map(|&e| vec![e; t]).collect(),
            cpu: vec![vec![0.0; t]; n],
            saturation: None,
        };
        let mut dependents = world.dependents(root);
        dependents.push(root);
        // The baseline total latency of the root, to size latency faults.
        let baseline_total = world.total_latency(&own_latency, root);
        match family {
            FaultFamily::Latency => {
                let add = baseline_total * rng.range(0.2, 3.0);
                inj.own_latency[root][fault_at..]
                    .iter_mut()
                    .for_each(|l| *l += add);
            }
            FaultFamily::Errors => {
                let rate = rng.range(0.02, 0.4);
                let end = (fault_at + rng.int(40, 120)).min(t);
                inj.own_errors[root][fault_at..end]
                    .iter_mut()
                    .for_each(|e| *e += rate);
            }
            FaultFamily::Saturation => {
                let factor = rng.range(0.7, 0.95);
                let slow = rng.range(0.2, 1.5);
                inj.saturation = Some((root, factor, slow * baseline_total));
            }
            FaultFamily::Cpu => {
                let cpu = rng.range(0.05, 0.3);
                let add = own_latency[root] * rng.range(0.1, 0.6);
                inj.cpu[root][fault_at..].iter_mut().for_each(|c| *c += cpu);
                inj.own_latency[root][fault_at..]
                    .iter_mut()
                    .for_each(|l| *l += add);
            }
        }

        // Distractors.
        let candidates_of = |target: usize| {
            let mut c = world.dependencies(target);
            c.push(target);
            c
        };
        let target = if rng.chance(0.7) {
            let entries: Vec<usize> = dependents
                .iter()
                .copied()
                .filter(|&d| world.level[d] == 0)
                .collect();
            *rng.pick(&entries)
        } else {
            *rng.pick(&dependents)
        };
        let candidates = candidates_of(target);
        let mut traffic_shift: Option<(usize, usize, f64)> = None;
        if rng.chance(0.5) {
            let others: Vec<usize> = (0..n).filter(|&i| i != root).collect();
            let d = *rng.pick(&others);
            let at = rng.int(40, t - 10);
            if rng.chance(0.5) {
                traffic_shift = Some((d, at, rng.range(0.7, 1.3)));
            } else {
                let step = rng.range(0.05, 0.15);
                inj.cpu[d][at..].iter_mut().for_each(|c| *c += step);
            }
        }
        if rng.chance(0.3) {
            let outside: Vec<usize> = (0..n).filter(|i| !candidates.contains(i)).collect();
            if !outside.is_empty() {
                let d = *rng.pick(&outside);
                let at = rng.int(40, t - 10);
                let add = own_latency[d] * rng.range(1.0, 3.0);
                inj.own_latency[d][at..].iter_mut().for_each(|l| *l += add);
            }
        }

        // Requests downstream, top down; a saturated node serves at most its capacity.
        let mut served = requests.clone();
        let mut capacity = f64::INFINITY;
        for &i in order.iter().rev() {
            for k in 0..t {
                if let Some((d, at, factor)) = traffic_shift
                    && d == i
                    && k >= at
                {
                    requests[i][k] *= factor;
                }
                let mut r = requests[i][k];
                if let Some((s, factor, _)) = inj.saturation
                    && s == i
                    && k >= fault_at
                {
                    if k == fault_at {
                        capacity = r * factor;
                    }
                    r = r.min(capacity);
                }
                served[i][k] = r;
            }
            for &(a, b, _, _, fanout, _) in &world.edges {
                if a == i {
                    for k in 0..t {
                        requests[b][k] += served[i][k] * fanout;
                    }
                }
            }
        }
        if let Some((s, _, slow)) = inj.saturation {
            for k in fault_at..t {
                let rejected = 1.0 - served[s][k] / requests[s][k].max(1e-9);
                inj.own_latency[s][k] += slow;
                inj.own_errors[s][k] += 0.3 * rejected;
            }
        }

        // Latency and errors, bottom up, each edge delaying what crosses it.
        let mut latency = inj.own_latency.clone();
        let mut errors = inj.own_errors.clone();
        for &i in &order {
            for &(a, b, share, delay, _, absorb) in &world.edges {
                if a != i {
                    continue;
                }
                for k in 0..t {
                    let from = k.saturating_sub(delay);
                    latency[i][k] += share * latency[b][from];
                    let passed = share * (1.0 - absorb) * errors[b][from];
                    errors[i][k] = 1.0 - (1.0 - errors[i][k]) * (1.0 - passed);
                }
            }
        }

        // Observations with noise and gaps.
        let mut metrics = MetricSeries::new();
        for i in 0..n {
            // Each node is scraped at its own phase within the step.
            let offset = rng.range(0.0, STEP);
            let mean_load = served[i].iter().sum::<f64>() / t as f64;
            for k in 0..t {
                let ts = START + k as f64 * STEP + offset;
                let keep = |rng: &mut SplitMix| !rng.chance(0.02);
                let spike = if rng.chance(0.01) {
                    rng.range(1.5, 3.0)
                } else {
                    1.0
                };
                let lat = latency[i][k] * (latency_noise[i] * rng.normal()).exp() * spike;
                if keep(&mut rng) {
                    metrics.push(&world.names[i], "latency", ts, lat);
                }
                let e = errors[i][k].clamp(0.0, 1.0);
                let calls = (served[i][k] * STEP).max(1.0);
                let sd = (e * (1.0 - e) / calls).sqrt() + 1e-4;
                if keep(&mut rng) {
                    metrics.push(
                        &world.names[i],
                        "error_rate",
                        ts,
                        (e + sd * rng.normal()).clamp(0.0, 1.0),
                    );
                }
                let plateau = inj
                    .saturation
                    .is_some_and(|(s, _, _)| s == i && k >= fault_at);
                let noise = if plateau { 0.005 } else { 0.03 };
                if keep(&mut rng) {
                    metrics.push(
                        &world.names[i],
                        "requests",
                        ts,
                        served[i][k] * (1.0 + noise * rng.normal()),
                    );
                }
                let load = (served[i][k] / mean_load.max(1e-9)).sqrt();
                let cpu = cpu_base[i] * load + inj.cpu[i][k] + cpu_noise[i] * rng.normal();
                if keep(&mut rng) {
                    metrics.push(&world.names[i], "cpu", ts, cpu.clamp(0.0, 1.0));
                }
            }
        }
        metrics.sort();

        let edges: Vec<(String, String)> = world
            .edges
            .iter()
            .map(|&(a, b, ..)| (world.names[a].clone(), world.names[b].clone()))
            .collect();
        let mut graph = CallGraph::new();
        for (a, b) in &edges {
            graph.add_edge(a, b);
        }
        Self {
            id,
            family,
            edges,
            graph,
            metrics,
            target: world.names[target].clone(),
            target_metric: family.target_metric().to_owned(),
            root: world.names[root].clone(),
            fault_time: START + fault_at as f64 * STEP,
        }
    }

    /// Writes `metrics.csv` and `graph.csv` of this case into `dir`, in the exact input format
    /// of `aiops rca`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut m = BufWriter::new(fs::File::create(dir.join("metrics.csv"))?);
        writeln!(m, "timestamp,node,metric,value")?;
        for node in self.metrics.nodes() {
            for (metric, points) in self.metrics.metrics_of(node) {
                for (ts, v) in points {
                    writeln!(m, "{ts},{node},{metric},{v}")?;
                }
            }
        }
        m.flush()?;
        let mut g = BufWriter::new(fs::File::create(dir.join("graph.csv"))?);
        writeln!(g, "caller,callee")?;
        for (a, b) in &self.edges {
            writeln!(g, "{a},{b}")?;
        }
        g.flush()
    }
}

impl World {
    fn reach(&self, from: usize, up: bool) -> Vec<usize> {
        let mut seen = vec![false; self.names.len()];
        let mut stack = vec![from];
        let mut out = Vec::new();
        while let Some(x) = stack.pop() {
            for &(a, b, ..) in &self.edges {
                let (src, dst) = if up { (b, a) } else { (a, b) };
                if src == x && !seen[dst] {
                    seen[dst] = true;
                    out.push(dst);
                    stack.push(dst);
                }
            }
        }
        out
    }

    fn dependents(&self, node: usize) -> Vec<usize> {
        self.reach(node, true)
    }

    fn dependencies(&self, node: usize) -> Vec<usize> {
        self.reach(node, false)
    }

    fn total_latency(&self, own: &[f64], node: usize) -> f64 {
        own[node]
            + self
                .edges
                .iter()
                .filter(|e| e.0 == node)
                .map(|e| e.2 * self.total_latency(own, e.1))
                .sum::<f64>()
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Number of cases, spread round-robin over `families`.
    pub cases: usize,
    /// Seed of the whole run.
    pub seed: u64,
    /// Fault families to generate.
    pub families: Vec<FaultFamily>,
    /// Pass the fault time as `since` (as a scorer that knows the injection time would);
    /// otherwise every series finds its own change point.
    pub since_known: bool,
    /// Scorer settings (the target metric is set per case).
    pub rank: RankOptions,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            cases: 500,
            seed: 7,
            families: FaultFamily::ALL.to_vec(),
            since_known: false,
            rank: RankOptions::default(),
        }
    }
}

/// Accuracy on one family (or overall).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    /// Cases scored.
    pub cases: usize,
    /// Cases whose root ranked first.
    pub top1: usize,
    /// Cases whose root ranked in the first three.
    pub top3: usize,
}

impl Accuracy {
    /// Share of cases with the root first.
    #[must_use]
    pub fn top1_rate(&self) -> f64 {
        self.top1 as f64 / self.cases.max(1) as f64
    }

    /// Share of cases with the root in the first three.
    #[must_use]
    pub fn top3_rate(&self) -> f64 {
        self.top3 as f64 / self.cases.max(1) as f64
    }

    fn add(&mut self, position: Option<usize>) {
        self.cases += 1;
        self.top1 += usize::from(position == Some(0));
        self.top3 += usize::from(position.is_some_and(|p| p < 3));
    }
}

/// The result of a benchmark run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    /// Per family, in [`FaultFamily::ALL`] order (only the families run).
    pub families: Vec<(FaultFamily, Accuracy)>,
    /// Over every case.
    pub overall: Accuracy,
    /// Over the held-out families only.
    pub held_out: Accuracy,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "family,held_out,cases,top1,top3")?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, held: &str, a: &Accuracy| {
            writeln!(
                f,
                "{name},{held},{},{:.3},{:.3}",
                a.cases,
                a.top1_rate(),
                a.top3_rate()
            )
        };
        for (family, a) in &self.families {
            row(
                f,
                family.name(),
                if family.held_out() { "yes" } else { "no" },
                a,
            )?;
        }
        if self.held_out.cases > 0 {
            row(f, "held-out", "yes", &self.held_out)?;
        }
        row(f, "all", "", &self.overall)
    }
}

/// The `id`-th case of a run: families in turn.
#[must_use]
pub fn case(options: &BenchOptions, id: usize) -> Option<BenchCase> {
    let family = *options.families.get(id % options.families.len().max(1))?;
    Some(BenchCase::generate(options.seed, id, family))
}

/// Where the root ranked in `case` (0-based), `None` if it was not ranked at all.
#[must_use]
pub fn root_position(options: &BenchOptions, case: &BenchCase) -> Option<usize> {
    let mut rank_options = options.rank.clone().with_target_metric(&case.target_metric);
    if options.since_known {
        rank_options.since = Some(case.fault_time);
    }
    let ranked = rank(&case.metrics, &case.graph, &case.target, &rank_options).ok()?;
    ranked.iter().position(|c| c.node == case.root)
}

/// Runs the benchmark.
#[must_use]
pub fn run(options: &BenchOptions) -> BenchReport {
    let mut report = BenchReport::default();
    let mut per: std::collections::BTreeMap<FaultFamily, Accuracy> = Default::default();
    for id in 0..options.cases {
        let Some(c) = case(options, id) else { break };
        let position = root_position(options, &c);
        per.entry(c.family).or_default().add(position);
        report.overall.add(position);
        if c.family.held_out() {
            report.held_out.add(position);
        }
    }
    report.families = per.into_iter().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_well_formed() {
        for family in FaultFamily::ALL {
            let a = BenchCase::generate(7, 3, family);
            let b = BenchCase::generate(7, 3, family);
            assert_eq!(
                (&a.root, &a.target, a.edges.len()),
                (&b.root, &b.target, b.edges.len())
            );
            assert_eq!(a.metrics.len(), b.metrics.len());
            assert!((5..=40).contains(&a.graph.node_count()));
            assert!(
                a.target == a.root
                    || a.graph
                        .dependencies_of(&a.target)
                        .contains(&a.root.as_str())
            );
            assert!(
                a.metrics
                    .points(&a.root, "latency")
                    .is_some_and(|p| p.len() > 200)
            );
        }
        assert_eq!(
            "Saturation".parse::<FaultFamily>(),
            Ok(FaultFamily::Saturation)
        );
        assert!("nope".parse::<FaultFamily>().is_err());
    }

    /// Floors a little below the measurement (`aiops rca-bench --cases 300 --seed 7`: held-out
    /// top-1 0.867, top-3 0.920; cpu top-1 0.733; all top-1 0.903, top-3 0.940), so that a
    /// change that makes the ranking worse fails here.
    #[test]
    fn accuracy_stays_above_the_floors() {
        let options = BenchOptions {
            cases: 300,
            seed: 7,
            ..BenchOptions::default()
        };
        let report = run(&options);
        println!("{report}");
        assert_eq!(report.overall.cases, 300);
        assert_eq!(report.held_out.cases, 150);
        let floors = [
            ("held-out top-1", report.held_out.top1_rate(), 0.80),
            ("held-out top-3", report.held_out.top3_rate(), 0.87),
            ("all top-1", report.overall.top1_rate(), 0.85),
            ("all top-3", report.overall.top3_rate(), 0.90),
        ];
        for (what, got, floor) in floors {
            assert!(got >= floor, "{what}: {got:.3} < floor {floor}\n{report}");
        }
        for (family, accuracy) in &report.families {
            assert!(
                accuracy.top1_rate() >= 0.65,
                "{family} top-1 {:.3}\n{report}",
                accuracy.top1_rate()
            );
        }
    }
}
