//! `wotgate trust explain --recipient` on the sequoia-made world: mail to a
//! recipient with its own web is judged by that web, others by the system's.

use std::path::Path;
use std::process::Output;

use integration_tests::{unique, world::World, wotgate_bin};

fn explain(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(wotgate_bin())
        .args(["trust", "explain", "--config", config.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run wotgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn each_recipient_is_judged_by_its_own_web() {
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-recip-{}", unique("w"))),
        &bin,
    );
    let fpr = |n: &str| {
        let p = world.parties.iter().find(|p| p.name == n).unwrap();
        p.tsk.fingerprint().to_hex()
    };
    // The system's root reaches gamma only at depth 3, beyond its depth of 2.
    let gamma = fpr("gamma");
    let recipients = world.dir.join("recipients.d");
    std::fs::create_dir_all(&recipients).unwrap();
    // Alice's web is rooted at beta, who certified gamma.
    std::fs::write(
        recipients.join("alice@example.org.toml"),
        format!("combine = \"replace\"\nroots = [\"{}\"]\n", fpr("beta")),
    )
    .unwrap();
    // Every address of example.com: the system's web, one level deeper.
    std::fs::write(
        recipients.join("example.com.toml"),
        "combine = \"extend\"\ndepth = 3\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        text.replace(
            "[statements]",
            "recipients_directory = \"recipients.d\"\n[statements]",
        ),
    )
    .unwrap();

    let o = explain(&world.config, &["--recipient", "Alice@Example.org", &gamma]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let alice_file = recipients.join("alice@example.org.toml");
    assert!(
        out.starts_with(&format!(
            "web: alice@example.org ({}, replace)\n",
            alice_file.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{gamma}: trusted (depth 1)")),
        "{out}"
    );

    let o = explain(&world.config, &["--recipient", "bob@example.org", &gamma]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "untrusted for bob: {out}");
    assert!(
        out.starts_with("web: system default (no per-recipient file for bob@example.org)\n"),
        "{out}"
    );
    assert!(out.contains(&format!("{gamma}: untrusted")), "{out}");

    let o = explain(
        &world.config,
        &["--recipient", "carol@example.com", &gamma, "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let web = &v[0]["web"];
    assert_eq!(web["recipient"], "carol@example.com");
    assert_eq!(web["name"], "example.com");
    assert_eq!(web["combine"], "extend");
    assert_eq!(web["system_default"], false);
    assert_eq!(v[0]["status"], "trusted");
    assert_eq!(v[0]["depth"], 3);

    // Without --recipient: the system's web, and no web named.
    let o = explain(&world.config, &[&gamma, "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(v[0]["web"].is_null(), "{v}");

    // --recipient needs --config; and it is an address.
    let o = std::process::Command::new(&bin)
        .args(["trust", "explain", "--keyring"])
        .arg(world.keyring())
        .args([
            "--root",
            &world.root(),
            "--recipient",
            "alice@example.org",
            &gamma,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--recipient needs --config FILE"));
    let o = explain(&world.config, &["--recipient", "example.org", &gamma]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an e-mail address"));

    // `trust list` names the web too; a bad recipient's file fails the command, naming it.
    let o = std::process::Command::new(&bin)
        .args(["trust", "list", "--config", world.config.to_str().unwrap()])
        .args(["--recipient", "alice@example.org"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        stdout(&o).starts_with("web: alice@example.org ("),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        recipients.join("example.net.toml"),
        "combine = \"extend\"\ndepth = 17\n",
    )
    .unwrap();
    let o = explain(&world.config, &["--recipient", "alice@example.org", &gamma]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("example.net.toml: depth = 17: at most 16"),
        "{err}"
    );
}
