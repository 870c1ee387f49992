//! Benchmark (not a timed test): the cost of per-recipient webs of trust
//! beside the single system web, over one generated network, in one run.
//!
//! Input: the network of `bench_wot` (10,000 certificates, 100,000
//! certifications; `common/network.rs`, cached in the temp dir). The first
//! `--statements N` keys (default 2,000) each sign one statement for their
//! own domain `ki.bench.example` with one /48 (`2a00:0:i::/48`).
//!
//! Cases, each in a child process of this example (its own peak RSS: the
//! child's VmHWM at its end), repeated `--reps R` times (default 2, interleaved), medians:
//! - single web: what the refresh does today (`apply::prepare_gathered`):
//!   parse the keyring, evaluate the system web (the network's root key,
//!   depth 2, cold verification cache), judge the statements, plan, kernel set;
//! - W webs (default 100 and 1,000: the system web and W-1 recipient webs of
//!   1-3 random roots at depth 2, seeded; every fourth also refuses 1-3
//!   participants, one of whose certifiers it adds as a root so the refusal
//!   bites): parse, one verified graph (`SharedGraph::build`, cold cache),
//!   `Webs::judge` (one signature pass, then every web's search and
//!   acceptance), `Webs::union_set` (the gate's set) and `WebIndex::build`
//!   (the policy server's index). `Webs::judge`'s per-web loop, and each
//!   web's `standings` and `trusted_count` alone, are timed again afterwards
//!   (outside the refresh) to split `Webs::judge`.
//!
//! Reading the files (keyring bytes, statements) is not timed.
//!
//! Run: `cargo xtask bench webs [--record] [-- --statements N --reps R --webs 100,1000]`
//! or `cargo run --release -p gate-userspace --example bench_webs -- [--record] ...`
//! (`--record` appends the tables to BENCHMARKS.md under `## Per-recipient webs`).

#[path = "common/network.rs"]
mod network;
#[path = "common/record.rs"]
mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ipnet::Ipv6Net;
use network::{at, REF};
use rand::{rngs::StdRng, Rng, SeedableRng};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle};
use wotgate::apply::prepare;
use wotgate::plan::TestingPolicy;
use wotgate::policy::webs::WebIndex;
use wotgate::source::Named;
use wotgate::statement::{
    signed, AcceptRules, Acceptor, CertLookup, Mode, SerialState, SignerTrust, Statement,
    TrustView, WotView,
};
use wotgate::webs::{Webs, SYSTEM_WEB};
use wotgate::wot::{Keyring, SharedGraph, Standing, TrustSettings, VerifyCache};

const KEYS: usize = 10_000;
const CERTIFICATIONS_PER_KEY: usize = 10;
const DEPTH: usize = 2;
const DAY: u64 = 86_400;

fn main() -> Result<()> {
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        return measure(&args[1..]);
    }
    let record = args.iter().any(|a| a == "--record");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let statements: usize = opt("--statements").map_or(Ok(2_000), |v| v.parse())?;
    let reps: usize = opt("--reps").map_or(Ok(2), |v| v.parse())?;
    let many: Vec<usize> = opt("--webs")
        .unwrap_or_else(|| "100,1000".into())
        .split(',')
        .map(|w| w.trim().parse())
        .collect::<Result<_, _>>()?;
    ensure!((1..=KEYS).contains(&statements), "--statements 1..={KEYS}");
    ensure!(
        reps >= 1 && many.iter().all(|&w| w >= 2),
        "--reps >= 1, --webs >= 2"
    );

    let machine = record::machine();
    let dir = network::cache_dir()?;
    let net = network::ring_path(&dir, KEYS);
    let root = network::generated(&net, KEYS, CERTIFICATIONS_PER_KEY)?;
    let st_dir = signed_statements(&dir, &net, statements)?;

    let cases: Vec<usize> = std::iter::once(1).chain(many).collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
    for rep in 0..reps {
        for (c, &webs) in cases.iter().enumerate() {
            eprintln!(
                "bench_webs: {webs} web(s), repetition {} of {reps} ...",
                rep + 1
            );
            runs[c].push(child(webs, &net, &st_dir, &root, statements)?);
        }
    }
    let rows: Vec<Row> = cases
        .iter()
        .zip(&runs)
        .map(|(&webs, r)| Row::median(webs, r))
        .collect();
    let tables = render(&rows, statements, reps);
    print!("{tables}");
    if record {
        record::record(
            "## Per-recipient webs",
            "`cargo xtask bench webs` (examples/bench_webs.rs): one refresh over the generated \
             network of 10,000 certificates and 100,000 certifications, with N participants each \
             signing one statement for its own domain: the single system web as \
             `prepare_gathered` computes it today, beside W webs (the system's and W-1 \
             recipients' of 1-3 random roots, depth 2, a quarter with refusals) through \
             `Webs::judge`, `Webs::union_set` and `WebIndex::build`. Each case in its own \
             process (peak RSS from VmHWM), cold verification cache, medians of the \
             repetitions; ratios against the single web of the same run.",
            &format!("\n### {machine}\n\n{tables}"),
        )?;
    }
    Ok(())
}

