//! The trust state the verdicts read: accepted statements as a longest-match
//! index over their prefixes, built once per refresh and swapped in whole.
//!
//! Allow and deny entries answer as in the gate (the longest prefix wins,
//! the operator's static denies remove allows inside them). Lookups are one
//! probe per prefix length present under the address's /16 (see
//! `policy::index`), so a million prefixes cost no more than ten.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ipnet::Ipv6Net;

use crate::apply::Prepared;
use crate::model::prefixes::{PrefixSet, Verdict};
use crate::model::time::Timestamp;
use crate::plan::Provenance;

use super::index::{Found, Item, PrefixIndex};

/// One accepted statement, as the verdict needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub domain: String,
    /// The signer's fingerprint (upper-case hex).
    pub signer: String,
    /// Trust depth; `None` for a refused signer (a deny).
    pub depth: Option<usize>,
    pub serial: u64,
    pub not_after: Timestamp,
    /// SHA-256 SPKI fingerprints in Postfix's form (`AB:CD:...`, upper case).
    pub tls_keys: Vec<String>,
    /// The statement is in `testing` mode.
    pub testing: bool,
}

/// What answers for an address: its verdict and who asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match<'a> {
    pub prefix: Ipv6Net,
    pub verdict: Verdict,
    /// The statements behind the entry (none: the operator's static file),
    /// the shallowest trust first.
    pub claims: Vec<&'a Claim>,
}

/// An immutable trust state; replaced whole on every refresh.
#[derive(Debug)]
pub struct TrustSnapshot {
    /// When the refresh that built it judged the statements.
    pub built_at: SystemTime,
    claims: Vec<Claim>,
    /// Entries given to `build` (a duplicate prefix counts).
    entries: usize,
    index: PrefixIndex,
    /// Per-recipient webs, when any are configured (web 0 is this
    /// snapshot's own system web; the others answer for their recipients).
    pub webs: Option<super::webs::WebIndex>,
}

/// What a snapshot is built from: one item per prefix.
pub struct SnapshotEntry {
    pub prefix: Ipv6Net,
    pub verdict: Verdict,
    /// Indices into the claims given beside.
    pub claims: Vec<u32>,
}

impl TrustSnapshot {
    /// Builds the index. Entries must have distinct prefixes (a later
    /// duplicate replaces an earlier one).
    pub fn build(
        built_at: SystemTime,
        claims: Vec<Claim>,
        items: Vec<SnapshotEntry>,
    ) -> TrustSnapshot {
        let entries = items.len();
        let mut items = items;
        for it in &mut items {
            // Shallowest trust first, then by domain: a stable preference.
            it.claims.sort_by(|&a, &b| {
                let (a, b) = (&claims[a as usize], &claims[b as usize]);
                (a.depth.unwrap_or(usize::MAX), &a.domain)
                    .cmp(&(b.depth.unwrap_or(usize::MAX), &b.domain))
            });
            it.claims.dedup();
        }
        let index = PrefixIndex::build(items.iter().map(|it| Item {
            prefix: it.prefix,
            verdict: it.verdict,
            claims: &it.claims,
        }));
        TrustSnapshot {
            built_at,
            claims,
            entries,
            index,
            webs: None,
        }
    }

    /// The snapshot of a prepared plan: every plan entry (folded ones too,
    /// for their precise provenance) with its statements, and the
    /// operator's static overrides merged as the daemon merges them.
    pub fn from_prepared(
        prepared: &Prepared,
        overrides: Option<&PrefixSet>,
        built_at: SystemTime,
    ) -> TrustSnapshot {
        let mut claims = Vec::new();
        let mut index: HashMap<(String, u64, String), u32> = HashMap::new();
        for a in prepared
            .judgements
            .iter()
            .filter_map(|j| j.result.as_ref().ok())
        {
            let key = (
                a.statement.domain.clone(),
                a.statement.serial,
                a.signer.clone(),
            );
            index.entry(key).or_insert_with(|| {
                claims.push(Claim {
                    domain: a.statement.domain.clone(),
                    signer: a.signer.to_ascii_uppercase(),
                    depth: a.depth,
                    serial: a.statement.serial,
                    not_after: a.statement.not_after,
                    tls_keys: a
                        .statement
                        .tls_key_sha256
                        .iter()
                        .map(|k| k.to_ascii_uppercase())
                        .collect(),
                    testing: a.statement.mode == crate::statement::Mode::Testing,
                });
                (claims.len() - 1) as u32
            });
        }
        let refs = |ps: &[Provenance]| -> Vec<u32> {
            ps.iter()
                .filter_map(|p| {
                    index
                        .get(&(p.domain.clone(), p.serial, p.signer.clone()))
                        .copied()
                })
                .collect()
        };
        let mut items: HashMap<Ipv6Net, SnapshotEntry> = HashMap::new();
        for e in &prepared.plan.entries {
            items.insert(
                e.prefix,
                SnapshotEntry {
                    prefix: e.prefix,
                    verdict: e.verdict,
                    claims: refs(&e.provenance),
                },
            );
        }
        if let Some(o) = overrides {
            let denies: Vec<Ipv6Net> = o
                .iter()
                .filter(|e| e.verdict == Verdict::Deny)
                .map(|e| e.prefix)
                .collect();
            items.retain(|p, it| {
                it.verdict == Verdict::Deny || !denies.iter().any(|d| d.contains(p))
            });
            for e in o.iter() {
                let item = SnapshotEntry {
                    prefix: e.prefix,
                    verdict: e.verdict,
                    claims: vec![],
                };
                // A static deny replaces; a static allow fills a gap only
                // (a statement's entry at the same prefix keeps its claims).
                match e.verdict {
                    Verdict::Deny => {
                        items.insert(e.prefix, item);
                    }
                    Verdict::Allow => {
                        items.entry(e.prefix).or_insert(item);
                    }
                }
            }
        }
        let mut snap = TrustSnapshot::build(built_at, claims, items.into_values().collect());
        snap.webs = prepared
            .webs
            .as_ref()
            .map(|w| super::webs::WebIndex::build(w, overrides));
        snap
    }

