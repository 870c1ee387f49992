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
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::MarshalInto;
use sequoia_openpgp::types::SignatureType;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID, Packet};

use super::prescan::Primaries;
use super::window::events;
use crate::source::local::{keyring_files, open_keyring, read_limited, KEYRING_FILE};
use crate::source::{Named, ReadError};

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

impl Keyring {
    /// Loads every keyring file named and the keyring files inside every
    /// directory named (see [`crate::source::local::read_keyrings`]). Problems are returned, not fatal.
    pub fn load(paths: &[PathBuf]) -> (Keyring, Vec<LoadProblem>) {
        Keyring::load_with(paths, Vec::new())
    }

    /// [`Keyring::load`] plus certificates from other sources (fetched
    /// copies), merged by fingerprint. Files are parsed as they are read
    /// (streaming), so a large keyring is never held whole in memory beside
    /// its certificates.
    pub fn load_with(paths: &[PathBuf], more: Vec<Named>) -> (Keyring, Vec<LoadProblem>) {
        let (files, errors) = keyring_files(paths);
        let mut ring = Keyring {
            primaries: Primaries::scan(&files, &more).map(Arc::new),
            ..Keyring::default()
        };
        let mut problems = Vec::new();
        for f in files {
            let origin = f.display().to_string();
            if !std::fs::metadata(&f).is_ok_and(|m| m.is_file()) {
                // A device or a pipe has no size to check first: read it
                // bounded, as every other input.
                match read_limited(&f, KEYRING_FILE) {
                    Ok(n) => ring.add_bytes(&n.origin, &n.bytes, &mut problems),
                    Err(e) => problems.push(LoadProblem::Read(e)),
                }
                continue;
            }
            match open_keyring(&f) {
                Ok(r) => match CertParser::from_reader(r) {
                    Ok(parser) => ring.add_parsed(&origin, parser, &mut problems),
                    Err(e) => problems.push(LoadProblem::Parse {
                        origin,
                        certs_kept: 0,
                        error: format!("{e:#}"),
                    }),
                },
                Err(e) => problems.push(LoadProblem::Read(e)),
            }
        }
        for s in &more {
            ring.add_bytes(&s.origin, &s.bytes, &mut problems);
        }
        ring.primaries = None;
        ring.reindex();
        problems.extend(errors.into_iter().map(LoadProblem::Read));
        (ring, problems)
    }

    /// Parses and merges certificates from named bytes (binary or armoured
    /// keyrings, from any source). Problems are returned, not fatal.
    pub fn parse(sources: &[Named]) -> (Keyring, Vec<LoadProblem>) {
        let mut ring = Keyring::default();
        let mut problems = Vec::new();
        for s in sources {
            ring.add_bytes(&s.origin, &s.bytes, &mut problems);
        }
        ring.reindex();
        (ring, problems)
    }

    /// Builds a keyring from certificates already parsed (merged by fingerprint).
    pub fn from_certs(certs: impl IntoIterator<Item = Cert>) -> Keyring {
        let mut ring = Keyring::default();
        let mut problems = Vec::new();
        for c in certs {
            ring.insert("<memory>", c, &mut problems);
        }
        ring.reindex();
        ring
    }

    pub(super) fn add_bytes(
        &mut self,
        origin: &str,
        bytes: &[u8],
        problems: &mut Vec<LoadProblem>,
    ) {
        match CertParser::from_bytes(bytes) {
            Ok(parser) => self.add_parsed(origin, parser, problems),
            Err(e) => problems.push(LoadProblem::Parse {
                origin: origin.to_string(),
                certs_kept: 0,
                error: format!("{e:#}"),
            }),
        }
    }