/// One child's figures (seconds, counts, KiB).
#[derive(Clone, Debug, Default)]
struct Run {
    v: HashMap<String, f64>,
    peak_kib: u64,
}

impl Run {
    fn get(&self, k: &str) -> f64 {
        self.v.get(k).copied().unwrap_or(f64::NAN)
    }
}

/// Runs the measuring child for `webs` webs (1: the single-web path).
fn child(webs: usize, net: &Path, st_dir: &Path, root: &Fingerprint, n: usize) -> Result<Run> {
    let exe = std::env::current_exe()?;
    let o = Command::new(exe)
        .args([
            "--measure",
            &webs.to_string(),
            net.to_str().context("path")?,
            st_dir.to_str().context("path")?,
            &root.to_hex(),
            &n.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()?;
    ensure!(o.status.success(), "the --measure {webs} child failed");
    let v: HashMap<String, f64> = String::from_utf8(o.stdout)?
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| Ok((k.to_string(), v.parse::<f64>()?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let peak_kib = v.get("peak_kib").copied().unwrap_or(0.0) as u64;
    Ok(Run { v, peak_kib })
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// A case's medians over its runs.
struct Row {
    webs: usize,
    /// Median of each timed figure; counts from the first run (they are
    /// the same in every run).
    m: HashMap<String, f64>,
    peak_mib: f64,
}

impl Row {
    fn median(webs: usize, runs: &[Run]) -> Row {
        let mut m = HashMap::new();
        for k in runs[0].v.keys() {
            let x = if k.starts_with("t_") {
                median(runs.iter().map(|r| r.get(k)).collect())
            } else {
                runs[0].get(k)
            };
            m.insert(k.clone(), x);
        }
        let peak_mib = median(runs.iter().map(|r| r.peak_kib as f64 / 1024.0).collect());
        Row { webs, m, peak_mib }
    }

    fn get(&self, k: &str) -> f64 {
        self.m.get(k).copied().unwrap_or(f64::NAN)
    }
}

fn s(x: f64) -> String {
    format!("{x:.3} s")
}

fn render(rows: &[Row], statements: usize, reps: usize) -> String {
    let single = &rows[0];
    let mut t = format!(
        "{statements} statements (one per participant), {KEYS} certificates, medians of {reps} run(s).\n\n\
         | case | webs | statements accepted (system / union) | union set entries | refresh time | × single | peak RSS | × single |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let case = if r.webs == 1 {
            "single web (`prepare_gathered` today)".to_string()
        } else {
            format!("{} webs (`Webs::judge` + union + index)", r.webs)
        };
        t.push_str(&format!(
            "| {case} | {} | {} / {} | {} | {} | {:.2} | {:.0} MiB | {:.2} |\n",
            r.webs,
            r.get("system") as usize,
            r.get("union") as usize,
            r.get("entries") as usize,
            s(r.get("t_total")),
            r.get("t_total") / single.get("t_total"),
            r.peak_mib,
            r.peak_mib / single.peak_mib,
        ));
    }
    t.push_str(&format!(
        "\nWhere the time goes. Single web: parse {}, trust evaluation (verification + search) {}, \
         judge + plan + set {}.\n\n\
         | webs | parse | graph (verification) | `Webs::judge` | of which signature pass¹ | of which per-web searches + acceptance² | per web² | union set | web index | `standings` per web³ | `trusted_count` per web³ |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        s(single.get("t_parse")),
        s(single.get("t_trust")),
        s(single.get("t_judge")),
    ));
    for r in &rows[1..] {
        let per_web = r.get("t_perweb");
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} ms | {} | {} | {:.2} ms | {:.2} ms |\n",
            r.webs,
            s(r.get("t_parse")),
            s(r.get("t_graph")),
            s(r.get("t_judge")),
            s(r.get("t_judge") - per_web),
            s(per_web),
            per_web * 1e3 / r.webs as f64,
            s(r.get("t_union")),
            s(r.get("t_index")),
            r.get("t_standings") * 1e3 / r.webs as f64,
            r.get("t_count") * 1e3 / r.webs as f64,
        ));
    }
    t.push_str(
        "\n¹ `Webs::judge` − its per-web loop. ² `Webs::judge`'s loop over the webs \
         (`SharedGraph::standings_and_count`, one search per web, then `Acceptor::accept_in`), \
         run again alone after the refresh. ³ `SharedGraph::standings` of the statements' signers \
         and `SharedGraph::trusted_count`, each a search of its own, run again alone after the \
         refresh.\n",
    );
    for r in &rows[1..] {
        t.push_str(&format!(
            "\n- {} webs: {:.0} keys trusted per web on average; {} (web, statement) denials of \
             refused signers.",
            r.webs,
            r.get("trusted_mean"),
            r.get("denies") as usize,
        ));
    }
    t.push_str(
        "\n- The W-web refresh's acceptor serves certificates only; `prepare_gathered` with \
         recipient webs also evaluates the system web alone (its report, sharing the \
         verification cache with the graph).\n",
    );
    t
}

/// Participant `i`'s statement: its own domain, one /48.
fn statement(i: usize) -> Statement {
    let prefix: Ipv6Net = format!("2a00:{:x}:{:x}::/48", i >> 16, i & 0xffff)
        .parse()
        .expect("prefix");
    Statement {
        domain: network::domain(i),
        serial: 1,
        not_before: REF - DAY,
        not_after: REF + 30 * DAY,
        mode: Mode::Enforce,
        prefixes: vec![prefix],
        tls_key_sha256: vec![],
    }
}

/// The first `n` keys' signed statements, one file each (`ki.asc`), cached
/// in `dir`; returns their directory.
fn signed_statements(dir: &Path, net: &Path, n: usize) -> Result<PathBuf> {
    let out = dir.join(format!("statements-v2-{n}"));
    let done = out.join(".complete");
    if done.exists() {
        return Ok(out);
    }
    eprintln!("bench_webs: signing {n} statements ...");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let p = StandardPolicy::new();
    let when = at(REF - 3600);
    for (i, tsk) in network::secret_keys(net, n)?.iter().enumerate() {
        let kp = signed::signing_keypair(tsk, &p, when, None)?;
        let bytes = signed::sign(statement(i).to_body().as_bytes(), kp, when)?;
        std::fs::write(out.join(format!("k{i}.asc")), bytes)?;
    }
    std::fs::write(done, b"")?;
    Ok(out)
}

fn read_statements(dir: &Path) -> Result<Vec<Named>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "asc"));
    files.sort();
    files
        .into_iter()
        .map(|f| {
            Ok(Named {
                bytes: std::fs::read(&f)?,
                origin: f.display().to_string(),
            })
        })
        .collect()
}