    /// The web that decides for `recipient` (`None`: the system default)
    /// and the longest match for `addr` in it.
    pub fn lookup_for(&self, addr: Ipv6Addr, recipient: &str) -> (Option<&str>, Option<Match<'_>>) {
        match &self.webs {
            Some(idx) => match idx.web_for(recipient) {
                Some(w) => (Some(idx.name(w)), idx.lookup(addr, w)),
                None => (None, self.lookup(addr)),
            },
            None => (None, self.lookup(addr)),
        }
    }

    /// Whether any per-recipient web is configured.
    pub fn has_recipient_webs(&self) -> bool {
        self.webs.as_ref().is_some_and(|w| w.len() > 1)
    }

    /// The longest-prefix match for `addr`, as the gate finds it.
    pub fn lookup(&self, addr: Ipv6Addr) -> Option<Match<'_>> {
        self.find(addr).map(|f| Match {
            prefix: f.prefix,
            verdict: f.verdict,
            claims: f.claims.iter().map(|&c| self.claim(c)).collect(),
        })
    }

    /// [`TrustSnapshot::lookup`] without collecting the statements: their
    /// indices (for [`TrustSnapshot::claim`]), the shallowest trust first.
    pub(super) fn find(&self, addr: Ipv6Addr) -> Option<Found<'_>> {
        self.index.lookup(addr)
    }

    /// A statement by its index in a [`Found`].
    pub(super) fn claim(&self, i: u32) -> &Claim {
        &self.claims[i as usize]
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// The current snapshot, shared by every connection. A refresh builds the
/// new snapshot outside the lock; the lock is held only to swap or clone
/// one pointer or for one verdict, so a request never waits for a refresh.
#[derive(Debug, Default)]
pub struct TrustCell {
    current: RwLock<Option<Arc<TrustSnapshot>>>,
}

impl TrustCell {
    pub fn new() -> Arc<TrustCell> {
        Arc::new(TrustCell::default())
    }

    /// The snapshot in force; `None` before the first refresh.
    pub fn get(&self) -> Option<Arc<TrustSnapshot>> {
        // A poisoned lock still holds a whole pointer: use it.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `f` on the snapshot in force, read in place: no reference counted
    /// per call, the lock held for `f` only (a publish waits that long).
    pub fn with<R>(&self, f: impl FnOnce(Option<&TrustSnapshot>) -> R) -> R {
        f(self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref())
    }

    pub fn publish(&self, snapshot: TrustSnapshot) {
        let new = Some(Arc::new(snapshot));
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            new,
        );
        // The old snapshot (possibly large) is freed here, outside the lock.
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(domain: &str, depth: usize) -> Claim {
        Claim {
            domain: domain.into(),
            signer: "AB".repeat(20),
            depth: Some(depth),
            serial: 1,
            not_after: u64::MAX,
            tls_keys: vec![],
            testing: false,
        }
    }

    fn item(p: &str, v: Verdict, claims: &[u32]) -> SnapshotEntry {
        SnapshotEntry {
            prefix: p.parse().unwrap(),
            verdict: v,
            claims: claims.to_vec(),
        }
    }

    #[test]
    fn longest_match_with_denies_inside_allows() {
        let s = TrustSnapshot::build(
            SystemTime::UNIX_EPOCH,
            vec![claim("alpha.example", 1), claim("beta.example", 2)],
            vec![
                item("2001:db8:a00::/40", Verdict::Allow, &[0]),
                item("2001:db8:a10::/48", Verdict::Allow, &[1, 0]),
                item("2001:db8:a02:100::/56", Verdict::Deny, &[]),
                item("2001:db8:a02:100::1/128", Verdict::Allow, &[1]),
            ],
        );
        let m = |a: &str| {
            s.lookup(a.parse().unwrap()).map(|m| {
                (
                    m.prefix.to_string(),
                    m.verdict,
                    m.claims
                        .iter()
                        .map(|c| c.domain.as_str())
                        .collect::<Vec<_>>(),
                )
            })
        };
        assert_eq!(
            m("2001:db8:a01::1"),
            Some((
                "2001:db8:a00::/40".into(),
                Verdict::Allow,
                vec!["alpha.example"]
            ))
        );
        assert_eq!(
            m("2001:db8:a10:ffff::1"),
            Some((
                "2001:db8:a10::/48".into(),
                Verdict::Allow,
                vec!["alpha.example", "beta.example"]
            ))
        );
        assert_eq!(
            m("2001:db8:a02:100::2"),
            Some(("2001:db8:a02:100::/56".into(), Verdict::Deny, vec![]))
        );
        assert_eq!(m("2001:db8:a02:100::1").unwrap().1, Verdict::Allow);
        assert_eq!(m("2001:db8:b00::1"), None);
        assert_eq!(m("::1"), None);
    }

    #[test]
    fn the_cell_swaps_whole_snapshots() {
        let cell = TrustCell::new();
        assert!(cell.get().is_none());
        cell.publish(TrustSnapshot::build(SystemTime::UNIX_EPOCH, vec![], vec![]));
        let held = cell.get().unwrap();
        cell.publish(TrustSnapshot::build(
            SystemTime::now(),
            vec![claim("a.example", 0)],
            vec![item("2001:db8::/32", Verdict::Allow, &[0])],
        ));
        assert!(held.is_empty(), "a reader keeps the snapshot it took");
        assert_eq!(cell.get().unwrap().len(), 1);
    }
}
