//! A keyring: certificates parsed from named bytes (binary or armoured, any
//! source), copies of the same certificate merged, indexed by key.
//!
//! Third-party certifications are the bulk of a keyring (100,000 of them on
//! 10,000 keys): each certificate is stripped of them as it is parsed and
//! they are kept compact, as their packet bytes and what the graph needs
//! before it verifies ([`Certification`]); those by issuers that are in no
//! keyring are only counted (a load from files drops them as it parses,
//! see `prescan.rs`). [`Keyring::full_cert`] puts them back.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID};

use super::prescan::Primaries;
use super::window::events;
use crate::source::ReadError;

mod index;
mod load;
mod strip;

use strip::strip;

/// SHA-256 of the bytes a certificate was parsed from.
pub(crate) type Digest = [u8; 32];

/// A problem met while loading; what parsed is kept.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "{origin}: corrupt or truncated after {certs_kept} certificate(s), which are kept: {error}"
    )]
    Parse {
        origin: String,
        certs_kept: usize,
        error: String,
    },
    #[error("{origin}: cannot merge certificate {fingerprint} with an earlier copy: {error}")]
    Merge {
        origin: String,
        fingerprint: Fingerprint,
        error: String,
    },
}

/// A third-party certification (or certification revocation) over one User
/// ID of a certificate, kept as its signature packet's bytes.
#[derive(Clone, Debug)]
pub(crate) struct Certification {
    /// Index of the User ID in the (stripped) certificate's `userids()`.
    pub(crate) uid: u32,
    pub(crate) revocation: bool,
    /// The signature creation time (the epoch when it has none).
    pub(crate) created: SystemTime,
    /// The issuer's certificates in the keyring (primary keys matching an
    /// issuer subpacket, the certificate itself excluded).
    pub(crate) issuers: Box<[u32]>,
    /// The signature packet's body, as sequoia serializes it (shared with
    /// the parse cache of [`super::TrustEngine`]).
    pub(crate) bytes: Arc<[u8]>,
    /// Its position among the certificate's third-party signatures as
    /// parsed (what [`super::edges::CertDerived`] is indexed by).
    pub(crate) at: u32,
}

impl Certification {
    /// The signature, parsed again from its bytes.
    pub(crate) fn signature(&self) -> Option<Signature> {
        Signature::from_bytes(&self.bytes[..]).ok()
    }
}

/// A certification before the issuers are resolved (at the end of a load).
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    uid: u32,
    revocation: bool,
    created: SystemTime,
    /// The signature's expiration time, if it has one.
    expires: Option<SystemTime>,
    handles: Vec<KeyHandle>,
    bytes: Arc<[u8]>,
}

/// One certificate as parsed: stripped, and its third-party certifications
/// beside (what a load keeps of it, before the issuers are resolved).
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub(crate) cert: Arc<Cert>,
    pub(crate) pending: Arc<[Pending]>,
    /// When its judgement may change (see [`super::window`]), worked out
    /// on first use: reading a certificate's signatures makes sequoia
    /// verify its self-signatures, which the graph does on every core.
    pub(crate) events: Arc<OnceLock<Arc<[SystemTime]>>>,
    /// The creation and expiration times of its third-party signatures
    /// (kept for `events`: the pending signatures are dropped once their
    /// issuers are resolved).
    pub(crate) third: Arc<[SystemTime]>,
}

impl Parsed {
    /// A stripped certificate and its third-party certifications.
    fn new(cert: Cert, pending: Vec<Pending>) -> Parsed {
        let third = pending
            .iter()
            .flat_map(|p| [Some(p.created), p.expires])
            .flatten()
            .collect();
        Parsed {
            cert: Arc::new(cert),
            pending: pending.into(),
            events: Arc::default(),
            third,
        }
    }

    /// The certificate in `bytes` (exactly one, parsed cleanly and
    /// stripped); `None` for anything else.
    pub(crate) fn one(bytes: &[u8]) -> Option<Parsed> {
        let mut certs = CertParser::from_bytes(bytes).ok()?;
        let cert = certs.next()?.ok()?;
        if certs.next().is_some() {
            return None;
        }
        let (cert, pending, _) = strip(cert.strip_secret_key_material(), None).ok()?;
        Some(Parsed::new(cert, pending))
    }
}

