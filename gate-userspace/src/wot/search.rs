//! Trust as a bounded breadth-first search from the roots over verified edges,
//! with trust-signature budgets and scopes, and the reasons for what fails.

use std::collections::HashMap;
use std::sync::Arc;

use sequoia_openpgp::regex::RegexSet;

use super::edges::{EdgeKind, Graph, VerifyCache};
use super::report::PathStep;
use super::{IntroducerMode, Keyring};

/// Trust amount from which a trust signature fully delegates (RFC 4880).
const FULL_TRUST: u8 = 120;

pub(super) struct State {
    node: usize,
    pub(super) depth: usize,
    /// How many more certifications this key may add to the chain.
    budget: usize,
    scopes: Vec<Arc<RegexSet>>,
    parent: Option<(usize, usize)>, // (state, edge)
}

/// The outcome of one search.
pub(super) struct Found {
    pub(super) states: Vec<State>,
    /// (node, uid) -> (state of the issuer, edge) of the shortest path.
    pub(super) best: HashMap<(usize, usize), (usize, usize)>,
    /// Nodes with a state that can introduce (budget > 0).
    pub(super) introducer: Vec<bool>,
}

/// The bounded breadth-first search from `roots` (keys in `ignored` are
/// reached but introduce nobody); the certifications by each layer's
/// introducers are resolved (verified) before the layer is expanded.
pub(super) fn search(
    g: &mut Graph,
    ring: &Keyring,
    cache: &mut VerifyCache,
    roots: &[usize],
    ignored: &[bool],
    max_depth: usize,
    mode: IntroducerMode,
) -> Found {
    let n = g.nodes.len();
    let mut run = Search {
        mode,
        f: Found {
            states: Vec::new(),
            best: HashMap::new(),
            introducer: vec![false; n],
        },
        kept: vec![Vec::new(); n],
    };
    let mut frontier = Vec::new();
    for &r in roots {
        if run.kept[r].is_empty() {
            frontier.push(run.push(State {
                node: r,
                depth: 0,
                budget: max_depth,
                scopes: Vec::new(),
                parent: None,
            }));
        }
    }
    while !frontier.is_empty() {
        let expand: Vec<usize> = frontier
            .iter()
            .map(|&s| &run.f.states[s])
            .filter(|st| st.budget > 0 && !ignored[st.node])
            .map(|st| st.node)
            .filter(|&x| !g.out_resolved(x))
            .collect();
        if !expand.is_empty() {
            g.resolve_out(ring, &expand, cache);
        }
        let g: &Graph = g;
        let mut next = Vec::new();
        for &s in &frontier {
            let x = run.f.states[s].node;
            if run.f.states[s].budget == 0 || ignored[x] {
                continue;
            }
            run.f.introducer[x] = true;
            for &ei in &g.out[x] {
                next.extend(run.follow(g, s, ei));
            }
        }
        frontier = next;
    }
    run.f
}

/// A search in progress: what it found, and the states kept per node.
struct Search {
    mode: IntroducerMode,
    f: Found,
    kept: Vec<Vec<usize>>,
}

impl Search {
    /// Adds a state, kept for its node; returns its index.
    fn push(&mut self, st: State) -> usize {
        let i = self.f.states.len();
        self.kept[st.node].push(i);
        self.f.states.push(st);
        i
    }

    /// Follows edge `ei` from state `s`: records the first path to its User
    /// ID and returns the new state when the target may introduce further.
    fn follow(&mut self, g: &Graph, s: usize, ei: usize) -> Option<usize> {
        let e = &g.edges[ei];
        let from = &self.f.states[s];
        let uid = &g.nodes[e.target].userids[e.userid].value;
        if !from.scopes.iter().all(|r| r.is_match(uid)) {
            return None;
        }
        self.f.best.entry((e.target, e.userid)).or_insert((s, ei));
        let new_budget = match (self.mode, e.kind) {
            (IntroducerMode::Certifications, _) => from.budget - 1,
            (IntroducerMode::TrustSignatures, EdgeKind::TrustSignature { level, amount })
                if amount >= FULL_TRUST =>
            {
                (from.budget - 1).min(level as usize)
            }
            (IntroducerMode::TrustSignatures, _) => 0,
        };
        if new_budget == 0 {
            return None;
        }
        let mut scopes = from.scopes.clone();
        if self.mode == IntroducerMode::TrustSignatures {
            if let Some(sc) = &e.scope {
                scopes.push(sc.clone());
            }
        }
        if self.dominated(e.target, new_budget, &scopes) {
            return None;
        }
        let depth = from.depth + 1;
        Some(self.push(State {
            node: e.target,
            depth,
            budget: new_budget,
            scopes,
            parent: Some((s, ei)),
        }))
    }

    /// Pareto pruning: an earlier state of the same key has at least this
    /// budget and no more constraints.
    fn dominated(&self, node: usize, budget: usize, scopes: &[Arc<RegexSet>]) -> bool {
        self.kept[node].iter().any(|&o| {
            let o = &self.f.states[o];
            o.budget >= budget
                && o.scopes
                    .iter()
                    .all(|a| scopes.iter().any(|b| Arc::ptr_eq(a, b)))
        })
    }
}

impl Found {
    pub(super) fn depth_of(&self, node: usize, nuids: usize) -> Option<usize> {
        (0..nuids)
            .filter_map(|u| {
                self.best
                    .get(&(node, u))
                    .map(|&(s, _)| self.states[s].depth + 1)
            })
            .min()
    }

    pub(super) fn path(&self, g: &Graph, (mut s, e): (usize, usize)) -> Vec<PathStep> {
        let mut edges = vec![e];
        while let Some((p, pe)) = self.states[s].parent {
            edges.push(pe);
            s = p;
        }
        edges.reverse();
        edges
            .into_iter()
            .map(|ei| {
                let e = &g.edges[ei];
                PathStep {
                    issuer: g.nodes[e.issuer].fingerprint.clone(),
                    target: g.nodes[e.target].fingerprint.clone(),
                    userid: g.nodes[e.target].userids[e.userid].value.clone(),
                    created: e.created,
                    kind: e.kind,
                    hash: e.hash,
                }
            })
            .collect()
    }
}
