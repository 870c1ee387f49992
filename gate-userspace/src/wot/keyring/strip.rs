//! Stripping a certificate of its third-party certifications (kept beside,
//! compact), and putting them back.

use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::MarshalInto;
use sequoia_openpgp::types::SignatureType;
use sequoia_openpgp::{Fingerprint, Packet};

use super::{Keyring, Pending, PerUid};
use crate::wot::prescan::Primaries;

impl Keyring {
    /// The certificate at `i` with its third-party certifications put back
    /// (those by issuers in no keyring are not kept).
    pub(super) fn full_cert_at(&self, i: usize) -> Cert {
        let sigs = self.pending[i]
            .iter()
            .map(|p| &p.bytes)
            .chain(
                self.certifications
                    .get(i)
                    .into_iter()
                    .flat_map(|c| c.iter())
                    .map(|c| &c.bytes),
            )
            .filter_map(|b| Signature::from_bytes(&b[..]).ok())
            .map(Packet::from);
        let cert = (*self.certs[i]).clone();
        cert.clone()
            .insert_packets(sigs)
            .map(|(c, _)| c)
            .unwrap_or(cert)
    }

    /// The certificate with this fingerprint, its third-party certifications
    /// by issuers in the keyring put back (a new copy: for tools and tests).
    pub fn full_cert(&self, fpr: &Fingerprint) -> Option<Cert> {
        self.by_fpr.get(fpr).map(|&i| self.full_cert_at(i))
    }

    /// Every certificate as [`Keyring::full_cert`] gives it, in load order.
    pub fn full_certs(&self) -> impl Iterator<Item = Cert> + '_ {
        // (A certificate kept whole by `strip` gets its certifications
        // again: sequoia merges the duplicates.)
        (0..self.certs.len()).map(|i| self.full_cert_at(i))
    }
}

/// `cert` without its third-party certifications and certification
/// revocations over User IDs (returned beside, compact) and without user
/// attributes (photos: nothing here reads them). Nothing is verified here:
/// the packets are regrouped, and sequoia verifies self-signatures lazily.
/// With `primaries`, those by issuers not among them are only counted, per
/// User ID index (third).
pub(super) fn strip(
    cert: Cert,
    primaries: Option<&Primaries>,
) -> sequoia_openpgp::Result<(Cert, Vec<Pending>, PerUid)> {
    let mut pending = Vec::new();
    let mut dropped: PerUid = Vec::new();
    // Per User ID (in order), what identifies its third-party signatures,
    // which `into_packets` yields last in the bundle, in this order.
    let mut third: Vec<Vec<(SystemTime, [u8; 2])>> = Vec::new();
    let uids: Vec<_> = cert.userids().map(|u| u.userid().clone()).collect();
    for (u, ua) in cert.userids().enumerate() {
        let mut ids = Vec::new();
        for s in ua.certifications().chain(ua.other_revocations()) {
            let created = s
                .signature_creation_time()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            ids.push((created, *s.digest_prefix()));
            let handles = s.get_issuers();
            if primaries.is_some_and(|p| !handles.iter().any(|h| p.may_issue(h))) {
                match dropped.last_mut() {
                    Some((v, n)) if *v == u as u32 => *n += 1,
                    _ => dropped.push((u as u32, 1)),
                }
                continue;
            }
            let Ok(bytes) = s.to_vec() else { continue };
            pending.push(Pending {
                uid: u as u32,
                revocation: s.typ() == SignatureType::CertificationRevocation,
                created,
                expires: s.signature_expiration_time(),
                handles,
                bytes: bytes.into(),
            });
        }
        third.push(ids);
    }
    // (Signatures sequoia could not place come last, after every
    // component: should the last component be a User ID, they make the
    // check below fail and the certificate is kept whole. Counting them
    // would verify every self-signature.)
    let packets: Vec<Packet> = cert.into_packets().collect();
    let body = packets.len();
    // Which packets to drop: per User ID segment (the User ID and the
    // signatures up to the next component) its last third-party ones; user
    // attributes with their signatures.
    let mut drop = vec![false; packets.len()];
    let mut ok = true;
    let mut uid = 0usize;
    let mut start = 0usize;
    let mut in_ua = false;
    let is_component = |p: &Packet| {
        matches!(
            p,
            Packet::UserID(_)
                | Packet::UserAttribute(_)
                | Packet::PublicSubkey(_)
                | Packet::SecretSubkey(_)
                | Packet::Unknown(_)
        )
    };
    for i in 0..=body {
        if i == body || is_component(&packets[i]) {
            if matches!(packets.get(start), Some(Packet::UserID(_))) && start < i {
                let ids = third.get(uid).map(Vec::as_slice).unwrap_or(&[]);
                let k = ids.len();
                let fits = i - start > k
                    && packets[i - k..i].iter().zip(ids).all(|(p, (t, d))| {
                        matches!(p, Packet::Signature(s)
                            if s.signature_creation_time().unwrap_or(SystemTime::UNIX_EPOCH) == *t
                                && s.digest_prefix() == d)
                    });
                ok &= fits;
                drop[i - k.min(i - start)..i]
                    .iter_mut()
                    .for_each(|d| *d = true);
                uid += 1;
            }
            if i < body {
                in_ua = matches!(packets[i], Packet::UserAttribute(_));
                start = i;
            }
        }
        if i < body && in_ua {
            drop[i] = true;
        }
    }
    ok &= uid == uids.len();
    let keep_all = !ok;
    let stripped = Cert::from_packets(
        packets
            .into_iter()
            .zip(drop)
            .filter(|(_, d)| keep_all || !d)
            .map(|(p, _)| p),
    );
    // A certificate that does not strip cleanly is kept whole (its
    // certifications then are kept twice: still correct). Certifications
    // refer to User IDs by index: remapped should sequoia order them anew.
    let c = stripped?;
    if !c.userids().map(|u| u.userid()).eq(uids.iter()) {
        let now: Vec<_> = c.userids().map(|u| u.userid().clone()).collect();
        pending.retain_mut(
            |p| match now.iter().position(|u| *u == uids[p.uid as usize]) {
                Some(i) => {
                    p.uid = i as u32;
                    true
                }
                None => false,
            },
        );
        let mut moved: PerUid = Vec::new();
        for (u, n) in dropped {
            let Some(i) = now.iter().position(|x| *x == uids[u as usize]) else {
                continue;
            };
            match moved.iter_mut().find(|(v, _)| *v == i as u32) {
                Some((_, m)) => *m += n,
                None => moved.push((i as u32, n)),
            }
        }
        dropped = moved;
    }
    Ok((c, pending, dropped))
}
