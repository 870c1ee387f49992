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

/// Cache of cryptographic verification results, keyed by everything the
/// result depends on (issuer, target, User ID and the signature's bytes).
#[derive(Debug, Default)]
pub struct VerifyCache {
    map: HashMap<(Fingerprint, Fingerprint, Vec<u8>, Vec<u8>), bool>,
}

impl VerifyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

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

struct Candidate<'a> {
    sig: &'a Signature,
    uid: usize,
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
    for y in 0..ring.len() {
        if g.nodes[y].state != NodeState::Valid {
            continue;
        }
        let mut cands = g.candidates(ring, y);
        let keep = g.cut_by_limits(y, &mut cands, limits);
        let newest = checks.newest_verified(&mut g, y, &cands[..keep], cache);
        g.add_edges(y, newest, t);
    }
    g
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
    ) -> HashMap<(usize, usize), &'c Candidate<'c>> {
        let mut newest: HashMap<(usize, usize), &Candidate> = HashMap::new();
        for c in cands {
            for &x in &c.issuers {
                if let Err(reason) = self.check(g, x, y, c, cache) {
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
    ) -> Result<(), RejectReason> {
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
        if !verify(self.ring, x, y, c, cache, &mut g.stats) {
            g.stats.bad_signatures += 1;
            return Err(RejectReason::BadSignature);
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
    stats: &mut EdgeStats,
) -> bool {
    let issuer = ring.cert_at(x);
    let target = ring.cert_at(y);
    let userid = target
        .userids()
        .nth(c.uid)
        .map(|ua| ua.userid().clone())
        .expect("candidate User ID index is in range");
    let key = (
        issuer.fingerprint(),
        target.fingerprint(),
        userid.value().to_vec(),
        c.sig.to_vec().unwrap_or_default(),
    );
    if let Some(&ok) = cache.map.get(&key) {
        stats.cache_hits += 1;
        return ok;
    }
    stats.verified += 1;
    let signer = issuer.primary_key().key();
    let pk = target.primary_key().key();
    let ok = if c.sig.typ() == SignatureType::CertificationRevocation {
        c.sig.verify_userid_revocation(signer, pk, &userid).is_ok()
    } else {
        c.sig.verify_userid_binding(signer, pk, &userid).is_ok()
    };
    cache.map.insert(key, ok);
    ok
}
