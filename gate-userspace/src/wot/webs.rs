//! Many webs of trust over one keyring: the certifications are verified once
//! into one graph, then each web (its roots, depth, mode, exceptions) searches it.
//!
//! A web answers only what statements need (is a signer trusted, at which
//! depth, for which domains); the full [`super::TrustReport`] with its paths
//! and reasons stays for one web at a time (`trust explain --recipient`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::Fingerprint;

use super::edges::{self, Graph, NodeState, UidState, VerifyCache};
use super::evaluate::Lazy;
use super::report::TrustReport;
use super::search::{search, Found};
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

/// The certification graph of one keyring, shared by every web; what a
/// web's search needs is verified once, when the first web needs it.
pub struct SharedGraph<'k> {
    holder: Holder<'k>,
    cache: VerifyCache,
}

/// Where the graph lives: its own, or the one of a lazy [`TrustReport`]
/// (built once for the system web's report and every recipient's web).
enum Holder<'k> {
    Own {
        keyring: &'k Keyring,
        graph: Box<Mutex<Graph>>,
    },
    Report(Arc<Mutex<Lazy>>),
}

impl<'k> SharedGraph<'k> {
    /// The keyring's certification graph at `t` under `limits` (the
    /// system's: every web is bounded by the same limits). A certification
    /// is verified once, when the first web's search needs it (results go
    /// into `cache`, which the graph shares).
    pub fn build(
        keyring: &'k Keyring,
        policy: &dyn Policy,
        t: std::time::SystemTime,
        limits: &Limits,
        cache: &mut VerifyCache,
    ) -> SharedGraph<'k> {
        SharedGraph {
            holder: Holder::Own {
                keyring,
                graph: Box::new(Mutex::new(edges::build(keyring, policy, t, limits, cache))),
            },
            cache: cache.clone(),
        }
    }

    /// The graph of a report from [`super::evaluate_lazy`] (its keyring,
    /// reference time, limits and policy), searched by every web without
    /// building or verifying anything twice; `None` for an eager report.
    pub fn from_report(report: &TrustReport) -> Option<SharedGraph<'static>> {
        let lazy = report.lazy()?;
        let cache = lazy.lock().unwrap_or_else(|e| e.into_inner()).cache();
        Some(SharedGraph {
            holder: Holder::Report(lazy),
            cache,
        })
    }

    /// Runs `f` on the keyring and the graph (locked).
    fn with<R>(&self, f: impl FnOnce(&Keyring, &mut Graph) -> R) -> R {
        match &self.holder {
            Holder::Own { keyring, graph } => {
                let mut g = graph.lock().unwrap_or_else(|e| e.into_inner());
                f(keyring, &mut g)
            }
            Holder::Report(lazy) => {
                let mut l = lazy.lock().unwrap_or_else(|e| e.into_inner());
                let Lazy { keyring, engine } = &mut *l;
                f(keyring, &mut engine.graph)
            }
        }
    }

    /// The standing of each of `keys` in the web `settings` describes (its
    /// reference time and limits are the graph's).
    pub fn standings(&self, settings: &TrustSettings, keys: &[Fingerprint]) -> Vec<Standing> {
        self.with(|ring, g| {
            let (roots, found) = self.search(ring, g, settings);
            self.standings_in(ring, g, settings, &roots, &found, keys)
        })
    }

    /// Keys trusted (roots included) in the web: for the metrics.
    pub fn trusted_count(&self, settings: &TrustSettings) -> usize {
        self.with(|ring, g| {
            let (roots, found) = self.search(ring, g, settings);
            self.count_in(g, settings, &roots, &found)
        })
    }

    /// [`SharedGraph::standings`] and [`SharedGraph::trusted_count`] from
    /// one search of the web (what every web of a refresh needs).
    pub fn standings_and_count(
        &self,
        settings: &TrustSettings,
        keys: &[Fingerprint],
    ) -> (Vec<Standing>, usize) {
        self.with(|ring, g| {
            let (roots, found) = self.search(ring, g, settings);
            (
                self.standings_in(ring, g, settings, &roots, &found, keys),
                self.count_in(g, settings, &roots, &found),
            )
        })
    }

    /// The web's valid roots (graph indices) and its search from them.
    fn search(
        &self,
        ring: &Keyring,
        g: &mut Graph,
        settings: &TrustSettings,
    ) -> (Vec<usize>, Found) {
        let roots: Vec<usize> = settings
            .roots
            .iter()
            .filter_map(|r| ring.index_of(r))
            .filter(|&i| g.nodes[i].state == NodeState::Valid)
            .collect();
        let ignored: Vec<bool> = g
            .nodes
            .iter()
            .map(|n| settings.ignore_certifications_by.contains(&n.fingerprint))
            .collect();
        let mut cache = self.cache.clone();
        let found = search(
            g,
            ring,
            &mut cache,
            &roots,
            &ignored,
            settings.depth,
            settings.mode,
        );
        (roots, found)
    }

    /// The trust depth of node `y` in a search: 0 for a root, else the
    /// shortest path to one of its valid User IDs; `None` when it is not
    /// valid or no valid User ID is reached. Calls `each` with every valid
    /// User ID reached.
    fn depth_of(
        &self,
        g: &Graph,
        y: usize,
        roots: &[usize],
        found: &Found,
        mut each: impl FnMut(&str),
    ) -> Option<usize> {
        let node = &g.nodes[y];
        if node.state != NodeState::Valid {
            return None;
        }
        let is_root = roots.contains(&y);
        let mut depth = None;
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
                each(&uid.value);
            }
        }
        depth
    }

    fn standings_in(
        &self,
        ring: &Keyring,
        g: &Graph,
        settings: &TrustSettings,
        roots: &[usize],
        found: &Found,
        keys: &[Fingerprint],
    ) -> Vec<Standing> {
        keys.iter()
            .map(|k| {
                let Some(y) = ring.index_of(k) else {
                    return Standing::Untrusted;
                };
                if g.nodes[y].state != NodeState::Valid {
                    return Standing::Untrusted;
                }
                let mut domains = BTreeSet::new();
                let depth = self.depth_of(g, y, roots, found, |uid| {
                    if let (_, Some(dom)) = userid_email_domain(uid) {
                        domains.insert(dom.to_ascii_lowercase());
                    }
                });
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

    /// How many keys are trusted in a search: a depth and not refused. Only
    /// the roots and the keys the search reached can have a depth.
    fn count_in(
        &self,
        g: &Graph,
        settings: &TrustSettings,
        roots: &[usize],
        found: &Found,
    ) -> usize {
        let mut reached: Vec<usize> = roots
            .iter()
            .copied()
            .chain(found.best.keys().map(|&(y, _)| y))
            .collect();
        reached.sort_unstable();
        reached.dedup();
        reached
            .into_iter()
            .filter(|&y| !settings.refuse.contains(&g.nodes[y].fingerprint))
            .filter(|&y| self.depth_of(g, y, roots, found, |_| ()).is_some())
            .count()
    }
}
