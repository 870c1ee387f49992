//! The primary keys a load's inputs hold, found from packet headers and key
//! packets alone, so the load drops certifications by issuers in no input as it parses.
//!
//! A certification whose issuer is in no keyring is only counted (see
//! `keyring/`), but until every input was read it was kept whole (on
//! Debian's keyring half of the 42,000 third-party signatures, 11 MB of
//! packet bytes held at the peak). A scan first reads every input's packet
//! headers, skipping the bodies, and parses only primary key packets: a
//! signature none of whose issuer handles names one of them can have no
//! issuer in the keyring that load makes. The scan gives up (`None`: the
//! load keeps everything, as before) on anything but whole binary packets
//! (armour, a pipe, a truncated file) and on a key named twice, so a load
//! that scanned never merges two copies of a certificate.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID, Packet};

use super::chunks::{packet, split, PRIMARY_TAGS};
use crate::source::local::open_keyring;
use crate::source::Named;

/// Every primary key named by a load's inputs (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Primaries {
    fprs: HashSet<Fingerprint>,
    keyids: HashSet<KeyID>,
}

impl Primaries {
    /// The primary keys of `files` (regular files, binary) and `more`;
    /// `None` when any input is not whole binary packets, or names a
    /// primary key twice.
    pub(crate) fn scan(files: &[PathBuf], more: &[Named]) -> Option<Primaries> {
        let mut p = Primaries::default();
        for f in files {
            p.scan_file(f)?;
        }
        for m in more {
            p.scan_bytes(&m.bytes)?;
        }
        Some(p)
    }

    /// Whether a signature naming `h` as its issuer may have been made by
    /// one of these keys (as `Keyring::primary_indices` resolves it).
    pub(crate) fn may_issue(&self, h: &KeyHandle) -> bool {
        match h {
            KeyHandle::Fingerprint(f) => self.fprs.contains(f),
            KeyHandle::KeyID(k) => self.keyids.contains(k),
        }
    }

    /// Adds the primary key in `bytes` (one whole packet); `None` when it
    /// does not parse or was added before.
    fn add(&mut self, bytes: &[u8]) -> Option<()> {
        let (fpr, keyid) = match Packet::from_bytes(bytes).ok()? {
            Packet::PublicKey(k) => (k.fingerprint(), k.keyid()),
            Packet::SecretKey(k) => (k.fingerprint(), k.keyid()),
            _ => return None,
        };
        self.keyids.insert(keyid);
        self.fprs.insert(fpr).then_some(())
    }

    /// Bytes in memory: cut as the engine cuts them, one certificate a
    /// range, each starting with its primary key packet.
    fn scan_bytes(&mut self, bytes: &[u8]) -> Option<()> {
        if bytes.is_empty() {
            return Some(());
        }
        for c in split(bytes)? {
            let (_, len) = packet(c)?;
            self.add(&c[..len])?;
        }
        Some(())
    }

    /// As [`Primaries::scan_bytes`], reading the headers and key packets
    /// of a file and seeking over every other body.
    fn scan_file(&mut self, path: &std::path::Path) -> Option<()> {
        let file = open_keyring(path).ok()?.into_inner();
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let size = meta.len();
        let mut r = BufReader::with_capacity(1 << 16, file);
        let mut pos: u64 = 0;
        let mut buf = Vec::new();
        while pos < size {
            let mut hdr = [0u8; 6];
            let n = header_len(&mut r, &mut hdr)?;
            let (tag, len) = packet(&hdr[..n])?;
            let body = (len - n) as u64;
            pos = pos.checked_add(len as u64).filter(|&e| e <= size)?;
            if PRIMARY_TAGS.contains(&tag) {
                buf.clear();
                buf.extend_from_slice(&hdr[..n]);
                (&mut r).take(body).read_to_end(&mut buf).ok()?;
                self.add(&buf)?;
            } else {
                r.seek_relative(i64::try_from(body).ok()?).ok()?;
            }
        }
        // Nothing after the last packet (the file did not grow meanwhile).
        r.fill_buf().ok()?.is_empty().then_some(())
    }
}

