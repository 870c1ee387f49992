//! Turning third-party certifications into verified graph edges under the
//! validity rules of the module docs, lazily: a certification is verified
//! only when a search or a report needs the edges it may give.
//!
//! Certifications over one User ID of one key by one issuer form a group;
//! a group is resolved (its signatures verified, the newest counting one
//! turned into an edge, the others into rejections) all at once, so the
//! result never depends on what was resolved before. The rejections carry
//! their place in the order an eager computation would list them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::regex::RegexSet;
use sequoia_openpgp::types::{HashAlgorithm, SignatureType};

pub(crate) use super::judge::CertDerived;
use super::judge::{info_of, node_of, Info};
pub use super::judge::{Node, NodeState, UidState};
use super::keyring::Certification;
use super::part::{kept_part, new_part, Part};
use super::window::Window;
use super::{Keyring, Limits};

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
    /// Its place in the eager order: (phase, a, b).
    pub(super) order: (u8, u32, u32),
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

/// A certification within the flooding limits, with everything the rules
/// need but the issuer and the cryptography (judged when the graph is built).
#[derive(Debug)]
pub(super) struct Cand {
    /// Index into the keyring's certifications of the target.
    pub(super) cert: u32,
    pub(super) uid: u32,
    created: SystemTime,
    revocation: bool,
    /// The policy rejects its hash (for collision-resistant uses).
    weak: Option<HashAlgorithm>,
    /// Not expired at the reference time.
    alive: bool,
    kind: EdgeKind,
    scope: Option<Arc<RegexSet>>,
    hash: HashAlgorithm,
}

/// The certifications by one issuer over one User ID of one key.
#[derive(Debug)]
struct Group {
    x: u32,
    y: u32,
    u: u32,
    /// Where its candidates' positions in the target's candidates (newest
    /// first) are in the target's [`Part::members`].
    start: u32,
    len: u32,
    resolved: bool,
}

/// The certification graph at one reference time; edges appear as groups
/// are resolved.
#[derive(Debug)]
pub struct Graph {
    /// Shared with the engine's kept judgements.
    pub nodes: Vec<Arc<Node>>,
    pub edges: Vec<Edge>,
    /// Edge indices by issuer, ordered by (target, User ID).
    pub out: Vec<Vec<usize>>,
    /// Rejected certifications by target (complete for a target once
    /// [`Graph::resolve_into`] ran for it; see [`Graph::rejected_of`]).
    rejected: Vec<Vec<Rejected>>,
    /// Certifications cut by the limits, by target.
    pub cut: Vec<usize>,
    pub stats: EdgeStats,
    t: SystemTime,
    /// Every target's candidates and groups ([`Part`]s are shared with
    /// the engine's kept judgements).
    parts: Vec<Arc<Part>>,
    /// The groups, those over one target together (`in_start`).
    groups: Vec<Group>,
    in_start: Vec<u32>,
    /// The groups by issuer: `out_list[out_start[x]..out_start[x + 1]]`.
    out_start: Vec<u32>,
    out_list: Vec<u32>,
    /// How many groups are still unresolved.
    unresolved: usize,
}

/// How many threads verify (and parse): every core, at most 16.
fn threads(cache: &VerifyCache) -> usize {
    if cache.is_sequential() {
        1
    } else {
        cores()
    }
}

/// The cores this process may use, at most 16; asked once (the standard
/// library reads the cgroup's CPU quota from /proc and /sys on every call:
/// 0.8 ms of each recompute).
pub(super) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(16)))
}

/// Maps `items` through `f` on `threads` threads (in order).
pub(super) fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() < 64 || threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification thread panicked"))
            .collect()
    })
}

