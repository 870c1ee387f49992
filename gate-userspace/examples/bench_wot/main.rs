//! Benchmark of the web-of-trust engine against `gpg --check-trustdb` on the
//! same inputs, in the same run: time and peak memory (not a timed test).
//!
//! Inputs: (a) a generated network of 10,000 certificates and 100,000
//! certifications (cached in the temp dir), (b) Debian's developer keyring
//! (/usr/share/keyrings/debian-keyring.gpg), (c) one certificate flooded with
//! 100,000 certifications by keys not in the keyring. For each: load (parse),
//! a full computation split into verify (the certification graph built with a
//! cold verification cache) and search (the trust search and report over the
//! warm cache), and a recompute with nothing changed (warm cache). Peak memory
//! is the measured process's max RSS.
//!
//! GnuPG runs as people run it: a fresh home, `gpg --import` of the keyring
//! into its keybox (timed separately, like our parse), `--import-ownertrust`,
//! then `--check-trustdb` twice (full, then warm). Each gpg step is bounded by
//! [`GPG_LIMIT`]; a step past it is stopped and reported so. On Debian's
//! keyring both tools are also measured whole process, keyring file to
//! verdicts (ours: one process loading and evaluating; GnuPG: import and
//! `--check-trustdb`, summed time, larger peak RSS).
//!
//! Run: `cargo run --release -p gate-userspace --example bench_wot [-- --record]`
//! (`--record` appends the table to BENCHMARKS.md under `## Web of trust`).

mod gpg;
mod modes;
#[path = "../common/network.rs"]
mod network;
mod process;
#[path = "../common/record.rs"]
mod record;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use gpg::*;
use modes::*;
use network::{at, generated, REF, T0};
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::Serialize;
use openpgp::types::SignatureType;
use openpgp::Fingerprint;
use process::*;
use sequoia_openpgp as openpgp;
use std::sync::Arc;
use table::*;
use wotgate::source::Named;
use wotgate::wot::{
    evaluate_cached, evaluate_lazy, EngineRun, Keyring, TrustEngine, TrustSettings, VerifyCache,
};

const DEBIAN: &str = "/usr/share/keyrings/debian-keyring.gpg";
const DEPTH: usize = 2;
const GPG_TOOL: &str = "gpg 2.2 --import, --check-trustdb (pgp, max-cert-depth 2)";

