//! Trust as a bounded breadth-first search from the roots over verified edges,
//! with trust-signature budgets and scopes, and the reasons for what fails.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::regex::RegexSet;
use sequoia_openpgp::Fingerprint;

use super::edges::{self, EdgeKind, Graph, NodeState, UidState, VerifyCache};
use super::report::{
    KeyStatus, KeyTrust, PathStep, RejectedCertification, TrustReport, UntrustedReason, UserIdTrust,
};
use super::{userid_email_domain, IntroducerMode, Keyring, TrustSettings};

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
    introducer: Vec<bool>,
}

/// The bounded breadth-first search from `roots` (keys in `ignored` are
/// reached but introduce nobody).
pub(super) fn search(
    g: &Graph,
    roots: &[usize],
    ignored: &[bool],
    max_depth: usize,
    mode: IntroducerMode,
) -> Found {
    let mut run = Search {
        g,
        mode,
        f: Found {
            states: Vec::new(),
            best: HashMap::new(),
            introducer: vec![false; g.nodes.len()],
        },
        kept: vec![Vec::new(); g.nodes.len()],
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
        let mut next = Vec::new();
        for &s in &frontier {
            let x = run.f.states[s].node;
            if run.f.states[s].budget == 0 || ignored[x] {
                continue;
            }
            run.f.introducer[x] = true;
            for &ei in &g.out[x] {
                next.extend(run.follow(s, ei));
            }
        }
        frontier = next;
    }
    run.f
}

/// A search in progress: what it found, and the states kept per node.
struct Search<'g> {
    g: &'g Graph,
    mode: IntroducerMode,
    f: Found,
    kept: Vec<Vec<usize>>,
}

