//! A keyring: certificates parsed from named bytes (binary or armoured, any
//! source), copies of the same certificate merged, indexed by key.

use std::collections::HashMap;
use std::path::PathBuf;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID};

use crate::source::local::read_keyrings;
use crate::source::{Named, ReadError};

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

/// Certificates merged from all sources, indexed by fingerprint and Key ID.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    certs: Vec<Cert>,
    by_fpr: HashMap<Fingerprint, usize>,
    /// Primary keys only (certifications are made by primary keys).
    by_primary_keyid: HashMap<KeyID, Vec<usize>>,
    /// Every key and subkey.
    by_any_fpr: HashMap<Fingerprint, Vec<usize>>,
    by_any_keyid: HashMap<KeyID, Vec<usize>>,
}

impl Keyring {
    /// Loads every keyring file named and the keyring files inside every
    /// directory named (see [`read_keyrings`]). Problems are returned, not fatal.
    pub fn load(paths: &[PathBuf]) -> (Keyring, Vec<LoadProblem>) {
        let (read, errors) = read_keyrings(paths);
        let (ring, mut problems) = Keyring::parse(&read);
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

    fn add_bytes(&mut self, origin: &str, bytes: &[u8], problems: &mut Vec<LoadProblem>) {
        let parser = match CertParser::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                problems.push(LoadProblem::Parse {
                    origin: origin.to_string(),
                    certs_kept: 0,
                    error: format!("{e:#}"),
                });
                return;
            }
        };
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
            Some(&i) => match self.certs[i].clone().merge_public(cert) {
                Ok(m) => self.certs[i] = m,
                Err(e) => problems.push(LoadProblem::Merge {
                    origin: origin.to_string(),
                    fingerprint: fpr,
                    error: format!("{e:#}"),
                }),
            },
            None => {
                self.by_fpr.insert(fpr, self.certs.len());
                self.certs.push(cert);
            }
        }
    }

    fn reindex(&mut self) {
        self.by_primary_keyid.clear();
        self.by_any_fpr.clear();
        self.by_any_keyid.clear();
        for (i, c) in self.certs.iter().enumerate() {
            self.by_primary_keyid.entry(c.keyid()).or_default().push(i);
            for k in c.keys() {
                self.by_any_fpr
                    .entry(k.key().fingerprint())
                    .or_default()
                    .push(i);
                self.by_any_keyid
                    .entry(k.key().keyid())
                    .or_default()
                    .push(i);
            }
        }
        for v in self
            .by_any_fpr
            .values_mut()
            .chain(self.by_any_keyid.values_mut())
        {
            v.dedup();
        }
    }

    /// Number of (merged) certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// All certificates, in load order.
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        self.certs.iter()
    }

    /// The certificate whose primary key has this fingerprint.
    pub fn cert(&self, fpr: &Fingerprint) -> Option<&Cert> {
        self.by_fpr.get(fpr).map(|&i| &self.certs[i])
    }

    /// Certificates having a key or subkey matching this handle.
    pub fn lookup(&self, handle: &KeyHandle) -> Vec<&Cert> {
        let idx = match handle {
            KeyHandle::Fingerprint(f) => self.by_any_fpr.get(f),
            KeyHandle::KeyID(k) => self.by_any_keyid.get(k),
        };
        idx.map(|v| v.iter().map(|&i| &self.certs[i]).collect())
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
}
