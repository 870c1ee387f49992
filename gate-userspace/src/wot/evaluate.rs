//! A trust computation over one keyring: the deciding search, and the
//! verdicts with their explanations, eagerly (every key) or on demand.
//!
//! The deciding search verifies only the certifications made by the keys it
//! reaches as introducers. A verdict's explanation (rejected certifications,
//! why a key is not trusted) verifies what it needs when it is asked for, so
//! a daemon that asks about a few statement signers does not verify the
//! certifications of keys that can never be trusted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::Fingerprint;

use super::edges::{self, CertDerived, Graph, NodeState, UidState, VerifyCache};
use super::report::{
    KeyStatus, KeyTrust, RejectedCertification, TrustReport, UntrustedReason, UserIdTrust,
};
use super::search::{search, Found};
use super::{userid_email_domain, IntroducerMode, Keyring, TrustSettings};

/// Computes the verdict on every key of `keyring` (fresh verification cache).
pub fn evaluate(keyring: &Keyring, settings: &TrustSettings, policy: &dyn Policy) -> TrustReport {
    evaluate_cached(keyring, settings, policy, &mut VerifyCache::new())
}

/// Like [`evaluate`], reusing (and filling) a cache of signature
/// verifications: a recompute over an unchanged keyring verifies nothing.
/// Every certification by a known issuer is verified (the report explains
/// every key); see [`evaluate_lazy`] for the daemon's way.
pub fn evaluate_cached(
    keyring: &Keyring,
    settings: &TrustSettings,
    policy: &dyn Policy,
    cache: &mut VerifyCache,
) -> TrustReport {
    let t = settings.reference_time;
    let mut g = edges::build(keyring, policy, t, &settings.limits, cache);
    g.resolve_all(keyring, cache);
    let (mut engine, missing_roots) = Engine::new(keyring, g, settings, cache.clone());
    let keys: Vec<OnceLock<KeyTrust>> = (0..engine.graph.nodes.len())
        .map(|y| OnceLock::from(engine.key_trust(keyring, y)))
        .collect();
    TrustReport::new(keys, keyring.fpr_index(), &engine, missing_roots, None)
}

/// The verdicts of [`evaluate_cached`], computed on demand: the deciding
/// search runs now (verifying the certifications of the keys it reaches
/// as introducers); a key's explanation is computed, and what it needs
/// verified (results into `cache`, which this shares), when the key is
/// first looked at. [`TrustReport::trusted_count`] and
/// [`TrustReport::is_trusted`] need nothing more. Every answer is the one
/// [`evaluate_cached`] gives.
pub fn evaluate_lazy(
    keyring: Arc<Keyring>,
    settings: &TrustSettings,
    policy: &dyn Policy,
    cache: &VerifyCache,
) -> TrustReport {
    evaluate_lazy_with(keyring, settings, policy, cache, None).0
}

/// [`evaluate_lazy`] taking (and giving back, see [`edges::build_with`])
/// what each certificate gives the graph at this reference time under
/// this policy; also says how long building the graph took (the rest is
/// the search).
pub(super) fn evaluate_lazy_with(
    keyring: Arc<Keyring>,
    settings: &TrustSettings,
    policy: &dyn Policy,
    cache: &VerifyCache,
    prior: Option<&[Option<Arc<CertDerived>>]>,
) -> (TrustReport, Option<Vec<Arc<CertDerived>>>, Duration) {
    let t = settings.reference_time;
    let started = Instant::now();
    let (g, derived) = edges::build_with(&keyring, policy, t, &settings.limits, cache, prior);
    let built = started.elapsed();
    let (engine, missing_roots) = Engine::new(&keyring, g, settings, cache.clone());
    let keys = (0..engine.graph.nodes.len())
        .map(|_| OnceLock::new())
        .collect();
    let report = TrustReport::new(keys, keyring.fpr_index(), &engine, missing_roots, None);
    let report = report.with_lazy(Arc::new(Mutex::new(Lazy { keyring, engine })));
    (report, derived, built)
}

/// What a lazy report computes from.
pub(super) struct Lazy {
    pub(super) keyring: Arc<Keyring>,
    pub(super) engine: Engine,
}

