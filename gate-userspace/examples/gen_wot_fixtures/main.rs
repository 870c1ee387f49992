//! Generates the web-of-trust fixture networks under
//! `gate-userspace/tests/fixtures/wot/<network>/` (keyring.pgp, names.txt, README.md).
//!
//! Every key is created at T0 = 2024-01-01, certifications at fixed offsets,
//! and the tests judge everything at REF = 2025-01-01 (see `wot_common`).
//! Keys are fresh each run (Ed25519), so regenerating changes fingerprints;
//! tests find keys through `names.txt`.
//!
//! Run: `cargo run -p gate-userspace --example gen_wot_fixtures [OUT_DIR]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Signature, UserID};
use openpgp::serialize::Serialize;
use openpgp::types::{HashAlgorithm, ReasonForRevocation, SignatureType};
use sequoia_openpgp as openpgp;

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200;
const DAY: u64 = 86_400;

fn at(days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + days * DAY)
}

/// Options of one certification.
#[derive(Clone, Default)]
struct Opts {
    /// Days after T0 (default 1).
    day: Option<u64>,
    hash: Option<HashAlgorithm>,
    /// Expires this many days after creation.
    expires_days: Option<u64>,
    /// Trust signature (level, amount).
    tsig: Option<(u8, u8)>,
    regex: Option<&'static str>,
    /// Certify only this User ID (index), default all.
    uid: Option<usize>,
}

struct Net {
    name: &'static str,
    certs: BTreeMap<String, Cert>,
    order: Vec<String>,
}

impl Net {
    fn new(name: &'static str) -> Self {
        Net {
            name,
            certs: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    fn key_with(
        &mut self,
        name: &str,
        uids: &[String],
        created_day: u64,
        validity_days: Option<u64>,
    ) -> Result<()> {
        let mut b = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC4880)?
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(at(created_day))
            .add_signing_subkey();
        for u in uids {
            b = b.add_userid(u.as_str());
        }
        if let Some(v) = validity_days {
            b = b.set_validity_period(Duration::from_secs(v * DAY));
        } else {
            b = b.set_validity_period(None);
        }
        let (cert, _) = b.generate().with_context(|| format!("generating {name}"))?;
        self.certs.insert(name.into(), cert);
        self.order.push(name.into());
        Ok(())
    }

    /// A key with one User ID `Name <name@<net>.example>`.
    fn key(&mut self, name: &str) -> Result<()> {
        let uid = format!("{name} <{}@{}.example>", name.to_lowercase(), self.name);
        self.key_with(name, &[uid], 0, None)
    }

    fn signer(&self, name: &str) -> Result<openpgp::crypto::KeyPair> {
        self.certs[name]
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()?
            .into_keypair()
    }

    fn uids(&self, name: &str) -> Vec<UserID> {
        self.certs[name]
            .userids()
            .map(|u| u.userid().clone())
            .collect()
    }

    fn add(&mut self, name: &str, sigs: Vec<Signature>) -> Result<()> {
        let c = self.certs.remove(name).expect("known key");
        let c = c.insert_packets(sigs)?.0;
        self.certs.insert(name.into(), c);
        Ok(())
    }

    fn make_cert(&self, from: &str, to: &str, o: &Opts) -> Result<Vec<Signature>> {
        let mut signer = self.signer(from)?;
        let target = &self.certs[to];
        let mut out = Vec::new();
        for (i, uid) in self.uids(to).iter().enumerate() {
            if o.uid.is_some_and(|u| u != i) {
                continue;
            }
            let mut b = SignatureBuilder::new(SignatureType::GenericCertification)
                .set_signature_creation_time(at(o.day.unwrap_or(1)))?
                .set_hash_algo(o.hash.unwrap_or(HashAlgorithm::SHA256));
            if let Some(d) = o.expires_days {
                b = b.set_signature_validity_period(Duration::from_secs(d * DAY))?;
            }
            if let Some((l, a)) = o.tsig {
                b = b.set_trust_signature(l, a)?;
            }
            if let Some(r) = o.regex {
                b = b.set_regular_expression(r)?;
            }
            out.push(b.sign_userid_binding(&mut signer, target.primary_key().key(), uid)?);
        }
        Ok(out)
    }

    fn certify_with(&mut self, from: &str, to: &str, o: Opts) -> Result<()> {
        let sigs = self
            .make_cert(from, to, &o)
            .with_context(|| format!("{from} certifies {to}"))?;
        self.add(to, sigs)
    }

    fn certify(&mut self, from: &str, to: &str) -> Result<()> {
        self.certify_with(from, to, Opts::default())
    }

    /// `from` revokes its certification(s) of `to` on `day`.
    fn revoke_cert(&mut self, from: &str, to: &str, day: u64) -> Result<()> {
        let mut signer = self.signer(from)?;
        let target = self.certs[to].clone();
        let mut sigs = Vec::new();
        for uid in self.uids(to) {
            sigs.push(
                SignatureBuilder::new(SignatureType::CertificationRevocation)
                    .set_signature_creation_time(at(day))?
                    .set_reason_for_revocation(ReasonForRevocation::Unspecified, b"retracted")?
                    .sign_userid_binding(&mut signer, target.primary_key().key(), &uid)?,
            );
        }
        self.add(to, sigs)
    }

    fn revoke_key(&mut self, name: &str, day: u64) -> Result<()> {
        let mut signer = self.signer(name)?;
        let sig = CertRevocationBuilder::new()
            .set_signature_creation_time(at(day))?
            .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"lost")?
            .build(&mut signer, &self.certs[name], None)?;
        self.add(name, vec![sig])
    }

    /// `name` revokes its own User ID containing `needle`.
    fn revoke_uid(&mut self, name: &str, needle: &str, day: u64) -> Result<()> {
        let mut signer = self.signer(name)?;
        let u = self
            .uids(name)
            .into_iter()
            .find(|u| String::from_utf8_lossy(u.value()).contains(needle))
            .expect("User ID to revoke");
        let sig = UserIDRevocationBuilder::new()
            .set_signature_creation_time(at(day))?
            .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"gone")?
            .build(&mut signer, &self.certs[name], &u, None)?;
        self.add(name, vec![sig])
    }

    fn write(&self, out: &Path, drawing: &str) -> Result<()> {
        let dir = out.join(self.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut ring = Vec::new();
        let mut names = String::new();
        for n in &self.order {
            let c = &self.certs[n];
            c.serialize(&mut ring)?;
            names.push_str(&format!("{n} {}\n", c.fingerprint().to_hex()));
        }
        std::fs::write(dir.join("keyring.pgp"), ring)?;
        std::fs::write(dir.join("names.txt"), names)?;
        let readme = format!(
            "# Fixture network `{}`\n\nGenerated by `examples/gen_wot_fixtures.rs`; keys created \
             2024-01-01, judged at 2025-01-01.\n`A -> B` means A certifies B's User ID(s).\n\n```text\n{}\n```\n",
            self.name,
            drawing.trim_matches('\n')
        );
        std::fs::write(dir.join("README.md"), readme)?;
        println!("wrote {}", dir.display());
        Ok(())
    }
}

fn chain(net: &mut Net, names: &[&str]) -> Result<()> {
    for w in names.windows(2) {
        net.certify(w[0], w[1])?;
    }
    Ok(())
}

fn keys(net: &mut Net, names: &[&str]) -> Result<()> {
    names.iter().try_for_each(|n| net.key(n))
}

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wot"));
    networks::all(&out)
}

mod networks;
