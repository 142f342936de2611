//! No import circle between the top-level modules of `aiops-platform` and of the chassis.
//!
//! A top-level module is a file or folder directly under a crate's `src/` (`store/` and
//! `store.rs` are the module `store`); an edge `a → b` is a `crate::b…` path written anywhere in
//! `a`'s files, `use` lines, expressions and macro bodies alike (the files are tokenized, so
//! comments and doc text do not count). The crate roots (`lib.rs`, `main.rs`) are not modules.
//! A circle is a strongly connected set of two or more modules; the test names each one with
//! the edges that close it, so the message says which `use` to move. `docs/architecture.md`
//! says what each folder may import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The modules of one crate and, for each, the modules its files name through `crate::`.
type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The top-level module a file under `src` belongs to, `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts = relative.components();
    let first = parts.next()?.as_os_str().to_str()?.to_owned();
    if parts.next().is_some() {
        return Some(first);
    }
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_owned()),
    }
}

/// Every module named right after `crate::` in `tokens`, into `named`.
fn crate_paths(tokens: TokenStream, named: &mut BTreeSet<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (at, tree) in trees.iter().enumerate() {
        if let TokenTree::Group(group) = tree {
            crate_paths(group.stream(), named);
            continue;
        }
        let TokenTree::Ident(ident) = tree else {
            continue;
        };
        let after_dollar =
            at > 0 && matches!(&trees[at - 1], TokenTree::Punct(p) if p.as_char() == '$');
        if ident != "crate" || after_dollar {
            continue;
        }
        let colons = trees.get(at + 1..at + 3).is_some_and(|pair| {
            pair.iter()
                .all(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ':'))
        });
        if !colons {
            continue;
        }
        match trees.get(at + 3) {
            Some(TokenTree::Ident(next)) => {
                named.insert(next.to_string());
            }
            Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                // `crate::{a::b, c}`: the first identifier of each comma-separated item.
                let mut item_start = true;
                for inner in group.stream() {
                    match &inner {
                        TokenTree::Ident(first) if item_start => {
                            named.insert(first.to_string());
                            item_start = false;
                        }
                        TokenTree::Punct(p) if p.as_char() == ',' => item_start = true,
                        _ => item_start = false,
                    }
                }
            }
            _ => {}
        }
    }
}

fn module_graph(crate_dir: &str) -> ModuleGraph {
    let src = workspace_root().join(crate_dir).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = ModuleGraph::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        let tokens = TokenStream::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not tokenize: {e:?}", file.display()));
        let mut named = BTreeSet::new();
        crate_paths(tokens, &mut named);
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(named.into_iter().filter(|n| *n != module && n != "self"));
    }
    // Only modules of this crate are nodes (`crate::Error` re-exported by lib.rs is not one).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|e| modules.contains(e));
    }
    graph
}

/// The strongly connected sets of two or more modules (Tarjan's algorithm).
fn circles(graph: &ModuleGraph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g ModuleGraph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            self.on_stack.insert(node);
            for to in self.graph.get(node).into_iter().flatten() {
                let to = to.as_str();
                if !self.index.contains_key(to) {
                    self.visit(to);
                    let low = self.low[node].min(self.low[to]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(to) {
                    let low = self.low[node].min(self.index[to]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut set = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    set.push(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort();
                    self.found.push(set);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

fn describe(graph: &ModuleGraph, found: &[Vec<String>]) -> String {
    let mut text = String::new();
    for set in found {
        text.push_str(&format!("circle {{{}}}:\n", set.join(", ")));
        for from in set {
            for to in &graph[from] {
                if set.contains(to) {
                    text.push_str(&format!("  {from} -> {to}\n"));
                }
            }
        }
    }
    text
}

fn assert_acyclic(crate_dir: &str) {
    let graph = module_graph(crate_dir);
    assert!(
        graph.len() > 5,
        "{crate_dir}: the walk found too few modules"
    );
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "{crate_dir}/src has import circles between top-level modules:\n{}",
        describe(&graph, &found)
    );
}

#[test]
fn aiops_platform_has_no_circle_between_top_level_modules() {
    assert_acyclic("aiops-platform");
}

#[test]
fn chassis_has_no_circle_between_top_level_modules() {
    assert_acyclic("chassis");
}

#[test]
fn the_check_sees_a_circle_written_inside_a_use_group_and_a_macro() {
    let a = TokenStream::from_str("use crate::{b::X, c}; fn f() { format!(\"{}\", crate::d::Y) }")
        .expect("tokens");
    let mut named = BTreeSet::new();
    crate_paths(a, &mut named);
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        ["b", "c", "d"],
        "use groups and macro bodies are edges"
    );
    let mut not_edges = BTreeSet::new();
    crate_paths(
        TokenStream::from_str("/// [crate::e]\n pub(crate) fn g() { $crate::h::i() }")
            .expect("tokens"),
        &mut not_edges,
    );
    assert!(
        not_edges.is_empty(),
        "doc text, pub(crate) and $crate are not: {not_edges:?}"
    );

    let graph: ModuleGraph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
