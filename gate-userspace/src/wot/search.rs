//! Trust as a bounded breadth-first search from the roots over verified edges,
//! with trust-signature budgets and scopes, and the reasons for what fails.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::regex::RegexSet;

use super::edges::{self, EdgeKind, Graph, NodeState, UidState, VerifyCache};
use super::report::{
    KeyStatus, KeyTrust, PathStep, RejectedCertification, TrustReport, UntrustedReason, UserIdTrust,
};
use super::{userid_email_domain, IntroducerMode, Keyring, TrustSettings};

/// Trust amount from which a trust signature fully delegates (RFC 4880).
const FULL_TRUST: u8 = 120;

struct State {
    node: usize,
    depth: usize,
    /// How many more certifications this key may add to the chain.
    budget: usize,
    scopes: Vec<Arc<RegexSet>>,
    parent: Option<(usize, usize)>, // (state, edge)
}

/// The outcome of one search.
struct Found {
    states: Vec<State>,
    /// (node, uid) -> (state of the issuer, edge) of the shortest path.
    best: HashMap<(usize, usize), (usize, usize)>,
    /// Nodes with a state that can introduce (budget > 0).
    introducer: Vec<bool>,
}

fn search(
    g: &Graph,
    roots: &[usize],
    ignored: &[bool],
    max_depth: usize,
    mode: IntroducerMode,
) -> Found {
    let n = g.nodes.len();
    let mut f = Found {
        states: Vec::new(),
        best: HashMap::new(),
        introducer: vec![false; n],
    };
    let mut kept: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut frontier = Vec::new();
    for &r in roots {
        if kept[r].is_empty() {
            kept[r].push(f.states.len());
            frontier.push(f.states.len());
            f.states.push(State {
                node: r,
                depth: 0,
                budget: max_depth,
                scopes: Vec::new(),
                parent: None,
            });
        }
    }
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &s in &frontier {
            let (x, depth, budget) = (f.states[s].node, f.states[s].depth, f.states[s].budget);
            if budget == 0 || ignored[x] {
                continue;
            }
            f.introducer[x] = true;
            for &ei in &g.out[x] {
                let e = &g.edges[ei];
                let uid = &g.nodes[e.target].userids[e.userid].value;
                if !f.states[s].scopes.iter().all(|r| r.is_match(uid)) {
                    continue;
                }
                f.best.entry((e.target, e.userid)).or_insert((s, ei));
                let new_budget = match (mode, e.kind) {
                    (IntroducerMode::Certifications, _) => budget - 1,
                    (
                        IntroducerMode::TrustSignatures,
                        EdgeKind::TrustSignature { level, amount },
                    ) if amount >= FULL_TRUST => (budget - 1).min(level as usize),
                    (IntroducerMode::TrustSignatures, _) => 0,
                };
                if new_budget == 0 {
                    continue;
                }
                let mut scopes = f.states[s].scopes.clone();
                if mode == IntroducerMode::TrustSignatures {
                    if let Some(sc) = &e.scope {
                        scopes.push(sc.clone());
                    }
                }
                // Pareto pruning: skip if an earlier state of the same key has
                // at least this budget and no more constraints.
                let dominated = kept[e.target].iter().any(|&o| {
                    let o = &f.states[o];
                    o.budget >= new_budget
                        && o.scopes
                            .iter()
                            .all(|a| scopes.iter().any(|b| Arc::ptr_eq(a, b)))
                });
                if dominated {
                    continue;
                }
                kept[e.target].push(f.states.len());
                next.push(f.states.len());
                f.states.push(State {
                    node: e.target,
                    depth: depth + 1,
                    budget: new_budget,
                    scopes,
                    parent: Some((s, ei)),
                });
            }
        }
        frontier = next;
    }
    f
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
    let n = g.nodes.len();
    let mut missing_roots = Vec::new();
    let mut roots = Vec::new();
    for r in &settings.roots {
        match keyring.index_of(r) {
            Some(i) if g.nodes[i].state == NodeState::Valid => roots.push(i),
            Some(_) => {}
            None => missing_roots.push(r.clone()),
        }
    }
    let flags = |set: &BTreeSet<_>| -> Vec<bool> {
        g.nodes
            .iter()
            .map(|nd| set.contains(&nd.fingerprint))
            .collect()
    };
    let ignored = flags(&settings.ignore_certifications_by);
    let refused = flags(&settings.refuse);
    let none = vec![false; n];
    let main = search(&g, &roots, &ignored, settings.depth, settings.mode);
    // Further searches that explain failures.
    let unbounded = n.max(settings.depth);
    let longer = search(&g, &roots, &ignored, unbounded, settings.mode);
    let unignored = search(&g, &roots, &none, settings.depth, settings.mode);
    let as_certs = (settings.mode == IntroducerMode::TrustSignatures).then(|| {
        search(
            &g,
            &roots,
            &ignored,
            unbounded,
            IntroducerMode::Certifications,
        )
    });

    let mut keys = Vec::with_capacity(n);
    let mut index = HashMap::with_capacity(n);
    for (y, node) in g.nodes.iter().enumerate() {
        let is_root = roots.contains(&y);
        let nuids = node.userids.len();
        let userids: Vec<UserIdTrust> = node
            .userids
            .iter()
            .enumerate()
            .map(|(u, uid)| {
                let (email, domain) = userid_email_domain(&uid.value);
                let usable = uid.state == UidState::Valid && node.state == NodeState::Valid;
                let found = if !usable {
                    None
                } else if is_root {
                    Some((0, Vec::new()))
                } else {
                    main.best
                        .get(&(y, u))
                        .map(|&b| (main.states[b.0].depth + 1, main.path(&g, b)))
                };
                let ok = found.is_some();
                let (depth, path) = found
                    .map(|(d, p)| (Some(d), p))
                    .unwrap_or((None, Vec::new()));
                UserIdTrust {
                    userid: uid.value.clone(),
                    email,
                    domain,
                    authenticated: ok && !refused[y],
                    authenticated_if_not_refused: ok,
                    depth,
                    path,
                    binding_problem: match &uid.state {
                        UidState::Valid => None,
                        UidState::Revoked => Some("revoked".into()),
                        UidState::Invalid(e) => Some(e.clone()),
                    },
                }
            })
            .collect();
        let depth = main.depth_of(y, nuids);
        let status = if refused[y] {
            KeyStatus::Refused
        } else if is_root {
            KeyStatus::Root
        } else if let (Some(d), NodeState::Valid) = (depth, &node.state) {
            KeyStatus::Trusted { depth: d }
        } else {
            let reason = match &node.state {
                NodeState::Revoked => UntrustedReason::Revoked,
                NodeState::Expired => UntrustedReason::Expired,
                NodeState::Invalid(e) => UntrustedReason::InvalidKey(e.clone()),
                NodeState::Valid if !node.userids.iter().any(|u| u.state == UidState::Valid) => {
                    UntrustedReason::NoValidUserId
                }
                NodeState::Valid => {
                    let by_introducer = g.rejected[y].iter().find(|r| main.introducer[r.issuer]);
                    if let Some(r) = by_introducer {
                        UntrustedReason::Certification {
                            issuer: g.nodes[r.issuer].fingerprint.clone(),
                            reason: r.reason.clone(),
                        }
                    } else if unignored.depth_of(y, nuids).is_some() {
                        let mut introducers: Vec<_> = (0..nuids)
                            .filter_map(|u| unignored.best.get(&(y, u)))
                            .flat_map(|&b| unignored.path(&g, b))
                            .map(|s| s.issuer)
                            .filter(|f| settings.ignore_certifications_by.contains(f))
                            .collect();
                        introducers.sort();
                        introducers.dedup();
                        UntrustedReason::OnlyThroughIgnoredIntroducer { introducers }
                    } else if let Some(d) = longer.depth_of(y, nuids) {
                        UntrustedReason::PathTooLong { needs_depth: d }
                    } else if as_certs
                        .as_ref()
                        .is_some_and(|c| c.depth_of(y, nuids).is_some())
                    {
                        UntrustedReason::NotDelegated
                    } else {
                        UntrustedReason::NoPath
                    }
                }
            };
            KeyStatus::Untrusted { reason }
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
        index.insert(node.fingerprint.clone(), keys.len());
        keys.push(KeyTrust {
            fingerprint: node.fingerprint.clone(),
            status,
            userids,
            introducer: main.introducer[y],
            certifications_cut: g.cut[y],
            rejected,
        });
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