/// Reads one packet header into `hdr`; its length in bytes (the header
/// forms `chunks::packet` reads; `None` for the others).
fn header_len(r: &mut impl Read, hdr: &mut [u8; 6]) -> Option<usize> {
    r.read_exact(&mut hdr[..2]).ok()?;
    let n = if hdr[0] & 0x80 == 0 {
        return None;
    } else if hdr[0] & 0x40 != 0 {
        match hdr[1] {
            0..=191 => 2,
            192..=223 => 3,
            255 => 6,
            _ => return None,
        }
    } else {
        match hdr[0] & 3 {
            0 => 2,
            1 => 3,
            2 => 5,
            _ => return None,
        }
    };
    r.read_exact(&mut hdr[2..n]).ok()?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp::cert::CertBuilder;
    use sequoia_openpgp::serialize::Serialize;

    fn cert(name: &str) -> sequoia_openpgp::Cert {
        CertBuilder::general_purpose(Some(name))
            .generate()
            .unwrap()
            .0
    }

    #[test]
    fn finds_primaries_in_files_and_bytes_and_gives_up_on_the_rest() {
        let (a, b) = (cert("a"), cert("b"));
        let mut bytes = Vec::new();
        a.serialize(&mut bytes).unwrap();
        b.as_tsk().serialize(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("wotgate-prescan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ring.pgp");
        std::fs::write(&file, &bytes).unwrap();
        let named = |b: &[u8]| Named {
            origin: "x".into(),
            bytes: b.to_vec(),
        };
        for p in [
            Primaries::scan(std::slice::from_ref(&file), &[]).unwrap(),
            Primaries::scan(&[], &[named(&bytes)]).unwrap(),
        ] {
            for c in [&a, &b] {
                assert!(p.may_issue(&KeyHandle::from(c.fingerprint())));
                assert!(p.may_issue(&KeyHandle::from(c.keyid())));
            }
            // A subkey is no primary key.
            let sub = a.keys().subkeys().next().unwrap().key().fingerprint();
            assert!(!p.may_issue(&KeyHandle::from(sub)));
        }
        // The same key twice, a truncated file, armour: no scan.
        assert!(Primaries::scan(std::slice::from_ref(&file), &[named(&bytes)]).is_none());
        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Primaries::scan(std::slice::from_ref(&file), &[]).is_none());
        let mut armored = Vec::new();
        a.armored().serialize(&mut armored).unwrap();
        assert!(Primaries::scan(&[], &[named(&armored)]).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A load from a file keeps no certification by an issuer in no input
    /// (counted as the plain parse counts it); with a copy beside (a key
    /// named twice: no scan), the copies are merged and everything is kept
    /// until resolved.
    #[test]
    fn a_scanned_load_drops_unknown_issuers_as_it_parses() {
        use crate::wot::Keyring;
        use sequoia_openpgp::packet::signature::SignatureBuilder;
        use sequoia_openpgp::types::SignatureType;
        let (a, b, x) = (cert("a"), cert("b"), cert("x"));
        let uid = a.userids().next().unwrap().userid().clone();
        let certify = |by: &sequoia_openpgp::Cert| {
            let mut signer = by
                .primary_key()
                .key()
                .clone()
                .parts_into_secret()
                .unwrap()
                .into_keypair()
                .unwrap();
            SignatureBuilder::new(SignatureType::GenericCertification)
                .sign_userid_binding(&mut signer, a.primary_key().key(), &uid)
                .unwrap()
        };
        let sigs = [certify(&b), certify(&x)];
        let a = a.insert_packets(sigs).unwrap().0;
        let mut bytes = Vec::new();
        a.serialize(&mut bytes).unwrap();
        b.serialize(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("wotgate-prescan-drop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ring.pgp");
        std::fs::write(&file, &bytes).unwrap();
        let copy = dir.join("copy.pgp");
        std::fs::write(&copy, &bytes).unwrap();
        let plain = Keyring::parse(&[Named {
            origin: "x".into(),
            bytes,
        }])
        .0;
        let scanned = Keyring::load(std::slice::from_ref(&file)).0;
        let twice = Keyring::load(&[file.clone(), copy]).0;
        std::fs::remove_dir_all(&dir).unwrap();
        let ia = plain.index_of(&a.fingerprint()).unwrap();
        assert_eq!(plain.pending_len_at(ia), 2);
        assert_eq!(scanned.pending_len_at(ia), 1, "x's certification dropped");
        assert_eq!(twice.pending_len_at(ia), 2);
        for r in [&plain, &scanned, &twice] {
            assert_eq!(r.unknown_at(ia, 0), 1);
            assert_eq!(r.certifications_at(ia).len(), 1);
        }
    }
}
