//! What one target certificate gives the graph before anything is verified:
//! its candidate certifications within the limits, grouped by issuer and User ID.
//!
//! A part depends on the target's judgement (kept while its window holds),
//! its resolved certifications (the keyring's, shared while its bytes and
//! the keyring's keys stay) and the flooding limits; the engine keeps it
//! with the judgement, so a recompute rebuilds the graph's index from the
//! parts instead of sorting, cutting and grouping 100,000 certifications
//! again.

use std::sync::{Arc, OnceLock};

use super::edges::{cand_of, Cand, RejectReason, Rejected};
use super::judge::{CertDerived, Info, Node, NodeState, UidState};
use super::keyring::Certification;
use super::{Keyring, Limits};

/// One group of a part: the certifications by issuer `x` over User ID `u`,
/// at `members[start..start + len]` (positions in `cands`, newest first).
#[derive(Clone, Copy, Debug)]
pub(super) struct PartGroup {
    pub(super) x: u32,
    pub(super) u: u32,
    pub(super) start: u32,
    pub(super) len: u32,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Part {
    /// The certifications over valid User IDs within the limits, newest
    /// first, that parse.
    pub(super) cands: Box<[Cand]>,
    pub(super) groups: Box<[PartGroup]>,
    pub(super) members: Box<[u32]>,
    /// How many were cut by the limits, and their rejections.
    pub(super) cut: usize,
    pub(super) cut_rejections: Box<[Rejected]>,
    /// Certifications over valid User IDs by issuers in no keyring.
    pub(super) unknown: usize,
}

/// A part kept with a judgement, and what it was made from.
pub(crate) type KeptPart = (Arc<[Certification]>, Limits, Arc<Part>);

/// The part of target `y` (judged `node`) if it needs no making: the one
/// `derived` keeps when it was made from the same certifications under
/// the same limits, or the empty part of a key that is not valid.
pub(super) fn kept_part(
    ring: &Keyring,
    y: usize,
    node: &Node,
    limits: &Limits,
    derived: Option<&CertDerived>,
) -> Option<Arc<Part>> {
    static EMPTY: OnceLock<Arc<Part>> = OnceLock::new();
    if node.state != NodeState::Valid {
        return Some(EMPTY.get_or_init(Arc::default).clone());
    }
    let (c, l, p) = derived?.part.get()?;
    (Arc::ptr_eq(c, ring.certifications_arc(y)) && l == limits).then(|| p.clone())
}

/// The part of target `y` (judged `node`, valid), made and kept in
/// `derived` (see [`kept_part`]).
pub(super) fn new_part(
    ring: &Keyring,
    y: usize,
    node: &Node,
    limits: &Limits,
    derived: Option<&CertDerived>,
    info: impl Fn(&Certification) -> Option<Info>,
) -> Arc<Part> {
    let certs = ring.certifications_arc(y);
    let part = Arc::new(make(ring, y, node, certs, limits, info));
    if let Some(d) = derived {
        // Another computation at the same time may have set it first; both
        // are the same.
        let _ = d.part.set((certs.clone(), *limits, part.clone()));
    }
    part
}

fn make(
    ring: &Keyring,
    y: usize,
    node: &Node,
    certs: &[Certification],
    limits: &Limits,
    info: impl Fn(&Certification) -> Option<Info>,
) -> Part {
    let valid = |u: usize| node.userids[u].state == UidState::Valid;
    let unknown = (0..node.userids.len())
        .filter(|&u| valid(u))
        .map(|u| ring.unknown_at(y, u))
        .sum();
    let mut order: Vec<usize> = (0..certs.len())
        .filter(|&k| valid(certs[k].uid as usize))
        .collect();
    order.sort_by_key(|&k| std::cmp::Reverse(certs[k].created));
    // Flooding limits (newest first): how many stay within the count and
    // byte limits; the rest are recorded as cut.
    let mut bytes = 0usize;
    let mut keep = order.len();
    for (k, &c) in order.iter().enumerate() {
        bytes += certs[c].bytes.len();
        if k >= limits.max_certifications_per_cert
            || bytes > limits.max_certification_bytes_per_cert
        {
            keep = k;
            break;
        }
    }
    let mut cut_rejections = Vec::new();
    for (p, &c) in order.iter().enumerate().skip(keep) {
        for (i, &x) in certs[c].issuers.iter().enumerate() {
            cut_rejections.push(Rejected {
                issuer: x as usize,
                userid: certs[c].uid as usize,
                created: Some(certs[c].created),
                reason: RejectReason::CutByLimits,
                order: (0, p as u32, i as u32),
            });
        }
    }
    // A packet that does not parse again (it was serialized by sequoia:
    // cannot happen) is left out.
    let cands: Vec<Cand> = order[..keep]
        .iter()
        .filter_map(|&k| info(&certs[k]).map(|i| cand_of(k, &certs[k], i)))
        .collect();
    // Groups (issuer, User ID) in the order they first occur; a group's
    // candidates stay newest first.
    let mut keys: Vec<(u32, u32)> = Vec::new();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (p, c) in cands.iter().enumerate() {
        for &x in certs[c.cert as usize].issuers.iter() {
            let k = (x, c.uid);
            let local = keys.iter().position(|&o| o == k).unwrap_or_else(|| {
                keys.push(k);
                keys.len() - 1
            });
            pairs.push((local as u32, p as u32));
        }
    }
    pairs.sort_by_key(|m| m.0);
    let mut groups = Vec::with_capacity(keys.len());
    let mut members = Vec::with_capacity(pairs.len());
    let mut rest = &pairs[..];
    for (local, &(x, u)) in keys.iter().enumerate() {
        let len = rest.iter().take_while(|m| m.0 == local as u32).count();
        groups.push(PartGroup {
            x,
            u,
            start: members.len() as u32,
            len: len as u32,
        });
        members.extend(rest[..len].iter().map(|m| m.1));
        rest = &rest[len..];
    }
    Part {
        cands: cands.into(),
        groups: groups.into(),
        members: members.into(),
        cut: order.len() - keep,
        cut_rejections: cut_rejections.into(),
        unknown,
    }
}
