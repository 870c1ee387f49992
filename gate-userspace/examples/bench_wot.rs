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

#[path = "common/network.rs"]
mod network;
#[path = "common/record.rs"]
mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use network::{at, generated, REF, T0};
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::Serialize;
use openpgp::types::SignatureType;
use openpgp::Fingerprint;
use sequoia_openpgp as openpgp;
use std::sync::Arc;
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

struct Row {
    input: String,
    tool: &'static str,
    certs: usize,
    /// Parse (ours) or `gpg --import` (GnuPG); None: stopped at the limit.
    load: Option<Duration>,
    /// Ours only: the certification graph with a cold verification cache.
    verify: Option<Duration>,
    /// Ours only: search and report over the warm cache.
    search: Option<Duration>,
    /// None: stopped at the time limit (or not reached).
    full: Option<Duration>,
    warm: Option<Duration>,
    /// Ours, generated network: recompute after one added certification
    /// (through the daemon's engine, in a process of its own).
    added: Option<Added>,
    trusted: usize,
    peak_kib: u64,
    /// The GnuPG step stopped at [`GPG_LIMIT`], if any.
    stopped: Option<&'static str>,
    /// GnuPG: the larger peak of its import and its full check.
    whole_peak_kib: u64,
}

/// The recompute after one added certification through the engine.
struct Added {
    took: Duration,
    /// Where its time went: read, parse, graph, search (the rest: verdicts).
    read: Duration,
    parse: Duration,
    graph: Duration,
    search: Duration,
    /// The engine process's peak RSS (the daemon keeps an engine).
    peak_kib: u64,
}

/// One tool's whole process on one input: keyring file to verdicts.
struct Whole {
    tool: &'static str,
    /// None: a step stopped at the limit.
    wall: Option<Duration>,
    /// GnuPG: its full `--check-trustdb` alone.
    check: Option<Duration>,
    peak_kib: u64,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| input | tool | certs | parse / import | verify | search | full compute | recompute, nothing changed | recompute, one certification added | trusted keys | peak RSS |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let stopped = |step: &str, this: &str| {
        if step == this {
            format!("stopped after {} s", GPG_LIMIT.as_secs())
        } else {
            "not reached".into()
        }
    };
    for r in rows {
        let step = r.stopped.unwrap_or("");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.input,
            r.tool,
            r.certs,
            r.load.map(secs).unwrap_or_else(|| stopped(step, "import")),
            r.verify.map(secs).unwrap_or_else(|| "-".into()),
            r.search.map(secs).unwrap_or_else(|| "-".into()),
            r.full
                .map(secs)
                .unwrap_or_else(|| stopped(step, "check-trustdb")),
            r.warm.map(secs).unwrap_or_else(|| "n/a".into()),
            r.added
                .as_ref()
                .map(|a| secs(a.took))
                .unwrap_or_else(|| "n/a".into()),
            r.trusted,
            // A step killed at the limit leaves no peak (wait4 reaps it).
            if r.peak_kib == 0 {
                "not measured".into()
            } else {
                format!("{} MiB", r.peak_kib / 1024)
            }
        ));
    }
    s
}

/// The whole-process table and the GnuPG/wotgate ratios.
fn render_whole(w: &[Whole]) -> String {
    if w.len() < 2 {
        return String::new();
    }
    let mut s = String::from(
        "\nWhole process on debian-keyring.gpg, keyring file to verdicts:\n\n\
         | tool | wall time | peak RSS |\n|---|---:|---:|\n",
    );
    for r in w {
        s.push_str(&format!(
            "| {} | {} | {} MiB |\n",
            r.tool,
            r.wall
                .map(secs)
                .unwrap_or_else(|| format!("stopped ({} s limit per step)", GPG_LIMIT.as_secs())),
            r.peak_kib / 1024
        ));
    }
    if let (Some(ours), Some(gpg)) = (w[0].wall, w[1].wall) {
        s.push_str(&format!(
            "\nGnuPG / wotgate: time {:.2}x, peak RSS {:.2}x (wotgate's memory is {:.2}x GnuPG's).\n",
            gpg.as_secs_f64() / ours.as_secs_f64(),
            w[1].peak_kib as f64 / w[0].peak_kib.max(1) as f64,
            w[0].peak_kib as f64 / w[1].peak_kib.max(1) as f64,
        ));
    }
    if let (Some(ours), Some(check)) = (w[0].wall, w[1].check) {
        s.push_str(&format!(
            "Without GnuPG's import (keyring already in its keybox): `--check-trustdb` {} \
             = {:.2}x wotgate's whole process.\n",
            secs(check),
            check.as_secs_f64() / ours.as_secs_f64(),
        ));
    }
    s
}

