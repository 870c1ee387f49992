//! Resolving groups of certifications: their signatures verified (on every
//! core, through the cache) and the rules turning them into edges or rejections.

use std::collections::HashMap;

use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::types::SignatureType;

use super::par::{par_map, threads};
use super::{Cand, Edge, Graph, NodeState, RejectReason, Rejected, VerifyCache};
use crate::wot::verify_cache::{key_of, Key};
use crate::wot::Keyring;

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
