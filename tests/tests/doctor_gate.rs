//! `wotgate doctor`'s gate check against a real gate on a veth pair in test
//! namespaces and Debian's postconf: native on the interface that carries the
//! address Postfix listens on is ok; no gate, generic (skb) mode, and an MX
//! address on an interface the gate is not on are each named with the fix.

use std::path::{Path, PathBuf};

use integration_tests::{
    daemon::Cleanup, netns::Pair, postfix::require_postfix, require_kernel, unique, wotgate_bin,
    wotgate_cmd,
};

const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

/// The gate-attached findings of `wotgate doctor --json`, run in `pair`'s
/// server namespace, and doctor's exit code.
fn gate_findings(pair: &Pair, cfg: &Path, pf: &Path) -> (i32, Vec<serde_json::Value>) {
    let out = pair
        .server
        .cmd(&[
            wotgate_bin().to_str().unwrap(),
            "doctor",
            "--config",
            cfg.to_str().unwrap(),
            "--postfix-config",
            pf.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let gate = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "gate-attached")
        .cloned()
        .collect();
    (out.status.code().unwrap_or(-1), gate)
}

fn write_main_cf(pf: &Path, inet_interfaces: &str) {
    std::fs::write(
        pf.join("main.cf"),
        format!("compatibility_level = 3.6\ninet_protocols = all\ninet_interfaces = {inet_interfaces}\n"),
    )
    .unwrap();
}

fn ok_in(pin: &Path, pair: &Pair, args: &[&str]) {
    let out = wotgate_cmd(Some(&pair.server), pin, args).output().unwrap();
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn doctor_judges_the_gate_on_the_interface_carrying_the_mx_address() {
    require_kernel();
    require_postfix();
    let pair = Pair::new("dg", &[]);
    let dir = std::env::temp_dir().join(unique("wotgate-doctor-gate"));
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("dg")));
    let _cleanup = Cleanup {
        pin: pin.clone(),
        dir: Some(dir.clone()),
    };
    let pf = dir.join("postfix");
    std::fs::create_dir_all(&pf).unwrap();
    std::fs::write(pf.join("master.cf"), "").unwrap();
    let cfg = dir.join("wotgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[trust]\nkeyrings = [\"k.pgp\"]\nroots = [\"{ROOT}\"]\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n",
            pair.server_if,
            pin.display()
        ),
    )
    .unwrap();
    write_main_cf(&pf, "2001:db8:ffff::1");

    // Nothing pinned yet.
    let (code, f) = gate_findings(&pair, &cfg, &pf);
    assert_eq!(code, 3, "{f:#?}");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["ok"], false);
    assert!(
        f[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("no gate pinned"),
        "{f:#?}"
    );

    // Native on the server's veth, which carries 2001:db8:ffff::1.
    ok_in(
        &pin,
        &pair,
        &["attach", "--iface", &pair.server_if, "--observe"],
    );
    let (_, f) = gate_findings(&pair, &cfg, &pf);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["ok"], true, "{f:#?}");
    let detail = f[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&pair.server_if) && detail.contains("2001:db8:ffff::1"),
        "{detail}"
    );

    // inet_interfaces = all and a second interface with a global IPv6
    // address the gate is not on.
    // (a veth pair inside the namespace: the dummy driver may be absent).
    pair.server.exec(&[
        "ip", "link", "add", "dgdummy", "type", "veth", "peer", "name", "dgpeer",
    ]);
    pair.server.exec(&[
        "ip",
        "addr",
        "add",
        "2001:db8:eeee::1/64",
        "dev",
        "dgdummy",
        "nodad",
    ]);
    for l in ["dgdummy", "dgpeer"] {
        pair.server.exec(&["ip", "link", "set", l, "up"]);
    }
    write_main_cf(&pf, "all");
    let (code, f) = gate_findings(&pair, &cfg, &pf);
    assert_eq!(code, 3);
    let dummy = f
        .iter()
        .find(|x| x["detail"].as_str().unwrap().starts_with("dgdummy"))
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(dummy["ok"], false);
    assert!(
        dummy["fix"].as_str().unwrap().contains(&format!(
            "interfaces = [\"{}\", \"dgdummy\"]",
            pair.server_if
        )),
        "{dummy:#}"
    );

    // Generic mode on the MX interface.
    write_main_cf(&pf, "[2001:db8:ffff::1]");
    ok_in(&pin, &pair, &["detach", "--iface", &pair.server_if]);
    ok_in(
        &pin,
        &pair,
        &[
            "attach",
            "--iface",
            &pair.server_if,
            "--xdp-mode",
            "skb",
            "--observe",
        ],
    );
    let (code, f) = gate_findings(&pair, &cfg, &pf);
    assert_eq!(code, 3);
    assert_eq!(f[0]["ok"], false, "{f:#?}");
    assert!(f[0]["detail"].as_str().unwrap().contains("skb"), "{f:#?}");
    assert!(
        f[0]["fix"]
            .as_str()
            .unwrap()
            .contains("xdp_mode = \"native\""),
        "{f:#?}"
    );
}