    fn add_parsed(
        &mut self,
        origin: &str,
        parser: CertParser<'_>,
        problems: &mut Vec<LoadProblem>,
    ) {
        let mut kept = 0;
        for item in parser {
            match item {
                Ok(cert) => {
                    kept += 1;
                    self.insert(origin, cert, problems);
                }
                Err(e) => {
                    problems.push(LoadProblem::Parse {
                        origin: origin.to_string(),
                        certs_kept: kept,
                        error: format!("{e:#}"),
                    });
                    // The parser may or may not resynchronise; keep going.
                }
            }
        }
    }

    fn insert(&mut self, origin: &str, cert: Cert, problems: &mut Vec<LoadProblem>) {
        let cert = cert.strip_secret_key_material();
        let fpr = cert.fingerprint();
        match self.by_fpr.get(&fpr) {
            // A second copy (rare): merged whole with the first, put back
            // together, then stripped again.
            Some(&i) => {
                match (self.full_cert_at(i).merge_public(cert)).and_then(|c| strip(c, None)) {
                    Ok((stripped, pending, _)) => {
                        self.certs[i] = Arc::new(stripped);
                        self.pending[i] = pending.into();
                        self.digests[i] = None;
                    }
                    Err(e) => problems.push(LoadProblem::Merge {
                        origin: origin.to_string(),
                        fingerprint: fpr,
                        error: format!("{e:#}"),
                    }),
                }
            }
            None => match strip(cert, self.primaries.as_deref()) {
                Ok((stripped, pending, dropped)) => {
                    self.push(fpr, Parsed::new(stripped, pending), None);
                    *self.dropped.last_mut().expect("just pushed") = dropped;
                }
                // Cannot happen (its packets came from a certificate).
                Err(e) => problems.push(LoadProblem::Merge {
                    origin: origin.to_string(),
                    fingerprint: fpr,
                    error: format!("{e:#}"),
                }),
            },
        }
    }

    /// An empty keyring with room for `n` certificates.
    pub(crate) fn with_capacity(n: usize) -> Keyring {
        let mut ring = Keyring::default();
        ring.certs.reserve(n);
        ring.pending.reserve(n);
        ring.events.reserve(n);
        ring.third.reserve(n);
        ring.digests.reserve(n);
        Arc::make_mut(&mut ring.by_fpr).reserve(n);
        ring
    }

    /// A new certificate (no copy of it yet).
    fn push(&mut self, fpr: Fingerprint, p: Parsed, digest: Option<Digest>) {
        Arc::make_mut(&mut self.by_fpr).insert(fpr, self.certs.len());
        self.certs.push(p.cert);
        self.pending.push(p.pending);
        self.events.push(p.events);
        self.third.push(p.third);
        self.digests.push(digest);
        self.dropped.push(Vec::new());
    }

    /// A certificate parsed alone from bytes with digest `digest` (whose
    /// parse is `p`): added, or merged with an earlier copy as
    /// [`Keyring::insert`] does.
    pub(crate) fn insert_parsed(
        &mut self,
        origin: &str,
        bytes: &[u8],
        digest: Digest,
        p: Parsed,
        problems: &mut Vec<LoadProblem>,
    ) {
        let fpr = p.cert.fingerprint();
        if self.by_fpr.contains_key(&fpr) {
            // A second copy: merged from its packets, as a plain load does.
            if let Some(Ok(cert)) = CertParser::from_bytes(bytes)
                .ok()
                .and_then(|mut c| c.next())
            {
                self.insert(origin, cert, problems);
            }
        } else {
            self.push(fpr, p, Some(digest));
        }
    }

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

    /// The certificate at `i` with its third-party certifications put back
    /// (those by issuers in no keyring are not kept).
    fn full_cert_at(&self, i: usize) -> Cert {
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

/// Counts by User ID index: (index, count), each index once.
type PerUid = Vec<(u32, u32)>;

/// `cert` without its third-party certifications and certification
/// revocations over User IDs (returned beside, compact) and without user
/// attributes (photos: nothing here reads them). Nothing is verified here:
/// the packets are regrouped, and sequoia verifies self-signatures lazily.
/// With `primaries`, those by issuers not among them are only counted, per
/// User ID index (third).
fn strip(
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
