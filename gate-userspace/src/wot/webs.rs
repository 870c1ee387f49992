//! Many webs of trust over one keyring: the certifications are verified once
//! into one graph, then each web (its roots, depth, mode, exceptions) searches it.
//!
//! A web answers only what statements need (is a signer trusted, at which
//! depth, for which domains); the full [`super::TrustReport`] with its paths
//! and reasons stays for one web at a time (`trust explain --recipient`).

use std::collections::BTreeSet;

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::Fingerprint;

use super::edges::{self, Graph, NodeState, UidState, VerifyCache};
use super::search::search;
use super::{userid_email_domain, Keyring, Limits, TrustSettings};

/// One web's verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A root (depth 0) or reached within the web's depth; the domains of its
    /// authenticated User IDs, lowercased and sorted.
    Trusted { depth: usize, domains: Vec<String> },
    /// Refused by the web; the domains it would be authenticated for.
    Refused { would_be_domains: Vec<String> },
    /// Not in the keyring, not valid, or no path within the web's rules.
    Untrusted,
}

/// The verified graph of one keyring, shared by every web.
pub struct SharedGraph<'k> {
    keyring: &'k Keyring,
    graph: Graph,
}

impl<'k> SharedGraph<'k> {
    /// Verifies the keyring's certifications once, at `t` under `limits`
    /// (the system's: every web is bounded by the same limits).
    pub fn build(
        keyring: &'k Keyring,
        policy: &dyn Policy,
        t: std::time::SystemTime,
        limits: &Limits,
        cache: &mut VerifyCache,
    ) -> SharedGraph<'k> {
        SharedGraph {
            keyring,
            graph: edges::build(keyring, policy, t, limits, cache),
        }
    }

    /// The standing of each of `keys` in the web `settings` describes (its
    /// reference time and limits are the graph's).
    pub fn standings(&self, settings: &TrustSettings, keys: &[Fingerprint]) -> Vec<Standing> {
        let g = &self.graph;
        let roots: Vec<usize> = settings
            .roots
            .iter()
            .filter_map(|r| self.keyring.index_of(r))
            .filter(|&i| g.nodes[i].state == NodeState::Valid)
            .collect();
        let ignored: Vec<bool> = g
            .nodes
            .iter()
            .map(|n| settings.ignore_certifications_by.contains(&n.fingerprint))
            .collect();
        let found = search(g, &roots, &ignored, settings.depth, settings.mode);
        keys.iter()
            .map(|k| {
                let Some(y) = self.keyring.index_of(k) else {
                    return Standing::Untrusted;
                };
                let node = &g.nodes[y];
                if node.state != NodeState::Valid {
                    return Standing::Untrusted;
                }
                let is_root = roots.contains(&y);
                let mut depth = None;
                let mut domains = BTreeSet::new();
                for (u, uid) in node.userids.iter().enumerate() {
                    if uid.state != UidState::Valid {
                        continue;
                    }
                    let d = if is_root {
                        Some(0)
                    } else {
                        found
                            .best
                            .get(&(y, u))
                            .map(|&(s, _)| found.states[s].depth + 1)
                    };
                    if let Some(d) = d {
                        depth = Some(depth.map_or(d, |m: usize| m.min(d)));
                        if let (_, Some(dom)) = userid_email_domain(&uid.value) {
                            domains.insert(dom.to_ascii_lowercase());
                        }
                    }
                }
                let domains: Vec<String> = domains.into_iter().collect();
                match depth {
                    _ if settings.refuse.contains(k) => Standing::Refused {
                        would_be_domains: domains,
                    },
                    Some(depth) => Standing::Trusted { depth, domains },
                    None => Standing::Untrusted,
                }
            })
            .collect()
    }

    /// Keys trusted (roots included) in the web: for the metrics.
    pub fn trusted_count(&self, settings: &TrustSettings) -> usize {
        let fprs: Vec<Fingerprint> = self
            .graph
            .nodes
            .iter()
            .map(|n| n.fingerprint.clone())
            .collect();
        self.standings(settings, &fprs)
            .iter()
            .filter(|s| matches!(s, Standing::Trusted { .. }))
            .count()
    }
}
