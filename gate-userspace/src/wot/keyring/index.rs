//! Indexing a keyring: its keys by fingerprint and Key ID, and the issuers
//! of its certifications resolved to certificates in it.

use std::collections::HashMap;
use std::sync::Arc;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::{Fingerprint, KeyID};

use super::{Certification, Digest, Keyring, Parsed, Pending, PerUid};

impl Keyring {
    pub(crate) fn reindex(&mut self) {
        self.reindex_after(None)
    }

    /// Indexes the keys and resolves the certifications' issuers. With
    /// `prior` (an earlier load) holding the same primary keys in the same
    /// order, what depends only on a certificate and that order is taken
    /// from it for the certificates parsed from the same bytes (and the
    /// key indexes when no certificate's keys changed).
    pub(crate) fn reindex_after(&mut self, prior: Option<&Keyring>) {
        let n = self.certs.len();
        self.digests.resize(n, None);
        self.events.resize_with(n, Arc::default);
        self.third.resize_with(n, || Arc::from([]));
        self.pending.resize_with(n, || Arc::from([]));
        self.pending_len = self.pending.iter().map(|p| p.len() as u32).collect();
        let same_cert = |p: &Keyring, i: usize| Arc::ptr_eq(&p.certs[i], &self.certs[i]);
        let prior = prior.filter(|p| {
            p.certs.len() == n
                && (0..n).all(|i| {
                    same_cert(p, i) || p.certs[i].fingerprint() == self.certs[i].fingerprint()
                })
        });
        let keys_unchanged = prior.is_some_and(|p| {
            (0..n).all(|i| {
                let fprs = |c: &Cert| c.keys().map(|k| k.key().fingerprint()).collect::<Vec<_>>();
                same_cert(p, i) || fprs(&p.certs[i]) == fprs(&self.certs[i])
            })
        });
        match prior {
            Some(p) if keys_unchanged => {
                self.by_primary_keyid = p.by_primary_keyid.clone();
                self.by_any_fpr = p.by_any_fpr.clone();
                self.by_any_keyid = p.by_any_keyid.clone();
            }
            _ => self.index_keys(),
        }
        self.unknown = (0..n)
            .map(|y| self.dropped.get(y).cloned().unwrap_or_default())
            .collect();
        self.certifications = Vec::with_capacity(n);
        for y in 0..n {
            let pending = std::mem::replace(&mut self.pending[y], Arc::from([]));
            let digest = self.digests[y];
            if let Some(p) = prior.filter(|p| digest.is_some() && p.digests[y] == digest) {
                self.certifications.push(p.certifications[y].clone());
                self.unknown[y] = p.unknown[y].clone();
                continue;
            }
            let unknown = std::mem::take(&mut self.unknown[y]);
            let (kept, unknown) = self.resolve(y, &pending, unknown);
            self.certifications.push(kept);
            self.unknown[y] = unknown;
        }
    }

    /// Certificate `y`'s certifications `pending` with their issuers in
    /// the keyring resolved; those by issuers in none are counted into
    /// `unknown` instead.
    fn resolve(
        &self,
        y: usize,
        pending: &[Pending],
        mut unknown: PerUid,
    ) -> (Arc<[Certification]>, PerUid) {
        let mut kept = Vec::with_capacity(pending.len());
        for (at, p) in pending.iter().enumerate() {
            let mut issuers: Vec<u32> = Vec::new();
            for h in &p.handles {
                for &i in self.primary_indices(h) {
                    if i != y && !issuers.contains(&(i as u32)) {
                        issuers.push(i as u32);
                    }
                }
            }
            if issuers.is_empty() {
                match unknown.iter_mut().find(|(u, _)| *u == p.uid) {
                    Some((_, n)) => *n += 1,
                    None => unknown.push((p.uid, 1)),
                }
                continue;
            }
            kept.push(Certification {
                uid: p.uid,
                revocation: p.revocation,
                created: p.created,
                issuers: issuers.into(),
                bytes: p.bytes.clone(),
                at: at as u32,
            });
        }
        (kept.into(), unknown)
    }

    /// Puts `changed` (index, parse, digest of its bytes) in place of the
    /// certificates at those indexes, each with the same primary key as
    /// the one it replaces (so no other certificate's issuers change), and
    /// resolves their certifications; the indexes of every key are made
    /// again when one of them brings other subkeys.
    pub(crate) fn replace_same_keys(&mut self, changed: Vec<(usize, Parsed, Digest)>) {
        let fprs = |c: &Cert| c.keys().map(|k| k.key().fingerprint()).collect::<Vec<_>>();
        let mut keys_changed = false;
        for (y, p, d) in changed {
            debug_assert_eq!(self.certs[y].fingerprint(), p.cert.fingerprint());
            keys_changed |= fprs(&self.certs[y]) != fprs(&p.cert);
            self.certs[y] = p.cert;
            self.events[y] = p.events;
            self.third[y] = p.third;
            self.digests[y] = Some(d);
            self.pending_len[y] = p.pending.len() as u32;
            self.pending[y] = Arc::from([]);
            self.dropped[y] = Vec::new();
            let (kept, unknown) = self.resolve(y, &p.pending, Vec::new());
            self.certifications[y] = kept;
            self.unknown[y] = unknown;
        }
        if keys_changed {
            self.index_keys();
        }
    }

    /// The indexes of primary keys, and of every key, by Key ID and
    /// fingerprint.
    fn index_keys(&mut self) {
        let mut by_primary_keyid: HashMap<KeyID, Vec<usize>> = HashMap::new();
        let mut by_any_fpr: HashMap<Fingerprint, Vec<usize>> = HashMap::new();
        let mut by_any_keyid: HashMap<KeyID, Vec<usize>> = HashMap::new();
        for (i, c) in self.certs.iter().enumerate() {
            by_primary_keyid.entry(c.keyid()).or_default().push(i);
            for k in c.keys() {
                by_any_fpr.entry(k.key().fingerprint()).or_default().push(i);
                by_any_keyid.entry(k.key().keyid()).or_default().push(i);
            }
        }
        for v in by_any_fpr.values_mut().chain(by_any_keyid.values_mut()) {
            v.dedup();
        }
        self.by_primary_keyid = Arc::new(by_primary_keyid);
        self.by_any_fpr = Arc::new(by_any_fpr);
        self.by_any_keyid = Arc::new(by_any_keyid);
    }
}
