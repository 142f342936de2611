//! The Drain-style miner.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::LogmineError;
use super::token::{WILDCARD, content_start, for_each_token, for_each_token_enclosed};

/// Identifier of a template (dense, starting at 0, in order of first appearance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(pub u32);

impl TemplateId {
    /// The id given to a line that would start a template past
    /// [`MinerConfig::max_templates`]: no template is made for it (counted in
    /// [`Miner::templates_refused`]).
    pub const OVERFLOW: Self = Self(u32::MAX);
}

impl std::fmt::Display for TemplateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What [`Miner::observe`] learned about a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The template the line belongs to.
    pub id: TemplateId,
    /// The line created a new template.
    pub is_new: bool,
    /// The line generalised an existing template (a token became `<*>`).
    pub changed: bool,
}

/// Miner configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Minimum share of equal token positions for a line to join a template online (0..=1;
    /// default 0.75). 1 leaves all grouping to [`Miner::consolidate`].
    pub similarity: f64,
    /// Maximum number of cached exact token shapes before the cache is reset.
    pub cache_limit: usize,
    /// Most distinct words learned (the interner's size): past it a new word is treated as
    /// a variable (`<*>`) and counted ([`Miner::tokens_refused`]), so a stream of random
    /// words cannot grow the miner without bound.
    pub max_tokens: usize,
    /// Most templates made: past it a line that matches none is given
    /// [`TemplateId::OVERFLOW`] and counted ([`Miner::templates_refused`]).
    pub max_templates: usize,
}

/// Different words at one position of a Brain group that make it a variable (fewer split the
/// group into templates).
const DISTINCT_FOR_VARIABLE: usize = 5;

/// A position whose different words number at least a third of the group's lines is a
/// variable too (a rare template's few lines with different user names).
const DISTINCT_SHARE: u64 = 3;

/// Templates a miner makes at most by default.
pub const DEFAULT_MAX_TEMPLATES: usize = 10_000;

/// Distinct words a miner learns at most by default.
pub const DEFAULT_MAX_TOKENS: usize = 10_000;

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity: 0.75,
            cache_limit: 1 << 20,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_templates: DEFAULT_MAX_TEMPLATES,
        }
    }
}

/// FxHash-style hasher: fast, non-cryptographic (the inputs are our own token ids / hashes).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(a));
        }
        let mut a = [0u8; 8];
        let rest = chunks.remainder();
        a[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(a) ^ (rest.len() as u64) << 59);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<Key, V> = HashMap<Key, V, BuildHasherDefault<FxHasher>>;

#[inline]
fn hash_str(s: &str) -> u64 {
    let mut h = FxHasher(0x9e37_79b9);
    h.write(s.as_bytes());
    h.finish()
}

const WILD_ID: u32 = 0;
const WILD_HASH: u64 = 0x2545_f491_4f6c_dd1d;

#[derive(Debug, Clone)]
struct Cluster {
    tokens: Vec<u32>,
    /// Per position: the word stood alone in brackets or after a naming word (`for root`),
    /// a value more often than not.
    enclosed: Vec<bool>,
    /// The template of the group this cluster represents after [`Miner::consolidate`] (its
    /// own tokens stay as learned, so consolidating again starts from the same state).
    grouped: Option<Vec<u32>>,
    size: u64,
}

/// Template miner: Drain online, Brain in batch (see the module docs).
#[derive(Debug, Clone)]
pub struct Miner {
    cfg: MinerConfig,
    interner: FxMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    clusters: Vec<Cluster>,
    leaves: FxMap<(u32, u32, u32), Vec<u32>>,
    cache: FxMap<u64, u32>,
    parent: Vec<u32>,
    scratch: Vec<u32>,
    tokens_refused: u64,
    templates_refused: u64,
}

impl Default for Miner {
    fn default() -> Self {
        Self::new()
    }
}

impl Miner {
    /// A miner with the default configuration.
    pub fn new() -> Self {
        Self::build(MinerConfig::default())
    }