/// Certificates merged from all sources, indexed by fingerprint and Key ID.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    /// Stripped of third-party certifications over User IDs and of user
    /// attributes.
    certs: Vec<Arc<Cert>>,
    /// Per certificate, before the issuers are resolved.
    pending: Vec<Arc<[Pending]>>,
    /// Per certificate, the digest of the bytes it was parsed from alone
    /// (`None` when merged from several copies or parsed with others).
    digests: Vec<Option<Digest>>,
    /// Per certificate, when its judgement may change (see `digests`).
    events: Vec<Arc<OnceLock<Arc<[SystemTime]>>>>,
    /// Per certificate, its third-party signatures' times (see `Parsed`).
    third: Vec<Arc<[SystemTime]>>,
    /// Per certificate, how many third-party signatures it had as parsed.
    pending_len: Vec<u32>,
    /// Per certificate, the certifications by issuers in the keyring,
    /// ordered by User ID, then as sequoia lists them.
    certifications: Vec<Arc<[Certification]>>,
    /// Per certificate and User ID index, certifications by issuers in no
    /// keyring (counted, not kept).
    unknown: Vec<Vec<(u32, u32)>>,
    /// The same, for those dropped as the certificate was parsed (by
    /// issuers in no input, see [`Primaries`]).
    dropped: Vec<PerUid>,
    /// While a load that scanned its inputs parses them.
    primaries: Option<Arc<Primaries>>,
    /// Shared with the reports made from it.
    by_fpr: Arc<HashMap<Fingerprint, usize>>,
    /// Primary keys only (certifications are made by primary keys).
    by_primary_keyid: Arc<HashMap<KeyID, Vec<usize>>>,
    /// Every key and subkey.
    by_any_fpr: Arc<HashMap<Fingerprint, Vec<usize>>>,
    by_any_keyid: Arc<HashMap<KeyID, Vec<usize>>>,
}

/// Counts by User ID index: (index, count), each index once.
type PerUid = Vec<(u32, u32)>;

impl Keyring {
    /// The per-certificate digest (see `digests`) of certificate `i`.
    pub(crate) fn digest_at(&self, i: usize) -> Option<Digest> {
        self.digests.get(i).copied().flatten()
    }

    /// When the judgement of certificate `i` may change, for a certificate
    /// with a digest (see `digests`).
    pub(crate) fn events_at(&self, i: usize) -> Option<&[SystemTime]> {
        self.digest_at(i)?;
        let (cell, cert, third) = (self.events.get(i)?, self.certs.get(i)?, self.third.get(i)?);
        Some(&cell.get_or_init(|| events(cert, third.iter().map(|&t| (t, None))))[..])
    }

    /// How many third-party signatures certificate `i` had as parsed.
    pub(crate) fn pending_len_at(&self, i: usize) -> usize {
        self.pending_len.get(i).map_or(0, |&n| n as usize)
    }
    /// The certifications of certificate `i` by issuers in the keyring.
    pub(crate) fn certifications_at(&self, i: usize) -> &[Certification] {
        &self.certifications[i]
    }

    /// [`Keyring::certifications_at`], shared: the same `Arc` while the
    /// certificate's bytes and the keyring's keys stay the same.
    pub(crate) fn certifications_arc(&self, i: usize) -> &Arc<[Certification]> {
        &self.certifications[i]
    }

    /// How many certifications over User ID `uid` of certificate `i` were
    /// made by issuers in no keyring.
    pub(crate) fn unknown_at(&self, i: usize, uid: usize) -> usize {
        self.unknown[i]
            .iter()
            .find(|(u, _)| *u as usize == uid)
            .map_or(0, |(_, n)| *n as usize)
    }

    /// Number of (merged) certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// All certificates, in load order, without their third-party
    /// certifications over User IDs (see [`Keyring::full_certs`]).
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        self.certs.iter().map(|c| &**c)
    }

    /// The certificate whose primary key has this fingerprint, without its
    /// third-party certifications over User IDs (see [`Keyring::full_cert`]).
    pub fn cert(&self, fpr: &Fingerprint) -> Option<&Cert> {
        self.by_fpr.get(fpr).map(|&i| &*self.certs[i])
    }

    /// Certificates having a key or subkey matching this handle.
    pub fn lookup(&self, handle: &KeyHandle) -> Vec<&Cert> {
        let idx = match handle {
            KeyHandle::Fingerprint(f) => self.by_any_fpr.get(f),
            KeyHandle::KeyID(k) => self.by_any_keyid.get(k),
        };
        idx.map(|v| v.iter().map(|&i| &*self.certs[i]).collect())
            .unwrap_or_default()
    }

    /// Index of the certificates whose PRIMARY key matches `handle`.
    pub(crate) fn primary_indices(&self, handle: &KeyHandle) -> &[usize] {
        match handle {
            KeyHandle::Fingerprint(f) => self
                .by_fpr
                .get_key_value(f)
                .map(|(_, i)| std::slice::from_ref(i))
                .unwrap_or(&[]),
            KeyHandle::KeyID(k) => self.by_primary_keyid.get(k).map(|v| &v[..]).unwrap_or(&[]),
        }
    }

    pub(crate) fn cert_at(&self, i: usize) -> &Cert {
        &self.certs[i]
    }

    pub(crate) fn index_of(&self, fpr: &Fingerprint) -> Option<usize> {
        self.by_fpr.get(fpr).copied()
    }

    /// Every certificate's index by fingerprint (shared, not copied).
    pub(crate) fn fpr_index(&self) -> Arc<HashMap<Fingerprint, usize>> {
        self.by_fpr.clone()
    }
}
