//! `cargo xtask deb`: the Debian package (cargo-deb over the release binary,
//! with man pages and completions that binary generates from its clap definitions).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{build_release, run, setup};

/// Builds the release binary, generates the man pages and completions, and
/// packages them with cargo-deb; returns the path of the `.deb`.
pub fn deb() -> Result<PathBuf> {
    setup::setup()?;
    setup::ensure_cargo_deb()?;
    let wotgate = build_release()?;
    let release = wotgate.parent().expect("target/release");
    let generated = release.join("deb-generated");
    // Stale pages of a removed command must not be packaged.
    if generated.exists() {
        std::fs::remove_dir_all(&generated)
            .with_context(|| format!("removing {}", generated.display()))?;
    }
    for what in ["man", "completions"] {
        let mut c = Command::new(&wotgate);
        c.args(["generate", what]).arg(generated.join(what));
        run(c)?;
    }
    // Debian policy: man pages compressed (-n: no name or time inside, so
    // the package is reproducible).
    let man = generated.join("man");
    for page in std::fs::read_dir(&man).with_context(|| format!("reading {}", man.display()))? {
        let mut c = Command::new("gzip");
        c.args(["-9", "-n", "-f"]).arg(page?.path());
        run(c)?;
    }
    let out = release.parent().expect("target directory").join("debian");
    let mut c = Command::new(setup::cargo_bin().join("cargo-deb"));
    c.current_dir(crate::root())
        .args(["-p", "gate-userspace", "--no-build", "--output"])
        .arg(&out)
        .env("PATH", setup::path_with_cargo_bin());
    let output = c
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo-deb")?;
    if !output.status.success() {
        bail!("cargo-deb failed ({})", output.status);
    }
    // cargo-deb prints the package's path as its last line.
    let printed = String::from_utf8_lossy(&output.stdout);
    let path = printed
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo-deb printed no package path: {printed:?}"))?;
    if !Path::new(&path).is_file() {
        bail!("cargo-deb named {} but it does not exist", path.display());
    }
    println!("{}", path.display());
    Ok(path)
}