    /// A miner for a batch over a file (not for a long-lived miner fed by others): no
    /// vocabulary, template or cache cap.
    ///
    /// Lines are only grouped when their masked shapes are equal; the grouping is left to
    /// [`Miner::consolidate`], which sees every line's shape.
    pub fn unbounded() -> Self {
        Self::build(MinerConfig {
            similarity: 1.0,
            cache_limit: usize::MAX,
            max_tokens: usize::MAX,
            max_templates: usize::MAX,
        })
    }

    /// A miner with a custom configuration.
    pub fn with_config(cfg: MinerConfig) -> Result<Self, LogmineError> {
        if !(0.0..=1.0).contains(&cfg.similarity) {
            return Err(LogmineError::InvalidConfig(format!(
                "similarity {} not in 0..=1",
                cfg.similarity
            )));
        }
        Ok(Self::build(cfg))
    }

    fn build(cfg: MinerConfig) -> Self {
        Self {
            cfg,
            interner: FxMap::default(),
            names: vec![WILDCARD.into()],
            clusters: Vec::new(),
            leaves: FxMap::default(),
            cache: FxMap::default(),
            parent: Vec::new(),
            scratch: Vec::new(),
            tokens_refused: 0,
            templates_refused: 0,
        }
    }

    /// Lines that matched no template once [`MinerConfig::max_templates`] were made.
    pub fn templates_refused(&self) -> u64 {
        self.templates_refused
    }

    /// Number of distinct words learned.
    pub fn tokens(&self) -> usize {
        self.interner.len()
    }

    /// Occurrences of new words not learned because [`MinerConfig::max_tokens`] was reached
    /// (they were treated as variables).
    pub fn tokens_refused(&self) -> u64 {
        self.tokens_refused
    }

    /// Number of templates created so far (including ones later merged by
    /// [`Miner::consolidate`]).
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether no line was observed yet.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Number of lines that were assigned `id`.
    pub fn count(&self, id: TemplateId) -> u64 {
        self.clusters.get(id.0 as usize).map_or(0, |c| c.size)
    }

