//! Building the graph: the nodes and each target's candidate
//! certifications grouped by issuer and User ID, nothing verified yet.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::policy::Policy;

use super::par::{par_map, threads};
use super::{CertDerived, EdgeStats, Graph, Group, Node, VerifyCache};
use crate::wot::judge::{info_of, node_of};
use crate::wot::part::{kept_part, new_part, Part};
use crate::wot::window::Window;
use crate::wot::{Keyring, Limits};

/// Computes the nodes and the certification groups; nothing is verified
/// yet. Certifications by issuers not in the keyring were dropped when it
/// was loaded (flooding costs a lookup); they are counted here.
pub fn build(
    ring: &Keyring,
    policy: &dyn Policy,
    t: SystemTime,
    limits: &Limits,
    cache: &VerifyCache,
) -> Graph {
    build_with(ring, policy, t, limits, cache, None).0
}

/// [`build`], taking what `prior` holds for a certificate (holding at `t`,
/// under the same policy: the caller's promise) instead of
/// computing it; with `prior`, returns beside what every certificate
/// gives (to keep for the next computation).
pub(crate) fn build_with(
    ring: &Keyring,
    policy: &dyn Policy,
    t: SystemTime,
    limits: &Limits,
    cache: &VerifyCache,
    prior: Option<&[Option<Arc<CertDerived>>]>,
) -> (Graph, Option<Vec<Arc<CertDerived>>>) {
    let n = ring.len();
    let threads = threads(cache);
    let known = |i: usize| prior.and_then(|p| p.get(i)?.clone());
    // What is kept is taken as it is; what is not is made on every core.
    let mut nodes: Vec<Option<Arc<Node>>> = (0..n).map(|i| Some(known(i)?.node.clone())).collect();
    let missing: Vec<usize> = (0..n).filter(|&i| nodes[i].is_none()).collect();
    let made = par_map(&missing, threads, |&i| {
        Arc::new(node_of(ring.cert_at(i), policy, t))
    });
    for (i, node) in missing.into_iter().zip(made) {
        nodes[i] = Some(node);
    }
    let nodes: Vec<Arc<Node>> = nodes.into_iter().map(|n| n.expect("made")).collect();
    let derived: Option<Vec<Arc<CertDerived>>> = prior.map(|_| {
        (0..n)
            .map(|i| {
                known(i).unwrap_or_else(|| {
                    let window = match ring.events_at(i) {
                        Some(events) => Window::new(events, t),
                        None => Window::new(&[t], t),
                    };
                    Arc::new(CertDerived {
                        window,
                        node: nodes[i].clone(),
                        infos: (0..ring.pending_len_at(i))
                            .map(|_| OnceLock::new())
                            .collect(),
                        part: OnceLock::new(),
                    })
                })
            })
            .collect()
    });
    // Each target's part: kept with its judgement, else made (its
    // certifications are parsed again to judge them).
    let derived_at = |y: usize| derived.as_ref().map(|d| &*d[y]);
    let mut parts: Vec<Option<Arc<Part>>> = (0..n)
        .map(|y| kept_part(ring, y, &nodes[y], limits, derived_at(y)))
        .collect();
    let missing: Vec<usize> = (0..n).filter(|&y| parts[y].is_none()).collect();
    let made = par_map(&missing, threads, |&y| {
        let d = derived_at(y);
        new_part(ring, y, &nodes[y], limits, d, |c| {
            match d.and_then(|d| d.infos.get(c.at as usize)) {
                Some(slot) => slot.get_or_init(|| info_of(c, policy, t)).clone(),
                None => info_of(c, policy, t),
            }
        })
    });
    for (y, part) in missing.into_iter().zip(made) {
        parts[y] = Some(part);
    }
    let parts: Vec<Arc<Part>> = parts.into_iter().map(|p| p.expect("made")).collect();
    let mut g = Graph {
        out: vec![Vec::new(); n],
        rejected: Vec::with_capacity(n),
        cut: Vec::with_capacity(n),
        stats: EdgeStats::default(),
        t,
        groups: Vec::new(),
        in_start: Vec::with_capacity(n + 1),
        out_start: Vec::new(),
        out_list: Vec::new(),
        unresolved: 0,
        edges: Vec::new(),
        nodes,
        parts: Vec::new(),
    };
    for (y, part) in parts.iter().enumerate() {
        g.in_start.push(g.groups.len() as u32);
        g.stats.unknown_issuer += part.unknown;
        g.stats.cut_by_limits += part.cut;
        g.cut.push(part.cut);
        g.rejected.push(part.cut_rejections.to_vec());
        g.groups.extend(part.groups.iter().map(|pg| Group {
            x: pg.x,
            y: y as u32,
            u: pg.u,
            start: pg.start,
            len: pg.len,
            resolved: false,
        }));
    }
    g.in_start.push(g.groups.len() as u32);
    g.unresolved = g.groups.len();
    g.parts = parts;
    g.index_out(n);
    (g, derived)
}

impl Graph {
    /// The groups by issuer, once every group is made (a counting sort:
    /// each issuer's groups stay in the order they were made).
    fn index_out(&mut self, n: usize) {
        let mut start = vec![0u32; n + 1];
        for g in &self.groups {
            start[g.x as usize + 1] += 1;
        }
        for x in 0..n {
            start[x + 1] += start[x];
        }
        let mut fill = start.clone();
        let mut list = vec![0u32; self.groups.len()];
        for (gi, g) in self.groups.iter().enumerate() {
            let at = &mut fill[g.x as usize];
            list[*at as usize] = gi as u32;
            *at += 1;
        }
        self.out_start = start;
        self.out_list = list;
    }
}