/// Where our time goes, and the targets (reported, not asserted).
fn targets(rows: &[Row], w: &[Whole]) -> String {
    let mut s = String::from("\nwotgate's time split (parse / verify / search, of their sum):\n");
    for r in rows.iter().filter(|r| r.verify.is_some()) {
        let (p, v, q) = (
            r.load.unwrap_or_default().as_secs_f64(),
            r.verify.unwrap_or_default().as_secs_f64(),
            r.search.unwrap_or_default().as_secs_f64(),
        );
        let t = (p + v + q).max(f64::MIN_POSITIVE);
        s.push_str(&format!(
            "- {}: parse {:.0}%, verify {:.0}%, search {:.0}%\n",
            r.input,
            100.0 * p / t,
            100.0 * v / t,
            100.0 * q / t
        ));
    }
    s.push_str("\nTargets (issue 13; reported, not asserted):\n");
    if let (Some(ours), Some(gpg)) = (
        w.first().and_then(|r| r.wall),
        w.get(1).and_then(|r| r.wall),
    ) {
        let x = gpg.as_secs_f64() / ours.as_secs_f64();
        let m = w[0].peak_kib as f64 / w[1].peak_kib.max(1) as f64;
        s.push_str(&format!(
            "- debian-keyring whole process at least 10x faster than GnuPG: {x:.2}x ({})\n\
             - memory within 2x of GnuPG's: {m:.2}x ({})\n",
            if x >= 10.0 { "met" } else { "not met" },
            if m <= 2.0 { "met" } else { "not met" },
        ));
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.input.starts_with("generated 10k") && r.verify.is_some())
    {
        let full = r.full.unwrap_or_default().as_secs_f64();
        let mib = r.peak_kib / 1024;
        s.push_str(&format!(
            "- generated 10k/100k full computation at most 3 s: {full:.3} s ({})\n\
             - its peak memory at most 200 MiB: {mib} MiB ({})\n",
            if full <= 3.0 { "met" } else { "not met" },
            if mib <= 200 { "met" } else { "not met" },
        ));
        if let Some(a) = &r.added {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let total = ms(a.took);
            s.push_str(&format!(
                "- recompute after one added certification at most 20 ms: {total:.0} ms ({}); \
                 through the daemon's engine: read the file {:.1} ms, split/hash/parse {:.1} ms, \
                 judge and build the graph {:.1} ms, search {:.1} ms, verdicts {:.1} ms; \
                 the engine process's peak RSS {} MiB\n",
                if total <= 20.0 { "met" } else { "not met" },
                ms(a.read),
                ms(a.parse),
                ms(a.graph),
                ms(a.search),
                ms(a.took.saturating_sub(a.read + a.parse + a.graph + a.search)),
                a.peak_kib / 1024,
            ));
        }
    }
    s
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

/// GnuPG's whole process from its row: import plus the full
/// `--check-trustdb` (separate processes), the larger of their peaks.
fn gpg_whole(r: &Row) -> Whole {
    Whole {
        tool: "gpg (--import, then --check-trustdb)",
        wall: r.load.zip(r.full).map(|(a, b)| a + b),
        check: r.full,
        peak_kib: r.whole_peak_kib,
    }
}

/// Child mode: load and the verdicts (fresh cache); prints the trusted count.
fn whole(args: &[String]) -> Result<()> {
    let path = PathBuf::from(&args[0]);
    let root = Fingerprint::from_hex(&args[1])?;
    let at = UNIX_EPOCH + Duration::from_secs(args[2].parse()?);
    let (ring, _) = Keyring::load(std::slice::from_ref(&path));
    let mut s = TrustSettings::new([root], at);
    s.depth = DEPTH;
    let r = evaluate_lazy(
        Arc::new(ring),
        &s,
        &StandardPolicy::new(),
        &VerifyCache::new(),
    );
    println!("{}", r.trusted_count());
    Ok(())
}

/// Child mode: load, then the daemon's computation ([`evaluate_lazy`]: the
/// verdicts, explanations on demand) with a cold cache, the same warm, and
/// the graph alone; prints seconds and counts. Verify = cold - warm (the
/// warm run does all the same work but the cryptography); search = warm.
/// With `eager` after the arguments: the full report instead (every key
/// explained: `wotgate trust list`), cold; prints its seconds and count.
fn measure(args: &[String]) -> Result<()> {
    let path = PathBuf::from(&args[0]);
    let root = Fingerprint::from_hex(&args[1])?;
    let at = UNIX_EPOCH + Duration::from_secs(args[2].parse()?);
    let eager = args.get(3).map(String::as_str) == Some("eager");
    let t = Instant::now();
    let (ring, problems) = Keyring::load(std::slice::from_ref(&path));
    let load = t.elapsed();
    phase("parsed");
    for p in problems {
        eprintln!("bench_wot: {p}");
    }
    let mut s = TrustSettings::new([root], at);
    s.depth = DEPTH;
    let p = StandardPolicy::new();
    if eager {
        let t = Instant::now();
        let r = evaluate_cached(&ring, &s, &p, &mut VerifyCache::new());
        let full = t.elapsed();
        phase("full report");
        let trusted = r.keys().filter(|k| k.status.is_trusted()).count();
        eprintln!(
            "bench_wot:   full report: verified {}, unknown issuer skipped {}, bad {}",
            r.stats.verified, r.stats.unknown_issuer, r.stats.bad_signatures
        );
        println!("{} {trusted}", full.as_secs_f64());
        return Ok(());
    }
    let ring = Arc::new(ring);
    let cache = VerifyCache::new();
    let t = Instant::now();
    let r = evaluate_lazy(ring.clone(), &s, &p, &cache);
    let trusted = r.trusted_count();
    let full = t.elapsed();
    phase("verdicts");
    let verified = r.stats.verified;
    drop(r);
    let t = Instant::now();
    let r2 = evaluate_lazy(ring.clone(), &s, &p, &cache);
    let trusted2 = r2.trusted_count();
    let warm = t.elapsed();
    if r2.stats.verified != 0 || trusted2 != trusted {
        bail!(
            "warm recompute verified {} signatures, trusts {trusted2} (cold: {trusted})",
            r2.stats.verified
        );
    }
    drop(r2);
    let certs = ring.len();
    let verify = full.saturating_sub(warm);
    eprintln!("bench_wot:   verified {verified} (of those a search reaches), trusted {trusted}");
    println!(
        "{} {} {} {} {} {trusted} {} {verified}",
        load.as_secs_f64(),
        verify.as_secs_f64(),
        warm.as_secs_f64(),
        full.as_secs_f64(),
        warm.as_secs_f64(),
        certs,
    );
    Ok(())
}

/// Child mode `--added`: the recompute after one added certification
/// through the daemon's engine (generated network only: its secret keys
/// are at hand). The root certifies key 21, which it had not; the keyring
/// file is written anew; an engine, filled from the file as it was (cold),
/// reads and evaluates the new one. Prints the seconds: total, read,
/// parse, graph, search.
fn added(args: &[String]) -> Result<()> {
    let path = PathBuf::from(&args[0]);
    let root = Fingerprint::from_hex(&args[1])?;
    let at = UNIX_EPOCH + Duration::from_secs(args[2].parse()?);
    let (ring, _) = Keyring::load(std::slice::from_ref(&path));
    let mut s = TrustSettings::new([root], at);
    s.depth = DEPTH;
    let (took, read, run) = added_certification(&path, ring, &s)?;
    println!(
        "{} {} {} {} {}",
        took.as_secs_f64(),
        read.as_secs_f64(),
        run.parse.as_secs_f64(),
        run.graph.as_secs_f64(),
        run.search.as_secs_f64()
    );
    Ok(())
}

/// `--added-only [RUNS]`: only the recompute after one added certification
/// on the generated network (made first when not cached), `RUNS` times
/// (default 3), each in a process of its own; no GnuPG.
fn added_only(args: &[String]) -> Result<()> {
    let runs: usize = args.first().map_or(Ok(3), |r| r.parse())?;
    let net = network::ring_path(&network::cache_dir()?, 10_000);
    let root = generated(&net, 10_000, 10)?;
    for _ in 0..runs {
        let (out, peak) = run_child("--added", &net, &root, REF, &[])?;
        println!("{} (peak {} MiB)", out.trim(), peak / 1024);
    }
    Ok(())
}

/// See [`added`]: the time of the recompute, of reading the file, and
/// what the engine says of its run.
fn added_certification(
    path: &Path,
    ring: Keyring,
    s: &TrustSettings,
) -> Result<(Duration, Duration, EngineRun)> {
    let root = network::secret_keys(path, 1)?.remove(0);
    let mut signer = root
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()?
        .into_keypair()?;
    let target = ring.full_certs().nth(21).context("key 21")?;
    let uid = target
        .userids()
        .next()
        .context("a User ID")?
        .userid()
        .clone();
    let sig = SignatureBuilder::new(SignatureType::GenericCertification)
        .set_signature_creation_time(at(T0 + 2 * 86_400))?
        .sign_userid_binding(&mut signer, target.primary_key().key(), &uid)?;
    let changed = target.insert_packets(sig)?.0;
    let mut out = Vec::new();
    for c in ring.full_certs() {
        if c.fingerprint() == changed.fingerprint() {
            changed.serialize(&mut out)?;
        } else {
            c.serialize(&mut out)?;
        }
    }
    let file = std::env::temp_dir().join(format!("wotgate-bench-added-{}.pgp", std::process::id()));
    std::fs::write(&file, &out)?;
    drop(out);
    // The daemon holds one keyring at a time: its engine's.
    drop(ring);
    let read = |p: &Path| -> Result<Vec<Named>> {
        Ok(vec![Named {
            origin: p.display().to_string(),
            bytes: std::fs::read(p)?,
        }])
    };
    let mut engine = TrustEngine::new(Arc::new(StandardPolicy::new()), VerifyCache::new());
    let mut sources = read(path)?;
    let before = engine.evaluate(&sources, s);
    let warm = engine.last_run().clone();
    let trusted_before = before.report.trusted_count();
    drop(before);
    // The new file is read into the last read's buffer (its pages are
    // mapped already), as a daemon that keeps it may do.
    let mut buf = std::mem::take(&mut sources[0].bytes);
    let t = Instant::now();
    buf.clear();
    let mut f = std::fs::File::open(&file)?;
    buf.reserve(f.metadata()?.len() as usize);
    std::io::Read::read_to_end(&mut f, &mut buf)?;
    let sources = vec![Named {
        origin: file.display().to_string(),
        bytes: buf,
    }];
    let read_took = t.elapsed();
    let cpu = process_cpu();
    let after = engine.evaluate(&sources, s);
    let trusted = after.report.trusted_count();
    let took = t.elapsed();
    let cpu = process_cpu() - cpu;
    let _ = std::fs::remove_file(&file);
    let run = engine.last_run();
    eprintln!(
        "bench_wot:   engine filled from the file (cold): parse {:.3} s, graph {:.3} s, search {:.3} s",
        warm.parse.as_secs_f64(),
        warm.graph.as_secs_f64(),
        warm.search.as_secs_f64()
    );
    eprintln!(
        "bench_wot:   one added certification through the engine: {:.1} ms = read {:.1} ms + split/hash/parse {:.1} ms ({} parsed, {} reused) + graph {:.1} ms ({} certificates judged before) + search {:.1} ms (verified {}) + verdicts; trusted {trusted_before} -> {trusted}; the evaluation used {:.1} ms of CPU (every thread of the process)",
        took.as_secs_f64() * 1e3,
        read_took.as_secs_f64() * 1e3,
        run.parse.as_secs_f64() * 1e3,
        run.parsed,
        run.reused,
        run.graph.as_secs_f64() * 1e3,
        run.judged_before,
        run.search.as_secs_f64() * 1e3,
        run.verified,
        cpu.as_secs_f64() * 1e3,
    );
    Ok((took, read_took, run.clone()))
}

/// `--gpg-diff VALIDITY`: on Debian's keyring (root and time as in the
/// benchmark), the keys GnuPG lists as fully or ultimately valid
/// (`VALIDITY`: lines "FINGERPRINT VALIDITY" from `gpg --list-keys
/// --with-colons` after `--check-trustdb` with the benchmark's options) that
/// wotgate does not trust, and the reverse, with wotgate's reason for each,
/// counted by reason.
fn gpg_diff(args: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(&args[0])?;
    let gpg: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, v)| *v == "f" || *v == "u")
        .map(|(f, _)| f.to_string())
        .collect();
    let (root, at) = debian_root_and_time()?;
    let (ring, _) = Keyring::load(&[PathBuf::from(DEBIAN)]);
    let mut s = TrustSettings::new([root], UNIX_EPOCH + Duration::from_secs(at));
    s.depth = DEPTH;
    let r = evaluate_cached(&ring, &s, &StandardPolicy::new(), &mut VerifyCache::new());
    let mut by_reason: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut ours = 0;
    for k in r.keys() {
        let f = k.fingerprint.to_hex();
        ours += usize::from(k.status.is_trusted());
        let why = match (&k.status, gpg.contains(&f)) {
            (st, false) if st.is_trusted() => "trusted by wotgate only".to_string(),
            (wotgate::wot::KeyStatus::Untrusted { reason }, true) => {
                let r = reason.to_string();
                // Group by kind: the text before the first fingerprint or colon.
                let kind = r.split([':', '(']).next().unwrap_or("").trim().to_string();
                format!("GnuPG only; wotgate: {kind}")
            }
            (st, true) if !st.is_trusted() => format!("GnuPG only; wotgate: {st:?}"),
            _ => continue,
        };
        by_reason.entry(why).or_default().push(f);
    }
    println!("GnuPG trusts {}, wotgate {ours}", gpg.len());
    for (why, keys) in &by_reason {
        println!(
            "{:5}  {why}  (e.g. {})",
            keys.len(),
            keys[..keys.len().min(3)].join(", ")
        );
    }
    Ok(())
}

