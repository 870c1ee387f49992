//! Loading a keyring: certificates parsed from files and named bytes, and
//! copies of the same certificate merged.

use std::path::PathBuf;
use std::sync::Arc;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Fingerprint;

use super::strip::strip;
use super::{Digest, Keyring, LoadProblem, Parsed};
use crate::source::local::{keyring_files, open_keyring, read_limited, KEYRING_FILE};
use crate::source::Named;
use crate::wot::prescan::Primaries;

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

    pub(in crate::wot) fn add_bytes(
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
}
