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
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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
    let n = ring.len();
    let nodes: Vec<Node> = (0..n)
        .map(|i| node_of(ring.cert_at(i), policy, t))
        .collect();
    let mut g = Graph {
        nodes,
        edges: Vec::new(),
        out: vec![Vec::new(); n],
        rejected: vec![Vec::new(); n],
        cut: vec![0; n],
        stats: EdgeStats::default(),
    };
    for y in 0..n {
        if g.nodes[y].state != NodeState::Valid {
            continue;
        }
        let cert = ring.cert_at(y);
        let mut cands = Vec::new();
        for (u, ua) in cert.userids().enumerate() {
            if g.nodes[y].userids[u].state != UidState::Valid {
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
                    g.stats.unknown_issuer += 1;
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
        // Flooding limits: newest first, by count and by bytes.
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
            g.cut[y] += 1;
            g.stats.cut_by_limits += 1;
            for &x in &c.issuers {
                g.rejected[y].push(Rejected {
                    issuer: x,
                    userid: c.uid,
                    created: Some(c.created),
                    reason: RejectReason::CutByLimits,
                });
            }
        }
        // Newest accepted statement per (issuer, User ID).
        let mut newest: HashMap<(usize, usize), &Candidate> = HashMap::new();
        for c in &cands[..keep] {
            for &x in &c.issuers {
                let reject = |g: &mut Graph, reason| {
                    g.rejected[y].push(Rejected {
                        issuer: x,
                        userid: c.uid,
                        created: Some(c.created),
                        reason,
                    })
                };
                if g.nodes[x].state != NodeState::Valid {
                    reject(&mut g, RejectReason::IssuerInvalid);
                    continue;
                }
                if c.created > t {
                    reject(&mut g, RejectReason::FromTheFuture);
                    continue;
                }
                let issuer = ring.cert_at(x);
                if c.created < issuer.primary_key().key().creation_time() {
                    reject(&mut g, RejectReason::PredatesIssuer);
                    continue;
                }
                if policy
                    .signature(c.sig, HashAlgoSecurity::CollisionResistance)
                    .is_err()
                {
                    reject(&mut g, RejectReason::WeakHash(c.sig.hash_algo()));
                    continue;
                }
                if !verify(ring, x, y, c, cache, &mut g.stats) {
                    g.stats.bad_signatures += 1;
                    reject(&mut g, RejectReason::BadSignature);
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
                g.rejected[y].push(Rejected {
                    issuer: x,
                    userid: u,
                    created: Some(c.created),
                    reason,
                });
                continue;
            }
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
            g.out[x].push(g.edges.len());
            g.edges.push(Edge {
                issuer: x,
                target: y,
                userid: u,
                created: c.created,
                kind,
                scope,
                hash: c.sig.hash_algo(),
            });
        }
    }
    g
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
