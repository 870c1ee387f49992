//! The child processes' modes (`--whole`, `--measure`, `--added`,
//! `--added-only`, `--gpg-diff`): what each measures in a process of its own.

use super::*;

/// A child mode's arguments `PATH ROOT TIME`: the keyring, and the
/// benchmark's settings (that root, depth [`DEPTH`], that reference time).
fn child_args(args: &[String]) -> Result<(PathBuf, TrustSettings)> {
    let [path, root, time, ..] = args else {
        bail!("a child mode takes PATH ROOT-FINGERPRINT UNIX-TIME, got {args:?}");
    };
    let at = UNIX_EPOCH + Duration::from_secs(time.parse()?);
    let mut s = TrustSettings::new([Fingerprint::from_hex(root)?], at);
    s.depth = DEPTH;
    Ok((PathBuf::from(path), s))
}

/// Child mode: load and the verdicts (fresh cache); prints the trusted count.
pub(crate) fn whole(args: &[String]) -> Result<()> {
    let (path, s) = child_args(args)?;
    let (ring, _) = Keyring::load(std::slice::from_ref(&path));
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
pub(crate) fn measure(args: &[String]) -> Result<()> {
    let (path, s) = child_args(args)?;
    let eager = args.get(3).map(String::as_str) == Some("eager");
    let t = Instant::now();
    let (ring, problems) = Keyring::load(std::slice::from_ref(&path));
    let load = t.elapsed();
    phase("parsed");
    for p in problems {
        eprintln!("bench_wot: {p}");
    }
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
pub(crate) fn added(args: &[String]) -> Result<()> {
    let (path, s) = child_args(args)?;
    let (ring, _) = Keyring::load(std::slice::from_ref(&path));
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
pub(crate) fn added_only(args: &[String]) -> Result<()> {
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
pub(crate) fn added_certification(
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
    let out = with_replaced(&ring, &changed)?;
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
pub(crate) fn gpg_diff(args: &[String]) -> Result<()> {
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
pub(crate) fn phase(what: &str) {
    let hwm = vm_hwm_kib(std::process::id() as libc::pid_t);
    eprintln!("bench_wot:   peak RSS after {what}: {} MiB", hwm / 1024);
}
