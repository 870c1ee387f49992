//! The controller benchmark's inputs: N participants certified by one root,
//! each with a signed statement of M /64s, made once with sequoia and cached.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use integration_tests::world::{certify, key};
use ipnet::Ipv6Net;
use sequoia_openpgp::{parse::Parse, policy::StandardPolicy, serialize::Serialize, Cert};
use wotgate::model::time::to_timestamp;
use wotgate::statement::{signed, Mode, Statement};

/// A cached fixture is made again when older than this (statements are
/// valid for a year from their making).
const MAX_AGE: Duration = Duration::from_secs(300 * 86_400);
const VERSION: u32 = 1;

pub struct Fixture {
    pub dir: PathBuf,
    pub participants: usize,
    pub per: usize,
    /// Root fingerprint (hex).
    pub root: String,
    /// Serial of every statement as made; a changed statement uses more.
    pub serial: u64,
    /// Seconds it took to make it, and whether this run made it.
    pub made_in: f64,
    pub made_now: bool,
}

/// Participant `i`'s prefixes: 2001:db8:i:j::/64 for j below `per`, none
/// inside another (nothing to fold), so the kernel holds all of them.
pub fn prefixes(i: usize, per: usize) -> Vec<Ipv6Net> {
    (0..per)
        .map(|j| {
            let bits = (0x2001_0db8u128 << 96) | (i as u128) << 80 | (j as u128) << 64;
            Ipv6Net::new(bits.into(), 64).expect("/64")
        })
        .collect()
}

pub fn domain(i: usize) -> String {
    format!("p{i}.example")
}

/// The armoured statement of participant `i` (key `tsk`), made at `now`.
pub fn statement(
    tsk: &Cert,
    i: usize,
    serial: u64,
    prefixes: Vec<Ipv6Net>,
    now: SystemTime,
) -> Result<Vec<u8>> {
    let t = to_timestamp(now);
    let body = Statement {
        domain: domain(i),
        serial,
        not_before: t - 86_400,
        not_after: t + 365 * 86_400,
        mode: Mode::Enforce,
        prefixes,
        tls_key_sha256: vec![],
    }
    .to_body();
    let policy = StandardPolicy::new();
    let pair = signed::signing_keypair(tsk, &policy, now, None)?;
    Ok(signed::sign(body.as_bytes(), pair, now)?)
}

impl Fixture {
    /// Participant 0's key (secret), to sign a changed statement.
    pub fn p0_key(&self) -> Result<Cert> {
        Cert::from_file(self.dir.join("p0.tsk")).context("p0.tsk")
    }

    /// Loads the cached fixture under `base` or makes it.
    pub fn ensure(base: &Path, participants: usize, per: usize) -> Result<Fixture> {
        if participants > 65_536 {
            bail!("at most 65536 participants (one /48 each in 2001:db8::/32)");
        }
        let dir = base.join(format!("fixture-v{VERSION}-{participants}x{per}"));
        if let Some(f) = Self::cached(&dir, participants, per) {
            return Ok(f);
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("statements"))?;
        let t = Instant::now();
        let now = SystemTime::now();
        let serial = to_timestamp(now);
        let born = now - Duration::from_secs(2 * 86_400);
        let root = key("<postmaster@mx.example>", born);
        let certified = now - Duration::from_secs(86_400);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunks: Vec<Vec<(Cert, Vec<u8>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let (root, dir) = (&root, &dir);
                    s.spawn(move || -> Result<Vec<(Cert, Vec<u8>)>> {
                        let mut out = Vec::new();
                        for i in (k..participants).step_by(threads) {
                            let tsk = key(&format!("<postmaster@{}>", domain(i)), born);
                            if i == 0 {
                                tsk.as_tsk()
                                    .serialize(&mut std::fs::File::create(dir.join("p0.tsk"))?)?;
                            }
                            let st = statement(&tsk, i, serial, prefixes(i, per), now)?;
                            out.push((certify(root, &tsk, certified), st));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator thread"))
                .collect::<Result<_>>()
        })?;
        let mut ring = std::io::BufWriter::new(std::fs::File::create(dir.join("keyring.pgp"))?);
        root.clone()
            .strip_secret_key_material()
            .serialize(&mut ring)?;
        for (k, chunk) in chunks.iter().enumerate() {
            for (n, (cert, st)) in chunk.iter().enumerate() {
                cert.serialize(&mut ring)?;
                let i = k + n * threads;
                std::fs::write(dir.join("statements").join(format!("p{i:05}.asc")), st)?;
            }
        }
        ring.flush()?;
        let made_in = t.elapsed().as_secs_f64();
        let meta = format!(
            "created {}\nserial {serial}\nroot {}\nmade_in {made_in:.3}\n",
            to_timestamp(now),
            root.fingerprint().to_hex()
        );
        std::fs::write(dir.join("fixture.txt"), meta)?;
        Ok(Fixture {
            dir,
            participants,
            per,
            root: root.fingerprint().to_hex(),
            serial,
            made_in,
            made_now: true,
        })
    }

    fn cached(dir: &Path, participants: usize, per: usize) -> Option<Fixture> {
        let text = std::fs::read_to_string(dir.join("fixture.txt")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_string)
        };
        let created: u64 = field("created")?.parse().ok()?;
        let age = to_timestamp(SystemTime::now()).saturating_sub(created);
        if age > MAX_AGE.as_secs() {
            return None;
        }
        Some(Fixture {
            dir: dir.to_path_buf(),
            participants,
            per,
            root: field("root")?,
            serial: field("serial")?.parse().ok()?,
            made_in: field("made_in")?.parse().ok()?,
            made_now: false,
        })
    }
}
