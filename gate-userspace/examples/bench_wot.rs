//! Benchmark of the web-of-trust engine against `gpg --check-trustdb` on the
//! same inputs, in the same run: time and peak memory (not a timed test).
//!
//! Inputs: (a) a generated network of 10,000 certificates and 100,000
//! certifications (cached in the temp dir), (b) Debian's developer keyring
//! (/usr/share/keyrings/debian-keyring.gpg), (c) one certificate flooded with
//! 100,000 certifications by keys not in the keyring. For each: load, a full
//! computation (cold verification cache), and a recompute with nothing
//! changed (warm cache). Peak memory is the measured process's max RSS.
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
use wotgate::wot::{evaluate_cached, Keyring, TrustSettings, VerifyCache};

const DEBIAN: &str = "/usr/share/keyrings/debian-keyring.gpg";
const DEPTH: usize = 2;
const GPG_TOOL: &str = "gpg 2.2 --check-trustdb (pgp, max-cert-depth 2)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        return measure(&args[1..]);
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

    if Path::new(DEBIAN).exists() {
        let (root, at) = debian_root_and_time()?;
        rows.extend(compare("debian-keyring.gpg", Path::new(DEBIAN), &root, at)?);
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

    let table = render(&rows);
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
    load: Option<Duration>,
    /// None: stopped at the time limit.
    full: Option<Duration>,
    warm: Option<Duration>,
    trusted: usize,
    peak_kib: u64,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| input | tool | certs | load / import | full compute | recompute, nothing changed | trusted keys | peak RSS |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} MiB |\n",
            r.input,
            r.tool,
            r.certs,
            r.load.map(secs).unwrap_or_else(|| "in place".into()),
            r.full
                .map(secs)
                .unwrap_or_else(|| format!("stopped after {} s", GPG_LIMIT.as_secs())),
            r.warm.map(secs).unwrap_or_else(|| "n/a".into()),
            r.trusted,
            r.peak_kib / 1024
        ));
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
    let exe = std::env::current_exe()?;
    let (out, peak) = run_measured(
        Command::new(exe).args([
            "--measure",
            ring.to_str().unwrap(),
            &root.to_hex(),
            &at.to_string(),
        ]),
        None,
    )?;
    let v: Vec<f64> = out
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    let ours = Row {
        input: input.into(),
        tool: "wotgate (certifications, depth 2)",
        certs: v[4] as usize,
        load: Some(Duration::from_secs_f64(v[0])),
        full: Some(Duration::from_secs_f64(v[1])),
        warm: Some(Duration::from_secs_f64(v[2])),
        trusted: v[3] as usize,
        peak_kib: peak,
    };
    Ok(vec![ours])
}

/// Child mode: load, full compute, warm recompute; prints seconds and counts.
fn measure(args: &[String]) -> Result<()> {
    let path = PathBuf::from(&args[0]);
    let root = Fingerprint::from_hex(&args[1])?;
    let at = UNIX_EPOCH + Duration::from_secs(args[2].parse()?);
    let t = Instant::now();
    let (ring, problems) = Keyring::load(std::slice::from_ref(&path));
    let load = t.elapsed();
    for p in problems {
        eprintln!("bench_wot: {p}");
    }
    let mut s = TrustSettings::new([root], at);
    s.depth = DEPTH;
    let p = StandardPolicy::new();
    let mut cache = VerifyCache::new();
    let t = Instant::now();
    let r = evaluate_cached(&ring, &s, &p, &mut cache);
    let full = t.elapsed();
    let t = Instant::now();
    let r2 = evaluate_cached(&ring, &s, &p, &mut cache);
    let warm = t.elapsed();
    if r2.stats.verified != 0 {
        bail!("warm recompute verified {} signatures", r2.stats.verified);
    }
    let trusted = r.keys().filter(|k| k.status.is_trusted()).count();
    eprintln!(
        "bench_wot:   verified {}, unknown issuer skipped {}, bad {}",
        r.stats.verified, r.stats.unknown_issuer, r.stats.bad_signatures
    );
    println!(
        "{} {} {} {trusted} {}",
        load.as_secs_f64(),
        full.as_secs_f64(),
        warm.as_secs_f64(),
        ring.len()
    );
    Ok(())
}

