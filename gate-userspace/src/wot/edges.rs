//! Turning third-party certifications into verified graph edges under the
//! validity rules of the module docs, with a cache of signature verifications.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::policy::{HashAlgoSecurity, Policy};
use sequoia_openpgp::regex::RegexSet;
use sequoia_openpgp::serialize::MarshalInto;
use sequoia_openpgp::types::{HashAlgorithm, RevocationStatus, SignatureType};
use sequoia_openpgp::Fingerprint;

use super::{Keyring, Limits};

/// The validity of a certificate at the reference time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    Valid,
    Revoked,
    Expired,
    /// Not valid under the policy (e.g. no acceptable self-signature).
    Invalid(String),
}

/// The validity of one User ID binding at the reference time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UidState {
    Valid,
    Revoked,
    /// No live self-signature acceptable to the policy (expired, weak, none).
    Invalid(String),
}

#[derive(Clone, Debug)]
pub struct Uid {
    pub value: String,
    pub state: UidState,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub fingerprint: Fingerprint,
    pub state: NodeState,
    pub userids: Vec<Uid>,
}

/// What kind of certification an edge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    Certification,
    TrustSignature { level: u8, amount: u8 },
}

/// A counting certification: `issuer` certified User ID `userid` of `target`
/// (indices into the keyring and into the target node's User IDs).
#[derive(Clone, Debug)]
pub struct Edge {
    pub issuer: usize,
    pub target: usize,
    pub userid: usize,
    pub created: SystemTime,
    pub kind: EdgeKind,
    /// Scope of a trust signature's regular expressions (None: no constraint).
    pub scope: Option<Arc<RegexSet>>,
    pub hash: HashAlgorithm,
}

/// Why a certification by a known issuer does not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    BadSignature,
    WeakHash(HashAlgorithm),
    /// Made before the issuer's primary key was created.
    PredatesIssuer,
    /// Created after the reference time.
    FromTheFuture,
    /// The newest certification by this issuer has expired.
    Expired,
    /// The newest statement by this issuer is a certification revocation.
    Revoked,
    /// The issuer is not valid at the reference time.
    IssuerInvalid,
    /// Beyond the per-certificate flooding limits.
    CutByLimits,
}

#[derive(Clone, Debug)]
pub struct Rejected {
    pub issuer: usize,
    pub userid: usize,
    pub created: Option<SystemTime>,
    pub reason: RejectReason,
}

/// Counters of what the edge computation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Signatures verified cryptographically in this run.
    pub verified: usize,
    /// Verifications answered from the cache.
    pub cache_hits: usize,
    pub bad_signatures: usize,
    /// Certifications skipped without verification: issuer not in the keyring.
    pub unknown_issuer: usize,
    /// Certifications cut by the flooding limits.
    pub cut_by_limits: usize,
}

pub use super::verify_cache::VerifyCache;
use super::verify_cache::{key_of, Key};

/// The certification graph at one reference time.
#[derive(Debug)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Edge indices by issuer.
    pub out: Vec<Vec<usize>>,
    /// Rejected certifications by target.
    pub rejected: Vec<Vec<Rejected>>,
    /// Certifications cut by the limits, by target.
    pub cut: Vec<usize>,
    pub stats: EdgeStats,
}

fn node_of(cert: &Cert, policy: &dyn Policy, t: SystemTime) -> Node {
    let state = match cert.with_policy(policy, t) {
        Err(e) => NodeState::Invalid(format!("{e}")),
        Ok(vc) => {
            if let RevocationStatus::Revoked(_) = vc.revocation_status() {
                NodeState::Revoked
            } else if vc.alive().is_err() {
                NodeState::Expired
            } else {
                NodeState::Valid
            }
        }
    };
    let userids = cert
        .userids()
        .map(|ua| {
            let value = String::from_utf8_lossy(ua.userid().value()).into_owned();
            let state = match ua.clone().with_policy(policy, t) {
                Err(e) => UidState::Invalid(format!("{e}")),
                Ok(va) => match va.revocation_status() {
                    RevocationStatus::Revoked(_) => UidState::Revoked,
                    _ => UidState::Valid,
                },
            };
            Uid { value, state }
        })
        .collect();
    Node {
        fingerprint: cert.fingerprint(),
        state,
        userids,
    }
}

pub(super) struct Candidate<'a> {
    pub(super) sig: &'a Signature,
    pub(super) uid: usize,
    created: SystemTime,
    issuers: Vec<usize>,
}

