//! Faults around the pin directory, as a hostile tester found them: writers
//! serialised by its lock (a purge waits for a running load, a writer that
//! waited for a purged gate changes nothing, waiting is said and bounded),
//! purge and attach refusing what is not a gate's directory, paths resolved
//! before they are judged (never a second bpffs over /sys/fs/bpf), another
//! XDP program named, every cause said once.
//!
//! Tests that mount or unmount run in a mount namespace of their own
//! (`MountNs`): the machine's /sys/fs/bpf is never touched.

use std::{
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    lookup_in, many_prefixes, mounts::MountNs, netns::NetNs, unique, wotgate_bin, wotgate_cmd,
    HeldLock, PinnedGate, StderrWatch, TmpDir,
};

fn wotgate(ns: Option<&NetNs>, pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(ns, pin, args).output().expect("run wotgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn must(ns: Option<&NetNs>, pin: &Path, args: &[&str]) -> Output {
    let out = wotgate(ns, pin, args);
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        text(&out.stderr)
    );
    out
}

/// A namespace of its own with a veth pair in it: two interfaces to gate.
fn veth_ns(tag: &str) -> (NetNs, String, String) {
    let ns = NetNs::new(&format!("wg{tag}{}", unique("")));
    let a = format!("{tag}{}", unique(""));
    let b = format!("{a}p");
    ns.exec(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
    (ns, a, b)
}

#[test]
fn a_purge_waits_for_a_running_load_which_really_loads() {
    let (ns, iface, _) = veth_ns("pl");
    let mut pg = PinnedGate::new("pl");
    pg.release();
    let pin = pg.path().to_path_buf();
    must(Some(&ns), &pin, &["attach", "--iface", &iface, "--observe"]);
    let t = TmpDir::new("pl");
    let big = t.file("big.prefixes", &many_prefixes(150_000, "big"));
    let mut load = wotgate_cmd(None, &pin, &["prefixes", "load", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let load_err = StderrWatch::new(&mut load);
    // Wait until the load fills the inactive trie: it holds the lock.
    let inactive = 1 - wotgate::gate::Gate::open(&pin)
        .unwrap()
        .active_trie()
        .unwrap();
    let probe = "2001:db8:8000:3e7::1".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lookup_in(&pin, inactive, probe).unwrap().is_none() {
        assert!(Instant::now() < deadline, "the load never started filling");
        assert!(load.try_wait().unwrap().is_none(), "the load ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut purge = wotgate_cmd(Some(&ns), &pin, &["detach", "--iface", &iface, "--purge"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let purge_err = StderrWatch::new(&mut purge);
    let waiting = format!(
        "waiting for the lock on {} held by pid {}",
        pin.display(),
        load.id()
    );
    let said = purge_err.wait_for(&waiting, Duration::from_secs(20));
    let load_status = load.wait().unwrap();
    assert!(load_status.success(), "the load: {}", load_err.finish());
    let purge_status = purge.wait().unwrap();
    let purge_text = purge_err.finish();
    assert!(
        said,
        "the purge must wait for the load, saying so: {purge_text}"
    );
    assert_eq!(
        purge_text.matches("waiting for the lock").count(),
        1,
        "said once: {purge_text}"
    );
    assert!(purge_status.success(), "{purge_text}");
    assert!(!pin.exists(), "purged after the load");
}

#[test]
fn a_writer_that_waited_for_a_gate_removed_meanwhile_changes_nothing() {
    let mut pg = PinnedGate::new("rm");
    pg.release();
    let pin = pg.path().to_path_buf();
    let t = TmpDir::new("rm");
    let f = t.file("s.prefixes", "allow 2001:db8:1::/48 a\n");
    let held = HeldLock::take(&pin);
    let mut load = wotgate_cmd(None, &pin, &["prefixes", "load", f.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = StderrWatch::new(&mut load);
    let waiting = format!(
        "waiting for the lock on {} held by pid {}",
        pin.display(),
        std::process::id()
    );
    let said = err.wait_for(&waiting, Duration::from_secs(20));
    // Meanwhile the gate goes, as a purge would take it.
    for e in std::fs::read_dir(&pin).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    drop(held);
    let status = load.wait().unwrap();
    let text = err.finish();
    assert!(said, "no waiting message: {text}");
    assert!(!status.success());
    assert!(
        text.contains("was removed (or replaced) while this command waited"),
        "{text}"
    );
}

#[test]
fn waiting_for_the_lock_is_bounded() {
    let mut pg = PinnedGate::new("bd");
    pg.release();
    let pin = pg.path().to_path_buf();
    let _held = HeldLock::take(&pin);
    let t = TmpDir::new("bd");
    let f = t.file("s.prefixes", "allow 2001:db8:1::/48 a\n");
    let start = Instant::now();
    let out = wotgate(
        None,
        &pin,
        &[
            "--lock-timeout",
            "1",
            "prefixes",
            "load",
            f.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(15));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("still held by pid {}", std::process::id())),
        "{err}"
    );
    // Readers take no lock: inspect answers meanwhile.
    must(None, &pin, &["--lock-timeout", "0", "inspect"]);
}

#[test]
fn a_gate_attached_nowhere_can_be_purged() {
    let (ns, a, b) = veth_ns("pg");
    // detach, then detach --purge: the gate goes (it said "not attached"
    // and kept every pin before).
    let pin = std::path::PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("pg")));
    let _cleanup = Purged(pin.clone());
    must(Some(&ns), &pin, &["attach", "--iface", &a, "--observe"]);
    must(Some(&ns), &pin, &["detach", "--iface", &a]);
    let out = must(Some(&ns), &pin, &["detach", "--iface", &a, "--purge"]);
    assert!(text(&out.stderr).contains("not attached"), "{out:?}");
    assert!(!pin.exists(), "purged: {}", text(&out.stdout));

    // `purge` refuses while attached, names the interfaces, changes nothing.
    must(Some(&ns), &pin, &["attach", "--iface", &a, "--observe"]);
    must(Some(&ns), &pin, &["attach", "--iface", &b]);
    let out = wotgate(Some(&ns), &pin, &["purge"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("still attached") && err.contains(&b), "{err}");
    // Also from a namespace where those interfaces are not to be seen.
    assert!(!wotgate(None, &pin, &["purge"]).status.success());
    assert!(pin.join("WG_CONFIG").exists());
    // `detach --purge` without --iface also refuses; --detach-all goes.
    assert!(!wotgate(Some(&ns), &pin, &["detach", "--purge"])
        .status
        .success());
    let out = must(Some(&ns), &pin, &["purge", "--detach-all"]);
    let said = text(&out.stdout);
    assert!(said.contains(&format!("detached from {a}")), "{said}");
    assert!(!pin.exists());
    // Nothing there: no error.
    must(Some(&ns), &pin, &["purge"]);
}

/// Purges a pin directory on drop, whatever the test left there.
struct Purged(std::path::PathBuf);
impl Drop for Purged {
    fn drop(&mut self) {
        let _ = wotgate::gate::purge(&self.0);
    }
}

/// `wotgate --pin-dir PIN ARGS` inside mount namespace `m` and network
/// namespace `net`.
fn in_mounts(m: &MountNs, net: &NetNs, pin: &str, args: &[&str]) -> Output {
    let bin = wotgate_bin();
    let mut full = vec![bin.to_str().unwrap(), "--pin-dir", pin];
    full.extend_from_slice(args);
    m.run(Some(&net.name), &full)
}

#[test]
fn purge_and_attach_leave_a_bpffs_root_and_foreign_pins_alone() {
    integration_tests::require_kernel();
    let (ns, iface, _) = veth_ns("rt");
    let m = MountNs::with_fresh_bpffs();
    m.must(&["mkdir", "-p", "/sys/fs/bpf/foreign/sub"]);
    let attach = ["attach", "--iface", iface.as_str(), "--observe"];

    // The bpffs root is nobody's pin directory.
    let out = in_mounts(&m, &ns, "/sys/fs/bpf", &attach);
    assert!(!out.status.success(), "attach at the root: {out:?}");
    assert!(
        text(&out.stderr).contains("root of a bpf filesystem"),
        "{out:?}"
    );
    let out = in_mounts(&m, &ns, "/sys/fs/bpf", &["purge", "--detach-all"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("root of a bpf filesystem"),
        "{out:?}"
    );
    m.must(&["test", "-d", "/sys/fs/bpf/foreign/sub"]);
    // Nor is a directory of someone else's pins.
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/foreign", &["purge"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not look like a gate"),
        "{out:?}"
    );
    m.must(&["test", "-d", "/sys/fs/bpf/foreign/sub"]);

    // A gate directory someone put more into: the gate's pins go, the
    // rest and the directory stay, and it is said.
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/wg", &attach);
    assert!(out.status.success(), "{out:?}");
    m.must(&["mkdir", "/sys/fs/bpf/wg/extra"]);
    let out = in_mounts(
        &m,
        &ns,
        "/sys/fs/bpf/wg",
        &["detach", "--iface", &iface, "--purge"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("it also holds extra"), "{out:?}");
    m.must(&["test", "-d", "/sys/fs/bpf/wg/extra"]);
    assert!(!m
        .run(None, &["test", "-e", "/sys/fs/bpf/wg/WG_CONFIG"])
        .status
        .success());
    assert!(!m
        .run(None, &["test", "-e", "/sys/fs/bpf/wg/prog"])
        .status
        .success());
}

#[test]
fn pin_dirs_are_resolved_before_they_are_judged() {
    integration_tests::require_kernel();
    let (ns, iface, _) = veth_ns("pd");
    let attach = ["attach", "--iface", iface.as_str(), "--observe"];
    let m = MountNs::new();
    let before = m.mounts_at("/sys/fs/bpf");
    assert_eq!(before, 1, "the machine's bpffs, copied");

    // `..` out of bpffs: an error naming both paths, and nothing mounted.
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/../../x", &attach);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("/sys/fs/bpf/../../x")
            && err.contains("/sys/x")
            && err.contains("not on a bpf filesystem"),
        "{err}"
    );
    assert_eq!(
        m.mounts_at("/sys/fs/bpf"),
        1,
        "no bpffs mounted over /sys/fs/bpf"
    );

    // Through a symbolic link out of bpffs: the same.
    let t = TmpDir::new("pd");
    m.must(&["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]);
    m.must(&["ln", "-s", t.0.to_str().unwrap(), "/sys/fs/bpf/out"]);
    let stacked = m.mounts_at("/sys/fs/bpf");
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/out/g", &attach);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("/sys/fs/bpf/out/g") && err.contains(&t.0.join("g").display().to_string()),
        "{err}"
    );
    assert_eq!(m.mounts_at("/sys/fs/bpf"), stacked);
    assert!(!t.0.join("g").exists());
}

#[test]
fn bpffs_is_mounted_once_and_only_at_sys_fs_bpf() {
    integration_tests::require_kernel();
    let (ns, iface, _) = veth_ns("mt");
    let attach = ["attach", "--iface", iface.as_str(), "--observe"];
    let m = MountNs::new();
    m.must(&["umount", "/sys/fs/bpf"]);
    assert_eq!(m.mounts_at("/sys/fs/bpf"), 0);
    // Elsewhere: refused, naming it, nothing mounted.
    let t = TmpDir::new("mt");
    let elsewhere = t.0.join("pins");
    let out = in_mounts(&m, &ns, elsewhere.to_str().unwrap(), &attach);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(elsewhere.to_str().unwrap()),
        "{out:?}"
    );
    assert_eq!(m.mounts_at("/sys/fs/bpf"), 0);
    // Below /sys/fs/bpf: mounted there, once, and the gate works.
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/wg", &attach);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(m.mounts_at("/sys/fs/bpf"), 1);
    let out = in_mounts(&m, &ns, "/sys/fs/bpf/wg2", &["attach", "--iface", &iface]);
    assert!(!out.status.success(), "a second gate on a gated interface");
    assert_eq!(m.mounts_at("/sys/fs/bpf"), 1);
}

#[test]
fn another_xdp_program_is_named_and_no_wrong_flag_suggested() {
    let (ns, iface, _) = veth_ns("ox");
    let mut first = PinnedGate::new("ox1");
    first.release();
    let mut second = PinnedGate::new("ox2");
    second.release();
    must(
        Some(&ns),
        first.path(),
        &["attach", "--iface", &iface, "--observe"],
    );
    for mode in ["skb", "native"] {
        let out = wotgate(
            Some(&ns),
            second.path(),
            &["attach", "--iface", &iface, "--observe", "--xdp-mode", mode],
        );
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{iface} already has another XDP program attached"))
                && err.contains("\"wotgate\"")
                && err.contains("native mode"),
            "{mode}: {err}"
        );
        assert!(
            !err.contains("--mode skb") && !err.contains("try --xdp-mode"),
            "{err}"
        );
    }
}

/// No part of an error line (between `: `) is said twice.
fn assert_said_once(err: &str) {
    for line in err.lines() {
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 3).collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[..i].contains(p), "{p:?} twice in: {line}");
        }
    }
}