/// The acceptor's view in the many-web path: certificates only (each web's
/// standings decide trust; `Acceptor::candidates` asks no verdict).
struct CertsOnly<'k>(&'k Keyring);

impl CertLookup for CertsOnly<'_> {
    fn certs_for(&self, issuer: &KeyHandle) -> Vec<&Cert> {
        self.0.lookup(issuer)
    }
}

impl TrustView for CertsOnly<'_> {
    fn signer(&self, _: &Fingerprint) -> SignerTrust {
        SignerTrust::Untrusted {
            reason: "decided per web".into(),
        }
    }
}

fn system(root: &Fingerprint) -> TrustSettings {
    let mut s = TrustSettings::new([root.clone()], at(REF));
    s.depth = DEPTH;
    s
}

/// The network's keys by index `i` (from their User IDs).
fn keys_by_index(ring: &Keyring) -> Result<Vec<Fingerprint>> {
    let mut out = vec![None; ring.len()];
    for c in ring.certs() {
        let uid = c.userids().next().context("a User ID")?;
        let uid = String::from_utf8_lossy(uid.userid().value()).to_string();
        let i: usize = uid
            .split_once("<postmaster@k")
            .and_then(|(_, r)| r.split_once('.'))
            .context("a network User ID")?
            .0
            .parse()?;
        out[i] = Some(c.fingerprint());
    }
    out.into_iter()
        .collect::<Option<Vec<_>>>()
        .context("keys 0..n")
}

