//! The trust computation kept across refreshes: certificates parsed once per
//! distinct bytes, their judgements kept while the time stays, the search redone.
//!
//! A recompute costs: splitting and hashing the keyring bytes, parsing the
//! certificates whose bytes changed, judging them (validity, each new
//! certification's policy checks), rebuilding the graph's index from what
//! is kept, and the search (verifying, through the [`VerifyCache`], only
//! certifications it has not verified before). A certificate's judgement
//! is kept while the reference time stays in its window (no signature or
//! key of it made, expiring or expired in between: `window.rs`); the
//! policy is the engine's own, fixed when it is made. The result is always the one
//! [`super::evaluate_lazy`] gives over [`Keyring::parse`] of the same sources
//! (tests/wot_engine.rs checks random changes against it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sequoia_openpgp::policy::Policy;

use super::chunks::ParseCache;
use super::edges::CertDerived;
use super::evaluate::evaluate_lazy_with;
use super::keyring::Digest;
use super::{Keyring, LoadProblem, TrustReport, TrustSettings, VerifyCache};
use crate::source::Named;

/// A trust computation kept between refreshes (see the module docs).
pub struct TrustEngine {
    policy: Arc<dyn Policy>,
    parse: ParseCache,
    /// The last computation's judgements by keyring index, with the
    /// digest of the certificate's bytes each was made from; each used at
    /// the reference times its window holds.
    derived: Vec<Option<(Digest, Arc<CertDerived>)>>,
    cache: VerifyCache,
    last: EngineRun,
}

/// What the last computation did and where its time went.
#[derive(Clone, Debug, Default)]
pub struct EngineRun {
    /// Splitting, hashing and parsing the sources (and indexing the keyring).
    pub parse: Duration,
    /// Judging the certificates and building the graph's index.
    pub graph: Duration,
    /// The deciding search (verifying what it needs).
    pub search: Duration,
    /// Certificates parsed, and found parsed already.
    pub parsed: usize,
    pub reused: usize,
    /// The keyring was the last one with the changed certificates put in
    /// place (see `patch.rs`), not built anew.
    pub in_place: bool,
    /// Certificates whose judgements were kept (same bytes, a time their
    /// window holds).
    pub judged_before: usize,
    /// Signatures verified cryptographically.
    pub verified: usize,
}

/// One computation's keyring, verdicts and load problems.
pub struct Evaluated {
    pub keyring: Arc<Keyring>,
    pub report: TrustReport,
    pub problems: Vec<LoadProblem>,
}

impl std::fmt::Debug for TrustEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustEngine")
            .field("parsed_certificates", &self.parse.len())
            .field(
                "judged_certificates",
                &self.derived.iter().flatten().count(),
            )
            .finish_non_exhaustive()
    }
}

impl TrustEngine {
    /// An engine judging under `policy` (for its whole life), verifying
    /// through `cache` (e.g. the one saved in the state directory).
    pub fn new(policy: Arc<dyn Policy>, cache: VerifyCache) -> TrustEngine {
        TrustEngine {
            policy,
            parse: ParseCache::default(),
            derived: Vec::new(),
            cache,
            last: EngineRun::default(),
        }
    }

    /// The policy every computation of this engine judges under.
    pub fn policy(&self) -> Arc<dyn Policy> {
        self.policy.clone()
    }

    /// The verification cache (shared with the reports it made).
    pub fn cache(&self) -> &VerifyCache {
        &self.cache
    }

    /// What the last computation did.
    pub fn last_run(&self) -> &EngineRun {
        &self.last
    }

    /// Parses `sources` (binary or armoured keyrings, merged as
    /// [`Keyring::parse`] does) and computes the verdicts as
    /// [`super::evaluate_lazy`] does, reusing what earlier computations
    /// found for unchanged certificates.
    pub fn evaluate(&mut self, sources: &[Named], settings: &TrustSettings) -> Evaluated {
        let started = Instant::now();
        let (ring, problems) = Keyring::parse_cached(sources, &mut self.parse);
        let parse = started.elapsed();
        let t = settings.reference_time;
        let prior = kept_judgements(&ring, std::mem::take(&mut self.derived), t);
        let judged_before = prior.iter().filter(|p| p.is_some()).count();
        let started = Instant::now();
        let (report, derived, graph) = evaluate_lazy_with(
            ring.clone(),
            settings,
            &*self.policy,
            &self.cache,
            Some(&prior),
        );
        let search = started.elapsed().saturating_sub(graph);
        drop(prior);
        let derived = derived.unwrap_or_default();
        self.derived = derived
            .into_iter()
            .enumerate()
            .map(|(i, d)| Some((ring.digest_at(i)?, d)))
            .collect();
        self.last = EngineRun {
            parse,
            graph,
            search,
            parsed: self.parse.parsed,
            reused: self.parse.reused,
            in_place: self.parse.in_place,
            judged_before,
            verified: report.stats.verified,
        };
        Evaluated {
            keyring: ring,
            report,
            problems,
        }
    }
}

/// The judgements in `old` (the last computation's, by keyring index) of
/// `ring`'s certificates, where their windows hold `t`. A certificate
/// whose bytes are those at its index last time takes that judgement
/// without a lookup; one that moved (certificates added or removed before
/// it) is found by digest; one that changed in place has none.
fn kept_judgements(
    ring: &Keyring,
    mut old: Vec<Option<(Digest, Arc<CertDerived>)>>,
    t: std::time::SystemTime,
) -> Vec<Option<Arc<CertDerived>>> {
    let mut by_digest: Option<HashMap<Digest, Arc<CertDerived>>> = None;
    (0..ring.len())
        .map(|i| {
            let d = ring.digest_at(i)?;
            let found = match old.get_mut(i) {
                Some(slot) if slot.as_ref().is_some_and(|(o, _)| *o == d) => {
                    slot.take().map(|(_, a)| a)
                }
                Some(Some((_, a))) if a.node.fingerprint == ring.cert_at(i).fingerprint() => None,
                _ => by_digest
                    .get_or_insert_with(|| {
                        old.iter().flatten().map(|(d, a)| (*d, a.clone())).collect()
                    })
                    .get(&d)
                    .cloned(),
            };
            found.filter(|a| a.holds(t))
        })
        .collect()
}