/// Computes nodes and verified edges. Certifications by issuers not in the
/// keyring are skipped before any verification (flooding costs a lookup).
pub fn build(
    ring: &Keyring,
    policy: &dyn Policy,
    t: SystemTime,
    limits: &Limits,
    cache: &mut VerifyCache,
) -> Graph {
    let nodes: Vec<Node> = (0..ring.len())
        .map(|i| node_of(ring.cert_at(i), policy, t))
        .collect();
    let mut g = Graph::without_edges(nodes);
    let checks = Checks { ring, policy, t };
    let mut all: Vec<(usize, Vec<Candidate>, usize)> = Vec::new();
    for y in 0..ring.len() {
        if g.nodes[y].state != NodeState::Valid {
            continue;
        }
        let mut cands = g.candidates(ring, y);
        let keep = g.cut_by_limits(y, &mut cands, limits);
        all.push((y, cands, keep));
    }
    // The signatures to verify, verified on every core first; the rules
    // below then find each result ready (and count it as verified).
    let mut todo: Vec<Job> = Vec::new();
    for (y, cands, keep) in &all {
        for c in &cands[..*keep] {
            for &x in &c.issuers {
                if checks.precheck(&g, x, c).is_ok() {
                    let key = key_of(ring.cert_at(x), ring.cert_at(*y), c);
                    if !cache.contains(&key) {
                        todo.push(Job { x, y: *y, c, key });
                    }
                }
            }
        }
    }
    let threads = if cache.sequential {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let mut fresh = verify_parallel(ring, &todo, threads);
    drop(todo);
    for (y, cands, keep) in &all {
        let newest = checks.newest_verified(&mut g, *y, &cands[..*keep], cache, &mut fresh);
        g.add_edges(*y, newest, t);
    }
    g
}

/// One signature to verify.
struct Job<'a> {
    x: usize,
    y: usize,
    c: &'a Candidate<'a>,
    key: Key,
}

/// Verifies `jobs` on every available core; results by key.
fn verify_parallel(ring: &Keyring, jobs: &[Job], threads: usize) -> HashMap<Key, bool> {
    let threads = threads.clamp(1, 16);
    if jobs.len() < 64 || threads == 1 {
        return jobs
            .iter()
            .map(|j| (j.key, verify_one(ring, j.x, j.y, j.c)))
            .collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|j| (j.key, verify_one(ring, j.x, j.y, j.c)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification thread panicked"))
            .collect()
    })
}

impl Graph {
    /// The graph of `nodes` before any certification is looked at.
    fn without_edges(nodes: Vec<Node>) -> Graph {
        let n = nodes.len();
        Graph {
            nodes,
            edges: Vec::new(),
            out: vec![Vec::new(); n],
            rejected: vec![Vec::new(); n],
            cut: vec![0; n],
            stats: EdgeStats::default(),
        }
    }

    /// The certifications and certification revocations over the valid User
    /// IDs of `y` whose issuer is in the keyring (the others are counted).
    fn candidates<'r>(&mut self, ring: &'r Keyring, y: usize) -> Vec<Candidate<'r>> {
        let mut cands = Vec::new();
        for (u, ua) in ring.cert_at(y).userids().enumerate() {
            if self.nodes[y].userids[u].state != UidState::Valid {
                continue;
            }
            for sig in ua.certifications().chain(ua.other_revocations()) {
                let mut issuers: Vec<usize> = Vec::new();
                for h in sig.get_issuers() {
                    for &i in ring.primary_indices(&h) {
                        if i != y && !issuers.contains(&i) {
                            issuers.push(i);
                        }
                    }
                }
                if issuers.is_empty() {
                    self.stats.unknown_issuer += 1;
                    continue;
                }
                let created = sig
                    .signature_creation_time()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                cands.push(Candidate {
                    sig,
                    uid: u,
                    created,
                    issuers,
                });
            }
        }
        cands
    }

    /// Flooding limits: sorts `cands` newest first and returns how many
    /// stay within the count and byte limits; the rest are recorded as cut.
    fn cut_by_limits(&mut self, y: usize, cands: &mut [Candidate], limits: &Limits) -> usize {
        cands.sort_by_key(|c| std::cmp::Reverse(c.created));
        let mut bytes = 0usize;
        let mut keep = cands.len();
        for (k, c) in cands.iter().enumerate() {
            bytes += c.sig.serialized_len();
            if k >= limits.max_certifications_per_cert
                || bytes > limits.max_certification_bytes_per_cert
            {
                keep = k;
                break;
            }
        }
        for c in &cands[keep..] {
            self.cut[y] += 1;
            self.stats.cut_by_limits += 1;
            for &x in &c.issuers {
                self.reject(y, x, c.uid, c.created, RejectReason::CutByLimits);
            }
        }
        keep
    }

    /// Records that the certification of `y`'s User ID `uid` by `issuer` does
    /// not count.
    fn reject(
        &mut self,
        y: usize,
        issuer: usize,
        uid: usize,
        created: SystemTime,
        reason: RejectReason,
    ) {
        self.rejected[y].push(Rejected {
            issuer,
            userid: uid,
            created: Some(created),
            reason,
        });
    }

    /// Turns the newest verified statement per (issuer, User ID) over `y`
    /// into an edge, unless it is a revocation or has expired at `t`.
    fn add_edges(&mut self, y: usize, newest: HashMap<(usize, usize), &Candidate>, t: SystemTime) {
        let mut keys: Vec<_> = newest.into_iter().collect();
        keys.sort_by_key(|((x, u), _)| (*x, *u));
        for ((x, u), c) in keys {
            let reason = if c.sig.typ() == SignatureType::CertificationRevocation {
                Some(RejectReason::Revoked)
            } else if c.sig.signature_alive(t, std::time::Duration::ZERO).is_err() {
                Some(RejectReason::Expired)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.reject(y, x, u, c.created, reason);
                continue;
            }
            self.out[x].push(self.edges.len());
            self.edges.push(edge(x, y, u, c));
        }
    }
}

