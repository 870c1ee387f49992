//! `wotgate postmaster` through the binary, from the shipped example
//! configuration: the page names our roots, depth and TLS policy, and the
//! HTML is one well-formed document; a bad configuration is an error.

use std::process::{Command, Output};

fn wotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run wotgate")
}

fn example() -> String {
    format!("{}/../examples/wotgate.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_page_follows_the_configuration() {
    let out = wotgate(&[
        "postmaster",
        "--config",
        &example(),
        "--host",
        "mx.example.org",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Mail delivery policy of mx.example.org\n"),
        "{text}"
    );
    // The example's root, depth 2 and the default TLS policy ("auto").
    assert!(
        text.contains("  - 0123456789ABCDEF0123456789ABCDEF01234567\n"),
        "{text}"
    );
    assert!(text.contains("at most 2 valid"), "{text}");
    assert!(text.contains("present a client certificate"), "{text}");
    assert!(text.contains("postmaster@mx.example.org"), "{text}");

    let out = wotgate(&[
        "postmaster",
        "--config",
        &example(),
        "--html",
        "--host",
        "mx.example.org",
        "--contact",
        "a&b <hostmaster@example.org>",
    ]);
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
        "{html}"
    );
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<h1>").count(), 1);
    assert!(
        html.contains("a&amp;b &lt;hostmaster@example.org&gt;"),
        "{html}"
    );
    assert!(!html.contains("<style") && !html.contains("<script"));
    assert_eq!(html.matches("<p>").count(), html.matches("</p>").count());
    assert_eq!(html.matches("<ul>").count(), html.matches("</ul>").count());
}

#[test]
fn a_bad_configuration_is_named() {
    let dir = std::env::temp_dir().join(format!("wotgate-postmaster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[trust]\nkeyrings = [\"k\"]\nroots = [\"abc\"]\n").unwrap();
    let out = wotgate(&["postmaster", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("trust.roots"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
