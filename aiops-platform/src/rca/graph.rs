//! The call graph: `caller → callee` edges, where the caller depends on the callee.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A directed call graph over named nodes. Duplicate edges count once, self-calls are ignored
/// and cycles are tolerated (every walk keeps a visited set).
///
/// ```
/// use aiops_platform::rca::CallGraph;
/// let mut g = CallGraph::new();
/// g.add_edge("web", "api");
/// g.add_edge("api", "db");
/// assert_eq!(g.dependencies_of("web"), ["api", "db"]);
/// assert_eq!(g.callers_of("db").collect::<Vec<_>>(), ["api"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallGraph {
    names: Vec<String>,
    ids: BTreeMap<String, usize>,
    callees: Vec<BTreeSet<usize>>,
    callers: Vec<BTreeSet<usize>>,
}

impl CallGraph {
    /// An empty graph.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        self.callees.push(BTreeSet::new());
        self.callers.push(BTreeSet::new());
        id
    }

    /// Adds a node without edges (a service that calls nothing and is called by nothing known).
    pub fn add_node(&mut self, name: &str) {
        self.intern(name);
    }

    /// Adds the edge `caller → callee` (the caller depends on the callee).
    pub fn add_edge(&mut self, caller: &str, callee: &str) {
        let a = self.intern(caller);
        let b = self.intern(callee);
        if a != b {
            self.callees[a].insert(b);
            self.callers[b].insert(a);
        }
    }

    /// Whether `name` is a node of the graph.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.ids.contains_key(name)
    }

    /// Number of nodes.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    /// Every node, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.ids.keys().map(String::as_str)
    }

    /// Direct callees of `name`, in name order.
    pub fn callees_of(&self, name: &str) -> impl Iterator<Item = &str> {
        self.neighbours(name, &self.callees)
    }

    /// Direct callers of `name`, in name order.
    pub fn callers_of(&self, name: &str) -> impl Iterator<Item = &str> {
        self.neighbours(name, &self.callers)
    }

    fn neighbours<'a>(
        &'a self,
        name: &str,
        adjacency: &'a [BTreeSet<usize>],
    ) -> impl Iterator<Item = &'a str> {
        let mut out: Vec<&str> = self
            .ids
            .get(name)
            .map(|&id| {
                adjacency[id]
                    .iter()
                    .map(|&n| self.names[n].as_str())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out.into_iter()
    }

    /// Everything `name` depends on, directly or transitively (not `name` itself), in name
    /// order: the candidate root causes of an incident at `name`, besides `name`.
    #[must_use]
    pub fn dependencies_of(&self, name: &str) -> Vec<&str> {
        self.reachable(name, &self.callees)
    }

    /// Everything that depends on `name`, directly or transitively (not `name` itself).
    #[must_use]
    pub fn dependents_of(&self, name: &str) -> Vec<&str> {
        self.reachable(name, &self.callers)
    }

    fn reachable<'a>(&'a self, name: &str, adjacency: &[BTreeSet<usize>]) -> Vec<&'a str> {
        let Some(&start) = self.ids.get(name) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.names.len()];
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        let mut out = Vec::new();
        while let Some(n) = queue.pop_front() {
            for &m in &adjacency[n] {
                if !seen[m] {
                    seen[m] = true;
                    out.push(self.names[m].as_str());
                    queue.push_back(m);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_calls_and_survives_cycles() {
        let mut g = CallGraph::new();
        g.add_edge("a", "b");
        g.add_edge("b", "c");
        g.add_edge("c", "b");
        g.add_edge("x", "c");
        g.add_edge("a", "a");
        g.add_node("lonely");
        assert_eq!(g.dependencies_of("a"), ["b", "c"]);
        assert_eq!(g.dependents_of("c"), ["a", "b", "x"]);
        assert!(g.dependencies_of("lonely").is_empty());
        assert!(g.dependencies_of("nope").is_empty());
        assert_eq!(g.callees_of("a").count(), 1);
        assert_eq!(g.node_count(), 5);
    }
}