/// The edge for a counting certification `c` by `x` over User ID `u` of `y`.
fn edge(x: usize, y: usize, u: usize, c: &Candidate) -> Edge {
    let kind = match c.sig.trust_signature() {
        Some((level, amount)) => EdgeKind::TrustSignature { level, amount },
        None => EdgeKind::Certification,
    };
    let scope = if c.sig.regular_expressions().next().is_some() {
        // An unparsable expression matches nothing (sequoia's rule).
        RegexSet::from_signature(c.sig).ok().map(Arc::new)
    } else {
        None
    };
    Edge {
        issuer: x,
        target: y,
        userid: u,
        created: c.created,
        kind,
        scope,
        hash: c.sig.hash_algo(),
    }
}

/// What a certification is checked against: the keyring, the policy and
/// the reference time.
struct Checks<'a> {
    ring: &'a Keyring,
    policy: &'a dyn Policy,
    t: SystemTime,
}

impl Checks<'_> {
    /// The newest verified statement per (issuer, User ID) among `cands`
    /// over `y`; the certifications that fail a check are recorded.
    fn newest_verified<'c>(
        &self,
        g: &mut Graph,
        y: usize,
        cands: &'c [Candidate<'c>],
        cache: &mut VerifyCache,
        fresh: &mut HashMap<Key, bool>,
    ) -> HashMap<(usize, usize), &'c Candidate<'c>> {
        let mut newest: HashMap<(usize, usize), &Candidate> = HashMap::new();
        for c in cands {
            for &x in &c.issuers {
                if let Err(reason) = self.check(g, x, y, c, cache, fresh) {
                    g.reject(y, x, c.uid, c.created, reason);
                    continue;
                }
                let e = newest.entry((x, c.uid)).or_insert(c);
                // Same second: a revocation wins over a certification.
                if c.created > e.created
                    || (c.created == e.created
                        && c.sig.typ() == SignatureType::CertificationRevocation)
                {
                    *e = c;
                }
            }
        }
        newest
    }

    /// The validity rules for one certification by `x` over `y`, the
    /// cryptographic verification last (counted in `g.stats`).
    fn check(
        &self,
        g: &mut Graph,
        x: usize,
        y: usize,
        c: &Candidate,
        cache: &mut VerifyCache,
        fresh: &mut HashMap<Key, bool>,
    ) -> Result<(), RejectReason> {
        self.precheck(g, x, c)?;
        if !verify(self.ring, x, y, c, cache, fresh, &mut g.stats) {
            g.stats.bad_signatures += 1;
            return Err(RejectReason::BadSignature);
        }
        Ok(())
    }

    /// The rules before the cryptography: the issuer is valid, the
    /// signature is not from the future nor older than the issuer, and its
    /// hash is acceptable.
    fn precheck(&self, g: &Graph, x: usize, c: &Candidate) -> Result<(), RejectReason> {
        if g.nodes[x].state != NodeState::Valid {
            return Err(RejectReason::IssuerInvalid);
        }
        if c.created > self.t {
            return Err(RejectReason::FromTheFuture);
        }
        let issuer = self.ring.cert_at(x);
        if c.created < issuer.primary_key().key().creation_time() {
            return Err(RejectReason::PredatesIssuer);
        }
        if self
            .policy
            .signature(c.sig, HashAlgoSecurity::CollisionResistance)
            .is_err()
        {
            return Err(RejectReason::WeakHash(c.sig.hash_algo()));
        }
        Ok(())
    }
}

fn verify(
    ring: &Keyring,
    x: usize,
    y: usize,
    c: &Candidate,
    cache: &mut VerifyCache,
    fresh: &mut HashMap<Key, bool>,
    stats: &mut EdgeStats,
) -> bool {
    let key = key_of(ring.cert_at(x), ring.cert_at(y), c);
    if let Some(ok) = fresh.remove(&key) {
        stats.verified += 1;
        cache.insert(key, ok);
        return ok;
    }
    if let Some(ok) = cache.get(&key) {
        stats.cache_hits += 1;
        return ok;
    }
    stats.verified += 1;
    let ok = verify_one(ring, x, y, c);
    cache.insert(key, ok);
    ok
}

/// The cryptographic check of one certification (or its revocation) by
/// `x`'s primary key over User ID `c.uid` of `y`.
fn verify_one(ring: &Keyring, x: usize, y: usize, c: &Candidate) -> bool {
    let issuer = ring.cert_at(x);
    let target = ring.cert_at(y);
    let Some(ua) = target.userids().nth(c.uid) else {
        return false;
    };
    let userid = ua.userid();
    let signer = issuer.primary_key().key();
    let pk = target.primary_key().key();
    if c.sig.typ() == SignatureType::CertificationRevocation {
        c.sig.verify_userid_revocation(signer, pk, userid).is_ok()
    } else {
        c.sig.verify_userid_binding(signer, pk, userid).is_ok()
    }
}