/// Spawns, waits with wait4 for the child's max RSS (KiB); returns stdout,
/// or None if it ran past `limit` (then it is killed).
fn run_limited(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Option<(String, u64)>> {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (status {status})");
    }
    Ok(Some((out, peak)))
}

fn vm_hwm_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn run_measured(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<(String, u64)> {
    run_limited(cmd, stdin, Duration::from_secs(24 * 3600))?.context("no time limit")
}

/// How long GnuPG may take per step before it is stopped and reported so.
const GPG_LIMIT: Duration = Duration::from_secs(120);

/// A throw-away GnuPG home reading a copy of one keyring at a fixed time.
struct Gpg {
    home: PathBuf,
    ring: PathBuf,
    at: u64,
}

impl Gpg {
    /// A fresh home holding a copy of `ring`. GnuPG reads the copy in place
    /// as a legacy keyring: importing 10,000 certificates into a keybox took
    /// over 10 minutes here.
    fn new(ring: &Path, at: u64) -> Result<Gpg> {
        let home = std::env::temp_dir().join(format!("wotgate-bench-gpg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let copy = home.join("ring.gpg");
        std::fs::copy(ring, &copy)?;
        Ok(Gpg {
            home,
            ring: copy,
            at,
        })
    }

    /// `gpg` with the PGP trust model, one complete certification, depth
    /// [`DEPTH`], SHA-1 weak, and `args`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(&self.home)
            .arg("--no-default-keyring")
            .arg("--keyring")
            .arg(&self.ring)
            .args([
                "--batch",
                "--no-tty",
                "--quiet",
                "--no-autostart",
                "--no-auto-check-trustdb",
            ])
            .arg(format!("--faked-system-time={}!", self.at))
            .args([
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

/// The row of a GnuPG run stopped after [`GPG_LIMIT`] in step `what`.
fn gpg_stopped(what: &str, input: &str, certs: usize, peak_kib: u64) -> Row {
    eprintln!(
        "bench_wot: gpg {what} stopped after {} s",
        GPG_LIMIT.as_secs()
    );
    Row {
        input: input.into(),
        tool: GPG_TOOL,
        certs,
        load: None,
        full: None,
        warm: None,
        trusted: 0,
        peak_kib,
    }
}

/// GnuPG's trust database over `ring`: a full check, a warm one, and the
/// keys it then lists as fully or ultimately valid.
fn gpg_row(input: &str, ring: &Path, root: &Fingerprint, at: u64, certs: usize) -> Result<Row> {
    let gpg = Gpg::new(ring, at)?;
    let Some((listing, p1)) = run_limited(
        &mut gpg.cmd(&["--list-keys", "--with-colons"]),
        None,
        GPG_LIMIT,
    )?
    else {
        return Ok(gpg_stopped("--list-keys", input, certs, 0));
    };
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
        return Ok(gpg_stopped("--check-trustdb", input, certs, p1));
    };
    let t = Instant::now();
    let (_, p3) = run_measured(gpg.cmd(&["--check-trustdb"]).stderr(Stdio::null()), None)?;
    let warm = t.elapsed();
    let (listing, p4) = run_measured(&mut gpg.cmd(&["--list-keys", "--with-colons"]), None)?;
    let trusted = listing
        .lines()
        .filter(|l| l.starts_with("pub:u:") || l.starts_with("pub:f:"))
        .count();
    gpg.remove();
    Ok(Row {
        input: input.into(),
        tool: GPG_TOOL,
        certs: certs.max(fprs.len()),
        load: None,
        full: Some(full),
        warm: Some(warm),
        trusted,
        peak_kib: p1.max(p2).max(p3).max(p4),
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
    let victim = ring.certs().nth(1).context("a second key")?.clone();
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
    for c in ring.certs() {
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
    for c in ring.certs() {
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
         gpg reads the keyring file in place (no import); its recompute is a second `--check-trustdb`.",
        &format!("\n### {}\n\n{table}", record::machine()),
    )?;
    Ok(())
}