    /// The current template text of `id` (the message part, with `<*>` for variables).
    pub fn template(&self, id: TemplateId) -> String {
        let Some(c) = self.clusters.get(id.0 as usize) else {
            return String::new();
        };
        let mut out = String::new();
        for (i, &t) in c.grouped.as_ref().unwrap_or(&c.tokens).iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&self.names[t as usize]);
        }
        out
    }

    fn intern(&mut self, tok: &str) -> u32 {
        if let Some(&id) = self.interner.get(tok) {
            return id;
        }
        if self.interner.len() >= self.cfg.max_tokens {
            self.tokens_refused += 1;
            return WILD_ID;
        }
        let id = self.names.len() as u32;
        self.names.push(tok.into());
        self.interner.insert(tok.into(), id);
        id
    }

    /// Learns one line and returns its template.
    pub fn observe(&mut self, line: &str) -> Observation {
        let line = line.trim_end_matches(['\n', '\r']);
        let body = &line[content_start(line)..];
        let mut sh = FxHasher(0x1234_5678);
        let mut len = 0u32;
        for_each_token(body, |t, var| {
            sh.write_u64(if var { WILD_HASH } else { hash_str(t) });
            len += 1;
        });
        sh.write_u32(len);
        let key = sh.finish();
        if let Some(&c) = self.cache.get(&key) {
            self.clusters[c as usize].size += 1;
            return Observation {
                id: TemplateId(c),
                is_new: false,
                changed: false,
            };
        }
        let mut toks = std::mem::take(&mut self.scratch);
        toks.clear();
        let mut words: Vec<&str> = Vec::new();
        let mut enclosed: Vec<bool> = Vec::new();
        for_each_token_enclosed(body, |t, var, e| {
            toks.push(if var { WILD_ID } else { u32::MAX });
            enclosed.push(e);
            if !var {
                words.push(t);
            }
        });
        // intern in a second pass (the closure above cannot borrow self mutably)
        let mut words = words.into_iter();
        for t in toks.iter_mut() {
            if *t == u32::MAX {
                *t = words.next().map_or(WILD_ID, |w| self.intern(w));
            }
        }
        let obs = self.place(&toks, enclosed);
        self.scratch = toks;
        if obs.id == TemplateId::OVERFLOW {
            return obs;
        }
        if self.cache.len() >= self.cfg.cache_limit {
            self.cache.clear();
        }
        self.cache.insert(key, obs.id.0);
        obs
    }

    fn place(&mut self, toks: &[u32], enclosed: Vec<bool>) -> Observation {
        let leaf_key = (
            toks.len() as u32,
            toks.first().copied().unwrap_or(WILD_ID),
            toks.get(1).copied().unwrap_or(WILD_ID),
        );
        let mut best: Option<(f64, u32)> = None;
        // With similarity 1 (a batch), equal shapes met in the cache already: no leaf scan,
        // which would be quadratic in the shapes of one length.
        let batch = self.cfg.similarity >= 1.0;
        if !batch && let Some(leaf) = self.leaves.get(&leaf_key) {
            for &c in leaf {
                let tpl = &self.clusters[c as usize].tokens;
                // share of equal tokens among positions where either side is constant
                let (mut equal, mut constant) = (0u32, 0u32);
                for (&a, &b) in tpl.iter().zip(toks) {
                    if a != WILD_ID || b != WILD_ID {
                        constant += 1;
                        equal += u32::from(a == b);
                    }
                }
                let sim = if constant == 0 {
                    1.0
                } else {
                    f64::from(equal) / f64::from(constant)
                };
                if best.is_none_or(|(s, _)| sim > s) {
                    best = Some((sim, c));
                }
            }
        }
        match best {
            Some((sim, c)) if sim >= self.cfg.similarity => {
                let cl = &mut self.clusters[c as usize];
                let mut changed = false;
                for (a, &b) in cl.tokens.iter_mut().zip(toks) {
                    if *a != b && *a != WILD_ID {
                        *a = WILD_ID;
                        changed = true;
                    }
                }
                cl.size += 1;
                Observation {
                    id: TemplateId(c),
                    is_new: false,
                    changed,
                }
            }
            _ if self.clusters.len() >= self.cfg.max_templates => {
                self.templates_refused += 1;
                Observation {
                    id: TemplateId::OVERFLOW,
                    is_new: false,
                    changed: false,
                }
            }
            _ => {
                let id = self.clusters.len() as u32;
                self.clusters.push(Cluster {
                    tokens: toks.to_vec(),
                    enclosed,
                    grouped: None,
                    size: 1,
                });
                self.parent.push(id);
                if !batch {
                    self.leaves.entry(leaf_key).or_default().push(id);
                }
                Observation {
                    id: TemplateId(id),
                    is_new: true,
                    changed: false,
                }
            }
        }
    }

    /// Groups the templates made so far Brain-style (see the module docs) and unifies those
    /// that are then identical, or identical once runs of `<*>` are collapsed. Afterwards
    /// [`Miner::resolve`] maps every id to its representative, whose [`Miner::template`] is the
    /// group's template. Linear in the templates' tokens; call it after a batch.
    pub fn consolidate(&mut self) {
        for (id, p) in self.parent.iter_mut().enumerate() {
            *p = id as u32;
        }
        for c in &mut self.clusters {
            c.grouped = None;
        }
        let mut by_len: FxMap<usize, Vec<u32>> = FxMap::default();
        for (id, c) in self.clusters.iter().enumerate() {
            by_len.entry(c.tokens.len()).or_default().push(id as u32);
        }
        let mut lengths: Vec<usize> = by_len.keys().copied().collect();
        lengths.sort_unstable();
        for len in lengths {
            self.group_same_length(&by_len[&len]);
        }
        // Templates equal up to the length of `<*>` runs are one.
        let mut canon: FxMap<Vec<u32>, u32> = FxMap::default();
        for id in 0..self.clusters.len() {
            if self.parent[id] != id as u32 {
                continue;
            }
            let c = &self.clusters[id];
            let tokens = c.grouped.as_ref().unwrap_or(&c.tokens);
            let mut key = Vec::with_capacity(tokens.len());
            for &t in tokens {
                if !(t == WILD_ID && key.last() == Some(&WILD_ID)) {
                    key.push(t);
                }
            }
            let root = *canon.entry(key).or_insert(id as u32);
            self.parent[id] = root;
        }
        for id in 0..self.parent.len() {
            let p = self.parent[id] as usize;
            self.parent[id] = self.parent[p];
        }
    }

    /// Brain's grouping of templates of one length: the longest common pattern (the largest set
    /// of positions whose words are equally frequent) makes the initial groups; within a
    /// group, a position holding a `<*>` or at least [`DISTINCT_FOR_VARIABLE`] different words
    /// (2 for a word alone in brackets or after a naming word such as `user`), or different words on at least a third of its lines,
    /// is a variable, and the others split the group (`GET`/`POST`, `Failed`/`Accepted`).
    fn group_same_length(&mut self, ids: &[u32]) {
        if ids.len() < 2 {
            return;
        }
        let mut freq: FxMap<(u32, u32), u64> = FxMap::default();
        for &id in ids {
            let c = &self.clusters[id as usize];
            for (p, &t) in c.tokens.iter().enumerate() {
                if t != WILD_ID {
                    *freq.entry((p as u32, t)).or_default() += c.size;
                }
            }
        }
        // initial groups by longest common pattern
        let mut groups: FxMap<Vec<(u32, u32)>, Vec<u32>> = FxMap::default();
        let mut fs: Vec<(u64, u32)> = Vec::new();
        for &id in ids {
            let c = &self.clusters[id as usize];
            fs.clear();
            for (p, &t) in c.tokens.iter().enumerate() {
                if t != WILD_ID {
                    fs.push((freq[&(p as u32, t)], p as u32));
                }
            }
            fs.sort_unstable();
            // the largest run of equal frequencies, the more frequent on ties
            let (mut best, mut best_len, mut at) = (0usize, 0usize, 0usize);
            while at < fs.len() {
                let mut end = at;
                while end < fs.len() && fs[end].0 == fs[at].0 {
                    end += 1;
                }
                if end - at >= best_len {
                    best = at;
                    best_len = end - at;
                }
                at = end;
            }
            let mut pattern: Vec<(u32, u32)> = fs[best..best + best_len]
                .iter()
                .map(|&(_, p)| (p, c.tokens[p as usize]))
                .collect();
            pattern.sort_unstable();
            groups.entry(pattern).or_default().push(id);
        }
        let len = self.clusters[ids[0] as usize].tokens.len();
        for members in groups.into_values() {
            let lines: u64 = members
                .iter()
                .map(|&id| self.clusters[id as usize].size)
                .sum();
            // variable positions of the group
            let mut variable = vec![false; len];
            let mut seen: Vec<u32> = Vec::new();
            for (p, var) in variable.iter_mut().enumerate() {
                seen.clear();
                let enclosed = self.clusters[members[0] as usize]
                    .enclosed
                    .get(p)
                    .copied()
                    .unwrap_or(false);
                let threshold = if enclosed { 2 } else { DISTINCT_FOR_VARIABLE };
                for &id in &members {
                    let t = self.clusters[id as usize].tokens[p];
                    if t == WILD_ID {
                        *var = true;
                        break;
                    }
                    if !seen.contains(&t) {
                        seen.push(t);
                        if seen.len() >= threshold {
                            *var = true;
                            break;
                        }
                    }
                }
                // few lines, each with its own word: a value, not a message word
                if seen.len() >= 2 && (seen.len() as u64) * DISTINCT_SHARE >= lines {
                    *var = true;
                }
            }
            // split by the words at the other positions
            let mut roots: FxMap<Vec<u32>, u32> = FxMap::default();
            for &id in &members {
                let toks = &self.clusters[id as usize].tokens;
                let key: Vec<u32> = toks
                    .iter()
                    .zip(&variable)
                    .map(|(&t, &v)| if v { WILD_ID } else { t })
                    .collect();
                match roots.get(&key) {
                    Some(&root) => self.parent[id as usize] = root,
                    None => {
                        roots.insert(key.clone(), id);
                        self.parent[id as usize] = id;
                        self.clusters[id as usize].grouped = Some(key);
                    }
                }
            }
        }
    }

    /// The representative of `id` after [`Miner::consolidate`] (itself if never merged).
    pub fn resolve(&self, id: TemplateId) -> TemplateId {
        TemplateId(self.parent.get(id.0 as usize).copied().unwrap_or(id.0))
    }
}
