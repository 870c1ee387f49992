//! GnuPG's side: a fresh home, the keyring imported, ownertrust, then
//! `--check-trustdb` full and warm, each step bounded in time.

use super::*;

/// GnuPG's whole process from its row: import plus the full
/// `--check-trustdb` (separate processes), the larger of their peaks.
pub(crate) fn gpg_whole(r: &Row) -> Whole {
    Whole {
        tool: "gpg (--import, then --check-trustdb)",
        wall: r.load.zip(r.full).map(|(a, b)| a + b),
        check: r.full,
        peak_kib: r.whole_peak_kib,
    }
}

/// How long GnuPG may take per step before it is stopped and reported so.
/// 180 s: importing Debian's keyring took 99 s here (120 s left it too
/// little margin on a shared machine); the 10k network's import, which does
/// not finish, costs the run this long.
pub(crate) const GPG_LIMIT: Duration = Duration::from_secs(180);

/// A throw-away GnuPG home (its own keybox, `pubring.kbx`) at a fixed time.
pub(crate) struct Gpg {
    pub(crate) home: PathBuf,
    pub(crate) at: u64,
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
pub(crate) fn ownertrust(fprs: &[String], root: &Fingerprint) -> String {
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
pub(crate) fn gpg_stopped(
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
pub(crate) fn gpg_row(
    input: &str,
    ring: &Path,
    root: &Fingerprint,
    at: u64,
    certs: usize,
) -> Result<Row> {
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

pub(crate) fn primary_fprs(listing: &str) -> Vec<String> {
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