/// The candidate for certification `c` (index `k`) from its [`Info`].
pub(super) fn cand_of(k: usize, c: &Certification, i: Info) -> Cand {
    Cand {
        cert: k as u32,
        uid: c.uid,
        created: c.created,
        revocation: c.revocation,
        weak: i.weak,
        alive: i.alive,
        kind: i.kind,
        scope: i.scope,
        hash: i.hash,
    }
}

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
    /// The candidate at `p` of target `y`.
    fn cand(&self, y: usize, p: usize) -> &Cand {
        &self.parts[y].cands[p]
    }

    /// The groups over `y`.
    fn in_groups(&self, y: usize) -> std::ops::Range<u32> {
        self.in_start[y]..self.in_start[y + 1]
    }

    /// The groups by `x`.
    fn out_groups(&self, x: usize) -> &[u32] {
        &self.out_list[self.out_start[x] as usize..self.out_start[x + 1] as usize]
    }

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

    /// The candidates' positions of group `gi`.
    fn members_of(&self, gi: usize) -> &[u32] {
        let g = &self.groups[gi];
        &self.parts[g.y as usize].members[g.start as usize..(g.start + g.len) as usize]
    }

    /// The rejected certifications of `y`, in the eager order; complete
    /// once [`Graph::resolve_into`] ran for `y`.
    pub fn rejected_of(&self, y: usize) -> Vec<&Rejected> {
        let mut r: Vec<&Rejected> = self.rejected[y].iter().collect();
        r.sort_by_key(|r| r.order);
        r
    }

    /// Resolves every group.
    pub fn resolve_all(&mut self, ring: &Keyring, cache: &mut VerifyCache) {
        if self.unresolved > 0 {
            let all: Vec<u32> = (0..self.groups.len() as u32).collect();
            self.resolve(ring, all, cache);
        }
    }

    /// Resolves the certifications made by each of `issuers`.
    pub fn resolve_out(&mut self, ring: &Keyring, issuers: &[usize], cache: &mut VerifyCache) {
        let todo: Vec<u32> = issuers
            .iter()
            .flat_map(|&x| self.out_groups(x).iter().copied())
            .filter(|&gi| !self.groups[gi as usize].resolved)
            .collect();
        self.resolve(ring, todo, cache);
    }

    /// Resolves the certifications over `y` (its rejections are complete).
    pub fn resolve_into(&mut self, ring: &Keyring, y: usize, cache: &mut VerifyCache) {
        let todo: Vec<u32> = self
            .in_groups(y)
            .filter(|&gi| !self.groups[gi as usize].resolved)
            .collect();
        self.resolve(ring, todo, cache);
    }

    /// Whether every certification by `x` is resolved.
    pub fn out_resolved(&self, x: usize) -> bool {
        self.out_groups(x)
            .iter()
            .all(|&gi| self.groups[gi as usize].resolved)
    }

    /// Resolves groups `todo` in batches: the signatures to verify are
    /// verified on every core, then the rules run per group.
    fn resolve(&mut self, ring: &Keyring, mut todo: Vec<u32>, cache: &mut VerifyCache) {
        todo.sort_unstable();
        todo.dedup();
        todo.retain(|&gi| !self.groups[gi as usize].resolved);
        for batch in todo.chunks(8192) {
            let mut jobs: Vec<Job> = Vec::new();
            for &gi in batch {
                let gr = &self.groups[gi as usize];
                let (x, y) = (gr.x as usize, gr.y as usize);
                for &p in self.members_of(gi as usize) {
                    let c = self.cand(y, p as usize);
                    if self.precheck(x, c).is_ok() {
                        let key = self.key(ring, x, y, c);
                        if !cache.contains(&key) {
                            jobs.push(Job { x, y, cand: c, key });
                        }
                    }
                }
            }
            jobs.sort_unstable_by_key(|j| j.key);
            jobs.dedup_by_key(|j| j.key);
            let results = par_map(&jobs, threads(cache), |j| {
                (j.key, verify_one(ring, j.x, j.y, j.cand))
            });
            drop(jobs);
            let mut fresh: HashMap<Key, bool> = results.into_iter().collect();
            for &gi in batch {
                self.resolve_group(ring, gi as usize, cache, &mut fresh);
            }
        }
    }

    fn key(&self, ring: &Keyring, x: usize, y: usize, c: &Cand) -> Key {
        let uid = ring.cert_at(y).userids().nth(c.uid as usize);
        key_of(
            &self.nodes[x].fingerprint,
            &self.nodes[y].fingerprint,
            uid.map_or(&[][..], |u| u.userid().value()),
            &ring.certifications_at(y)[c.cert as usize].bytes,
        )
    }

    /// The rules before the cryptography: the issuer is valid, the
    /// signature is not from the future nor older than the issuer, and its
    /// hash is acceptable.
    fn precheck(&self, x: usize, c: &Cand) -> Result<(), RejectReason> {
        if self.nodes[x].state != NodeState::Valid {
            return Err(RejectReason::IssuerInvalid);
        }
        if c.created > self.t {
            return Err(RejectReason::FromTheFuture);
        }
        if c.created < self.nodes[x].created {
            return Err(RejectReason::PredatesIssuer);
        }
        if let Some(h) = c.weak {
            return Err(RejectReason::WeakHash(h));
        }
        Ok(())
    }

    /// One group: every certification checked (failures recorded), the
    /// newest verified statement turned into an edge unless it is a
    /// revocation or has expired.
    fn resolve_group(
        &mut self,
        ring: &Keyring,
        gi: usize,
        cache: &mut VerifyCache,
        fresh: &mut HashMap<Key, bool>,
    ) {
        let (x, y, u) = {
            let g = &self.groups[gi];
            (g.x as usize, g.y as usize, g.u as usize)
        };
        let certs = ring.certifications_at(y);
        let part = self.parts[y].clone();
        let (start, len) = (self.groups[gi].start as usize, self.groups[gi].len as usize);
        let mut newest: Option<usize> = None;
        for &p in &part.members[start..start + len] {
            let c = &part.cands[p as usize];
            let check = match self.precheck(x, c) {
                Err(r) => Err(r),
                Ok(()) => {
                    let key = self.key(ring, x, y, c);
                    let (ok, fresh_one) = if let Some(ok) = fresh.remove(&key) {
                        (ok, true)
                    } else if let Some(ok) = cache.get(&key) {
                        (ok, false)
                    } else {
                        // Not prepared (cannot happen): verified here.
                        (verify_one(ring, x, y, c), true)
                    };
                    if fresh_one {
                        self.stats.verified += 1;
                        cache.insert(key, ok);
                    } else {
                        self.stats.cache_hits += 1;
                    }
                    if ok {
                        Ok(())
                    } else {
                        self.stats.bad_signatures += 1;
                        Err(RejectReason::BadSignature)
                    }
                }
            };
            match check {
                Err(reason) => {
                    let ipos = certs[c.cert as usize]
                        .issuers
                        .iter()
                        .position(|&i| i as usize == x)
                        .unwrap_or(0);
                    let created = Some(c.created);
                    self.rejected[y].push(Rejected {
                        issuer: x,
                        userid: u,
                        created,
                        reason,
                        order: (1, p, ipos as u32),
                    });
                }
                Ok(()) => {
                    let replace = match newest {
                        None => true,
                        Some(e) => {
                            let e = &part.cands[e];
                            // Same second: a revocation wins over a certification.
                            c.created > e.created || (c.created == e.created && c.revocation)
                        }
                    };
                    if replace {
                        newest = Some(p as usize);
                    }
                }
            }
        }
        self.groups[gi].resolved = true;
        self.unresolved -= 1;
        let Some(p) = newest else { return };
        let c = &part.cands[p];
        let reason = if c.revocation {
            Some(RejectReason::Revoked)
        } else if !c.alive {
            Some(RejectReason::Expired)
        } else {
            None
        };
        if let Some(reason) = reason {
            let created = Some(c.created);
            self.rejected[y].push(Rejected {
                issuer: x,
                userid: u,
                created,
                reason,
                order: (2, x as u32, u as u32),
            });
            return;
        }
        let e = Edge {
            issuer: x,
            target: y,
            userid: u,
            created: c.created,
            kind: c.kind,
            scope: c.scope.clone(),
            hash: c.hash,
        };
        let ei = self.edges.len();
        self.edges.push(e);
        let edges = &self.edges;
        let at = self.out[x].partition_point(|&o| (edges[o].target, edges[o].userid) < (y, u));
        self.out[x].insert(at, ei);
    }
}

/// One signature to verify.
struct Job<'a> {
    x: usize,
    y: usize,
    cand: &'a Cand,
    key: Key,
}

/// The cryptographic check of one certification (or its revocation) by
/// `x`'s primary key over User ID `c.uid` of `y`.
fn verify_one(ring: &Keyring, x: usize, y: usize, c: &Cand) -> bool {
    let issuer = ring.cert_at(x);
    let target = ring.cert_at(y);
    let Some(ua) = target.userids().nth(c.uid as usize) else {
        return false;
    };
    let Some(sig): Option<Signature> = ring.certifications_at(y)[c.cert as usize].signature()
    else {
        return false;
    };
    let userid = ua.userid();
    let signer = issuer.primary_key().key();
    let pk = target.primary_key().key();
    if sig.typ() == SignatureType::CertificationRevocation {
        sig.verify_userid_revocation(signer, pk, userid).is_ok()
    } else {
        sig.verify_userid_binding(signer, pk, userid).is_ok()
    }
}