/// The system web and `webs - 1` recipient webs (seeded, so 100 webs are
/// the first 100 of 1,000).
fn web_defs(
    ring: &Keyring,
    root: &Fingerprint,
    participants: usize,
    webs: usize,
) -> Result<Vec<(String, TrustSettings)>> {
    let keys = keys_by_index(ring)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut defs = vec![(SYSTEM_WEB.to_string(), system(root))];
    for w in 1..webs {
        let n = rng.gen_range(1..=3usize);
        let mut roots: Vec<Fingerprint> = (0..n)
            .map(|_| keys[rng.gen_range(0..keys.len())].clone())
            .collect();
        let mut refuse = Vec::new();
        if w % 4 == 0 {
            for _ in 0..rng.gen_range(1..=3) {
                refuse.push(keys[rng.gen_range(0..participants)].clone());
            }
            // A certifier of the first refused key as a root: refused at depth 1.
            let c = ring.full_cert(&refuse[0]).context("refused key")?;
            let mut certifier = None;
            for u in c.userids() {
                for sig in u.certifications() {
                    for h in sig.get_issuers() {
                        if certifier.is_none() {
                            certifier = ring.lookup(&h).first().map(|c| c.fingerprint());
                        }
                    }
                }
            }
            roots.push(certifier.context("a certifier")?);
        }
        let mut s = TrustSettings::new(roots, at(REF));
        s.depth = DEPTH;
        s.refuse.extend(refuse);
        defs.push((format!("user{w}@mx.example"), s));
    }
    Ok(defs)
}

