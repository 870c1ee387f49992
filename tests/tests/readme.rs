//! Every command in README.md runs here, so the README cannot rot.
//!
//! How: every line of every ```` ```sh ```` block in README.md is a command (a
//! trailing `\` joins lines, a trailing `# comment` is dropped). `KNOWN`
//! lists each one with the README section it is in and how it is checked:
//! - `Run`: executed, verbatim but for the substitutions named in the
//!   section's fixture (paths under /etc/wotgate and /var/www mapped to
//!   temporary directories, a password file for the one command that would
//!   prompt), by bash, one script per fixture so shell variables carry over;
//!   it must exit with one of the listed codes. The MX sections run inside a
//!   network namespace with a real web of trust (real keys and signed
//!   statements), the daemon (`wotgate run`) and the gate on a veth pair;
//!   the participant sections run GnuPG in temporary homes.
//! - `Declared`: commands that need a real MX (`apt`, `systemctl`) or are
//!   this test's own runner (`cargo xtask test`); `declared_commands_hold`
//!   checks what can be checked here (the package exists under the name the
//!   README installs, the unit's ExecStart and ExecReload are what the
//!   fixture runs, ...), and the fixture does the equivalent step.
//!
//! The test fails when the README has a command `KNOWN` lacks (add it here
//! when you add it there), or `KNOWN` one the README no longer has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::{
    daemon_world::{WorldDaemon, ALPHA, EVE},
    packet::{Builder, SYN},
    unique, wotgate_bin,
};