impl Lazy {
    /// The verification cache the computation fills (shared).
    pub(super) fn cache(&self) -> VerifyCache {
        self.engine.cache.clone()
    }
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy")
            .field("keys", &self.keyring.len())
            .finish_non_exhaustive()
    }
}

/// The graph, the deciding search, and the searches that explain failures
/// (each run when first needed).
pub(super) struct Engine {
    pub(super) graph: Graph,
    settings: TrustSettings,
    cache: VerifyCache,
    roots: Vec<usize>,
    ignored: Vec<bool>,
    pub(super) refused: Vec<bool>,
    main: Found,
    /// Without the depth bound.
    longer: Option<Found>,
    /// With ignored introducers counting.
    unignored: Option<Found>,
    /// `trust-signatures` mode only: every certification delegating.
    as_certs: Option<Found>,
}

/// Per node: whether its fingerprint is in `set`.
fn flags(g: &Graph, set: &BTreeSet<Fingerprint>) -> Vec<bool> {
    g.nodes
        .iter()
        .map(|nd| set.contains(&nd.fingerprint))
        .collect()
}

impl Engine {
    /// Resolves the roots and runs the deciding search; returns the roots
    /// that are in no keyring beside.
    fn new(
        ring: &Keyring,
        mut graph: Graph,
        settings: &TrustSettings,
        mut cache: VerifyCache,
    ) -> (Engine, Vec<Fingerprint>) {
        let mut missing_roots = Vec::new();
        let mut roots = Vec::new();
        for r in &settings.roots {
            match ring.index_of(r) {
                Some(i) if graph.nodes[i].state == NodeState::Valid => roots.push(i),
                Some(_) => {}
                None => missing_roots.push(r.clone()),
            }
        }
        let ignored = flags(&graph, &settings.ignore_certifications_by);
        let refused = flags(&graph, &settings.refuse);
        let main = search(
            &mut graph,
            ring,
            &mut cache,
            &roots,
            &ignored,
            settings.depth,
            settings.mode,
        );
        let engine = Engine {
            graph,
            settings: settings.clone(),
            cache,
            roots,
            ignored,
            refused,
            main,
            longer: None,
            unignored: None,
            as_certs: None,
        };
        (engine, missing_roots)
    }

    /// Whether key `y` is trusted (a root or reached within the depth, not
    /// refused): the deciding search alone answers.
    pub(super) fn trusted(&self, y: usize) -> bool {
        let node = &self.graph.nodes[y];
        !self.refused[y]
            && (self.roots.contains(&y)
                || (node.state == NodeState::Valid
                    && self.main.depth_of(y, node.userids.len()).is_some()))
    }

    /// [`Engine::trusted`] of every key, reading only the keys the search
    /// reached (and the roots).
    pub(super) fn trusted_all(&self) -> Vec<bool> {
        let n = self.graph.nodes.len();
        let mut reached = vec![false; n];
        for &(y, _) in self.main.best.keys() {
            reached[y] = true;
        }
        for &r in &self.roots {
            reached[r] = true;
        }
        (0..n).map(|y| reached[y] && self.trusted(y)).collect()
    }

