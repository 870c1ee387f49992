//! The operator's gate commands as an operator runs them: errors that name
//! the file and line, nothing changed by a bad file, check, replay, reuse of
//! pinned state by a new process.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use integration_tests::packet::{Builder, ACK, SYN};
use integration_tests::{netns::NetNs, unique, wotgate_bin, wotgate_cmd, PinnedGate};

fn wotgate(pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(None, pin, args).output().expect("run wotgate")
}

fn ok(pin: &Path, args: &[&str]) -> String {
    let out = wotgate(pin, args);
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(pin: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(pin, args)).expect("json output")
}

/// `check ADDR --json`: its exit code (0 trusted, 3 not) and report.
fn check(pin: &Path, addr: &str) -> (Option<i32>, serde_json::Value) {
    let out = wotgate(pin, &["check", addr, "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check {addr}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tmpdir() -> Tmp {
    let d = std::env::temp_dir().join(format!("wotgate-cli-{}", unique("t")));
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

#[test]
fn a_bad_prefix_file_changes_nothing_and_names_the_line() {
    let mut pg = PinnedGate::new("cli");
    pg.release();
    let t = tmpdir();
    let good = t.0.join("good.prefixes");
    std::fs::write(&good, "allow 2001:db8:1::/48 a\n").unwrap();
    ok(pg.path(), &["prefixes", "load", good.to_str().unwrap()]);
    let before = json(pg.path(), &["inspect", "--json"]);

    let bad = t.0.join("bad.prefixes");
    std::fs::write(&bad, "allow 2001:db8:2::/48 b\nallow 192.0.2.0/24 v4\n").unwrap();
    let out = wotgate(pg.path(), &["prefixes", "load", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:", bad.display())) && err.contains("IPv4"),
        "{err}"
    );

    let after = json(pg.path(), &["inspect", "--json"]);
    assert_eq!(before["generation"], after["generation"]);
    assert_eq!(before["entries"], after["entries"]);
    assert_eq!(
        ok(pg.path(), &["prefixes", "show"]),
        "allow 2001:db8:1::/48 a\n"
    );
}

#[test]
fn commands_without_a_gate_say_what_to_do() {
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("none")));
    let out = wotgate(&pin, &["inspect"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no gate pinned") && err.contains("wotgate attach"),
        "{err}"
    );
    assert!(!pin.exists(), "inspect must not create anything");
    for (iface, why) in [("lo", "loopback"), ("nosuchif0", "no interface")] {
        let out = wotgate(&pin, &["attach", "--iface", iface]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(why));
        assert!(!pin.exists(), "a refused attach must not pin anything");
    }
}

#[test]
fn check_reports_entry_and_real_verdict_per_port() {
    let mut pg = PinnedGate::new("chk");
    pg.gate()
        .set_settings(&wotgate::gate::Settings {
            ports: vec![25, 2525],
            ..Default::default()
        })
        .unwrap();
    pg.release();
    let t = tmpdir();
    let f = t.0.join("s.prefixes");
    std::fs::write(
        &f,
        "allow 2001:db8:1::/48 peer\ndeny 2001:db8:1:bad::/64 refused\n",
    )
    .unwrap();
    ok(pg.path(), &["prefixes", "load", f.to_str().unwrap()]);

    let (code, c) = check(pg.path(), "2001:db8:1:bad::7");
    assert_eq!(code, Some(3), "a denied address is a negative verdict");
    assert_eq!(c["trusted"], false);
    assert_eq!(c["entry"]["prefix"], "2001:db8:1:bad::/64");
    assert_eq!(c["entry"]["label"], "refused");
    assert_eq!(c["verdict"], "dropped");
    let ports: Vec<_> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["action"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (25, "drop".into(), "denied_drop".into()),
            (2525, "drop".into(), "denied_drop".into())
        ]
    );

    let (code, c) = check(pg.path(), "2001:db8:1::7");
    assert_eq!((code, &c["verdict"]), (Some(0), &"trusted".into()));
    assert_eq!(c["entry"]["prefix"], "2001:db8:1::/48");
    let (code, c) = check(pg.path(), "2001:db8:9::7");
    assert_eq!(code, Some(3));
    assert!(c["entry"].is_null());
    assert_eq!(c["ports"][0]["reason"], "untrusted_drop");

    // Test runs never show up in the real-traffic counters.
    let s = json(pg.path(), &["inspect", "--json"]);
    assert!(
        s["counters"].as_array().unwrap().iter().all(|c| c[1] == 0),
        "{}",
        s["counters"]
    );
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::with_header(f, PcapHeader::default()).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            std::time::Duration::from_secs(i as u64),
            fr.len() as u32,
            fr,
        ))
        .unwrap();
    }
}

