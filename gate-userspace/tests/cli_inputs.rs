//! The command line as a new user meets it: every time at its limits gets an
//! error, never a panic; options in the README's order; every file verified.

mod statement_fixtures;

use std::process::{Command, Output};

use statement_fixtures::*;

fn wotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run wotgate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `wotgate trust SUB --keyring RING --root ROOT EXTRA...`.
fn trust(sub: &str, ring: &str, root: &str, extra: &[&str]) -> Output {
    let mut args = vec!["trust", sub, "--keyring", ring, "--root", root];
    args.extend_from_slice(extra);
    wotgate(&args)
}

/// A keyring with one root key; its path and the root's fingerprint.
fn one_key_ring(name: &str) -> (std::path::PathBuf, Key) {
    let dir = temp_dir(name);
    let alpha = Key::new("Alpha <postmaster@alpha.example>");
    write_keyring(&dir.join("ring.pgp"), &[alpha.public()]);
    (dir, alpha)
}

#[test]
fn times_at_their_limits_are_errors_not_panics() {
    let (dir, alpha) = one_key_ring("cli-times");
    let ring = dir.join("ring.pgp");
    let ring = ring.to_str().unwrap();
    let root = alpha.fpr().to_hex();
    let bad_times = [
        "@18446744073709551615",
        "@18446744073709551616",
        "@253402300800",
        "2025-02-31",
        "2025-13-01",
        "10000-01-01",
        "@-1",
        "soon",
    ];
    for t in bad_times {
        for args in [
            vec![
                "trust",
                "list",
                "--keyring",
                ring,
                "--root",
                &root,
                "--at",
                t,
            ],
            vec![
                "statement",
                "new",
                "--domain",
                "alpha.example",
                "--prefix",
                "2001:db8::/48",
                "--not-before",
                t,
            ],
            vec!["plan", "--config", "/nonexistent.toml", "--at", t],
        ] {
            let o = wotgate(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(
                err.contains(t),
                "{args:?}: the error names the value: {err}"
            );
        }
    }
    for d in ["18446744073709551615w", "99999999999999999999d", "0d", "5y"] {
        let o = wotgate(&[
            "statement",
            "new",
            "--domain",
            "alpha.example",
            "--prefix",
            "2001:db8::/48",
            "--valid-for",
            d,
        ]);
        let err = stderr(&o);
        assert!(
            !o.status.success() && !err.contains("panicked"),
            "{d}: {err}"
        );
        assert!(err.contains("--valid-for"), "{d}: {err}");
    }
    // The latest time accepted still works end to end.
    let o = trust("list", ring, &root, &["--at", "@253402300799"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("9999-12-31T23:59:59Z"),
        "{}",
        stdout(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_before_the_query_and_one_value_per_flag() {
    let (dir, alpha) = one_key_ring("cli-order");
    let ring = dir.join("ring.pgp");
    // The README's order: `trust explain --keyring K --root FPR QUERY`.
    let o = trust(
        "explain",
        ring.to_str().unwrap(),
        &alpha.fpr().to_hex(),
        &["alpha.example"],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("root"), "{}", stdout(&o));
    // A refused root, in the command line's own words.
    let o = trust(
        "list",
        ring.to_str().unwrap(),
        &alpha.fpr().to_hex(),
        &["--refuse", &alpha.fpr().to_hex()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--refuse") && stderr(&o).contains("a root cannot also be refused"),
        "{}",
        stderr(&o)
    );
    // Depth is capped the same way as in the configuration file.
    let o = trust(
        "list",
        ring.to_str().unwrap(),
        &alpha.fpr().to_hex(),
        &["--depth", "17"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--depth 17: at most 16"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_gives_every_file_a_verdict() {
    let (dir, alpha) = one_key_ring("cli-verify");
    let good = dir.join("good.asc");
    std::fs::write(
        &good,
        alpha.sign(&statement("alpha.example", 1, &["2001:db8:1::/48"])),
    )
    .unwrap();
    let garbage = dir.join("garbage.asc");
    std::fs::write(&garbage, b"not a statement").unwrap();
    let missing = dir.join("missing.asc");
    let o = wotgate(&[
        "statement",
        "verify",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
        garbage.to_str().unwrap(),
        "--keyring",
        dir.join("ring.pgp").to_str().unwrap(),
        "--root",
        &alpha.fpr().to_hex(),
        "--allow-documentation-prefixes",
        "--at",
        "2026-11-25T10:00:00Z",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!("{}: alpha.example: ACCEPTED", good.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: (domain unknown): rejected by rule unreadable: ",
            missing.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: (domain unknown): rejected by rule malformed",
            garbage.display()
        )),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_and_negative_verdicts_exit_differently() {
    let o = wotgate(&["trust", "list", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = wotgate(&["--help"]);
    assert!(stdout(&o).contains("Exit codes:"), "{}", stdout(&o));
    let (dir, alpha) = one_key_ring("cli-exit");
    // A key that is not trusted: a negative verdict, not an error.
    let other = Key::new("Other <x@other.example>");
    write_keyring(&dir.join("ring.pgp"), &[alpha.public(), other.public()]);
    let o = trust(
        "explain",
        dir.join("ring.pgp").to_str().unwrap(),
        &alpha.fpr().to_hex(),
        &["other.example"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // A missing keyring: an error.
    let o = trust(
        "explain",
        dir.join("nope.pgp").to_str().unwrap(),
        &alpha.fpr().to_hex(),
        &["other.example"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn roots_are_checked_like_the_configuration_checks_them() {
    let (dir, alpha) = one_key_ring("cli-roots");
    let ring = dir.join("ring.pgp");
    let keyid = alpha.fpr().to_hex()[24..].to_string();
    let long = format!("{}AB", alpha.fpr().to_hex());
    for bad in ["", keyid.as_str(), long.as_str()] {
        let o = trust("list", ring.to_str().unwrap(), bad, &[]);
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        assert!(
            stderr(&o).contains(&format!("--root {bad:?}: not a v4 (40 hex digits) or v6")),
            "{bad:?}: {}",
            stderr(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_file_read_has_a_limit_named_in_the_error() {
    let (dir, alpha) = one_key_ring("cli-limits");
    let body = dir.join("body");
    std::fs::write(
        &body,
        statement("alpha.example", 1, &["2001:db8:1::/48"]).to_body(),
    )
    .unwrap();
    let root = alpha.fpr().to_hex();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["trust", "list", "--keyring", "/dev/zero", "--root", &root],
            "/dev/zero: larger than 268435456 bytes, the limit for a keyring file",
        ),
        (
            vec!["plan", "--config", "/dev/zero"],
            "/dev/zero: larger than 1048576 bytes, the limit for a configuration file",
        ),
        (
            vec!["prefixes", "load", "/dev/zero"],
            "/dev/zero: larger than 167772160 bytes, the limit for a prefix file",
        ),
        (
            vec![
                "statement",
                "sign",
                "--key",
                "/dev/zero",
                body.to_str().unwrap(),
            ],
            "/dev/zero: larger than 1048576 bytes, the limit for a secret key file",
        ),
    ];
    for (args, want) in cases {
        let o = wotgate(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // Years past 9999 are refused when writing, as signing refuses them.
    let o = wotgate(&[
        "statement",
        "new",
        "--domain",
        "alpha.example",
        "--prefix",
        "2001:db8::/48",
        "--not-before",
        "9999-12-01",
        "--valid-for",
        "60d",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("9999-12-31T23:59:59Z"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_or_a_closed_pipe_is_no_panic() {
    let (dir, alpha) = one_key_ring("cli-output");
    let ring = dir.join("ring.pgp");
    let root = alpha.fpr().to_hex();
    let args = [
        "trust",
        "list",
        "--keyring",
        ring.to_str().unwrap(),
        "--root",
        &root,
    ];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writing to standard output: No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    // A reader that went away: quiet, and no panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a closed pipe is not worth a message");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_cause_is_named_once() {
    let dir = temp_dir("cli-once");
    for args in [
        vec!["plan", "--config", "/nonexistent/wotgate.toml"],
        vec!["plan", "--config", dir.to_str().unwrap()],
        vec!["prefixes", "load", dir.to_str().unwrap()],
    ] {
        let o = wotgate(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        for cause in ["(os error 2)", "(os error 21)"] {
            assert!(err.matches(cause).count() <= 1, "{args:?}: {err}");
        }
        assert!(err.contains("(os error"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