    /// The verdict on key `y`, its User IDs and its rejected certifications.
    pub(super) fn key_trust(&mut self, ring: &Keyring, y: usize) -> KeyTrust {
        self.graph.resolve_into(ring, y, &mut self.cache);
        let is_root = self.roots.contains(&y);
        let refused = self.refused[y];
        let nuids = self.graph.nodes[y].userids.len();
        let userids = (0..nuids)
            .map(|u| self.userid_trust(y, u, is_root, refused))
            .collect();
        let node_state = self.graph.nodes[y].state.clone();
        let status = if refused {
            KeyStatus::Refused
        } else if is_root {
            KeyStatus::Root
        } else if let (Some(d), NodeState::Valid) = (self.main.depth_of(y, nuids), &node_state) {
            KeyStatus::Trusted { depth: d }
        } else {
            KeyStatus::Untrusted {
                reason: self.untrusted_reason(ring, y),
            }
        };
        let g = &self.graph;
        let node = &g.nodes[y];
        let rejected = g
            .rejected_of(y)
            .into_iter()
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
        let node = &self.graph.nodes[y];
        let uid = &node.userids[u];
        let (email, domain) = userid_email_domain(&uid.value);
        let usable = uid.state == UidState::Valid && node.state == NodeState::Valid;
        let found = if !usable {
            None
        } else if is_root {
            Some((0, Vec::new()))
        } else {
            self.main.best.get(&(y, u)).map(|&b| {
                (
                    self.main.states[b.0].depth + 1,
                    self.main.path(&self.graph, b),
                )
            })
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
    fn untrusted_reason(&mut self, ring: &Keyring, y: usize) -> UntrustedReason {
        let node = &self.graph.nodes[y];
        match &node.state {
            NodeState::Revoked => UntrustedReason::Revoked,
            NodeState::Expired => UntrustedReason::Expired,
            NodeState::Invalid(e) => UntrustedReason::InvalidKey(e.clone()),
            NodeState::Valid if !node.userids.iter().any(|u| u.state == UidState::Valid) => {
                UntrustedReason::NoValidUserId
            }
            NodeState::Valid => self.missing_path_reason(ring, y),
        }
    }

    /// A further search from the roots (`None` for `ignored`: nobody
    /// ignored), resolving what it follows.
    fn further(
        &mut self,
        ring: &Keyring,
        ignore: bool,
        depth: usize,
        mode: IntroducerMode,
    ) -> Found {
        let none;
        let ignored = if ignore {
            &self.ignored
        } else {
            none = vec![false; self.graph.nodes.len()];
            &none
        };
        search(
            &mut self.graph,
            ring,
            &mut self.cache,
            &self.roots,
            ignored,
            depth,
            mode,
        )
    }

    /// Why a valid key `y` with a valid User ID has no path within the rules.
    fn missing_path_reason(&mut self, ring: &Keyring, y: usize) -> UntrustedReason {
        let nuids = self.graph.nodes[y].userids.len();
        let by_introducer = self
            .graph
            .rejected_of(y)
            .into_iter()
            .find(|r| self.main.introducer[r.issuer])
            .map(|r| (r.issuer, r.reason.clone()));
        if let Some((issuer, reason)) = by_introducer {
            return UntrustedReason::Certification {
                issuer: self.graph.nodes[issuer].fingerprint.clone(),
                reason,
            };
        }
        let (depth, mode) = (self.settings.depth, self.settings.mode);
        let unbounded = self.graph.nodes.len().max(depth);
        if self.unignored.is_none() {
            self.unignored = Some(self.further(ring, false, depth, mode));
        }
        let unignored = self.unignored.as_ref().expect("just computed");
        if unignored.depth_of(y, nuids).is_some() {
            let mut introducers: Vec<_> = (0..nuids)
                .filter_map(|u| unignored.best.get(&(y, u)))
                .flat_map(|&b| unignored.path(&self.graph, b))
                .map(|s| s.issuer)
                .filter(|f| self.settings.ignore_certifications_by.contains(f))
                .collect();
            introducers.sort();
            introducers.dedup();
            return UntrustedReason::OnlyThroughIgnoredIntroducer { introducers };
        }
        if self.longer.is_none() {
            self.longer = Some(self.further(ring, true, unbounded, mode));
        }
        if let Some(d) = self.longer.as_ref().and_then(|l| l.depth_of(y, nuids)) {
            return UntrustedReason::PathTooLong { needs_depth: d };
        }
        if mode == IntroducerMode::TrustSignatures {
            if self.as_certs.is_none() {
                let c = self.further(ring, true, unbounded, IntroducerMode::Certifications);
                self.as_certs = Some(c);
            }
            if self
                .as_certs
                .as_ref()
                .is_some_and(|c| c.depth_of(y, nuids).is_some())
            {
                return UntrustedReason::NotDelegated;
            }
        }
        UntrustedReason::NoPath
    }
}

pub(super) fn engine_time(e: &Engine) -> std::time::SystemTime {
    e.settings.reference_time
}

pub(super) fn engine_depth(e: &Engine) -> usize {
    e.settings.depth
}
