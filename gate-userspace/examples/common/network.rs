//! Shared by the benchmark examples: the generated web-of-trust network
//! (10,000 certificates, 100,000 certifications in `bench_wot` and
//! `bench_webs`), cached in the temp dir with its secret keys.
//!
//! Key `i` has the one User ID `Key i <postmaster@ki.bench.example>`, so each
//! key speaks for its own domain `ki.bench.example` (statements by different
//! keys do not supersede each other), and a primary key that certifies and
//! signs (it can sign statements).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::serialize::Serialize;
use openpgp::types::{KeyFlags, SignatureType};
use openpgp::{Cert, Fingerprint};
use rand::{rngs::StdRng, Rng, SeedableRng};
use sequoia_openpgp as openpgp;

/// When the network's keys were made: 2024-01-01.
pub const T0: u64 = 1_704_067_200;
/// The reference time of the benchmarks: 2025-01-01.
pub const REF: u64 = 1_735_689_600;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The benchmarks' cache directory in the temp dir (created).
pub fn cache_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("wotgate-bench-wot");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The domain key `i` speaks for.
pub fn domain(i: usize) -> String {
    format!("k{i}.bench.example")
}

/// The public keyring's file for `n` keys in `dir`. Versioned: v2 has one
/// domain per key and signing primary keys (v1, `network-10k.pgp`, had
/// `<ki@bench.example>` for every key and certification-only keys).
pub fn ring_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("network-{}k-v2.pgp", n / 1000))
}

/// The secret keys of `path`'s network (same order as the keyring).
fn secrets_path(path: &Path) -> PathBuf {
    path.with_extension("tsk")
}

/// A random network: `n` keys, each certified by `k` random others, key 0
/// the root certifying 20 keys. Cached on disk at `path` (public keyring,
/// `.root` the root's fingerprint, `.tsk` every secret key); returns the root.
pub fn generated(path: &Path, n: usize, k: usize) -> Result<Fingerprint> {
    let root_file = path.with_extension("root");
    if path.exists() && root_file.exists() && secrets_path(path).exists() {
        return Fingerprint::from_hex(std::fs::read_to_string(&root_file)?.trim());
    }
    eprintln!(
        "bench: generating {n} keys and {} certifications ...",
        n * k
    );
    let mut rng = StdRng::seed_from_u64(42);
    let mut certs: Vec<Cert> = (0..n)
        .map(|i| {
            CertBuilder::new()
                .set_profile(openpgp::Profile::RFC4880)?
                .set_cipher_suite(CipherSuite::Cv25519)
                .set_creation_time(at(T0))
                .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
                .add_userid(format!("Key {i} <postmaster@{}>", domain(i)))
                .generate()
                .map(|(c, _)| c)
        })
        .collect::<openpgp::Result<_>>()?;
    let mut tsks = Vec::new();
    for c in &certs {
        c.as_tsk().serialize(&mut tsks)?;
    }
    let mut signers: Vec<_> = certs
        .iter()
        .map(|c| {
            c.primary_key()
                .key()
                .clone()
                .parts_into_secret()?
                .into_keypair()
        })
        .collect::<openpgp::Result<_>>()?;
    let mut sigs: HashMap<usize, Vec<openpgp::packet::Signature>> = HashMap::new();
    let mut certify =
        |from: usize, to: usize, certs: &[Cert], sigs: &mut HashMap<_, Vec<_>>| -> Result<()> {
            let uid = certs[to].userids().next().unwrap().userid().clone();
            let sig = SignatureBuilder::new(SignatureType::GenericCertification)
                .set_signature_creation_time(at(T0 + 86_400))?
                .sign_userid_binding(&mut signers[from], certs[to].primary_key().key(), &uid)?;
            sigs.entry(to).or_default().push(sig);
            Ok(())
        };
    for to in 1..=20 {
        certify(0, to, &certs, &mut sigs)?;
    }
    for to in 0..n {
        let mut from: Vec<usize> = Vec::new();
        while from.len() < k - usize::from((1..=20).contains(&to)) {
            let f = rng.gen_range(0..n);
            if f != to && !from.contains(&f) && !(f == 0 && (1..=20).contains(&to)) {
                from.push(f);
            }
        }
        for f in from {
            certify(f, to, &certs, &mut sigs)?;
        }
    }
    let mut out = Vec::new();
    for (i, c) in certs.iter_mut().enumerate() {
        let cc = c
            .clone()
            .insert_packets(sigs.remove(&i).unwrap_or_default())?
            .0;
        cc.serialize(&mut out)?;
    }
    std::fs::write(path, out)?;
    std::fs::write(secrets_path(path), tsks)?;
    let root = certs[0].fingerprint();
    std::fs::write(&root_file, root.to_hex())?;
    Ok(root)
}

/// The first `n` secret keys of the network at `path` (key `i` at index `i`).
#[allow(dead_code)] // bench_webs only
pub fn secret_keys(path: &Path, n: usize) -> Result<Vec<Cert>> {
    let file = secrets_path(path);
    let keys: Vec<Cert> = CertParser::from_file(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .take(n)
        .collect::<openpgp::Result<_>>()?;
    anyhow::ensure!(
        keys.len() == n,
        "{} holds fewer than {n} keys",
        file.display()
    );
    Ok(keys)
}