/// This process's peak RSS so far, on stderr (where the memory goes).
fn phase(what: &str) {
    let hwm = vm_hwm_kib(std::process::id() as libc::pid_t);
    eprintln!("bench_wot:   peak RSS after {what}: {} MiB", hwm / 1024);
}

/// Our child process, without `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`: with
/// them every error sequoia makes and drops while parsing captures a
/// backtrace (measured: parse of the 10k network 3.0 s instead of 1.6 s),
/// which a deployed daemon does not do.
fn wotgate_child(exe: PathBuf) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

/// Spawns, waits with wait4 for the child's max RSS (KiB); returns stdout,
/// or None if it ran past `limit` (then it is killed). A non-zero exit fails.
fn run_limited(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Option<(String, u64)>> {
    let Some((out, peak, status)) = run_limited_status(cmd, stdin, limit)? else {
        return Ok(None);
    };
    if status != Some(0) {
        bail!("{cmd:?} failed (exit {status:?})");
    }
    Ok(Some((out, peak)))
}

/// [`run_limited`], returning the exit code (None: killed by a signal)
/// instead of failing on it.
fn run_limited_status(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Option<(String, u64, Option<i32>)>> {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if let Some(b) = stdin {
        child.stdin.take().unwrap().write_all(b)?;
    }
    drop(child.stdin.take());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: plain libc calls on our own child's pid with valid out-pointers.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Peak RSS from the child's own VmHWM, polled: wait4's ru_maxrss would
    // include this (large) parent's RSS, inherited at fork.
    let mut peak = 0u64;
    loop {
        peak = peak.max(vm_hwm_kib(pid));
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            bail!("wait4 on {cmd:?}: {}", std::io::Error::last_os_error());
        }
        if start.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            let _ = reader.join();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = reader.join().unwrap_or_default();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(Some((out, peak, code)))
}

/// CPU time (user and system) of every thread of this process so far: on a
/// shared machine it varies less than the wall clock.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn vm_hwm_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// This benchmark run again as a child in `mode` (`--measure`, `--whole`)
/// on one input: its output and peak RSS.
fn run_child(
    mode: &str,
    ring: &Path,
    root: &Fingerprint,
    at: u64,
    extra: &[&str],
) -> Result<(String, u64)> {
    let mut c = wotgate_child(std::env::current_exe()?);
    c.arg(mode)
        .arg(ring)
        .args([root.to_hex(), at.to_string()])
        .args(extra);
    run_measured(&mut c, None)
}

fn run_measured(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<(String, u64)> {
    run_limited(cmd, stdin, Duration::from_secs(24 * 3600))?.context("no time limit")
}

/// How long GnuPG may take per step before it is stopped and reported so.
/// 180 s: importing Debian's keyring took 99 s here (120 s left it too
/// little margin on a shared machine); the 10k network's import, which does
/// not finish, costs the run this long.
const GPG_LIMIT: Duration = Duration::from_secs(180);

/// A throw-away GnuPG home (its own keybox, `pubring.kbx`) at a fixed time.
struct Gpg {
    home: PathBuf,
    at: u64,
}

impl Gpg {
    /// A fresh, empty home: the keyring is then imported into its keybox
    /// (`gpg --import`), as people run GnuPG; not read in place as a legacy
    /// keyring (`--keyring FILE`), which earlier runs here did.
    fn new(at: u64) -> Result<Gpg> {
        let home = std::env::temp_dir().join(format!("wotgate-bench-gpg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Gpg { home, at })
    }

    /// `gpg` in this home at the reference time, batch, no trust database
    /// check of its own, and `args`: the import runs so, with GnuPG's
    /// default options (with `--weak-digest SHA1` it would drop every key
    /// whose User IDs have only SHA-1 self-signatures, 79 of Debian's 905:
    /// the trust computations then would not see the same keyring).
    fn base(&self, args: &[&str]) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(&self.home)
            .args([
                "--batch",
                "--no-tty",
                "--quiet",
                "--no-autostart",
                "--no-auto-check-trustdb",
            ])
            .arg(format!("--faked-system-time={}!", self.at))
            .args(args);
        c
    }

    /// [`Gpg::base`] with the PGP trust model, one complete certification,
    /// depth [`DEPTH`], SHA-1 weak, and `args`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.base(&[]);
        c.args([
            "--trust-model",
            "pgp",
            "--completes-needed",
            "1",
            "--weak-digest",
            "SHA1",
        ])
        .arg(format!("--max-cert-depth={DEPTH}"))
        .args(args);
        c
    }

    /// Removes the home.
    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Owner trust for `--import-ownertrust`: the root ultimate, everyone else full.
fn ownertrust(fprs: &[String], root: &Fingerprint) -> String {
    let mut trust = String::new();
    for f in fprs {
        trust.push_str(&format!(
            "{f}:{}:\n",
            if *f == root.to_hex() { 6 } else { 5 }
        ));
    }
    trust
}

/// The row of a GnuPG run stopped after [`GPG_LIMIT`] in `step` ("import"
/// or "check-trustdb"), with the import time if it finished.
fn gpg_stopped(
    step: &'static str,
    input: &str,
    certs: usize,
    load: Option<Duration>,
    peak_kib: u64,
) -> Row {
    eprintln!(
        "bench_wot: gpg {step} stopped after {} s (the limit per step); \
         the rest of its row is not measured",
        GPG_LIMIT.as_secs()
    );
    Row {
        input: input.into(),
        tool: GPG_TOOL,
        certs,
        load,
        verify: None,
        search: None,
        full: None,
        warm: None,
        added: None,
        trusted: 0,
        peak_kib,
        stopped: Some(step),
        whole_peak_kib: peak_kib,
    }
}

/// GnuPG over `ring`: import into a fresh keybox (timed), owner trust, then
/// a full trust database check, a warm one, and the keys it then lists as
/// fully or ultimately valid.
fn gpg_row(input: &str, ring: &Path, root: &Fingerprint, at: u64, certs: usize) -> Result<Row> {
    let gpg = Gpg::new(at)?;
    let t = Instant::now();
    let imported = run_limited_status(
        gpg.base(&["--import"]).arg(ring).stderr(Stdio::null()),
        None,
        GPG_LIMIT,
    )?;
    let import = t.elapsed();
    let Some((_, p0, code)) = imported else {
        gpg.remove();
        return Ok(gpg_stopped("import", input, certs, None, 0));
    };
    if code != Some(0) {
        // gpg exits 2 when it skipped any key or User ID (v3 keys, SHA-1
        // self-signatures under --weak-digest): what it kept is listed below.
        eprintln!("bench_wot:   gpg --import exited {code:?} (some keys or User IDs skipped)");
    }
    eprintln!("bench_wot:   gpg --import {:.3} s", import.as_secs_f64());
    let (listing, _) = run_measured(&mut gpg.cmd(&["--list-keys", "--with-colons"]), None)?;
    let fprs = primary_fprs(&listing);
    run_measured(
        gpg.cmd(&["--import-ownertrust"]).stderr(Stdio::null()),
        Some(ownertrust(&fprs, root).as_bytes()),
    )?;
    let t = Instant::now();
    let first = run_limited(
        gpg.cmd(&["--check-trustdb"]).stderr(Stdio::null()),
        None,
        GPG_LIMIT,
    )?;
    let full = t.elapsed();
    let Some((_, p2)) = first else {
        gpg.remove();
        return Ok(gpg_stopped(
            "check-trustdb",
            input,
            fprs.len(),
            Some(import),
            p0,
        ));
    };
    eprintln!(
        "bench_wot:   gpg --check-trustdb {:.3} s",
        full.as_secs_f64()
    );
    let t = Instant::now();
    let (_, p3) = run_measured(gpg.cmd(&["--check-trustdb"]).stderr(Stdio::null()), None)?;
    let warm = t.elapsed();
    let (listing, _) = run_measured(&mut gpg.cmd(&["--list-keys", "--with-colons"]), None)?;
    let trusted = listing
        .lines()
        .filter(|l| l.starts_with("pub:u:") || l.starts_with("pub:f:"))
        .count();
    gpg.remove();
    Ok(Row {
        input: input.into(),
        tool: GPG_TOOL,
        certs: fprs.len(),
        load: Some(import),
        verify: None,
        search: None,
        full: Some(full),
        warm: Some(warm),
        added: None,
        trusted,
        // The import's and the checks' peaks (the listings' are not counted).
        peak_kib: p0.max(p2).max(p3),
        stopped: None,
        whole_peak_kib: p0.max(p2),
    })
}

fn primary_fprs(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut want = false;
    for l in listing.lines() {
        let f: Vec<&str> = l.split(':').collect();
        match f[0] {
            "pub" => want = true,
            "fpr" if want => {
                out.push(f[9].to_string());
                want = false;
            }
            _ => {}
        }
    }
    out
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
    let mut out = Vec::new();
    for c in ring.full_certs() {
        if c.fingerprint() == victim.fingerprint() {
            victim.serialize(&mut out)?;
        } else {
            c.serialize(&mut out)?;
        }
    }
    std::fs::write(path, out)?;
    Ok(root)
}

/// Debian keyring: the root is the key that certified the most other keys
/// in it; the reference time is the keyring file's modification time.
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
        "`cargo xtask bench wot` (examples/bench_wot.rs): trust computed from one \
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