#[derive(Clone, Copy, Debug)]
enum How {
    /// Run in the section's fixture; the exit codes it may end with.
    Run(&'static [i32]),
    /// Not run here; `declared_commands_hold` checks it as the reason says.
    Declared(&'static str),
}
use How::*;

const OK: &[i32] = &[0];

/// (section heading, command, how).
const KNOWN: &[(&str, &str, How)] = &[
    ("The two commands", "cargo xtask demo", Declared("the demo runs in its own test flow (cargo xtask demo); checked: xtask has the task")),
    ("The two commands", "cargo xtask test", Declared("this test's own runner; checked: xtask has the task")),
    ("The package", "cargo xtask deb", Declared("cargo xtask test runs it before the tests and names the package in WOTGATE_DEB; checked: the package exists")),
    ("The package", "apt install ./target/debian/wotgate_0.1.0-1_amd64.deb", Declared("installs into the system; checked: the package built has exactly this name (tests/tests/package.rs checks its contents)")),
    ("Configure", "wotgate config check /etc/wotgate/wotgate.toml", Run(OK)),
    ("Configure", "wotgate trust list --config /etc/wotgate/wotgate.toml", Run(OK)),
    ("Configure", "wotgate plan --config /etc/wotgate/wotgate.toml", Run(OK)),
    ("First run in observe mode", "systemctl enable --now wotgate", Declared("needs systemd as init; the fixture starts the unit's ExecStart command; checked: the unit runs exactly that and is wanted by multi-user.target")),
    ("First run in observe mode", "wotgate status --config /etc/wotgate/wotgate.toml", Run(OK)),
    // The fixture's Postfix configuration has the README's main.cf lines
    // and nothing else, so doctor may still find something to fix (3).
    ("Postfix: main.cf and master.cf", "wotgate doctor --config /etc/wotgate/wotgate.toml", Run(&[0, 3])),
    ("Postfix: main.cf and master.cf", "systemctl reload postfix", Declared("needs the system's Postfix; checked: postconf reads the README's main.cf lines as written")),
    ("What to watch", "curl -s http://127.0.0.1:9725/metrics | grep -E '^wotgate_(kernel_matches_plan|gate_packets_total|refresh_total)'", Run(OK)),
    ("What to watch", "curl -s http://127.0.0.1:9725/ready", Run(OK)),
    ("Switching to enforce", "wotgate config check /etc/wotgate/wotgate.toml", Run(OK)),
    ("Switching to enforce", "systemctl reload wotgate", Declared("needs systemd; checked: the unit's ExecReload sends SIGHUP, which `wotgate reload` (run next) sends too")),
    ("Switching to enforce", "wotgate reload --config /etc/wotgate/wotgate.toml", Run(OK)),
    ("Upgrading", "wotgate upgrade", Run(OK)),
    ("Backing out", "systemctl disable --now wotgate", Declared("needs systemd; the fixture stops the daemon with SIGTERM as systemd does; checked: the gate still enforces afterwards")),
    ("Backing out", "wotgate purge --detach-all", Run(OK)),
    ("A key with a mail-domain User ID", "gpg --quick-generate-key postmaster@example.org ed25519 cert,sign 2y", Run(OK)),
    ("A key with a mail-domain User ID", "gpg --export --armor postmaster@example.org > example.org.pub.asc", Run(OK)),
    ("Getting certified", "gpg --import example.org.pub.asc", Run(OK)),
    ("Getting certified", "FPR=$(gpg --with-colons --import-options show-only --import example.org.pub.asc | awk -F: '/^fpr/ {print $10; exit}')", Run(OK)),
    ("Getting certified", "gpg --quick-sign-key \"$FPR\" postmaster@example.org", Run(OK)),
    ("Getting certified", "gpg --export postmaster@example.org > certified.pgp", Run(OK)),
    ("Writing and signing a statement", "wotgate statement new --domain example.org --prefix 2001:db8:10::/48 --valid-for 90d > example.org.body", Run(OK)),
    ("Writing and signing a statement", "gpg --export-secret-keys --armor postmaster@example.org > secret.asc", Run(OK)),
    ("Writing and signing a statement", "wotgate statement sign --key secret.asc example.org.body > statement.asc", Run(OK)),
    ("Writing and signing a statement", "rm secret.asc", Run(OK)),
    ("Writing and signing a statement", "wotgate statement show statement.asc", Run(OK)),
    ("Publishing the statement and the key (WKD)", "WWW=/var/www/example.org", Run(OK)),
    ("Publishing the statement and the key (WKD)", "mkdir -p $WWW/.well-known/wotgate $WWW/.well-known/openpgpkey/hu", Run(OK)),
    ("Publishing the statement and the key (WKD)", "cp statement.asc $WWW/.well-known/wotgate/statement.asc", Run(OK)),
    ("Publishing the statement and the key (WKD)", "gpg --export postmaster@example.org > $WWW/.well-known/openpgpkey/hu/$(/usr/lib/gnupg/gpg-wks-client --print-wkd-hash postmaster@example.org | cut -d' ' -f1)", Run(OK)),
    ("Publishing the statement and the key (WKD)", "touch $WWW/.well-known/openpgpkey/policy", Run(OK)),
    ("Publishing the certifications you made", "gpg --export postmaster@example.com > $WWW/.well-known/wotgate/certified.pgp", Run(OK)),
    ("Operations", "wotgate status --config /etc/wotgate/wotgate.toml", Run(OK)),
    ("Operations", "wotgate inspect", Run(OK)),
    ("Operations", "wotgate check 2001:db8:a::10", Run(OK)),
    ("Operations", "wotgate trust explain --config /etc/wotgate/wotgate.toml alpha.example", Run(OK)),
    ("Operations", "wotgate replay mx.pcap", Run(OK)),
    ("Operations", "wotgate prefixes show", Run(OK)),
];

/// The MX sections, in the order the fixture runs them (Operations before
/// Backing out, which removes the gate).
const MX_SECTIONS: &[&str] = &[
    "Configure",
    "First run in observe mode",
    "Postfix: main.cf and master.cf",
    "What to watch",
    "Switching to enforce",
    "Upgrading",
    "Operations",
    "Backing out",
];

/// The participant sections, in README order (one shell: `$WWW` carries over).
const PARTICIPANT_SECTIONS: &[&str] = &[
    "A key with a mail-domain User ID",
    "Getting certified",
    "Writing and signing a statement",
    "Publishing the statement and the key (WKD)",
    "Publishing the certifications you made",
];

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
}

/// (section, command) for every command line of every sh block, in order.
fn commands(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if !in_sh {
            if let Some(h) = line
                .strip_prefix("## ")
                .or_else(|| line.strip_prefix("### "))
            {
                section = h.trim().to_string();
            }
            in_sh = line.trim() == "```sh";
            continue;
        }
        if line.trim() == "```" {
            in_sh = false;
            assert!(
                pending.is_empty(),
                "a continued line ends the block: {pending}"
            );
            continue;
        }
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(head) = l.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        let mut cmd = std::mem::take(&mut pending) + l;
        // A trailing comment: two or more blanks, then `# `.
        if let Some(i) = cmd.find("  #") {
            cmd.truncate(i);
        }
        out.push((section.clone(), cmd.trim_end().to_string()));
    }
    out
}