impl Search<'_> {
    /// Adds a state, kept for its node; returns its index.
    fn push(&mut self, st: State) -> usize {
        let i = self.f.states.len();
        self.kept[st.node].push(i);
        self.f.states.push(st);
        i
    }

    /// Follows edge `ei` from state `s`: records the first path to its User
    /// ID and returns the new state when the target may introduce further.
    fn follow(&mut self, s: usize, ei: usize) -> Option<usize> {
        let e = &self.g.edges[ei];
        let from = &self.f.states[s];
        let uid = &self.g.nodes[e.target].userids[e.userid].value;
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
    fn depth_of(&self, node: usize, nuids: usize) -> Option<usize> {
        (0..nuids)
            .filter_map(|u| {
                self.best
                    .get(&(node, u))
                    .map(|&(s, _)| self.states[s].depth + 1)
            })
            .min()
    }

    fn path(&self, g: &Graph, (mut s, e): (usize, usize)) -> Vec<PathStep> {
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

/// Computes the verdict on every key of `keyring` (fresh verification cache).
pub fn evaluate(keyring: &Keyring, settings: &TrustSettings, policy: &dyn Policy) -> TrustReport {
    evaluate_cached(keyring, settings, policy, &mut VerifyCache::new())
}

/// Like [`evaluate`], reusing (and filling) a cache of signature
/// verifications: a recompute over an unchanged keyring verifies nothing.
pub fn evaluate_cached(
    keyring: &Keyring,
    settings: &TrustSettings,
    policy: &dyn Policy,
    cache: &mut VerifyCache,
) -> TrustReport {
    let t = settings.reference_time;
    let g = edges::build(keyring, policy, t, &settings.limits, cache);
    let (roots, missing_roots) = resolve_roots(keyring, &g, settings);
    let searches = Searches::run(&g, &roots, settings);
    let refused = flags(&g, &settings.refuse);
    let n = g.nodes.len();
    let mut keys = Vec::with_capacity(n);
    let mut index = HashMap::with_capacity(n);
    for (y, &refused) in refused.iter().enumerate() {
        let is_root = roots.contains(&y);
        let key = searches.key_trust(y, is_root, refused, settings);
        index.insert(key.fingerprint.clone(), keys.len());
        keys.push(key);
    }
    TrustReport {
        keys,
        index,
        missing_roots,
        stats: g.stats,
        reference_time: t,
        depth: settings.depth,
    }
}

/// The keyring indices of the roots valid at the reference time, and the
/// roots that are in no keyring.
fn resolve_roots(
    keyring: &Keyring,
    g: &Graph,
    settings: &TrustSettings,
) -> (Vec<usize>, Vec<Fingerprint>) {
    let mut missing_roots = Vec::new();
    let mut roots = Vec::new();
    for r in &settings.roots {
        match keyring.index_of(r) {
            Some(i) if g.nodes[i].state == NodeState::Valid => roots.push(i),
            Some(_) => {}
            None => missing_roots.push(r.clone()),
        }
    }
    (roots, missing_roots)
}

/// Per node: whether its fingerprint is in `set`.
fn flags(g: &Graph, set: &BTreeSet<Fingerprint>) -> Vec<bool> {
    g.nodes
        .iter()
        .map(|nd| set.contains(&nd.fingerprint))
        .collect()
}

/// The search that decides, and the further searches that explain failures.
struct Searches<'g> {
    g: &'g Graph,
    main: Found,
    /// Without the depth bound.
    longer: Found,
    /// With ignored introducers counting.
    unignored: Found,
    /// `trust-signatures` mode only: every certification delegating.
    as_certs: Option<Found>,
}

impl<'g> Searches<'g> {
    /// Runs the searches over `g` from `roots`.
    fn run(g: &'g Graph, roots: &[usize], settings: &TrustSettings) -> Searches<'g> {
        let n = g.nodes.len();
        let ignored = flags(g, &settings.ignore_certifications_by);
        let none = vec![false; n];
        let unbounded = n.max(settings.depth);
        let mode = settings.mode;
        Searches {
            g,
            main: search(g, roots, &ignored, settings.depth, mode),
            longer: search(g, roots, &ignored, unbounded, mode),
            unignored: search(g, roots, &none, settings.depth, mode),
            as_certs: (mode == IntroducerMode::TrustSignatures).then(|| {
                search(
                    g,
                    roots,
                    &ignored,
                    unbounded,
                    IntroducerMode::Certifications,
                )
            }),
        }
    }

    /// The verdict on key `y`, its User IDs and its rejected certifications.
    fn key_trust(
        &self,
        y: usize,
        is_root: bool,
        refused: bool,
        settings: &TrustSettings,
    ) -> KeyTrust {
        let g = self.g;
        let node = &g.nodes[y];
        let userids = (0..node.userids.len())
            .map(|u| self.userid_trust(y, u, is_root, refused))
            .collect();
        let status = if refused {
            KeyStatus::Refused
        } else if is_root {
            KeyStatus::Root
        } else if let (Some(d), NodeState::Valid) =
            (self.main.depth_of(y, node.userids.len()), &node.state)
        {
            KeyStatus::Trusted { depth: d }
        } else {
            KeyStatus::Untrusted {
                reason: self.untrusted_reason(y, settings),
            }
        };
        let rejected = g.rejected[y]
            .iter()
            .map(|r| RejectedCertification {
                issuer: g.nodes[r.issuer].fingerprint.clone(),
                userid: node.userids[r.userid].value.clone(),
                created: r.created,
                reason: r.reason.clone(),
            })
            .collect();
        KeyTrust {
            fingerprint: node.fingerprint.clone(),
            status,
            userids,
            introducer: self.main.introducer[y],
            certifications_cut: g.cut[y],
            rejected,
        }
    }

    /// The verdict on User ID `u` of key `y`, with its shortest path.
    fn userid_trust(&self, y: usize, u: usize, is_root: bool, refused: bool) -> UserIdTrust {
        let node = &self.g.nodes[y];
        let uid = &node.userids[u];
        let (email, domain) = userid_email_domain(&uid.value);
        let usable = uid.state == UidState::Valid && node.state == NodeState::Valid;
        let found = if !usable {
            None
        } else if is_root {
            Some((0, Vec::new()))
        } else {
            self.main
                .best
                .get(&(y, u))
                .map(|&b| (self.main.states[b.0].depth + 1, self.main.path(self.g, b)))
        };
        let ok = found.is_some();
        let (depth, path) = found
            .map(|(d, p)| (Some(d), p))
            .unwrap_or((None, Vec::new()));
        UserIdTrust {
            userid: uid.value.clone(),
            email,
            domain,
            authenticated: ok && !refused,
            authenticated_if_not_refused: ok,
            depth,
            path,
            binding_problem: match &uid.state {
                UidState::Valid => None,
                UidState::Revoked => Some("revoked".into()),
                UidState::Invalid(e) => Some(e.clone()),
            },
        }
    }

    /// Why key `y` (neither refused nor a root) is not trusted: its own
    /// state first, then what the further searches show.
    fn untrusted_reason(&self, y: usize, settings: &TrustSettings) -> UntrustedReason {
        let node = &self.g.nodes[y];
        match &node.state {
            NodeState::Revoked => UntrustedReason::Revoked,
            NodeState::Expired => UntrustedReason::Expired,
            NodeState::Invalid(e) => UntrustedReason::InvalidKey(e.clone()),
            NodeState::Valid if !node.userids.iter().any(|u| u.state == UidState::Valid) => {
                UntrustedReason::NoValidUserId
            }
            NodeState::Valid => self.missing_path_reason(y, settings),
        }
    }

    /// Why a valid key `y` with a valid User ID has no path within the rules.
    fn missing_path_reason(&self, y: usize, settings: &TrustSettings) -> UntrustedReason {
        let g = self.g;
        let nuids = g.nodes[y].userids.len();
        let by_introducer = g.rejected[y]
            .iter()
            .find(|r| self.main.introducer[r.issuer]);
        if let Some(r) = by_introducer {
            UntrustedReason::Certification {
                issuer: g.nodes[r.issuer].fingerprint.clone(),
                reason: r.reason.clone(),
            }
        } else if self.unignored.depth_of(y, nuids).is_some() {
            let mut introducers: Vec<_> = (0..nuids)
                .filter_map(|u| self.unignored.best.get(&(y, u)))
                .flat_map(|&b| self.unignored.path(g, b))
                .map(|s| s.issuer)
                .filter(|f| settings.ignore_certifications_by.contains(f))
                .collect();
            introducers.sort();
            introducers.dedup();
            UntrustedReason::OnlyThroughIgnoredIntroducer { introducers }
        } else if let Some(d) = self.longer.depth_of(y, nuids) {
            UntrustedReason::PathTooLong { needs_depth: d }
        } else if self
            .as_certs
            .as_ref()
            .is_some_and(|c| c.depth_of(y, nuids).is_some())
        {
            UntrustedReason::NotDelegated
        } else {
            UntrustedReason::NoPath
        }
    }
}