#[test]
fn replay_runs_a_capture_through_the_loaded_program() {
    let mut pg = PinnedGate::new("rpl");
    pg.release();
    let t = tmpdir();
    let f = t.0.join("s.prefixes");
    std::fs::write(&f, "allow 2001:db8:1::/48 peer\n").unwrap();
    ok(pg.path(), &["prefixes", "load", f.to_str().unwrap()]);
    let dst = "2001:db8:ffff::1".parse().unwrap();
    let frames = vec![
        Builder::ipv6_tcp("2001:db8:1::7".parse().unwrap(), dst, 4000, 25, SYN).build(),
        Builder::ipv6_tcp("2001:db8:2::7".parse().unwrap(), dst, 4000, 25, SYN).build(),
        Builder::ipv6_tcp("2001:db8:2::7".parse().unwrap(), dst, 4000, 25, ACK).build(),
        Builder::ipv4_tcp([192, 0, 2, 2].into(), [192, 0, 2, 1].into(), 4000, 25, SYN).build(),
        Builder::icmpv6("2001:db8:2::7".parse().unwrap(), dst, 135).build(),
    ];
    let pcap = t.0.join("cap.pcap");
    write_pcap(&pcap, &frames);
    let r = json(pg.path(), &["replay", pcap.to_str().unwrap(), "--json"]);
    let got: Vec<(String, String)> = r["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap().into(),
                p["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("pass", "trusted_pass"),
        ("drop", "untrusted_drop"),
        ("pass", "other_pass"),
        ("drop", "non_ipv6_drop"),
        ("pass", "other_pass"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(r["totals"]["drop"], 2);
    assert_eq!(r["totals"]["pass"], 3);

    let garbage = t.0.join("garbage.pcap");
    std::fs::write(&garbage, b"not a capture").unwrap();
    let out = wotgate(pg.path(), &["replay", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.pcap"));
}

#[test]
fn a_new_process_reuses_the_pinned_program_and_link() {
    let ns = NetNs::new(&format!("wgr{}", unique("")));
    let ifname = format!("r{}", unique(""));
    ns.exec(&[
        "ip",
        "link",
        "add",
        &ifname,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{ifname}p"),
    ]);
    let mut pg = PinnedGate::new("reu");
    pg.release();
    let pin = pg.path().to_str().unwrap().to_string();
    let bin = wotgate_bin();
    let b = bin.to_str().unwrap();
    let inspect = |ns: &NetNs| -> serde_json::Value {
        serde_json::from_slice(&ns.exec(&[b, "--pin-dir", &pin, "inspect", "--json"]).stdout)
            .unwrap()
    };
    ns.exec(&[
        b,
        "--pin-dir",
        &pin,
        "attach",
        "--iface",
        &ifname,
        "--allow-empty-set",
    ]);
    let first = inspect(&ns);
    // A second attach (a new loader) keeps program and link; changing the
    // mode on a gated interface is refused rather than bouncing traffic.
    ns.exec(&[
        b,
        "--pin-dir",
        &pin,
        "attach",
        "--iface",
        &ifname,
        "--observe",
    ]);
    let second = inspect(&ns);
    assert_eq!(first["program_id"], second["program_id"]);
    assert_eq!(
        first["attachments"][0]["link_id"],
        second["attachments"][0]["link_id"]
    );
    assert_eq!(second["mode"], "observe");
    let out = ns
        .cmd(&[
            b,
            "--pin-dir",
            &pin,
            "attach",
            "--iface",
            &ifname,
            "--xdp-mode",
            "skb",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("detach it first"));
    // Attaching to loopback is refused: test runs are recognised by it.
    let out = ns
        .cmd(&[b, "--pin-dir", &pin, "attach", "--iface", "lo"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    ns.exec(&[b, "--pin-dir", &pin, "detach", "--iface", &ifname]);
    assert!(inspect(&ns)["attachments"].as_array().unwrap().is_empty());
    let out = ns
        .cmd(&[b, "--pin-dir", &pin, "detach", "--iface", &ifname])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "detaching twice must say it was not attached"
    );
}

/// A namespace of its own with a veth pair in it: two interfaces to gate.
fn veth_ns(tag: &str) -> (NetNs, String, String) {
    let ns = NetNs::new(&format!("wg{tag}{}", unique("")));
    let a = format!("{tag}{}", unique(""));
    let b = format!("{a}p");
    ns.exec(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
    (ns, a, b)
}

/// `wotgate` inside `ns`, success or not.
fn in_ns(ns: &NetNs, pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(Some(ns), pin, args)
        .output()
        .expect("run wotgate")
}

fn ok_in(ns: &NetNs, pin: &Path, args: &[&str]) -> Output {
    let out = in_ns(ns, pin, args);
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn status_in(ns: &NetNs, pin: &Path) -> serde_json::Value {
    serde_json::from_slice(&ok_in(ns, pin, &["inspect", "--json"]).stdout).expect("json")
}

/// A pin directory nobody has created yet, purged on drop.
struct FreshPin(PathBuf);
impl Drop for FreshPin {
    fn drop(&mut self) {
        let _ = wotgate::gate::purge(&self.0);
    }
}

#[test]
fn an_enforce_attach_with_an_empty_set_is_refused_and_changes_nothing() {
    integration_tests::require_kernel();
    let (ns, if_a, if_b) = veth_ns("em");

    // No gate yet: refused before anything is pinned, saying what to do.
    let fresh = FreshPin(PathBuf::from(format!(
        "/sys/fs/bpf/wotgate-test-{}",
        unique("fresh")
    )));
    let out = in_ns(&ns, &fresh.0, &["attach", "--iface", &if_a]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for hint in [
        "trusts nobody",
        "port 25",
        "--prefixes FILE",
        "wotgate prefixes load FILE",
        "plan --config FILE --load",
        "--observe",
        "--allow-empty-set",
    ] {
        assert!(err.contains(hint), "{hint:?} missing from: {err}");
    }
    assert!(!fresh.0.exists(), "a refused attach must not pin anything");

    // --prefixes loads the first set, so a new gate enforces at once.
    let t = tmpdir();
    let f = t.0.join("s.prefixes");
    std::fs::write(&f, "allow 2001:db8:1::/48 peer\n").unwrap();
    let f = f.to_str().unwrap();
    ok_in(
        &ns,
        &fresh.0,
        &["attach", "--iface", &if_a, "--prefixes", f],
    );
    let s = status_in(&ns, &fresh.0);
    assert_eq!(s["mode"], "enforce");
    assert_eq!(s["attachments"][0]["iface"], if_a.as_str());
    assert_eq!(s["entries"][0]["prefix"], "2001:db8:1::/48");

    // A pinned gate with an empty set: refused, nothing attached, the
    // settings asked for not applied.
    let mut pg = PinnedGate::new("em");
    pg.release();
    let before = status_in(&ns, pg.path());
    let out = in_ns(
        &ns,
        pg.path(),
        &["attach", "--iface", &if_b, "--port", "587"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("port 587"));
    let after = status_in(&ns, pg.path());
    assert_eq!(before["settings"], after["settings"]);
    assert!(after["attachments"].as_array().unwrap().is_empty());

    // Observe needs no flag; enforcing later is refused the same way and
    // leaves the gate observing, still attached.
    ok_in(&ns, pg.path(), &["attach", "--iface", &if_b, "--observe"]);
    let observing = status_in(&ns, pg.path());
    let out = in_ns(&ns, pg.path(), &["attach", "--iface", &if_b, "--enforce"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusts nobody"));
    let s = status_in(&ns, pg.path());
    assert_eq!(s["mode"], "observe");
    assert_eq!(s["attachments"], observing["attachments"]);

    // Said explicitly, it is allowed (and warned about).
    let out = ok_in(
        &ns,
        pg.path(),
        &["attach", "--iface", &if_b, "--enforce", "--allow-empty-set"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusts nobody"));
    assert_eq!(status_in(&ns, pg.path())["mode"], "enforce");
}

/// A pinned gate with a one-entry set, attached to `iface` in observe mode
/// on ports 25 and 587 for one destination prefix; the attach's output.
fn attach_with_settings(ns: &NetNs, pg: &PinnedGate, iface: &str) -> Output {
    let t = tmpdir();
    let f = t.0.join("s.prefixes");
    std::fs::write(&f, "allow 2001:db8:1::/48 peer\n").unwrap();
    ok(pg.path(), &["prefixes", "load", f.to_str().unwrap()]);
    let args = [
        "attach",
        "--iface",
        iface,
        "--observe",
        "--port",
        "25",
        "--port",
        "587",
        "--protect",
        "2001:db8:ffff::/48",
    ];
    ok_in(ns, pg.path(), &args)
}

#[test]
fn reattaching_without_flags_keeps_the_settings() {
    integration_tests::require_kernel();
    let (ns, if_a, if_b) = veth_ns("ke");
    let mut pg = PinnedGate::new("ke");
    pg.release();
    attach_with_settings(&ns, &pg, &if_a);
    let settings = status_in(&ns, pg.path())["settings"].clone();
    assert_eq!(
        settings,
        serde_json::json!({"ports": [25, 587], "observe": true, "protect": ["2001:db8:ffff::/48"]})
    );
    // Again without flags, and on a second interface: nothing is reset.
    for iface in [&if_a, &if_b] {
        let out = ok_in(&ns, pg.path(), &["attach", "--iface", iface]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("settings changed"), "{text}");
        assert_eq!(status_in(&ns, pg.path())["settings"], settings);
    }
}

#[test]
fn a_settings_change_is_reported_and_limited_to_the_flags_given() {
    integration_tests::require_kernel();
    let (ns, if_a, if_b) = veth_ns("ch");
    let mut pg = PinnedGate::new("ch");
    pg.release();
    let pin = pg.path();
    let out = attach_with_settings(&ns, &pg, &if_a);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("settings changed: mode enforce -> observe; ports 25 -> 25,587; protect every destination -> 2001:db8:ffff::/48")
    );
    ok_in(&ns, pin, &["attach", "--iface", &if_b, "--observe"]);

    // Named settings change, and only those; the other interface is told.
    let out = ok_in(
        &ns,
        pin,
        &["attach", "--iface", &if_a, "--enforce", "--port", "25"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("settings changed: mode observe -> enforce; ports 25,587 -> 25\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("also changes them on {if_b}")));
    let s = status_in(&ns, pin);
    assert_eq!(
        s["settings"]["protect"],
        serde_json::json!(["2001:db8:ffff::/48"])
    );

    let out = ok_in(&ns, pin, &["attach", "--iface", &if_a, "--protect-all"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("settings changed: protect 2001:db8:ffff::/48 -> every destination\n"));
    let s = status_in(&ns, pin);
    assert_eq!(
        s["settings"],
        serde_json::json!({"ports": [25], "observe": false, "protect": []})
    );
    assert_eq!(s["attachments"].as_array().unwrap().len(), 2);
}

#[test]
fn inspect_says_what_the_datapath_looks_sources_up_in() {
    let mut pg = PinnedGate::new("cli-lookup");
    pg.release();
    // Before anything is loaded there is no compiled copy to speak of.
    let s = json(pg.path(), &["inspect", "--json"]);
    assert_eq!(s["lookup"]["kind"], "none", "{}", s["lookup"]);
    let t = tmpdir();
    let set = t.0.join("set.prefixes");
    // Two /32 groups, one of them with a short prefix over it.
    std::fs::write(
        &set,
        "allow 2001:db8:1::/48 a\ndeny 2001:db8:1:2::/64 a\nallow 2001:db9::/48 b\n",
    )
    .unwrap();
    ok(pg.path(), &["prefixes", "load", set.to_str().unwrap()]);
    let s = json(pg.path(), &["inspect", "--json"]);
    assert_eq!(s["lookup"]["kind"], "compiled", "{}", s["lookup"]);
    assert_eq!(s["lookup"]["groups"], 2, "{}", s["lookup"]);
    assert_eq!(s["lookup"]["short_prefixes"], false, "{}", s["lookup"]);
    let text = ok(pg.path(), &["inspect"]);
    assert!(
        text.contains("lookup       compiled: 2 /32 groups"),
        "{text}"
    );

    std::fs::write(
        &set,
        "allow 2001:db8:1::/48 a\nallow 2001:db9::/48 b\nallow 2001:db8::/31 wide\n",
    )
    .unwrap();
    ok(pg.path(), &["prefixes", "load", set.to_str().unwrap()]);
    let s = json(pg.path(), &["inspect", "--json"]);
    assert_eq!(s["lookup"]["kind"], "compiled", "{}", s["lookup"]);
    assert_eq!(s["lookup"]["short_prefixes"], true, "{}", s["lookup"]);
}