#[test]
fn every_readme_command_is_known_and_every_known_command_is_in_the_readme() {
    let found = commands(&readme());
    assert!(found.len() >= 30, "{found:#?}");
    let mut problems = Vec::new();
    for (s, c) in &found {
        if !KNOWN.iter().any(|(ks, kc, _)| ks == s && kc == c) {
            problems.push(format!(
                "README section {s:?} has a command this test does not know: {c}\n  (add it to KNOWN in tests/tests/readme.rs)"
            ));
        }
    }
    for (ks, kc, how) in KNOWN {
        if !found.iter().any(|(s, c)| s == ks && c == kc) {
            problems.push(format!(
                "KNOWN lists a command the README no longer has, in {ks:?}: {kc}"
            ));
        }
        if matches!(how, Run(_)) && !MX_SECTIONS.contains(ks) && !PARTICIPANT_SECTIONS.contains(ks)
        {
            problems.push(format!("{ks:?}: no fixture runs this section"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_extractor_finds_continued_lines_and_drops_comments() {
    let text =
        "## A\n```sh\nfoo --a \\\n  --b   # c\n# only a comment\n\nbar\n```\n```toml\nx = 1\n```\n";
    assert_eq!(
        commands(text),
        [
            ("A".to_string(), "foo --a --b".to_string()),
            ("A".to_string(), "bar".to_string())
        ]
    );
}

/// A bash script running `sections`' commands in order, each checked
/// against its allowed exit codes; `prelude` gives each section's set-up
/// lines, `subst` the fixture's substitutions.
fn script(sections: &[&str], prelude: &BTreeMap<&str, String>, subst: &[(&str, String)]) -> String {
    let found = commands(&readme());
    let mut s = String::from("set -u\nset -o pipefail\n");
    for sec in sections {
        s.push_str(&format!("echo '### {sec}'\n"));
        if let Some(p) = prelude.get(sec) {
            s.push_str(p);
            s.push('\n');
        }
        for (_, cmd) in found.iter().filter(|(fs, _)| fs == sec) {
            let how = KNOWN
                .iter()
                .find(|(ks, kc, _)| ks == sec && kc == cmd)
                .map(|k| k.2)
                .unwrap_or_else(|| panic!("unknown README command {cmd:?}"));
            let Run(codes) = how else { continue };
            let mut line = cmd.clone();
            for (from, to) in subst {
                line = line.replace(from, to);
            }
            let allowed = codes.iter().map(|c| format!("{c}|")).collect::<String>();
            let quoted = cmd.replace('\'', "'\\''");
            s.push_str(&format!(
                "echo '$ {quoted}'\n{line}\nrc=$?\ncase $rc in {}) ;; *) echo 'README command failed with exit '$rc': {quoted}' >&2; exit 1;; esac\n",
                allowed.trim_end_matches('|')
            ));
        }
    }
    s
}

fn bash(script: &str, cwd: &Path, env: &[(&str, String)], netns: Option<&str>) -> String {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    let bin_dir = wotgate_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.args(["--noprofile", "--norc", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .env("RUST_LIB_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "README commands failed:\n{text}\nscript:\n{script}"
    );
    text
}

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tmpdir(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("wotgate-readme-{}", unique(tag)));
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// The README's main.cf lines (the block that starts with `# main.cf`, up
/// to `# master.cf`).
fn readme_main_cf() -> String {
    let text = readme();
    let start = text
        .find("# main.cf: the verdict")
        .expect("the main.cf block");
    let end = start
        + text[start..]
            .find("# master.cf")
            .expect("its master.cf part");
    text[start..end].to_string()
}

/// The protected server's address in `WorldDaemon`.
const SERVER_ADDR: &str = "2001:db8:ffff::1";

/// A capture with one SYN from a trusted and one from an untrusted peer.
fn write_pcap(path: &Path) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let frames = [
        Builder::ipv6_tcp(
            ALPHA.parse().unwrap(),
            SERVER_ADDR.parse().unwrap(),
            40000,
            25,
            SYN,
        )
        .build(),
        Builder::ipv6_tcp(
            EVE.parse().unwrap(),
            SERVER_ADDR.parse().unwrap(),
            40001,
            25,
            SYN,
        )
        .build(),
    ];
    let mut w =
        PcapWriter::with_header(std::fs::File::create(path).unwrap(), PcapHeader::default())
            .unwrap();
    for f in &frames {
        w.write_packet(&PcapPacket::new(
            std::time::Duration::ZERO,
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
}

#[test]
fn the_mx_commands_run_against_a_real_daemon_and_gate() {
    let wd = WorldDaemon::new("readme", "");
    let daemon = wd.start(None);
    let dir = wd.world.dir.clone();
    // Postfix's side: the README's main.cf lines and Debian's master.cf.
    integration_tests::postfix::require_postfix();
    let pf = dir.join("postfix");
    std::fs::create_dir_all(&pf).unwrap();
    std::fs::write(pf.join("main.cf"), readme_main_cf()).unwrap();
    std::fs::write(pf.join("master.cf"), "").unwrap();
    write_pcap(&dir.join("mx.pcap"));
    let cfg = wd.config.display().to_string();
    let subst = [
        ("/etc/wotgate/wotgate.toml", cfg.clone()),
        (
            "wotgate doctor --config /etc/wotgate/wotgate.toml",
            format!(
                "wotgate doctor --config {cfg} --postfix-config {}",
                pf.display()
            ),
        ),
    ];
    // Doctor first so its substitution wins over the plain path's.
    let subst = [subst[1].clone(), subst[0].clone()];
    let env = [("WOTGATE_PIN_DIR", wd.pin.display().to_string())];
    let before_backout: Vec<&str> = MX_SECTIONS
        .iter()
        .copied()
        .filter(|s| *s != "Backing out")
        .collect();
    let out = bash(
        &script(&before_backout, &BTreeMap::new(), &subst),
        &dir,
        &env,
        Some(wd.ns()),
    );
    // What the commands printed is what the README says they show.
    assert!(out.contains("wotgate_kernel_matches_plan 1"), "{out}");
    assert!(
        out.contains("trusted_pass") || out.contains("untrusted"),
        "{out}"
    );
    assert!(
        out.contains("gate-attached"),
        "doctor checks the gate: {out}"
    );
    assert!(
        out.contains("upgraded the gate program in place"),
        "upgrade replaced the program: {out}"
    );

    // Every reading command speaks JSON, and the exit codes are the table's
    // (README, "Exit codes"; `wotgate --help`).
    let pf_dir = pf.display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", wd.ns()))
            .arg(wotgate_bin())
            .args(args)
            .env("WOTGATE_PIN_DIR", &wd.pin)
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let reading: &[(&[&str], i32)] = &[
        (&["status", "--config", &cfg, "--json"], 0),
        (&["inspect", "--json"], 0),
        (&["check", ALPHA, "--json"], 0),
        (&["check", EVE, "--json"], 3),
        (&["prefixes", "show", "--json"], 0),
        (&["replay", "mx.pcap", "--json"], 0),
        (&["plan", "--config", &cfg, "--json"], 0),
        (&["trust", "list", "--config", &cfg, "--json"], 0),
        (
            &[
                "trust",
                "explain",
                "--config",
                &cfg,
                "--json",
                "alpha.example",
            ],
            0,
        ),
        (
            &[
                "trust",
                "explain",
                "--config",
                &cfg,
                "--json",
                "eve.example",
            ],
            3,
        ),
    ];
    for (args, want) in reading {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(*want), "wotgate {args:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            panic!(
                "wotgate {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&stdout)
            )
        });
        assert!(!v.is_null(), "{args:?}");
    }
    // doctor: 0 or 3 as the fixture's main.cf goes; the gate line is ok here
    // (attached natively on the interface carrying the server's address).
    let (code, stdout, stderr) = run(&[
        "doctor",
        "--config",
        &cfg,
        "--postfix-config",
        &pf_dir,
        "--json",
    ]);
    assert!(matches!(code, Some(0 | 3)), "doctor: {stderr}");
    let findings: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let gate = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "gate-attached")
        .unwrap_or_else(|| panic!("{findings:#}"));
    assert_eq!(gate["ok"], true, "{gate:#}");
    let (code, _, _) = run(&["no-such-command"]);
    assert_eq!(code, Some(2), "usage error");
    let (code, _, stderr) = run(&["config", "check", "/nonexistent/wotgate.toml"]);
    assert_eq!(code, Some(1), "error: {stderr}");
    assert!(stderr.contains("/nonexistent/wotgate.toml"), "{stderr}");
    let (_, help, _) = run(&["--help"]);
    let help = String::from_utf8_lossy(&help).to_string();
    let text = readme();
    for code in 0..=4 {
        let row = format!("| {code} | ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("README has no exit code {code}"));
        let meaning = line[row.len()..].trim_end_matches(" |").replace('`', "");
        let help_line = help
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(&format!("{code}  ")))
            .unwrap_or_else(|| panic!("wotgate --help has no exit code {code}:\n{help}"));
        assert_eq!(
            help_line[3..].trim(),
            meaning.trim(),
            "README and wotgate --help disagree on exit code {code}"
        );
    }

    // `systemctl disable --now wotgate`: SIGTERM, as systemd stops it.
    let mut daemon = daemon;
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(std::time::Duration::from_secs(30)).is_some());
    assert!(
        wd.pin.exists(),
        "stopping the daemon must leave the gate enforcing"
    );
    drop(daemon);
    bash(
        &script(&["Backing out"], &BTreeMap::new(), &subst),
        &dir,
        &env,
        Some(wd.ns()),
    );
    assert!(
        !wd.pin.exists(),
        "purge --detach-all left {}",
        wd.pin.display()
    );
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(args)
        .output()
        .expect("gpg (cargo xtask setup installs gnupg)");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn fingerprint(home: &Path, uid: &str) -> String {
    gpg(home, &["--with-colons", "--list-keys", uid])
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| f.len() == 40))
        .expect("a fingerprint")
        .to_string()
}

/// GnuPG homes that kill their agent on drop.
struct Homes(Vec<PathBuf>);
impl Drop for Homes {
    fn drop(&mut self) {
        for h in &self.0 {
            let _ = Command::new("gpgconf")
                .env("GNUPGHOME", h)
                .args(["--kill", "all"])
                .status();
        }
    }
}

#[test]
fn the_participant_commands_make_a_statement_mxs_accept() {
    let t = tmpdir("p");
    let d = &t.0;
    // The fixture: a password (GnuPG reads it through gpg.conf, as a person
    // would type it), three homes: you (example.org), the participant who
    // certifies you (example.net), and one you certify (example.com).
    let pw = d.join("pw.txt");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let home = |n: &str| {
        let h = d.join(n);
        std::fs::create_dir_all(&h).unwrap();
        std::fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::write(
            h.join("gpg.conf"),
            format!(
                "batch\npinentry-mode loopback\npassphrase-file {}\n",
                pw.display()
            ),
        )
        .unwrap();
        h
    };
    let (org, net, com) = (home("org"), home("net"), home("com"));
    let _homes = Homes(vec![org.clone(), net.clone(), com.clone()]);
    gpg(
        &net,
        &[
            "--quick-generate-key",
            "postmaster@example.net",
            "ed25519",
            "cert,sign",
            "2y",
        ],
    );
    gpg(
        &com,
        &[
            "--quick-generate-key",
            "postmaster@example.com",
            "ed25519",
            "cert,sign",
            "2y",
        ],
    );
    std::fs::write(
        d.join("example.com.pub.asc"),
        gpg(&com, &["--export", "--armor", "postmaster@example.com"]),
    )
    .unwrap();

    let www = d.join("www");
    let mut prelude = BTreeMap::new();
    for s in PARTICIPANT_SECTIONS {
        prelude.insert(*s, format!("export GNUPGHOME={}", org.display()));
    }
    prelude.insert(
        "Getting certified",
        format!("export GNUPGHOME={}", net.display()),
    );
    // Before publishing your certifications: you certified example.com.
    prelude.insert(
        "Publishing the certifications you made",
        format!(
            "export GNUPGHOME={}\ngpg --import example.com.pub.asc && gpg --quick-sign-key $(gpg --with-colons --list-keys postmaster@example.com | awk -F: '/^fpr/ {{print $10; exit}}') postmaster@example.com || exit 1",
            org.display()
        ),
    );
    let subst = [
        ("/var/www", www.display().to_string()),
        (
            "wotgate statement sign --key secret.asc",
            format!(
                "wotgate statement sign --password-file {} --key secret.asc",
                pw.display()
            ),
        ),
    ];
    let out = bash(
        &script(PARTICIPANT_SECTIONS, &prelude, &subst),
        d,
        &[],
        None,
    );
    assert!(out.contains("example.org"), "statement show: {out}");
    assert!(!d.join("secret.asc").exists());

    // The key is where WKD (direct method) looks for it, by wotgate's own URL rules.
    let site = www.join("example.org");
    let urls = wotgate::source::wkd::urls("postmaster@example.org").unwrap();
    let hash = urls
        .direct
        .split("/hu/")
        .nth(1)
        .and_then(|h| h.split('?').next())
        .unwrap()
        .to_string();
    let wkd = std::fs::read(site.join(".well-known/openpgpkey/hu").join(&hash))
        .unwrap_or_else(|e| panic!("no key at the WKD hash {hash}: {e}"));
    let domain = wotgate::source::wellknown::Domain::parse("example.org").unwrap();
    let kept = wotgate::source::wkd::filter("wkd", &domain, &wkd).expect("a usable WKD answer");
    assert_eq!(kept.fingerprints().len(), 1);

    // An MX whose root is example.net accepts the published statement,
    // through the certification example.net made (depth 1).
    let net_fpr = fingerprint(&net, "postmaster@example.net");
    std::fs::write(
        d.join("net.pub"),
        gpg(&net, &["--export", "--armor", "postmaster@example.net"]),
    )
    .unwrap();
    // An MX that trusts only the network key, with `keyring` beside it.
    let verify_with = |keyring: &str| {
        Command::new(wotgate_bin())
            .args(["statement", "verify", "--keyring", "net.pub", "--keyring"])
            .arg(keyring)
            .args([
                "--root",
                &net_fpr,
                "--depth",
                "1",
                "--allow-documentation-prefixes",
            ])
            .arg(site.join(".well-known/wotgate/statement.asc"))
            .current_dir(d)
            .output()
            .unwrap()
    };
    let verify = verify_with("certified.pgp");
    assert!(
        verify.status.success(),
        "statement verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // Without the certification, it is not.
    let unverified = verify_with("example.org.pub.asc");
    assert_eq!(unverified.status.code(), Some(3));

    // The certifications you published introduce example.com to MXs that trust you.
    let org_fpr = fingerprint(&org, "postmaster@example.org");
    std::fs::write(
        d.join("org.pub"),
        gpg(&org, &["--export", "--armor", "postmaster@example.org"]),
    )
    .unwrap();
    let explain = Command::new(wotgate_bin())
        .args(["trust", "explain", "--keyring", "org.pub", "--keyring"])
        .arg(site.join(".well-known/wotgate/certified.pgp"))
        .args(["--root", &org_fpr, "--depth", "1", "postmaster@example.com"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        explain.status.success(),
        "trust explain: {}{}",
        String::from_utf8_lossy(&explain.stdout),
        String::from_utf8_lossy(&explain.stderr)
    );
}

#[test]
fn declared_commands_hold() {
    let found = commands(&readme());
    for (_, cmd, how) in KNOWN {
        let Declared(why) = how else { continue };
        // Every declared command says why it is not run, and what is checked.
        assert!(why.contains("checked"), "{cmd}: {why}");
        let cmd = *cmd;
        assert!(found.iter().any(|(_, c)| c == cmd), "{cmd}: {why}");
        let unit = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/wotgate.service"
        ))
        .unwrap();
        match cmd {
            "cargo xtask demo" | "cargo xtask test" | "cargo xtask deb" => {
                let task = cmd.rsplit(' ').next().unwrap();
                let xtask = wotgate_bin().with_file_name("xtask");
                let out = Command::new(&xtask)
                    .args(["help", task])
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("{}: {e} (built by `cargo xtask`)", xtask.display())
                    });
                assert!(out.status.success(), "xtask has no task {task}");
                if task == "deb" {
                    let deb = std::env::var_os("WOTGATE_DEB").map(PathBuf::from);
                    assert!(
                        deb.as_ref().is_some_and(|d| d.is_file()),
                        "WOTGATE_DEB ({deb:?}) names no package: run through `cargo xtask test`"
                    );
                }
            }
            c if c.starts_with("apt install ./target/debian/") => {
                let deb = std::env::var_os("WOTGATE_DEB").map(PathBuf::from).expect(
                    "WOTGATE_DEB is not set: run through `cargo xtask test` (see tests/tests/package.rs)",
                );
                assert!(deb.is_file(), "{}", deb.display());
                let name = c.rsplit('/').next().unwrap();
                assert_eq!(deb.file_name().unwrap().to_str(), Some(name));
                assert_eq!(
                    deb.parent()
                        .and_then(|p| p.file_name())
                        .and_then(|n| n.to_str()),
                    Some("debian")
                );
            }
            "systemctl enable --now wotgate" => {
                // The fixture runs `wotgate run --config CONFIG`, as the unit does.
                assert!(unit.contains(
                    "\nExecStart=/usr/bin/wotgate run --config /etc/wotgate/wotgate.toml\n"
                ));
                assert!(unit.contains("\nWantedBy=multi-user.target\n"));
            }
            "systemctl reload wotgate" => {
                assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
            }
            "systemctl disable --now wotgate" => {
                // systemd's stop: SIGTERM to the main process (the fixture does that).
                assert!(unit.contains("\nKillMode=mixed\n"));
                assert!(!unit.contains("KillSignal="));
            }
            "systemctl reload postfix" => {
                integration_tests::postfix::require_postfix();
                let t = tmpdir("pf");
                std::fs::write(t.0.join("main.cf"), readme_main_cf()).unwrap();
                std::fs::write(t.0.join("master.cf"), "").unwrap();
                let out = Command::new("postconf")
                    .arg("-c")
                    .arg(&t.0)
                    .args([
                        "-h",
                        "smtpd_data_restrictions",
                        "smtpd_tls_fingerprint_digest",
                    ])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "postconf: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    text.contains("check_policy_service") && text.contains("sha256"),
                    "{text}"
                );
            }
            other => panic!("declared command without a check: {other}"),
        }
    }
}