/// Child mode: `--measure WEBS RING STATEMENTS_DIR ROOT N`; prints
/// `key=value` figures (seconds `t_*`, counts).
fn measure(args: &[String]) -> Result<()> {
    let webs: usize = args[0].parse()?;
    let ring_file = PathBuf::from(&args[1]);
    let statements = read_statements(Path::new(&args[2]))?;
    let root = Fingerprint::from_hex(&args[3])?;
    let participants: usize = args[4].parse()?;
    ensure!(statements.len() == participants, "statement files");
    let sources = vec![Named {
        bytes: std::fs::read(&ring_file)?,
        origin: ring_file.display().to_string(),
    }];
    let p = StandardPolicy::new();
    let rules = AcceptRules::default();
    let now = at(REF);
    let mut out: Vec<(&str, f64)> = Vec::new();
    let secs = |d: Duration| d.as_secs_f64();

    let t = Instant::now();
    let (ring, problems) = Keyring::parse(&sources);
    let parse = t.elapsed();
    ensure!(problems.is_empty(), "keyring problems: {problems:?}");
    out.push(("t_parse", secs(parse)));

    if webs == 1 {
        let settings = system(&root);
        let t = Instant::now();
        let mut cache = VerifyCache::new();
        let (view, missing) = WotView::evaluate_cached(ring, &settings, &p, &mut cache);
        let trust = t.elapsed();
        ensure!(missing.is_empty(), "{missing:?}");
        let t = Instant::now();
        let prepared = prepare(
            &rules,
            TestingPolicy::Allow,
            &view,
            &statements,
            SerialState::default(),
            &p,
            now,
            vec![],
        )?;
        let judge = t.elapsed();
        let accepted = prepared
            .judgements
            .iter()
            .filter(|j| j.result.is_ok())
            .count();
        let trusted = view.report.keys().filter(|k| k.status.is_trusted()).count();
        out.extend([
            ("t_trust", secs(trust)),
            ("t_judge", secs(judge)),
            ("t_total", secs(parse + trust + judge)),
            ("system", accepted as f64),
            ("union", accepted as f64),
            ("entries", prepared.set.len() as f64),
            ("trusted", trusted as f64),
        ]);
        std::hint::black_box(&prepared);
    } else {
        let defs = web_defs(&ring, &root, participants, webs)?;
        let t = Instant::now();
        let mut cache = VerifyCache::new();
        let graph = SharedGraph::build(&ring, &p, now, &defs[0].1.limits, &mut cache);
        let build = t.elapsed();
        let view = CertsOnly(&ring);
        let state = SerialState::default();
        let acceptor = Acceptor {
            rules: &rules,
            trust: &view,
            policy: &p,
            at: now,
            state: &state,
        };
        let files = || {
            statements
                .iter()
                .map(|n| (n.origin.as_str(), n.bytes.as_slice()))
        };
        let t = Instant::now();
        let judged = Webs::judge(&acceptor, files(), &graph, &defs, TestingPolicy::Allow);
        let judge = t.elapsed();
        let t = Instant::now();
        let set = judged.union_set()?;
        let union = t.elapsed();
        let t = Instant::now();
        let index = WebIndex::build(&judged, None);
        let idx = t.elapsed();
        ensure!(index.len() == webs, "index of {} webs", index.len());

        // Outside the refresh: `Webs::judge`'s per-web loop again (searches
        // and acceptance verify no signature, so a second run costs what the
        // first did; a second signature pass would not: sequoia caches
        // verifications), and each web's two library calls alone.
        let candidates = acceptor.candidates(files());
        let mut signers: Vec<Fingerprint> = candidates.iter().map(|c| c.signer.clone()).collect();
        signers.sort();
        signers.dedup();
        let t = Instant::now();
        for (_, s) in &defs {
            let (standings, trusted) = graph.standings_and_count(s, &signers);
            let standing: HashMap<&Fingerprint, Standing> = signers.iter().zip(standings).collect();
            std::hint::black_box((
                acceptor.accept_in(&candidates, |f| standing.get(f)),
                trusted,
            ));
        }
        let perweb = t.elapsed();
        let t = Instant::now();
        for (_, s) in &defs {
            std::hint::black_box(graph.standings(s, &signers));
        }
        let standings = t.elapsed();
        let t = Instant::now();
        let mut trusted = 0;
        for (_, s) in &defs {
            trusted += graph.trusted_count(s);
        }
        let count = t.elapsed();
        out.extend([
            ("t_graph", secs(build)),
            ("t_judge", secs(judge)),
            ("t_union", secs(union)),
            ("t_index", secs(idx)),
            ("t_total", secs(parse + build + judge + union + idx)),
            ("t_perweb", secs(perweb)),
            ("t_standings", secs(standings)),
            ("t_count", secs(count)),
            ("system", judged.roles[0].len() as f64),
            ("union", judged.candidates.len() as f64),
            ("entries", set.len() as f64),
            ("candidates", candidates.len() as f64),
            (
                "denies",
                judged
                    .roles
                    .iter()
                    .flatten()
                    .filter(|r| r.depth.is_none())
                    .count() as f64,
            ),
            ("trusted_mean", trusted as f64 / webs as f64),
        ]);
        std::hint::black_box((&set, &index));
    }
    out.push(("peak_kib", vm_hwm_kib() as f64));
    let line: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("bench_webs:   {}", line.join(" "));
    println!("{}", line.join(" "));
    Ok(())
}

/// This process's peak RSS so far, in KiB (VmHWM).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
