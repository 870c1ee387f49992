//! `wotgate trust list` and `wotgate trust explain` on the fixture networks,
//! run as the operator would run them.

mod wot_common;

use std::process::{Command, Output};

use wot_common::*;

fn wotgate(net: &Net, args: &[&str], extra: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .arg("trust")
        .args(args)
        .arg("--keyring")
        .arg(&net.keyring_path)
        .args(["--at", "2025-01-01"])
        .args(extra)
        .output()
        .expect("run wotgate")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn list_shows_verdicts_and_exceptions() {
    let net = Net::load("refuse-ignore");
    let m = net.fpr("M").to_hex();
    let extra = vec![
        "--root".into(),
        net.fpr("Root").to_hex(),
        "--refuse".into(),
        m.clone(),
        "--ignore-certifications-by".into(),
        m.clone(),
    ];
    let o = wotgate(&net, &["list"], &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = text(&o);
    let line = |n: &str| {
        let f = net.fpr(n).to_hex();
        out.lines()
            .find(|l| l.starts_with(&f))
            .unwrap_or_else(|| panic!("{n} missing:\n{out}"))
            .to_string()
    };
    assert!(line("Root").ends_with("root"));
    assert!(line("M").ends_with("refused"));
    assert!(line("N").ends_with("trusted (depth 1)"));
    assert!(line("W").ends_with("trusted (depth 2)"));
    assert!(line("X").contains("only through an ignored introducer") && line("X").contains(&m));

    let o = wotgate(&net, &["list", "--json"], &extra);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let keys = v["keys"].as_array().unwrap();
    let mj = keys
        .iter()
        .find(|k| k["fingerprint"] == m.as_str())
        .unwrap();
    assert_eq!(mj["status"], "refused");
    assert_eq!(mj["userids"][0]["authenticated"], false);
    assert_eq!(mj["userids"][0]["authenticated_if_not_refused"], true);
    assert_eq!(keys.len(), net.names.len());
}

#[test]
fn explain_shows_the_path_by_email_and_domain() {
    let net = Net::load("level-one");
    let extra = vec!["--root".into(), net.fpr("Root").to_hex()];
    let o = wotgate(&net, &["explain", "bob@level-one.example"], &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = text(&o);
    assert!(out.contains("trusted (depth 2)"), "{out}");
    let root = net.fpr("Root").to_hex();
    let alice = net.fpr("Alice").to_hex();
    let bob = net.fpr("Bob").to_hex();
    assert!(
        out.contains(&format!("1. {root} certified {alice}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("2. {alice} certified {bob}")),
        "{out}"
    );
    assert!(out.contains("2024-01-02T00:00:00Z"), "{out}");

    // At depth 1 the same query fails with a reason, and exits 3 (negative verdict).
    let mut d1 = extra.clone();
    d1.extend(["--depth".into(), "1".into()]);
    let o = wotgate(&net, &["explain", &bob], &d1);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).contains("path too long (needs depth 2)"),
        "{}",
        text(&o)
    );

    // A domain matches every key with a User ID in it.
    let o = wotgate(&net, &["explain", "level-one.example", "--json"], &extra);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v.as_array().unwrap().len(), 3);

    // Graphviz.
    let o = wotgate(&net, &["explain", &bob, "--dot"], &extra);
    let dot = text(&o);
    assert!(dot.starts_with("digraph trust {"), "{dot}");
    assert!(dot.contains(&format!("\"{alice}\" -> \"{bob}\"")), "{dot}");

    // Nothing matches: an error naming the query.
    let o = wotgate(&net, &["explain", "nobody@nowhere.example"], &extra);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nobody@nowhere.example"));
}

#[test]
fn explain_names_the_failing_certification() {
    let net = Net::load("sha1");
    let extra = vec!["--root".into(), net.fpr("Root").to_hex()];
    let o = wotgate(&net, &["explain", &net.fpr("A").to_hex()], &extra);
    assert_eq!(o.status.code(), Some(3));
    let out = text(&o);
    assert!(out.contains("weak hash (SHA1)"), "{out}");

    let net = Net::load("flooded");
    let mut extra = vec!["--root".into(), net.fpr("Root").to_hex()];
    extra.extend(["--max-certifications".into(), "10".into()]);
    let o = wotgate(&net, &["explain", &net.fpr("B").to_hex()], &extra);
    let out = text(&o);
    assert!(
        out.contains("3 certification(s) cut by flooding limits"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cut by flooding limits"));
}

#[test]
fn bad_input_is_named() {
    let net = Net::load("direct");
    let o = wotgate(&net, &["list"], &["--root".into(), "not-hex".into()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--root \"not-hex\""));
}
