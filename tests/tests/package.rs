//! The Debian package as an operator receives it: the files where the README
//! says they are, the configuration as a conffile, a man page for every
//! command that renders without warnings, the unit verified by systemd,
//! lintian without errors, and the packaged binary running from a throwaway root.
//!
//! `cargo xtask test` builds the package (`cargo xtask deb`) before the tests
//! and names it in `WOTGATE_DEB`; run alone, set it yourself:
//! `WOTGATE_DEB=$(cargo xtask deb | tail -1) cargo test -p integration-tests --test package`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Files the package must hold, each also named in the README's
/// "Installing on a Debian MX" section (so the README says where they are).
const README_PATHS: &[&str] = &[
    "/usr/bin/wotgate",
    "/usr/lib/systemd/system/wotgate.service",
    "/etc/wotgate/wotgate.toml",
    "/usr/share/man/man1/wotgate.1.gz",
    "/usr/share/bash-completion/completions/wotgate",
    "/usr/share/zsh/vendor-completions/_wotgate",
    "/usr/share/fish/vendor_completions.d/wotgate.fish",
    "/usr/share/doc/wotgate/README.md",
];

fn deb() -> PathBuf {
    let p = std::env::var_os("WOTGATE_DEB").map(PathBuf::from).expect(
        "WOTGATE_DEB is not set: run through `cargo xtask test`, or \
         WOTGATE_DEB=$(cargo xtask deb | tail -1) cargo test -p integration-tests --test package",
    );
    assert!(p.is_file(), "WOTGATE_DEB={} is not a file", p.display());
    p
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (cargo xtask setup installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8 output")
}

/// The package's file list, as absolute paths (`dpkg-deb -c`).
fn contents(deb: &Path) -> BTreeSet<String> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}

/// A directory removed on drop.
struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn extracted(deb: &Path) -> Tmp {
    let dir = std::env::temp_dir().join(format!(
        "wotgate-package-{}",
        integration_tests::unique("x")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let t = Tmp(dir);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&t.0));
    t
}

#[test]
fn the_package_holds_the_files_where_the_readme_says() {
    let files = contents(&deb());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for p in README_PATHS {
        assert!(files.contains(*p), "the package lacks {p}: {files:#?}");
        assert!(readme.contains(p), "README.md does not say where {p} is");
    }
    assert!(
        files.contains("/usr/share/doc/wotgate/copyright")
            && files.contains("/usr/share/doc/wotgate/changelog.Debian.gz"),
        "{files:#?}"
    );
}

#[test]
fn control_names_dependencies_and_the_configuration_is_a_conffile() {
    let deb = deb();
    let control = stdout(Command::new("dpkg-deb").args(["-f"]).arg(&deb));
    let field = |name: &str| {
        control
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in control:\n{control}"))
            .to_string()
    };
    assert_eq!(field("Package"), "wotgate");
    assert_eq!(field("Section"), "net");
    // $auto: the shared libraries the binary links (libc, nettle).
    let depends = field("Depends");
    assert!(depends.contains("libc6"), "{depends}");
    assert!(depends.contains("libnettle"), "{depends}");
    assert!(field("Suggests").contains("postfix"), "{control}");
    let conffiles = stdout(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles.trim(), "/etc/wotgate/wotgate.toml");
    // The unit is registered with systemd but neither enabled nor started
    // (the example configuration names an example root).
    let postinst = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    assert!(postinst.contains("deb-systemd-helper"), "{postinst}");
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    assert!(postinst.contains("install -d -m 0750"), "{postinst}");
}

/// The commands `wotgate --help` lists, recursively: `["attach", "trust list", ...]`.
fn commands(bin: &Path, path: &[String]) -> Vec<Vec<String>> {
    let help = stdout(Command::new(bin).args(path).arg("--help"));
    let mut out = Vec::new();
    let mut in_list = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_list = true;
            continue;
        }
        if in_list {
            let Some(name) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next())
            else {
                break;
            };
            if name == "help" {
                continue;
            }
            let mut sub = path.to_vec();
            sub.push(name.to_string());
            out.push(sub.clone());
            out.extend(commands(bin, &sub));
        }
    }
    out
}

#[test]
fn every_command_has_a_man_page_that_renders_without_warnings() {
    let root = extracted(&deb());
    let bin = root.0.join("usr/bin/wotgate");
    let cmds = commands(&bin, &[]);
    assert!(cmds.len() > 20, "{cmds:?}");
    let man1 = root.0.join("usr/share/man/man1");
    let mut names = vec!["wotgate".to_string()];
    names.extend(cmds.iter().map(|c| format!("wotgate-{}", c.join("-"))));
    for name in &names {
        let page = man1.join(format!("{name}.1.gz"));
        assert!(page.is_file(), "no man page {}", page.display());
        // The whole page through groff with every warning on: nothing on
        // standard error, and the page names its command.
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(format!("zcat '{}' | groff -man -Tutf8 -ww", page.display())));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{name}: groff warns: {stderr}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(name.as_str()), "{name}: {text}");
    }
    // And nothing else: no page for the hidden `generate`.
    let pages = std::fs::read_dir(&man1).unwrap().count();
    assert_eq!(pages, names.len(), "{names:?}");
}

#[test]
fn the_packaged_binary_runs_from_a_throwaway_root() {
    let root = extracted(&deb());
    let version = stdout(Command::new(root.0.join("usr/bin/wotgate")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("wotgate {}", env!("CARGO_PKG_VERSION")),
        "{version}"
    );
    // The example configuration is the one in the repository.
    let shipped = std::fs::read(root.0.join("etc/wotgate/wotgate.toml")).unwrap();
    let ours = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wotgate.toml"
    ))
    .unwrap();
    assert_eq!(shipped, ours);
    // Completions name the subcommands.
    let bash =
        std::fs::read_to_string(root.0.join("usr/share/bash-completion/completions/wotgate"))
            .unwrap();
    assert!(
        bash.contains("attach") && bash.contains("statement"),
        "{bash}"
    );
}

#[test]
fn systemd_accepts_the_packaged_unit() {
    let root = extracted(&deb());
    let unit = root.0.join("usr/lib/systemd/system/wotgate.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/wotgate run"), "{text}");
    // Verified on this host (its systemd units and /bin/kill), with the one
    // change that points the unit at the packaged binary in the extracted
    // root (this host has no /usr/bin/wotgate).
    let copy_dir = root.0.join("verify");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("wotgate.service");
    let bin = root.0.join("usr/bin/wotgate");
    std::fs::write(
        &copy,
        text.replace("/usr/bin/wotgate", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (cargo xtask setup installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // And it does fail on a unit whose command is missing.
    std::fs::write(
        &copy,
        text.replace("/usr/bin/wotgate", "/nonexistent/wotgate"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn lintian_finds_no_errors() {
    let deb = deb();
    // No overrides are shipped (packaging/README.md): any error fails.
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .arg(&deb)
        .output()
        .expect("lintian (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.lines().any(|l| l.starts_with("E:")),
        "lintian: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