fn main() -> Result<()> {
    // The machine and its load as the run starts (recorded at the end).
    let _ = record::machine();
    // As the wotgate binary does (see wotgate::wot::alloc).
    wotgate::wot::alloc::single_arena();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        return measure(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--whole") {
        return whole(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--added") {
        return added(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--gpg-diff") {
        return gpg_diff(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--added-only") {
        return added_only(&args[1..]);
    }
    let record = args.iter().any(|a| a == "--record");
    let dir = network::cache_dir()?;
    let mut rows = Vec::new();

    let net = network::ring_path(&dir, 10_000);
    let root = generated(&net, 10_000, 10)?;
    rows.extend(compare(
        "generated 10k certs / 100k certifications",
        &net,
        &root,
        REF,
    )?);

    let mut whole_rows = Vec::new();
    if Path::new(DEBIAN).exists() {
        let (root, at) = debian_root_and_time()?;
        let debian = compare("debian-keyring.gpg", Path::new(DEBIAN), &root, at)?;
        whole_rows.push(ours_whole(Path::new(DEBIAN), &root, at)?);
        let gpg = debian
            .iter()
            .find(|r| r.tool == GPG_TOOL)
            .context("the gpg row")?;
        whole_rows.push(gpg_whole(gpg));
        rows.extend(debian);
    } else {
        eprintln!("bench_wot: {DEBIAN} missing (apt-get install debian-keyring); skipped");
    }

    let flooded = dir.join("flooded-100k-v2.pgp");
    let root = flood(&flooded, &net, 100_000)?;
    rows.extend(ours_only(
        "generated + 1 cert with 100k unknown-issuer certifications",
        &flooded,
        &root,
        REF,
    )?);

    let mut table = render(&rows);
    table.push_str(&render_whole(&whole_rows));
    table.push_str(&targets(&rows, &whole_rows));
    print!("{table}");
    if record {
        record_table(&table)?;
    }
    Ok(())
}

/// Runs our engine (in a child process, for its peak RSS) and GnuPG.
fn compare(input: &str, ring: &Path, root: &Fingerprint, at: u64) -> Result<Vec<Row>> {
    let mut rows = ours_only(input, ring, root, at)?;
    eprintln!("bench_wot: {input}: gpg ...");
    let certs = rows[0].certs;
    rows.push(gpg_row(input, ring, root, at, certs)?);
    Ok(rows)
}

fn ours_only(input: &str, ring: &Path, root: &Fingerprint, at: u64) -> Result<Vec<Row>> {
    eprintln!("bench_wot: {input}: wotgate ...");
    let (out, peak) = run_child("--measure", ring, root, at, &[])?;
    let v: Vec<f64> = out
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    let d = |i: usize| Some(Duration::from_secs_f64(v[i]));
    let ours = Row {
        input: input.into(),
        tool: "wotgate (certifications, depth 2; the daemon's verdicts)",
        certs: v[6] as usize,
        load: d(0),
        verify: d(1),
        search: d(2),
        full: d(3),
        warm: d(4),
        added: None,
        trusted: v[5] as usize,
        peak_kib: peak,
        stopped: None,
        whole_peak_kib: peak,
    };
    eprintln!(
        "bench_wot:   wotgate: parse {:.3} s, verify {:.3} s ({} signatures), search {:.3} s, recompute {:.3} s",
        v[0], v[1], v[7], v[2], v[4]
    );
    let mut ours = ours;
    if ring.with_extension("tsk").exists() {
        let (out, peak) = run_child("--added", ring, root, at, &[])?;
        let a: Vec<f64> = out
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        let d = |i: usize| Duration::from_secs_f64(a[i]);
        ours.added = Some(Added {
            took: d(0),
            read: d(1),
            parse: d(2),
            graph: d(3),
            search: d(4),
            peak_kib: peak,
        });
    }
    let (out, peak) = run_child("--measure", ring, root, at, &["eager"])?;
    let e: Vec<f64> = out
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    let report = Row {
        input: input.into(),
        tool: "wotgate full report (every key explained: trust list)",
        certs: ours.certs,
        load: ours.load,
        verify: None,
        search: None,
        full: Some(Duration::from_secs_f64(e[0])),
        warm: None,
        added: None,
        trusted: e[1] as usize,
        peak_kib: peak,
        stopped: None,
        whole_peak_kib: peak,
    };
    eprintln!("bench_wot:   wotgate full report {:.3} s", e[0]);
    Ok(vec![ours, report])
}

/// Our whole process: a child that loads `ring` and computes the verdicts
/// once (fresh cache), as the daemon does at a start; wall time from spawn
/// to exit.
fn ours_whole(ring: &Path, root: &Fingerprint, at: u64) -> Result<Whole> {
    eprintln!("bench_wot: whole process: wotgate ...");
    let t = Instant::now();
    let (_, peak) = run_child("--whole", ring, root, at, &[])?;
    Ok(Whole {
        tool: "wotgate (one process: parse, the daemon's verdicts)",
        wall: Some(t.elapsed()),
        check: None,
        peak_kib: peak,
    })
}

/// The generated network with one certificate (a key the root certified)
/// carrying `count` extra certifications by a key not in the keyring.
fn flood(path: &Path, net: &Path, count: u64) -> Result<Fingerprint> {
    let root = Fingerprint::from_hex(std::fs::read_to_string(net.with_extension("root"))?.trim())?;
    if path.exists() {
        return Ok(root);
    }
    eprintln!("bench_wot: signing {count} flood certifications ...");
    let (ring, _) = Keyring::load(&[net.to_path_buf()]);
    let victim = ring.full_certs().nth(1).context("a second key")?;
    let (flooder, _) = CertBuilder::new()
        .set_creation_time(at(T0))
        .add_userid("flooder")
        .generate()?;
    let mut signer = flooder
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()?
        .into_keypair()?;
    let uid = victim.userids().next().unwrap().userid().clone();
    let mut sigs = Vec::with_capacity(count as usize);
    for i in 0..count {
        sigs.push(
            SignatureBuilder::new(SignatureType::GenericCertification)
                .set_signature_creation_time(at(T0 + 86_400 + i))?
                .sign_userid_binding(&mut signer, victim.primary_key().key(), &uid)?,
        );
    }
    let victim = victim.insert_packets(sigs)?.0;
    let out = with_replaced(&ring, &victim)?;
    std::fs::write(path, out)?;
    Ok(root)
}

/// Debian keyring: the root is the key that certified the most other keys
/// in it; the reference time is the keyring file's modification time.
/// `ring`'s certificates serialized in order, `changed` in place of the one
/// with its fingerprint.
fn with_replaced(ring: &Keyring, changed: &Cert) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for c in ring.full_certs() {
        if c.fingerprint() == changed.fingerprint() {
            changed.serialize(&mut out)?;
        } else {
            c.serialize(&mut out)?;
        }
    }
    Ok(out)
}

fn debian_root_and_time() -> Result<(Fingerprint, u64)> {
    let (ring, _) = Keyring::load(&[PathBuf::from(DEBIAN)]);
    let mut count: HashMap<Fingerprint, usize> = HashMap::new();
    for c in ring.full_certs() {
        for ua in c.userids() {
            for sig in ua.certifications() {
                for h in sig.get_issuers() {
                    for i in ring.lookup(&h) {
                        if i.fingerprint() != c.fingerprint() {
                            *count.entry(i.fingerprint()).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    let root = count
        .into_iter()
        .max_by_key(|(f, n)| (*n, f.clone()))
        .map(|(f, _)| f)
        .context("no certifications in debian-keyring")?;
    let mtime = std::fs::metadata(DEBIAN)?
        .modified()?
        .duration_since(UNIX_EPOCH)?
        .as_secs();
    Ok((root, mtime))
}

fn record_table(table: &str) -> Result<()> {
    record::record(
        "## Web of trust",
        "`cargo xtask bench wot` (gate-userspace/examples/bench_wot/): trust computed from one \
         root at depth 2, certifications mode, side by side with `gpg --check-trustdb` (pgp model, \
         root ultimate, every other key full, completes-needed 1, SHA-1 weak) on the same input. \
         gpg imports the keyring into a fresh keybox first (timed as its import); its recompute is a \
         second `--check-trustdb`.",
        &format!(
            "\n### {}\n\nGnuPG imported into a fresh keybox (`gpg --import`, timed in the \
             parse / import column), limit {} s per gpg step. wotgate's full compute = verify \
             (certification graph, cold cache) + search (evaluation over the warm cache).\n\n{table}",
            record::machine(),
            GPG_LIMIT.as_secs()
        ),
    )?;
    Ok(())
}
