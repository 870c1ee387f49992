//! Loading certificates from keyring files and directories (binary or
//! armoured), merging copies of the same certificate, and indexing them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID};

/// A problem met while loading; what parsed is kept.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: corrupt or truncated after {certs_kept} certificate(s), which are kept: {error}", path.display())]
    Parse {
        path: PathBuf,
        certs_kept: usize,
        error: String,
    },
    #[error("{}: cannot merge certificate {fingerprint} with an earlier copy: {error}", path.display())]
    Merge {
        path: PathBuf,
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
    /// Loads every file named, and every file with a [`KEYRING_EXTENSIONS`]
    /// extension inside every directory named (recursively, in name order). Problems are returned, not fatal.
    pub fn load(paths: &[PathBuf]) -> (Keyring, Vec<LoadProblem>) {
        let mut problems = Vec::new();
        let mut files = Vec::new();
        for p in paths {
            collect_files(p, &mut files, &mut problems);
        }
        let mut ring = Keyring::default();
        for f in files {
            match std::fs::read(&f) {
                Ok(bytes) => ring.add_bytes(&f, &bytes, &mut problems),
                Err(error) => problems.push(LoadProblem::Io { path: f, error }),
            }
        }
        ring.reindex();
        (ring, problems)
    }

    /// Builds a keyring from certificates already parsed (merged by fingerprint).
    pub fn from_certs(certs: impl IntoIterator<Item = Cert>) -> Keyring {
        let mut ring = Keyring::default();
        let mut problems = Vec::new();
        for c in certs {
            ring.insert(Path::new("<memory>"), c, &mut problems);
        }
        ring.reindex();
        ring
    }

    fn add_bytes(&mut self, path: &Path, bytes: &[u8], problems: &mut Vec<LoadProblem>) {
        let parser = match CertParser::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                problems.push(LoadProblem::Parse {
                    path: path.to_path_buf(),
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
                    self.insert(path, cert, problems);
                }
                Err(e) => {
                    problems.push(LoadProblem::Parse {
                        path: path.to_path_buf(),
                        certs_kept: kept,
                        error: format!("{e:#}"),
                    });
                    // The parser may or may not resynchronise; keep going.
                }
            }
        }
    }

    fn insert(&mut self, path: &Path, cert: Cert, problems: &mut Vec<LoadProblem>) {
        let cert = cert.strip_secret_key_material();
        let fpr = cert.fingerprint();
        match self.by_fpr.get(&fpr) {
            Some(&i) => match self.certs[i].clone().merge_public(cert) {
                Ok(m) => self.certs[i] = m,
                Err(e) => problems.push(LoadProblem::Merge {
                    path: path.to_path_buf(),
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

    /// Certificates having a key or subkey with this Key ID.
    pub fn lookup_by_keyid(&self, keyid: &KeyID) -> Vec<&Cert> {
        self.by_any_keyid
            .get(keyid)
            .map(|v| v.iter().map(|&i| &self.certs[i]).collect())
            .unwrap_or_default()
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

    /// Certificates holding a key (primary or subkey) that may have made
    /// `sig`, from its issuer subpackets; the caller still verifies.
    pub fn certs_for_signature(&self, sig: &Signature) -> Vec<&Cert> {
        let mut out: Vec<&Cert> = Vec::new();
        for h in sig.get_issuers() {
            for c in self.lookup(&h) {
                if !out.iter().any(|o| o.fingerprint() == c.fingerprint()) {
                    out.push(c);
                }
            }
        }
        out
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

/// File name extensions read when a directory is named (files named
/// explicitly are always read).
pub const KEYRING_EXTENSIONS: &[&str] = &["pgp", "gpg", "asc", "key", "pub"];

fn collect_files(p: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<LoadProblem>) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut entries: Vec<PathBuf> =
                    rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                entries.sort();
                for e in entries {
                    // Inside directories, only keyring-looking files.
                    let ext = e.extension().and_then(|x| x.to_str()).unwrap_or("");
                    if !e.is_dir() && !KEYRING_EXTENSIONS.contains(&ext) {
                        continue;
                    }
                    collect_files(&e, files, problems);
                }
            }
            Err(error) => problems.push(LoadProblem::Io {
                path: p.to_path_buf(),
                error,
            }),
        },
        Ok(_) => files.push(p.to_path_buf()),
        Err(error) => problems.push(LoadProblem::Io {
            path: p.to_path_buf(),
            error,
        }),
    }
}