#[test]
fn gate_errors_say_each_cause_once() {
    let mut pg = PinnedGate::new("msg");
    pg.release();
    let t = TmpDir::new("msg");
    let cut = t.0.join("cut.pcap");
    std::fs::write(&cut, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap();
    let garbage = t.file("garbage.pcap", "not a capture at all");
    for (args, want) in [
        (vec!["replay", t.0.to_str().unwrap()], "Is a directory"),
        (vec!["replay", cut.to_str().unwrap()], "cut short"),
        (vec!["replay", garbage.to_str().unwrap()], "not a capture"),
    ] {
        let out = wotgate(None, pg.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_said_once(&err);
    }
}

#[test]
fn a_replay_stuck_on_a_full_pipe_holds_no_lock() {
    use integration_tests::packet::{Builder, SYN};
    let mut pg = PinnedGate::new("pp");
    pg.release();
    let pin = pg.path().to_path_buf();
    let t = TmpDir::new("pp");
    // 20,000 records: far more output than a pipe holds.
    let frame = Builder::ipv6_tcp(
        "2001:db8:2::7".parse().unwrap(),
        "2001:db8:ffff::1".parse().unwrap(),
        4000,
        25,
        SYN,
    )
    .build();
    let mut cap = Vec::new();
    cap.extend_from_slice(&0xA1B2C3D4u32.to_le_bytes());
    cap.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    cap.extend_from_slice(&65535u32.to_le_bytes());
    cap.extend_from_slice(&1u32.to_le_bytes());
    for _ in 0..20_000 {
        cap.extend_from_slice(&[0; 8]);
        cap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        cap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        cap.extend_from_slice(&frame);
    }
    let pcap = t.0.join("cap.pcap");
    std::fs::write(&pcap, cap).unwrap();
    // Nobody reads its output: the replay blocks writing it.
    let mut replay = wotgate_cmd(None, &pin, &["replay", pcap.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        replay.try_wait().unwrap().is_none(),
        "the replay should be stuck writing"
    );
    let f = t.file("s.prefixes", "allow 2001:db8:1::/48 a\n");
    let mut load = wotgate_cmd(None, &pin, &["prefixes", "load", f.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        if let Some(st) = load.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = load.kill();
    let _ = load.wait();
    let _ = replay.kill();
    let _ = replay.wait();
    let st = done.expect("the load waited behind a replay stuck on its output");
    assert!(st.success());
}
