//! Installs the prerequisites on a Debian machine, or says exactly what is
//! missing elsewhere. Safe to run any number of times.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

/// Debian packages the build and the tests need, and why.
const PACKAGES: &[(&str, &str)] = &[
    ("llvm-22-dev", "bpf-linker links against LLVM 22"),
    ("rustc-web", "Debian's rustc 1.96 builds the eBPF crate"),
    ("cargo-web", "cargo for Debian's rustc"),
    (
        "libstd-rust-web-dev-bpf",
        "prebuilt core for bpfel-unknown-none",
    ),
    (
        "libclang-dev",
        "bindgen for sequoia-openpgp's crypto backend",
    ),
    ("nettle-dev", "sequoia-openpgp's crypto backend"),
    ("pkg-config", "finding nettle"),
    ("iproute2", "network namespaces and veth pairs in tests"),
    ("util-linux", "nsenter in tests"),
    ("gnupg", "the independent web-of-trust oracle in tests"),
    // The Postfix tests run private instances (`postfix -c DIR start` inside
    // a test namespace, their own main.cf and master.cf) and never the
    // system-wide one, which is not ours to run on a developer's machine:
    // setup preseeds debconf with "No configuration" (no /etc/postfix/main.cf,
    // so the package's scripts neither configure nor start it; the tests run
    // without that file), and on machines without an init system (like this
    // project's) nothing starts services anyway.
    (
        "postfix",
        "the real MTA of the Postfix policy tests and the demo",
    ),
    (
        "swaks",
        "the SMTP client of the Postfix policy tests and the demo",
    ),
    // Recommended by swaks, so not pulled in with --no-install-recommends:
    // without them swaks can do neither STARTTLS nor IPv6.
    ("libnet-ssleay-perl", "STARTTLS in swaks"),
    ("libio-socket-inet6-perl", "IPv6 in swaks"),
    (
        "openssl",
        "the Postfix tests compute a client key's SPKI fingerprint independently",
    ),
    // The package test (tests/tests/package.rs).
    ("lintian", "checks the Debian package"),
    ("groff-base", "the package test renders every man page"),
    ("systemd", "systemd-analyze verifies the packaged unit"),
];

/// Only for `cargo xtask bench wot` (a large download the tests do not need).
pub const BENCH_WOT_PACKAGES: &[(&str, &str)] = &[(
    "debian-keyring",
    "a large real keyring for the web-of-trust benchmark",
)];

/// Only for `cargo xtask bench policy`: the policy servers operators use
/// today, run side by side with wotgate's (never started as services here).
pub const BENCH_POLICY_PACKAGES: &[(&str, &str)] = &[
    (
        "postfix-policyd-spf-python",
        "policyd-spf, compared in the policy benchmark",
    ),
    ("postgrey", "postgrey, compared in the policy benchmark"),
];

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Only for `cargo xtask deb` (and `test`, which checks the package): the
/// Debian package builder, pinned like bpf-linker.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Installs cargo-deb when it is missing or another version.
pub fn ensure_cargo_deb() -> Result<()> {
    let ok = Command::new(cargo_bin().join("cargo-deb"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION))
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    eprintln!("setup: installing cargo-deb {CARGO_DEB_VERSION}");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "--locked",
            &format!("cargo-deb@{CARGO_DEB_VERSION}"),
        ])
        .status()
        .context("running cargo install cargo-deb")?;
    if !st.success() {
        bail!("cargo install cargo-deb failed");
    }
    Ok(())
}

pub fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin")
}

pub fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).expect("PATH")
}

pub fn require_root(why: &str) -> Result<()> {
    // SAFETY: trivial libc call.
    if unsafe { libc_geteuid() } != 0 {
        bail!("this task needs root: {why}. Run it as root (sudo -E cargo xtask ...).");
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Tells Debian's postfix package to leave the system's mail configuration
/// alone: no main.cf, no start (see `PACKAGES`).
fn preseed_postfix() -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running debconf-set-selections")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"postfix postfix/main_mailer_type select No configuration\n")?;
    if !child.wait()?.success() {
        bail!("debconf-set-selections failed");
    }
    Ok(())
}

fn bpf_linker_ok() -> bool {
    Command::new(cargo_bin().join("bpf-linker"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false)
}

pub fn setup() -> Result<()> {
    setup_with(&[])
}

/// Installs `PACKAGES` plus `extra` and bpf-linker, whatever is missing.
pub fn setup_with(extra: &[(&'static str, &'static str)]) -> Result<()> {
    let debian = std::path::Path::new("/etc/debian_version").exists();
    let wanted: Vec<&(&str, &str)> = PACKAGES.iter().chain(extra).collect();
    let missing: Vec<&(&str, &str)> = if debian {
        wanted
            .iter()
            .copied()
            .filter(|(p, _)| !installed(p))
            .collect()
    } else {
        wanted.clone()
    };
    let linker = bpf_linker_ok();
    if missing.is_empty() && linker {
        return Ok(());
    }
    if !debian {
        let mut msg = String::from(
            "this is not a Debian machine, so setup cannot install prerequisites itself. You need:\n",
        );
        for (p, why) in &wanted {
            msg.push_str(&format!("  - the equivalent of Debian's {p} ({why})\n"));
        }
        msg.push_str(&format!(
            "  - bpf-linker {BPF_LINKER_VERSION} built against LLVM 22: LLVM_PREFIX=/path/to/llvm-22 cargo install --locked bpf-linker@{BPF_LINKER_VERSION} --no-default-features --features llvm-22\n"
        ));
        msg.push_str("  - a Rust compiler with a prebuilt `core` for bpfel-unknown-none, given to the build as WOTGATE_EBPF_TOOLCHAIN (a rustup toolchain name or path)\n");
        bail!(msg);
    }
    require_root(&format!(
        "installing {}",
        missing
            .iter()
            .map(|(p, _)| *p)
            .chain((!linker).then_some("bpf-linker"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        eprintln!("setup: installing {}", names.join(" "));
        let st = Command::new("apt-get").arg("update").arg("-qq").status()?;
        if !st.success() {
            bail!("apt-get update failed");
        }
        if names.contains(&"postfix") {
            preseed_postfix()?;
        }
        let st = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get install")?;
        if !st.success() {
            bail!("apt-get install {} failed", names.join(" "));
        }
    }
    if !bpf_linker_ok() {
        eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} (LLVM 22)");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "install",
                "--locked",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .status()
            .context("running cargo install bpf-linker")?;
        if !st.success() {
            bail!("cargo install bpf-linker failed");
        }
    }
    Ok(())
}
