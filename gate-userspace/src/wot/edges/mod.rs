//! Turning third-party certifications into verified graph edges under the
//! validity rules of the module docs, lazily: a certification is verified
//! only when a search or a report needs the edges it may give.
//!
//! Certifications over one User ID of one key by one issuer form a group;
//! a group is resolved (its signatures verified, the newest counting one
//! turned into an edge, the others into rejections) all at once, so the
//! result never depends on what was resolved before. The rejections carry
//! their place in the order an eager computation would list them.

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::regex::RegexSet;
use sequoia_openpgp::types::HashAlgorithm;

pub(crate) use super::judge::CertDerived;
use super::judge::Info;
pub use super::judge::{Node, NodeState, UidState};
use super::keyring::Certification;
use super::part::Part;

mod build;
mod par;
mod resolve;

pub use build::build;
pub(crate) use build::build_with;
pub(super) use par::{cores, par_map};

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
